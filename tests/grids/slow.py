"""A grids file whose fits take a noticeable time, so kills land mid-search."""
from sklearn.datasets import make_classification
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression


def load_data():
    return make_classification(n_samples=1500, n_features=20, n_informative=8, random_state=1)


FAMILIES = {
    "lr": (LogisticRegression(max_iter=1000), {"C": [0.01, 0.1, 1.0, 10.0]}),
    "rf": (RandomForestClassifier(random_state=0),
           {"n_estimators": [40, 80, 120], "max_depth": [4, 8, None]}),
    "et": (ExtraTreesClassifier(random_state=0),
           {"n_estimators": [60, 120], "min_samples_leaf": [1, 3, 5]}),
}
