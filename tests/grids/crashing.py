"""A family whose fits with ``exit=True`` kill their worker process (as a crash in native code would)."""
import os

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification
from sklearn.neighbors import KNeighborsClassifier


class Crash(ClassifierMixin, BaseEstimator):
    def __init__(self, exit=False, k=1):
        self.exit = exit
        self.k = k

    def fit(self, X, y):
        if self.exit:
            os._exit(7)
        self.classes_ = np.unique(y)
        self.majority_ = np.bincount(y).argmax() + self.k - 1
        return self

    def predict(self, X):
        return np.full(len(X), self.majority_)


def load_data():
    return make_classification(n_samples=90, n_features=4, random_state=0)


FAMILIES = {
    "crash": (Crash(), [{"exit": [False], "k": [1, 2]}, {"exit": [True]}]),
    "knn": (KNeighborsClassifier(), {"n_neighbors": [3, 5]}),
}
