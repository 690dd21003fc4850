"""Families of three kinds on a target of classes: GridSearchCV stratifies only the classifier's folds."""
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.mixture import GaussianMixture


def load_data():
    return make_classification(n_samples=120, n_features=4, n_informative=2, weights=[0.8],
                               random_state=0)


FAMILIES = {
    "lr": (LogisticRegression(), {"C": [0.1, 1.0]}),
    "ridge": (Ridge(), {"alpha": [0.1, 10.0]}),
    "gmm": (GaussianMixture(random_state=0), {"n_components": [1, 2]}),
}
