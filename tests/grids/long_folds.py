"""One family whose candidates each take several seconds: a kill lands between their folds.

The candidates differ in depth, not in size: forests of several sizes would
be grown together on each fold (one task for both), and this file is about a
candidate whose own folds are its progress.
"""
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier


def load_data():
    return make_classification(n_samples=2000, n_features=20, n_informative=8, random_state=2)


FAMILIES = {
    "rf": (RandomForestClassifier(n_estimators=175, random_state=0), {"max_depth": [None, 12]}),
}
