"""Shared helpers: paths to the test grids files and a way to start real runner processes."""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

HERE = Path(__file__).parent
GRIDS = HERE / "grids"
W1 = HERE.parents[1] / "shared" / "bench" / "w1.py"
KEY_VARIABLES = ("SEARCH_STATE_KEY", "SEARCH_STATE_KEY_FILE")


@pytest.fixture(autouse=True)
def _no_key_in_environment(monkeypatch):
    """A signing key set in the developer's shell must not change what the tests see."""
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def import_file(path: Path):
    spec = importlib.util.spec_from_file_location(f"ref_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference(grids_path: Path, cv: int = 5, scoring=None) -> dict:
    """Plain GridSearchCV on every family of a grids file: the results to equal (read only: the searches
    on this folder's own files are made once a session, slow.py's take 11 s)."""
    if Path(grids_path).parent == GRIDS:
        return _reference_of_ours(Path(grids_path).name, cv, scoring)
    return _reference(grids_path, cv, scoring)


@functools.cache
def _reference_of_ours(name: str, cv: int, scoring) -> dict:
    return _reference(GRIDS / name, cv, scoring)


def _reference(grids_path: Path, cv: int, scoring) -> dict:
    module = import_file(grids_path)
    X, y = module.load_data()
    return {
        name: GridSearchCV(est, grid, cv=cv, scoring=scoring, n_jobs=1).fit(X, y)
        for name, (est, grid) in module.FAMILIES.items()
    }


def assert_same_as_gridsearch(entry: dict, search: GridSearchCV) -> None:
    """The state's family equals GridSearchCV's results in every observable number."""
    ref, got = search.cv_results_, entry["cv_results"]
    assert entry["status"] == "done"
    assert list(got) == list(ref)  # the same keys in the same order: a DataFrame of them has the same columns
    assert repr(got["params"]) == repr(ref["params"])  # an estimator as a value: equal by what it is
    for key in (k for k in ref if k.startswith("param_")):
        assert got[key].dtype == ref[key].dtype, key
        assert repr(got[key].tolist()) == repr(ref[key].tolist()), key
    np.testing.assert_array_equal(got["mean_test_score"], ref["mean_test_score"])
    np.testing.assert_array_equal(got["std_test_score"], ref["std_test_score"])
    np.testing.assert_array_equal(got["rank_test_score"], ref["rank_test_score"])
    for i in range(search.n_splits_):
        np.testing.assert_array_equal(got[f"split{i}_test_score"], ref[f"split{i}_test_score"])
    assert repr(entry["best_params"]) == repr(search.best_params_)
    assert entry["best_score"] == search.best_score_
    assert entry["best_index"] == search.best_index_


def search_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "search", *args]


def start(args, cwd, **kwargs) -> subprocess.Popen:
    """Start a real runner process in its own session (so its signals are its own)."""
    env = dict(os.environ, PYTHONPATH=str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(search_cmd(*args), cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **kwargs)


def run_search(args, cwd, timeout=300) -> subprocess.CompletedProcess:
    proc = start(args, cwd)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture
def quick_reference():
    return reference(GRIDS / "quick.py")


def slow_fit_grids(tmp_path, seconds: float, candidates: int, log: Path | None = None) -> Path:
    """A grids file of one family whose fits each sleep ``seconds`` (and append their start to ``log``)."""
    grids = tmp_path / "slow_fits.py"
    note = f"        with open({str(log)!r}, 'a') as f:\n            f.write(f'{{time.time()}}\\n')\n" if log else ""
    grids.write_text("import time\nfrom sklearn.datasets import load_iris\n"
                     "from sklearn.dummy import DummyClassifier\n\n"
                     "class Slow(DummyClassifier):\n    def fit(self, X, y, sample_weight=None):\n"
                     f"{note}        time.sleep({seconds})\n        return super().fit(X, y, sample_weight)\n\n"
                     "def load_data():\n    return load_iris(return_X_y=True)\n\n"
                     f"FAMILIES = {{'slow': (Slow(), {{'constant': list(range({candidates}))}})}}\n")
    return grids
