"""A copy of the reference workload W1 (shared/bench/w1.py), so that the tests need nothing beside the checkout."""
import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def load_data():
    return make_classification(n_samples=4000, n_features=30, n_informative=10,
                               random_state=0)


FAMILIES = {
    "lr": (make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
           {"logisticregression__C": [0.01, 0.1, 1, 10, 100]}),
    "knn": (make_pipeline(StandardScaler(), KNeighborsClassifier()),
            {"kneighborsclassifier__n_neighbors": list(range(1, 30, 2))}),
    "rf": (RandomForestClassifier(random_state=0),
           {"n_estimators": [50, 100, 200], "max_depth": [None, 10]}),
    "nb": (GaussianNB(), {"var_smoothing": [float(v) for v in np.logspace(-9, -6, 4)]}),
    "hgb": (HistGradientBoostingClassifier(random_state=0),
            {"learning_rate": [0.05, 0.1], "max_leaf_nodes": [15, 31]}),
}
