"""A grids file whose import runs a while inside a weakref callback (as importlib's module locks
have), where Python cannot raise: it drops the exception with a traceback. It says when it is there,
and afterwards imports on for a while longer."""
import os
import time
import weakref

from sklearn.datasets import make_classification
from sklearn.naive_bayes import GaussianNB

SECONDS = float(os.environ.get("SEARCH_TEST_IMPORT_SECONDS", "60"))


class _Dropped:
    pass


def _callback(_ref):
    open(os.environ["SEARCH_TEST_IMPORTING"], "w").close()
    time.sleep(SECONDS)


_dropped = _Dropped()
_ref = weakref.ref(_dropped, _callback)
del _dropped  # the callback runs here
time.sleep(SECONDS)


def load_data():
    return make_classification(n_samples=60, random_state=0)


FAMILIES = {"nb": (GaussianNB(), {"var_smoothing": [1e-9]})}
