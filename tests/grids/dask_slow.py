"""Fits that take a moment (forests), few enough that GridSearchCV's reference stays cheap."""
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression


def load_data():
    return make_classification(n_samples=1500, n_features=20, n_informative=8, random_state=1)


FAMILIES = {
    "lr": (LogisticRegression(max_iter=1000), {"C": [0.01, 0.1, 1.0, 10.0]}),
    "rf": (RandomForestClassifier(random_state=0), {"n_estimators": [30, 60], "max_depth": [6, None]}),
}
