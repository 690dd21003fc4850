"""A grids file whose import runs a while inside a ``__set_name__`` (as scipy's class bodies do), where
Python turns any exception into a RuntimeError; it says when it is there."""
import os
import time

from sklearn.datasets import make_classification
from sklearn.naive_bayes import GaussianNB


class Slow:
    def __set_name__(self, owner, name):
        open(os.environ["SEARCH_TEST_IMPORTING"], "w").close()
        time.sleep(float(os.environ.get("SEARCH_TEST_IMPORT_SECONDS", "60")))


class Holder:
    value = Slow()


def load_data():
    return make_classification(n_samples=60, random_state=0)


FAMILIES = {"nb": (GaussianNB(), {"var_smoothing": [1e-9]})}
