"""One family whose candidates each take several seconds: a kill lands between their folds."""
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier


def load_data():
    return make_classification(n_samples=2000, n_features=20, n_informative=8, random_state=2)


FAMILIES = {
    "rf": (RandomForestClassifier(random_state=0), {"n_estimators": [150, 200]}),
}
