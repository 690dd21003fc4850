"""Ensembles grown from smaller ones on each fold: the same scores and best estimators as GridSearchCV.

Forests and bagging (more members) and gradient boosting (more stages), alone or as a pipeline's last
step.
"""

from __future__ import annotations

import cloudpickle
import numpy as np
import pytest
from conftest import GRIDS, assert_same_as_gridsearch, import_file, reference, run_search
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    AdaBoostClassifier,
    BaggingClassifier,
    BaggingRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    _base,
    _forest,
    _gb,
)
from sklearn.ensemble._hist_gradient_boosting.grower import TreeGrower
from sklearn.metrics import check_scoring, roc_auc_score
from sklearn.model_selection import KFold, ParameterGrid, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import search
import state

FORESTS = GRIDS / "forests.py"
ENSEMBLES = GRIDS / "ensembles.py"


def chains(estimator, grid):
    return search.growth_chains(estimator, list(ParameterGrid(grid)))


def test_candidates_that_differ_only_in_size_are_grown_smallest_first():
    # ParameterGrid varies n_estimators fastest: [12, 3, 6] for max_depth None, then for 3
    assert chains(RandomForestClassifier(random_state=0), {"n_estimators": [12, 3, 6], "max_depth": [None, 3]}) \
        == [[1, 2, 0], [4, 5, 3]]
    pipe = make_pipeline(StandardScaler(), RandomForestClassifier(random_state=0))
    assert chains(pipe, {"randomforestclassifier__n_estimators": [5, 10], "standardscaler__with_mean": [True, False]}) \
        == [[0, 2], [1, 3]]
    assert chains(HistGradientBoostingClassifier(random_state=0), {"max_iter": [20, 10], "learning_rate": [0.1, 0.2]}) \
        == [[1, 0], [3, 2]]
    assert chains(GradientBoostingRegressor(random_state=0), {"n_estimators": [5, 10]}) == [[0, 1]]
    assert chains(BaggingRegressor(random_state=0), {"n_estimators": [10, 5]}) == [[1, 0]]


@pytest.mark.parametrize(("estimator", "grid"), [
    (RandomForestClassifier(), {"n_estimators": [5, 10]}),  # no seed: every fit draws other trees
    (RandomForestClassifier(random_state=np.random.RandomState(0)), {"n_estimators": [5, 10]}),
    (RandomForestClassifier(random_state=0), {"n_estimators": [5, 5, 10]}),  # a size twice
    (RandomForestClassifier(random_state=0), {"n_estimators": [5.0, 10.0]}),
    (RandomForestClassifier(random_state=0), {"n_estimators": [5], "max_depth": [2, 3]}),  # one size
    (AdaBoostClassifier(random_state=0), {"n_estimators": [5, 10]}),  # reweights its data: not grown
    (BaggingClassifier(random_state=0, oob_score=True), {"n_estimators": [5, 10]}),  # refuses to warm start
    (GradientBoostingClassifier(random_state=0, n_iter_no_change=2), {"n_estimators": [5, 10]}),  # stops early
    (HistGradientBoostingClassifier(random_state=0, early_stopping=True), {"max_iter": [5, 10]}),
    (HistGradientBoostingClassifier(), {"max_iter": [5, 10]}),  # no seed
    (HistGradientBoostingClassifier(random_state=0), {"n_estimators": [5, 10]}),  # not its size
    (type("MyForest", (RandomForestClassifier,), {})(random_state=0), {"n_estimators": [5, 10]}),
    (RandomForestRegressor(random_state=0), {"n_estimators": [5, 10], "random_state": [None]}),
])
def test_everything_else_is_fitted_alone(estimator, grid):
    n = len(ParameterGrid(grid))
    assert chains(estimator, grid) == [[i] for i in range(n)]


@pytest.mark.parametrize(("grids", "grown", "size", "largest"), [
    (FORESTS, "rf", "n_estimators", 12), (ENSEMBLES, "gb", "n_estimators", 12)], ids=["forests", "ensembles"])
def test_runs_equal_gridsearchcv(tmp_path, grids, grown, size, largest):
    path = tmp_path / "s.pkl"
    done = run_search(["-q", "run", "--grids", str(grids), "--state", str(path), "--n-jobs", "2"], tmp_path)
    assert done.returncode == 0, done.stderr
    data = state.load(path)
    X, y = import_file(grids).load_data()
    for name, ref in reference(grids).items():
        entry = data["families"][name]
        assert_same_as_gridsearch(entry, ref)
        np.testing.assert_array_equal(entry["best_estimator"].predict_proba(X), ref.best_estimator_.predict_proba(X))
    # grown, not fitted whole: each chain's work on a fold is its largest ensemble's fit time (which
    # counts the smaller ones' members), where fitting each whole would spend the sum of all three
    entry = data["families"][grown]
    chain_ends = [c for c in entry["candidates"].values() if c["params"][size] == largest]
    scoring = sum(sum(c["score_times"]) for c in entry["candidates"].values())
    assert entry["time_spent"] == pytest.approx(
        sum(sum(c["fit_times"]) for c in chain_ends) + scoring + entry["refit_time"])


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


def _count_calls(monkeypatch, owner, name) -> list:
    calls, original = [], getattr(owner, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


@pytest.mark.parametrize(("ensemble", "size", "owner", "counted"), [
    (RandomForestClassifier(random_state=0, max_depth=4), "n_estimators", _forest, "_parallel_build_trees"),
    (GradientBoostingClassifier(random_state=0, subsample=0.8), "n_estimators", _gb.BaseGradientBoosting,
     "_fit_stage"),
    (HistGradientBoostingClassifier(random_state=0, max_features=0.5), "max_iter", TreeGrower, "grow"),
    (BaggingClassifier(random_state=0, max_features=0.5), "n_estimators", _base.BaseEnsemble, "_make_estimator"),
], ids=["forest", "gradient_boosting", "hist_gradient_boosting", "bagging"])
def test_a_fold_builds_each_member_once_and_scores_each_size_as_if_fitted_whole(monkeypatch, ensemble, size, owner,
                                                                                 counted):
    """Trees built (a forest's), stages fitted (gradient boosting's), trees grown (histogram's) or members
    made (bagging's), counted."""
    built = _count_calls(monkeypatch, owner, counted)
    X, y = import_file(FORESTS).load_data()
    test_indices = [test for _, test in StratifiedKFold(3).split(X, y)]
    model = make_pipeline(StandardScaler(), ensemble)
    step = f"{model.steps[-1][0]}__{size}"
    sizes = [3, 6, 12]
    candidates = [{step: n} for n in sizes]
    results = search.fit_fold((X, y, test_indices), cloudpickle.dumps(model), candidates, 0, "roc_auc")
    assert len(built) == 12  # not 3 + 6 + 12
    train = np.setdiff1d(np.arange(len(y)), test_indices[0])
    for params, result in zip(candidates, results):
        fitted = clone(model).set_params(**params).fit(X[train], y[train])
        proba = fitted.predict_proba(X[test_indices[0]])[:, 1]
        assert result["score"] == roc_auc_score(y[test_indices[0]], proba) and result["error"] is None
    assert results[-1]["fit_time"] == pytest.approx(sum(r["work"] - r["score_time"] for r in results))


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


def _whole_fit_scores(estimator, sizes, size, X, y, test_indices, fold, scoring=None):
    train, test = np.setdiff1d(np.arange(len(y)), test_indices[fold]), test_indices[fold]
    fitted = [clone(estimator).set_params(**{size: n}).fit(X[train], y[train]) for n in sizes]
    return [check_scoring(model, scoring)(model, X[test], y[test]) for model in fitted]


@pytest.mark.parametrize(("estimator", "size"), [
    (GradientBoostingRegressor(random_state=0, subsample=0.6, loss="huber", max_depth=2), "n_estimators"),
    (HistGradientBoostingRegressor(random_state=0, max_features=0.5, l2_regularization=0.5), "max_iter"),
])
def test_boosted_regressors_grow_to_the_scores_of_whole_fits(estimator, size):
    X, y = make_regression(n_samples=300, n_features=6, noise=10.0, random_state=2)
    test_indices = [test for _, test in KFold(3).split(X)]
    sizes = [4, 9, 20]
    results = search.fit_fold((X, y, test_indices), cloudpickle.dumps(estimator), [{size: n} for n in sizes], 2, None)
    assert [r["score"] for r in results] == _whole_fit_scores(estimator, sizes, size, X, y, test_indices, 2)
    assert results[-1]["fit_time"] == pytest.approx(sum(r["work"] - r["score_time"] for r in results))


def test_a_boosting_that_stopped_early_is_not_grown_but_fitted_whole():
    """On more than 10,000 rows, histogram gradient boosting stops early by default ("auto"): a fit to more
    iterations stops where the smaller one did, while one grown from it would go on."""
    X, y = make_classification(n_samples=14000, n_features=8, flip_y=0.3, random_state=1)
    test_indices = [np.arange(i, len(y), 5) for i in range(5)]
    estimator = HistGradientBoostingClassifier(random_state=0, n_iter_no_change=3)
    sizes = [40, 200]
    results = search.fit_fold((X, y, test_indices), cloudpickle.dumps(estimator), [{"max_iter": n} for n in sizes],
                              0, None)
    assert [r["score"] for r in results] == _whole_fit_scores(estimator, sizes, "max_iter", X, y, test_indices, 0)
    assert all(r["fit_time"] == pytest.approx(r["work"] - r["score_time"]) for r in results)  # each from nothing


def test_the_builtin_regression_forest_equals_gridsearchcv_on_a_table(tmp_path):
    """The built-in ``rf`` grows its forest behind the shared preprocessing of raw columns."""
    import pandas as pd
    from sklearn.model_selection import GridSearchCV

    from grids import load_grids

    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"x": rng.normal(size=120), "kind": rng.choice(["u", "v", None], 120)})
    frame["price"] = 3 * frame["x"] + (frame["kind"] == "u") + rng.normal(0, 0.3, 120)
    csv = tmp_path / "houses.csv"
    frame.to_csv(csv, index=False)
    path = tmp_path / "s.pkl"
    search.run(search.RunConfig(str(path), data=str(csv), target="price", families=["rf"], n_jobs=2,
                                progress=False))
    estimator, grid = load_grids("regression").families["rf"]
    assert search.growth_chains(estimator, list(ParameterGrid(grid))) == [[0, 1], [2, 3]]
    dataset = search.load_dataset(str(csv), "price")
    ref = GridSearchCV(estimator, grid, cv=5).fit(dataset.X, dataset.y)
    entry = state.load(path)["families"]["rf"]
    assert_same_as_gridsearch(entry, ref)
    np.testing.assert_array_equal(entry["best_estimator"].predict(dataset.X), ref.best_estimator_.predict(dataset.X))
