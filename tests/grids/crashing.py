"""A family whose fits with ``exit=True`` kill their worker process (as a crash in native code would).

The others take a while, so that they are in flight, on the other worker, when it happens.
"""
import os
import time

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
            time.sleep(0.2)
            os._exit(7)
        time.sleep(0.5)
        self.classes_ = np.unique(y)
        self.majority_ = np.bincount(y).argmax() + self.k - 1
        return self

    def predict(self, X):
        return np.full(len(X), self.majority_)


def load_data():
    return make_classification(n_samples=90, n_features=4, random_state=0)


FAMILIES = {
    "crash": (Crash(), [{"exit": [False], "k": [1]}, {"exit": [True]}]),
    "knn": (KNeighborsClassifier(), {"n_neighbors": [3, 5]}),
}
