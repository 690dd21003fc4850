"""Wide data and quick fits: the data (1.6 MB) dwarfs a task, so data sent with every task would show."""
from sklearn.datasets import make_classification
from sklearn.naive_bayes import GaussianNB


def load_data():
    return make_classification(n_samples=2000, n_features=100, n_informative=10, random_state=0)


FAMILIES = {
    "nb": (GaussianNB(), {"var_smoothing": [10.0 ** -k for k in range(3, 13)]}),
}
