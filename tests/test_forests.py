"""Forests grown from smaller ones on each fold: the same scores and best estimators as GridSearchCV."""

from __future__ import annotations

import cloudpickle
import numpy as np
import pytest
from conftest import GRIDS, assert_same_as_gridsearch, import_file, reference, run_search
from sklearn.base import clone
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier, RandomForestRegressor
from sklearn.model_selection import ParameterGrid, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import search
import state

FORESTS = GRIDS / "forests.py"


def chains(estimator, grid):
    return search.forest_chains(estimator, list(ParameterGrid(grid)))


def test_candidates_that_differ_only_in_size_are_grown_smallest_first():
    # ParameterGrid varies n_estimators fastest: [12, 3, 6] for max_depth None, then for 3
    assert chains(RandomForestClassifier(random_state=0), {"n_estimators": [12, 3, 6], "max_depth": [None, 3]}) \
        == [[1, 2, 0], [4, 5, 3]]
    pipe = make_pipeline(StandardScaler(), RandomForestClassifier(random_state=0))
    assert chains(pipe, {"randomforestclassifier__n_estimators": [5, 10], "standardscaler__with_mean": [True, False]}) \
        == [[0, 2], [1, 3]]


@pytest.mark.parametrize(("estimator", "grid"), [
    (RandomForestClassifier(), {"n_estimators": [5, 10]}),  # no seed: every fit draws other trees
    (RandomForestClassifier(random_state=np.random.RandomState(0)), {"n_estimators": [5, 10]}),
    (RandomForestClassifier(random_state=0), {"n_estimators": [5, 5, 10]}),  # a size twice
    (RandomForestClassifier(random_state=0), {"n_estimators": [5.0, 10.0]}),
    (RandomForestClassifier(random_state=0), {"n_estimators": [5], "max_depth": [2, 3]}),  # one size
    (GradientBoostingClassifier(random_state=0), {"n_estimators": [5, 10]}),  # not a forest
    (type("MyForest", (RandomForestClassifier,), {})(random_state=0), {"n_estimators": [5, 10]}),
    (RandomForestRegressor(random_state=0), {"n_estimators": [5, 10], "random_state": [None]}),
])
def test_everything_else_is_fitted_alone(estimator, grid):
    n = len(ParameterGrid(grid))
    assert chains(estimator, grid) == [[i] for i in range(n)]


def test_runs_equal_gridsearchcv_and_spend_less_than_fitting_each_forest(tmp_path):
    path = tmp_path / "s.pkl"
    done = run_search(["-q", "run", "--grids", str(FORESTS), "--state", str(path), "--n-jobs", "2"], tmp_path)
    assert done.returncode == 0, done.stderr
    data = state.load(path)
    X, y = import_file(FORESTS).load_data()
    for name, ref in reference(FORESTS).items():
        entry = data["families"][name]
        assert_same_as_gridsearch(entry, ref)
        np.testing.assert_array_equal(entry["best_estimator"].predict_proba(X), ref.best_estimator_.predict_proba(X))
        # a candidate's fit time counts the smaller forests' trees it was grown from; the time spent does not
        fitted_whole = sum(sum(c["fit_times"]) + sum(c["score_times"]) for c in entry["candidates"].values())
        assert entry["time_spent"] - entry["refit_time"] < fitted_whole


def test_a_resumed_family_grows_the_forests_its_folds_still_lack(tmp_path):
    """Saved: one chain's middle candidate whole, another candidate on two folds only."""
    path = tmp_path / "s.pkl"
    args = ["-q", "run", "--grids", str(FORESTS), "--state", str(path), "--families", "rf"]
    assert run_search(args, tmp_path).returncode == 0
    data = state.load(path)
    entry = data["families"]["rf"]
    keys = {search.candidate_key(c["params"]): c["params"] for c in entry["candidates"].values()}
    by_size = {(p["max_depth"], p["n_estimators"]): k for k, p in keys.items()}
    partial = entry["candidates"].pop(by_size[(None, 3)])
    entry["folds"] = {by_size[(None, 3)]: {i: {"score": partial["test_scores"][i], "fit_time": 0.0,
                                                "score_time": 0.0, "error": None} for i in (1, 3)}}
    for size in (12, 6):
        del entry["candidates"][by_size[(3, size)]]
    entry["status"] = "partial"
    for k in ("best_estimator", "refit_time", "finished"):
        del entry[k]
    state.save(path, data)

    assert run_search(args, tmp_path).returncode == 0
    assert_same_as_gridsearch(state.load(path)["families"]["rf"], reference(FORESTS)["rf"])


def test_a_size_that_fails_to_grow_is_nan_and_the_next_is_fitted_whole():
    X, y = import_file(FORESTS).load_data()
    test_indices = [test for _, test in StratifiedKFold(3).split(X, y)]
    forest = RandomForestClassifier(random_state=0)
    blob = cloudpickle.dumps(forest)
    sizes = [10, 5, 20]  # 5 after 10: a forest cannot shrink, so that warm start fails
    results = search.fit_fold((X, y, test_indices), blob, [{"n_estimators": n} for n in sizes], 1, None)
    train = np.setdiff1d(np.arange(len(y)), test_indices[1])
    for n, result in zip(sizes, results):
        if n == 5:
            assert np.isnan(result["score"]) and "n_estimators=5 must be larger or equal" in result["error"]
            continue
        fitted = clone(forest).set_params(n_estimators=n).fit(X[train], y[train])
        assert result["error"] is None
        assert result["score"] == fitted.score(X[test_indices[1]], y[test_indices[1]])
