"""A boosting workload: W1's data, gradient boosting searched over its size (``--workload boosting``).

Classic and histogram gradient boosting, each at 50, 100 and 200 stages for
two values of a second parameter. The runner grows each fold's 50 stages to
100 and 200 (see the README's Ensembles searched over their size); the
hand-written loop fits every size from nothing.
"""
from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier


def load_data():
    return make_classification(n_samples=4000, n_features=30, n_informative=10, random_state=0)


FAMILIES = {
    "gb": (GradientBoostingClassifier(random_state=0, subsample=0.8),
           {"n_estimators": [50, 100, 200], "max_depth": [2, 3]}),
    "hgb": (HistGradientBoostingClassifier(random_state=0),
            {"max_iter": [50, 100, 200], "learning_rate": [0.05, 0.1]}),
}
