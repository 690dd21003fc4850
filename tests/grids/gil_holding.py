"""A family whose fit holds the GIL in one long C call, as some custom code does: no Python thread of
the worker can run until it returns. Each fit leaves a file named after its worker's pid in the working
directory when it starts."""
import os
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification


def load_data():
    return make_classification(n_samples=100, n_features=4, random_state=0)


class GilHolder(ClassifierMixin, BaseEstimator):
    def __init__(self, n=10**11):
        self.n = n

    def fit(self, X, y):
        Path(f"fitting-{os.getpid()}").touch()
        sum(range(self.n))  # minutes, in C, without releasing the GIL
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


FAMILIES = {"gil": (GilHolder(), {"n": [10**11, 10**11 + 1]})}
