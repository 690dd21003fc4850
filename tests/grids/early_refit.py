"""Scripted fits for the end of a run, where a worker idles while the last fold runs.

Each family has candidates "a" and "b" and is searched with ``--cv 2``; every
fold takes a few milliseconds except b's second, which takes 1.5 s. While it
runs, the runner may refit the likely best early: "b", whose first fold scored
best. In "right" b's second fold scores well too and b is the best; in "wrong"
it scores 0 and "a" is, so that guess must be dropped and "a" refitted. In
"fails" every fit of "a" and b's second fit raise: the family fails, and the
guess must be dropped too.

``Scripted`` appends ``EVENT WHICH FOLD TIME`` lines to ``$SEARCH_TEST_FIT_LOG``
(fold "all" for a refit on all the rows).
"""
import os
import time

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

N = 40
SCORES = {  # (case, which, fold) -> score; KFold(2): fold 0 tests rows 0-19, fold 1 rows 20-39
    ("right", "a", 0): 0.5, ("right", "a", 1): 0.5, ("right", "b", 0): 0.9, ("right", "b", 1): 0.9,
    ("wrong", "a", 0): 0.5, ("wrong", "a", 1): 0.5, ("wrong", "b", 0): 0.9, ("wrong", "b", 1): 0.0,
    ("fails", "b", 0): 0.9,
}


def _log(*fields) -> None:
    path = os.environ.get("SEARCH_TEST_FIT_LOG")
    if path:
        with open(path, "a") as file:
            file.write(" ".join(map(str, fields)) + f" {time.time()!r}\n")


class Scripted(RegressorMixin, BaseEstimator):
    def __init__(self, case="right", which="a"):
        self.case = case
        self.which = which

    def fit(self, X, y):
        self.fold_ = "all" if len(X) == N else (0 if X.min() >= N // 2 else 1)
        _log("start", self.which, self.fold_)
        if self.fold_ == "all":
            time.sleep(5.0 if self.which == "b" and self.case != "right" else 0.3)  # 5 s: a wrong guess
        elif (self.which, self.fold_) == ("b", 1):
            time.sleep(1.5)
        if self.case == "fails" and (self.which == "a" or self.fold_ == 1):
            raise ValueError(f"scripted failure of {self.which} on fold {self.fold_}")
        _log("end", self.which, self.fold_)
        return self

    def predict(self, X):
        return np.zeros(len(X))

    def score(self, X, y, sample_weight=None):
        return SCORES[(self.case, self.which, self.fold_)]


def load_data():
    X = np.arange(N, dtype=float).reshape(-1, 1)
    return X, X.ravel() * 0.5


FAMILIES = {
    "right": (Scripted(case="right"), {"which": ["a", "b"]}),
    "wrong": (Scripted(case="wrong"), {"which": ["a", "b"]}),
    "fails": (Scripted(case="fails"), {"which": ["a", "b"]}),
}
