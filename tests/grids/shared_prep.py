"""Pipelines whose searched parameters all belong to the last step: the preprocessing is shared.

``CountingScaler`` appends a line to ``$SEARCH_TEST_FIT_LOG`` at every fit, so a
test can count how often the preprocessing was fitted.
"""
import os

from sklearn.datasets import make_classification
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


class CountingScaler(StandardScaler):
    def fit(self, X, y=None, sample_weight=None):
        log = os.environ.get("SEARCH_TEST_FIT_LOG")
        if log:
            with open(log, "a") as file:
                file.write(f"{os.getpid()}\n")
        return super().fit(X, y, sample_weight)


class ScalesInPlace(LogisticRegression):
    """A last step that changes its input in place, as estimators with ``copy=False`` may."""

    def fit(self, X, y, sample_weight=None):
        X *= 0.5
        return super().fit(X, y, sample_weight)


def load_data():
    return make_classification(n_samples=600, n_features=12, n_informative=6, random_state=3)


FAMILIES = {
    "shared": (make_pipeline(CountingScaler(), PCA(n_components=6, random_state=0), LogisticRegression(max_iter=1000)),
               {"logisticregression__C": [0.01, 0.1, 1.0, 10.0], "logisticregression__fit_intercept": [True, False]}),
    "knn": (make_pipeline(StandardScaler(), KNeighborsClassifier()), {"kneighborsclassifier__n_neighbors": [1, 5, 9]}),
    "in_place": (make_pipeline(StandardScaler(), PCA(n_components=4, random_state=0), ScalesInPlace(max_iter=1000)),
                 {"scalesinplace__C": [0.1, 1.0, 10.0]}),
    "not_shared": (make_pipeline(StandardScaler(), PCA(random_state=0), LogisticRegression(max_iter=1000)),
                   {"pca__n_components": [2, 5], "logisticregression__C": [0.1, 1.0]}),
}
