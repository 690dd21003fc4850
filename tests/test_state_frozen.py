"""A state file written by format version 1 still loads and its estimator still predicts."""

from __future__ import annotations

import hashlib
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import state

FROZEN = Path(__file__).resolve().parent / "frozen" / "state_v1.pkl"
# The file is written once (tests/frozen/make_state_v1.py) and never regenerated.
FROZEN_SHA256 = "d90001403a9e37423fda6f7e4b48eb5d4dd92bff9289014d227b63a4724ba1f3"

pytestmark = [
    pytest.mark.filterwarnings("ignore::state.EnvironmentMismatchWarning"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.InconsistentVersionWarning"),
]



@pytest.fixture
def frozen(tmp_path):
    # a checkout gives the file the umask's mode; the loader wants it private
    path = tmp_path / "state_v1.pkl"
    shutil.copyfile(FROZEN, path)
    path.chmod(0o600)
    return path


def test_the_frozen_file_is_the_one_written_by_version_1():
    data = FROZEN.read_bytes()
    assert hashlib.sha256(data).hexdigest() == FROZEN_SHA256
    magic, version, algorithm, length = struct.unpack("<8sBB6xQ", data[-56:-32])
    assert (magic, version, algorithm, length) == (b"CKSEARCH", 1, 1, len(data) - 56)
    assert data[-56 + 10 : -56 + 16] == bytes(6)
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]


def test_a_version_1_state_loads_and_its_best_estimator_predicts(frozen):
    data = state.load(frozen)
    assert data["format_version"] == 1
    assert data["run"]["family_order"] == ["lr"]
    family = data["families"]["lr"]
    assert family["status"] == "done"
    assert family["best_params"] == {"C": 1.0}
    assert family["best_score"] == pytest.approx(0.97333, abs=1e-4)
    assert list(family["cv_results"]["params"]) == [{"C": 0.1}, {"C": 1.0}, {"C": 10.0}]
    estimator = family["best_estimator"]
    assert isinstance(estimator, LogisticRegression)
    X, y = load_iris(return_X_y=True, as_frame=True)
    np.testing.assert_array_equal(estimator.predict(X.iloc[[0, 50, 100]]), [0, 1, 2])
    assert np.mean(estimator.predict(X) == y) > 0.95


def test_a_version_1_state_loads_lazily_and_with_plain_pickle(frozen):
    lazy = state.load(frozen, lazy=True)
    wrapped = lazy["families"]["lr"]["best_estimator"]
    assert isinstance(wrapped, state.Pickled)
    assert isinstance(wrapped.load(), LogisticRegression)
    with open(frozen, "rb") as f:
        plain = pickle.load(f)
    assert isinstance(plain["families"]["lr"]["best_estimator"], LogisticRegression)
