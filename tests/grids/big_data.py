"""Data of about 0.8 MB, searched by two cheap families: bigger than the state file it leaves."""
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB


def load_data():
    return make_classification(n_samples=5000, n_features=20, random_state=5)


FAMILIES = {
    "nb": (GaussianNB(), {"var_smoothing": [1e-9, 1e-7]}),
    "lr": (LogisticRegression(max_iter=500), {"C": [0.1, 1.0]}),
}
