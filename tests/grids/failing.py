"""Families whose fits fail: some candidates of 'flaky', every candidate of 'broken'."""
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression


class Flaky(ClassifierMixin, BaseEstimator):
    """Fails to fit when ``fail`` is true; otherwise predicts the majority class."""

    def __init__(self, fail=False, bias=0):
        self.fail = fail
        self.bias = bias

    def fit(self, X, y):
        if self.fail:
            raise ValueError("this candidate always fails")
        self.classes_, counts = np.unique(y, return_counts=True)
        self.majority_ = self.classes_[np.argmax(counts)]
        return self

    def predict(self, X):
        return np.full(len(X), self.majority_)


def load_data():
    return make_classification(n_samples=200, n_features=5, random_state=0)


FAMILIES = {
    "flaky": (Flaky(), {"fail": [False, True], "bias": [0, 1]}),
    "broken": (Flaky(fail=True), {"bias": [0, 1, 2]}),
    "lr": (LogisticRegression(), {"C": [0.1, 1.0]}),
}
