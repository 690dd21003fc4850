"""The runner through the library function and click's CliRunner: results, exit codes, messages."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import (
    GRIDS,
    assert_same_as_gridsearch,
    import_file,
    reference,
    run_search,
    search_cmd,
    slow_fit_grids,
    start,
)
from sklearn.model_selection import GridSearchCV

import search
import state
from grids import load_grids

QUICK = str(GRIDS / "quick.py")


def invoke(*args):
    return CliRunner().invoke(search.cli, ["-q", *args], catch_exceptions=False)


def test_run_equals_gridsearchcv(tmp_path, quick_reference):
    path = tmp_path / "s.pkl"
    report = search.run(search.RunConfig(str(path), grids=QUICK, n_jobs=2, progress=False))
    assert report.done == ["lr", "knn", "nb", "tree"] and not report.stopped
    data = state.load(path)
    for name, ref in quick_reference.items():
        assert_same_as_gridsearch(data["families"][name], ref)
        best = data["families"][name]["best_estimator"]
        X = search.load_dataset(None, None, load_grids(QUICK).load_data).X
        np.testing.assert_array_equal(best.predict(X), ref.best_estimator_.predict(X))


def test_second_run_computes_nothing(tmp_path):
    path = str(tmp_path / "s.pkl")
    config = search.RunConfig(path, grids=QUICK, n_jobs=2, progress=False)
    search.run(config)
    again = search.run(config)
    assert again.tasks_run == 0 and again.done == ["lr", "knn", "nb", "tree"]


def test_families_option_runs_only_those(tmp_path):
    path = tmp_path / "s.pkl"
    result = invoke("run", "--state", str(path), "--grids", QUICK, "--families", "nb,lr")
    assert result.exit_code == 0, result.output
    assert set(state.load(path)["families"]) == {"nb", "lr"}


def test_unknown_family_names_the_valid_ones(tmp_path):
    result = invoke("run", "--state", str(tmp_path / "s.pkl"), "--grids", QUICK, "--families", "svm")
    assert result.exit_code == 1
    assert "--families: 'svm' not in" in result.output
    assert "expected one of lr, knn, nb, tree" in result.output


def test_unknown_scoring_lists_valid_names(tmp_path):
    result = invoke("run", "--state", str(tmp_path / "s.pkl"), "--scoring", "acuracy")
    assert result.exit_code == 2
    assert "'acuracy' is not a scikit-learn scorer; did you mean accuracy" in result.output
    assert "expected one of" in result.output
    assert "accuracy" in result.output and "roc_auc" in result.output
    rmse = invoke("run", "--state", str(tmp_path / "s.pkl"), "--scoring", "RMSE")
    assert rmse.exit_code == 2
    assert ("'RMSE' is not a scikit-learn scorer; did you mean neg_root_mean_squared_error (the error negated, "
            "so that higher is better)?") in " ".join(rmse.output.split())


def test_scoring_is_used(tmp_path):
    path = tmp_path / "s.pkl"
    result = invoke("run", "--state", str(path), "--grids", QUICK, "--families", "lr",
                    "--scoring", "balanced_accuracy")
    assert result.exit_code == 0, result.output
    ref = reference(GRIDS / "quick.py", scoring="balanced_accuracy")["lr"]
    assert_same_as_gridsearch(state.load(path)["families"]["lr"], ref)


def test_status_json_during_and_after(tmp_path):
    path = tmp_path / "s.pkl"
    invoke("run", "--state", str(path), "--grids", QUICK, "--families", "lr,nb")
    result = invoke("status", "--state", str(path), "--json")
    assert result.exit_code == 0
    report = json.loads(result.output)
    rows = {r["family"]: r for r in report["families"]}
    assert rows["lr"]["status"] == "done"
    assert rows["lr"]["candidates_done"] == rows["lr"]["candidates_total"] == 4
    assert rows["lr"]["fits_done"] == rows["lr"]["fits_total"] == 4 * 5
    assert report["best"] in {"lr", "nb"}
    assert rows[report["best"]]["best_score"] == max(r["best_score"] for r in rows.values())
    assert report["run"] == {"task": "classification", "data": "load_data() of the grids file", "target": None,
                             "rows": 300, "columns": 8, "cv": 5, "scoring": None, "grids": QUICK,
                             "running": None}
    table = invoke("status", "--state", str(path))
    assert "lr" in table.output and "done" in table.output and "best:" in table.output
    assert "data: load_data() of the grids file, 300 rows × 8 columns; classification; the grids file" in table.output
    assert "scores: 5-fold cross-validation, each estimator's own score (accuracy unless" in table.output
    assert "no runner is at work on it" in table.output


def test_status_explains_a_negated_error_score(tmp_path):
    path = tmp_path / "s.pkl"
    result = invoke("run", "--state", str(path), "--task", "regression", "--families", "ridge",
                    "--scoring", "neg_mean_absolute_error")
    assert result.exit_code == 0, result.output
    table = invoke("status", "--state", str(path)).output
    assert "data: scikit-learn diabetes (built-in), 442 rows × 10 columns; target 'target' (regression); " \
           "the built-in regression families" in table
    assert "neg_mean_absolute_error (negated, so that higher is better: -2.5 is an error of 2.5)" in table
    best = run_search(["best", "--state", str(path)], tmp_path)
    assert best.stdout.startswith("ridge\t-") and best.stdout.count("\n") == 1  # stdout stays one line
    assert "score: the mean over 5 folds of neg_mean_absolute_error (negated, so that higher is better" \
        in best.stderr


def test_the_status_table_keeps_its_columns_for_wide_scores_and_long_names(capsys):
    row = {"status": "done", "candidates_done": 5, "candidates_total": 5, "fits_done": 25, "fits_total": 25,
           "time_spent": 1.5, "best_params": {"alpha": 1}}
    search._print_table([{**row, "family": "ridge", "best_score": -123377.4479},
                         {**row, "family": "a_rather_long_family_name", "best_score": 0.5}])
    header, *lines = capsys.readouterr().out.splitlines()
    assert len({line.index("  {'alpha'") for line in lines} | {header.index("  best params")}) == 1
    assert {line.index(" 1.5 ") for line in lines} == {header.index(" time s") + 3}
    assert "-123377.4479" in lines[0] and "a_rather_long_family_name done" in lines[1]


def test_status_without_state_file_says_so(tmp_path):
    result = invoke("status", "--state", str(tmp_path / "none.pkl"))
    assert result.exit_code == 1
    assert "there is no state file at" in result.output


def test_state_loads_with_plain_pickle_in_a_fresh_interpreter(tmp_path):
    path = tmp_path / "s.pkl"
    invoke("run", "--state", str(path), "--grids", QUICK, "--families", "tree")
    code = (
        "import pickle, sys\n"
        f"s = pickle.load(open({str(path)!r}, 'rb'))\n"
        "f = s['families']['tree']\n"
        "assert s['format_version'] == 1 and f['status'] == 'done'\n"
        "print(type(f['best_estimator']).__name__, f['best_score'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith("DecisionTreeClassifier ")


def test_csv_with_missing_values_and_categories(tmp_path):
    rng = np.random.default_rng(0)
    n = 240
    frame = pd.DataFrame({
        "age": rng.normal(40, 10, n),
        "income": rng.lognormal(10, 1, n),
        "city": rng.choice(["paris", "lyon", "nice"], n),
        "plan": rng.choice(["a", "b"], n),
    })
    frame["label"] = np.where((frame["age"] > 40) ^ (frame["city"] == "nice"), "yes", "no")
    frame.loc[rng.choice(n, 30), "age"] = np.nan
    frame.loc[rng.choice(n, 30), "city"] = np.nan
    csv = tmp_path / "train.csv"
    frame.to_csv(csv, index=False)
    path = tmp_path / "s.pkl"
    result = invoke("run", "--state", str(path), "--data", str(csv), "--target", "label",
                    "--families", "lr,nb,hgb")
    assert result.exit_code == 0, result.output
    data = state.load(path)
    assert data["run"]["task"] == "classification"
    best = search.load_best(str(path))
    rows = frame.drop(columns="label").head(5).copy()
    rows.loc[0, "city"] = "unseen-city"  # unknown categories are ignored
    assert set(best.predict(rows)) <= {"yes", "no"}


def test_regression_task_is_inferred_from_the_target(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=150), "kind": rng.choice(["u", "v"], 150)})
    frame["price"] = 3 * frame["x"] + (frame["kind"] == "u") + rng.normal(0, 0.1, 150)
    csv = tmp_path / "houses.csv"
    frame.to_csv(csv, index=False)
    path = tmp_path / "s.pkl"
    result = invoke("run", "--state", str(path), "--data", str(csv), "--target", "price",
                    "--families", "ridge,knn")
    assert result.exit_code == 0, result.output
    data = state.load(path)
    assert data["run"]["task"] == "regression"
    assert data["families"]["ridge"]["best_score"] > 0.9  # r2


def test_missing_target_column_names_the_columns(tmp_path):
    csv = tmp_path / "t.csv"
    pd.DataFrame({"a": [1, 2], "label": [0, 1]}).to_csv(csv, index=False)
    result = invoke("run", "--state", str(tmp_path / "s.pkl"), "--data", str(csv), "--target", "lable")
    assert result.exit_code == 1
    assert "--target 'lable' is not a column of" in result.output
    assert "Did you mean 'label'?" in result.output


def test_a_header_that_names_a_column_twice_is_refused(tmp_path):
    """pandas would train on the first and call the second `a.1`."""
    csv = tmp_path / "t.csv"
    csv.write_text("a,b,a,label\n" + "".join(f"{i},{i % 3},{-i},{i % 2}\n" for i in range(40)))
    path = tmp_path / "s.pkl"
    result = invoke("run", "--state", str(path), "--data", str(csv), "--target", "label")
    assert result.exit_code == 1 and not path.exists()
    assert f"--data {csv}: the header names column 'a' twice (columns 1 and 3); give each column its own name" \
        in result.output
    csv.write_text("a,b,a.1,label\n" + "".join(f"{i},{i % 3},{-i},{i % 2}\n" for i in range(40)))
    assert invoke("run", "--state", str(path), "--data", str(csv), "--target", "label",
                  "--families", "nb").exit_code == 0  # a name like a renamed one is a name


@pytest.mark.filterwarnings("ignore::search.FitFailedWarningGroup")  # its text: the next test
def test_failing_candidates_get_nan_and_a_failed_family_exits_1(tmp_path):
    path = tmp_path / "s.pkl"
    result = invoke("run", "--state", str(path), "--grids", str(GRIDS / "failing.py"))
    assert result.exit_code == 1
    assert "failed: broken" in result.output
    data = state.load(path)
    flaky = data["families"]["flaky"]
    assert flaky["status"] == "done"
    failed_rows = [i for i, p in enumerate(flaky["cv_results"]["params"]) if p["fail"]]
    assert np.isnan(flaky["cv_results"]["mean_test_score"][failed_rows]).all()
    assert flaky["best_params"]["fail"] is False
    broken = data["families"]["broken"]
    assert broken["status"] == "failed"
    assert "15 of 15 fits of family 'broken' failed" in broken["error"]
    assert "ValueError: this candidate always fails" in broken["error"]
    assert data["families"]["lr"]["status"] == "done"


def test_failing_fits_are_summarised_in_one_warning(tmp_path):
    with pytest.warns(search.FitFailedWarningGroup, match=re.escape(
            "10 of 20 fits of family 'flaky' failed; their score is NaN.")):
        search.run(search.RunConfig(str(tmp_path / "s.pkl"), grids=str(GRIDS / "failing.py"),
                                    families=["flaky"], n_jobs=1, progress=False))


def test_max_time_stops_with_exit_3_and_resumes(tmp_path):
    path = tmp_path / "s.pkl"
    slow = str(GRIDS / "slow.py")
    result = invoke("run", "--state", str(path), "--grids", slow, "--max-time", "2s")
    assert result.exit_code == 3, result.output
    assert "stopped early (max-time)" in result.output
    first = state.load(path)
    assert any(f["status"] != "done" for f in first["families"].values())
    result = invoke("run", "--state", str(path), "--grids", slow)
    assert result.exit_code == 0, result.output


def test_bad_duration_is_bad_usage(tmp_path):
    result = invoke("run", "--state", str(tmp_path / "s.pkl"), "--max-time", "soon")
    assert result.exit_code == 2
    assert "'soon' is not a duration; write it like 90s, 30m, 2h or 1h30m" in result.output


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("2h", 7200),
                                           ("1h30m", 5400), ("45", 45)])
def test_parse_duration(text, seconds):
    assert search.parse_duration(text) == seconds


def test_restart_keeps_the_old_file_as_a_backup(tmp_path):
    path = tmp_path / "s.pkl"
    invoke("run", "--state", str(path), "--grids", QUICK, "--families", "nb")
    old = path.read_bytes()
    result = invoke("run", "--state", str(path), "--grids", QUICK, "--families", "lr", "--restart")
    assert result.exit_code == 0, result.output
    backups = list(tmp_path.glob("s.pkl.*.bak"))
    assert len(backups) == 1 and backups[0].read_bytes() == old
    assert set(state.load(path)["families"]) == {"lr"}
    stopped = invoke("run", "--state", str(path), "--grids", QUICK, "--families", "nb", "--restart",
                     "--max-time", "0s")
    assert stopped.exit_code == 3
    assert "run the same command without --restart to resume" in stopped.output  # a job script's requeue


def test_other_data_is_refused_and_names_the_fix(tmp_path):
    path = tmp_path / "s.pkl"
    invoke("run", "--state", str(path), "--grids", QUICK, "--families", "nb")
    before = path.read_bytes()
    result = invoke("run", "--state", str(path), "--families", "nb")  # built-in data now
    assert result.exit_code == 1
    assert f"the state file {path} was made with other data" in result.output
    assert "add --restart" in result.output and "another --state PATH" in result.output
    assert path.read_bytes() == before


def test_other_cv_is_refused(tmp_path):
    path = tmp_path / "s.pkl"
    invoke("run", "--state", str(path), "--grids", QUICK, "--families", "nb")
    result = invoke("run", "--state", str(path), "--grids", QUICK, "--families", "nb", "--cv", "3")
    assert result.exit_code == 1
    assert "was made with --cv 5, now --cv 3. To resume it, rerun with --cv 5;" in result.output


def test_every_difference_of_settings_is_named_at_once(tmp_path):
    """Not one per attempt: other data (and what differs in it), scoring and cv in one message."""
    csv = tmp_path / "t.csv"
    frame = pd.DataFrame({"a": np.arange(60) % 7, "b": np.arange(60) % 5, "label": np.arange(60) % 2})
    frame.to_csv(csv, index=False)
    path = tmp_path / "s.pkl"
    assert invoke("run", "--state", str(path), "--data", str(csv), "--target", "label",
                  "--families", "nb").exit_code == 0
    before = path.read_bytes()
    frame.rename(columns={"b": "b2"}).to_csv(csv, index=False)
    result = invoke("run", "--state", str(path), "--data", str(csv), "--target", "label", "--families", "nb",
                    "--cv", "3", "--scoring", "accuracy")
    assert result.exit_code == 1
    assert "column b gone; new column b2" in result.output
    assert "; with no --scoring (the estimator's own score), now --scoring accuracy; with --cv 5, now --cv 3." \
        in result.output
    assert "To resume it, rerun with the data it was made with and no --scoring and --cv 5;" in result.output
    assert path.read_bytes() == before


def searched_copy_of_quick(tmp_path, *options):
    """A copy of the quick grids file, searched into a state: (state path, grids path, its text)."""
    path, grids = tmp_path / "s.pkl", tmp_path / "g.py"
    text = (GRIDS / "quick.py").read_text()
    grids.write_text(text)
    assert invoke("run", "--state", str(path), "--grids", str(grids), *options).exit_code == 0
    return path, grids, text


def test_changed_grid_needs_the_flag_and_keeps_other_families(tmp_path):
    path, grids, text = searched_copy_of_quick(tmp_path)
    grids.write_text(text.replace('"C": [0.01, 0.1, 1.0, 10.0]', '"C": [0.01, 0.1, 1.0, 10.0, 100.0]'))
    result = invoke("run", "--state", str(path), "--grids", str(grids))
    assert result.exit_code == 1
    assert "family 'lr' changed since searched into" in result.output
    assert ("'lr': the parameter grid, now 5 candidates, was 4; not searched yet: {'C': 100.0}; "
            "--redo-changed keeps the 4 of its 4 saved candidates still in it") in result.output
    assert "add --redo-changed" in result.output
    result = invoke("run", "--state", str(path), "--grids", str(grids), "--redo-changed")
    assert result.exit_code == 0, result.output
    data = state.load(path)
    assert data["families"]["lr"]["n_candidates"] == 5
    assert len(data["families"]["lr"]["cv_results"]["params"]) == 5


def test_a_changed_family_is_named_with_what_changed_and_what_a_redo_keeps(tmp_path):
    path, grids, text = searched_copy_of_quick(tmp_path)
    before = path.read_bytes()
    grids.write_text(text.replace('"C": [0.01, 0.1, 1.0, 10.0]', '"C": [0.01, 0.1, 1.0, 100.0, 1000.0, 1e4]')
                     .replace("DecisionTreeClassifier(random_state=0)", "DecisionTreeClassifier(random_state=1)")
                     .replace("LogisticRegression(max_iter=1000)", "LogisticRegression(max_iter=1000, tol=1e-3)")
                     .replace("1e-9, 1e-7", "1e-9, 1e-8"))
    result = invoke("run", "--state", str(path), "--grids", str(grids))
    assert result.exit_code == 1
    assert "families 'lr', 'nb', 'tree' changed since searched into" in result.output
    assert ("'lr': the estimator, …max_iter=1000 → …max_iter=1000, tol=0.001 (and the parameter grid); "
            "--redo-changed keeps none of its 4 saved candidates") in result.output
    assert ("'nb': the parameter grid, now 2 candidates, was 2; saved, no longer in it: {'var_smoothing': 1e-07}; "
            "not searched yet: {'var_smoothing': 1e-08}; --redo-changed keeps the 1 of its 2 saved candidates "
            "still in it") in result.output
    assert "'tree': the estimator, …random_state=0 → …random_state=1;" in result.output
    assert path.read_bytes() == before
    grids.write_text(text.replace('"C": [0.01, 0.1, 1.0, 10.0]', '"C": [0.01, 0.1, 1.0, 100.0, 1000.0, 1e4]'))
    result = invoke("run", "--state", str(path), "--grids", str(grids))
    assert ("not searched yet: {'C': 100.0}, {'C': 1000.0} and 1 more; --redo-changed keeps the 3 of its 4"
            in result.output)


def test_an_edit_of_the_users_code_names_the_piece_it_changed(tmp_path):
    grids = tmp_path / "g.py"
    text = ("import numpy as np\nfrom sklearn.base import BaseEstimator, TransformerMixin\n"
            "from sklearn.datasets import make_classification\nfrom sklearn.linear_model import LogisticRegression\n"
            "from sklearn.pipeline import make_pipeline\nfrom sklearn.preprocessing import FunctionTransformer\n"
            "SKEWED = [0, 1]\nLIMIT = 3.0\n"
            "def log_skewed(X):\n    X = np.array(X, dtype=float)\n"
            "    X[:, SKEWED] = np.log1p(np.abs(X[:, SKEWED]))\n    return X\n"
            "class Clip(TransformerMixin, BaseEstimator):\n    def fit(self, X, y=None):\n        return self\n"
            "    def transform(self, X):\n        return np.clip(X, -LIMIT, LIMIT)\n"
            "def load_data():\n    return make_classification(n_samples=120, random_state=0)\n"
            "FAMILIES = {'lr': (make_pipeline(FunctionTransformer(log_skewed), Clip(), LogisticRegression()),\n"
            "                  {'logisticregression__C': [0.1, 1.0]})}\n")
    grids.write_text(text)
    args = ["run", "--state", str(tmp_path / "s.pkl"), "--grids", str(grids), "--cv", "3"]
    assert invoke(*args).exit_code == 0
    assert set(state.load(tmp_path / "s.pkl")["families"]["lr"]["code_parts"]) == {
        "search_user_grids_g:" + name for name in ("SKEWED", "LIMIT", "log_skewed", "Clip", "Clip.fit",
                                                   "Clip.transform")}
    for old, new, named in (("SKEWED = [0, 1]", "SKEWED = [0, 2]", "SKEWED, log_skewed in g.py"),
                            ("LIMIT = 3.0", "LIMIT = 4.0", "Clip, Clip.transform, LIMIT in g.py"),
                            ("return self\n", "self.seen_ = 1\n        return self\n", "Clip, Clip.fit in g.py")):
        grids.write_text(text.replace(old, new))
        result = invoke(*args)
        assert result.exit_code == 1
        assert f"'lr': the code of yours it uses: {named}; --redo-changed keeps none" in result.output, result.output
    grids.write_text(text.replace("    return X\n", "    return X  # a comment\n"))
    assert invoke(*args).exit_code == 0  # not a change


def test_a_family_resumed_without_its_grids_file_says_to_give_it(tmp_path):
    _table(60)[["a", "amount", "label"]].to_csv(tmp_path / "t.csv", index=False)
    grids = tmp_path / "mine.py"
    grids.write_text("from sklearn.linear_model import LogisticRegression\n"
                     "FAMILIES = {'lr': (LogisticRegression(), {'C': [0.1, 1.0]})}\n")
    args = ["run", "--state", str(tmp_path / "s.pkl"), "--data", str(tmp_path / "t.csv"), "--target", "label",
            "--cv", "3"]
    assert invoke(*args, "--grids", str(grids)).exit_code == 0
    result = invoke(*args)  # --grids left out: the built-in 'lr' is another family of the same name
    assert result.exit_code == 1
    assert (f"It was searched from the grids file {grids}, and this run takes it from the built-in "
            f"classification families: to resume it, rerun with --grids {grids}. To search it again with "
            "these families add --redo-changed") in result.output, result.output
    assert "\n  'lr': the estimator, LogisticRegression( → Pipeline(steps=[('prep', ColumnTransformer(" \
        in result.output  # on one line, not as the repr breaks it


def test_redo_changed_keeps_the_time_and_status_of_what_it_keeps(tmp_path):
    path, grids, text = searched_copy_of_quick(tmp_path, "--families", "lr")
    grids.write_text(text.replace('"C": [0.01, 0.1, 1.0, 10.0]', '"C": [0.01, 0.1, 1.0, 10.0, 100.0]'))
    result = invoke("run", "--state", str(path), "--grids", str(grids), "--families", "lr", "--redo-changed",
                    "--max-time", "0s")  # nothing new starts: what is kept is all there is
    assert result.exit_code == 3, result.output
    entry = state.load(path)["families"]["lr"]
    kept = sum(sum(c["fit_times"]) + sum(c["score_times"]) for c in entry["candidates"].values())
    assert entry["status"] == "partial" and len(entry["candidates"]) == 4
    assert entry["time_spent"] == pytest.approx(kept) and kept > 0


def begun_under_other_versions(tmp_path, status="partial", **versions):
    """A state of quick.py's lr and nb, lr left ``status`` (2 of its 4 candidates saved, or none)
    under ``versions`` (``scikit_learn="0.0.1"``); nb done under this environment's."""
    path = tmp_path / "s.pkl"
    assert invoke("run", "--state", str(path), "--grids", QUICK, "--families", "lr,nb").exit_code == 0
    data = state.load(path, lazy=True)
    entry = data["families"]["lr"]
    for recorded in ("environment", "estimator_environment"):  # its results', its best estimator's
        entry[recorded].update({name.replace("_", "-"): v for name, v in versions.items()})
    if status != "done":
        entry["candidates"] = dict(list(entry["candidates"].items())[:2 if status == "partial" else 0])
        entry["status"] = status
        del entry["best_estimator"]
    state.save(path, data)
    return path


def test_a_partial_family_begun_under_another_scikit_learn_is_not_mixed(tmp_path):
    """Its results so far and the rest would come from two versions (the refit from the second)."""
    path = begun_under_other_versions(tmp_path, scikit_learn="0.0.1")
    args = ["run", "--state", str(path), "--grids", QUICK, "--families", "lr,nb"]
    result = invoke(*args)
    assert result.exit_code == 1
    assert (f"Error: family 'lr' of {path} was begun with other versions, and resuming would mix its results "
            "with this version's:\n  'lr' (2 candidates saved): scikit-learn 0.0.1 (this is "
            f"{search_sklearn()}); to resume it, install the version it was begun with "
            '(pip install "scikit-learn==0.0.1")\nTo search it again under this version instead, add '
            "--redo-changed (the saved candidates are dropped)") in result.output, result.output
    data = state.load(path, lazy=True)
    assert len(data["families"]["lr"]["candidates"]) == 2  # nothing lost
    again = invoke(*args, "--redo-changed")
    assert again.exit_code == 0, again.output
    data = state.load(path, lazy=True)
    assert data["families"]["lr"]["environment"]["scikit-learn"] == search_sklearn()
    assert data["families"]["lr"]["status"] == "done" and len(data["families"]["lr"]["candidates"]) == 4


def test_a_done_family_keeps_the_versions_it_was_made_with(tmp_path):
    path = begun_under_other_versions(tmp_path, status="done", numpy="0.0.1")
    before = state.load(path, lazy=True)["families"]["lr"]["best_estimator"]
    report = search.run(search.RunConfig(str(path), grids=QUICK, families=["lr", "nb", "tree"], progress=False,
                                         n_jobs=1))
    assert report.done == ["lr", "nb", "tree"]
    data = state.load(path, lazy=True)
    lr = data["families"]["lr"]
    assert lr["environment"]["numpy"] == "0.0.1" and lr["best_estimator"] == before  # not searched again
    assert data["families"]["tree"]["environment"] == data["environment"] == state.environment()
    with pytest.warns(state.EnvironmentMismatchWarning, match=re.escape("family 'lr' was made with numpy 0.0.1")):
        search.load_best(str(path), family="lr")


def test_a_pending_family_starts_under_this_environment(tmp_path):
    path = begun_under_other_versions(tmp_path, status="pending", python="2.7.18")
    assert invoke("run", "--state", str(path), "--grids", QUICK, "--families", "lr,nb").exit_code == 0
    assert state.load(path, lazy=True)["families"]["lr"]["environment"] == state.environment()


def test_a_partial_family_of_a_state_without_its_own_versions_has_the_states(tmp_path):
    """States from before families kept their versions: the state's are its."""
    path = begun_under_other_versions(tmp_path)
    data = state.load(path, lazy=True)
    for entry in data["families"].values():
        del entry["environment"]
    data["environment"]["scikit-learn"] = "0.0.1"
    state.save(path, data)
    result = invoke("run", "--state", str(path), "--grids", QUICK, "--families", "lr,nb")
    assert result.exit_code == 1 and "'lr' (2 candidates saved): scikit-learn 0.0.1" in result.output


def test_a_family_changed_by_another_scikit_learn_says_so_first(tmp_path):
    """A new scikit-learn changes an estimator's parameters (ColumnTransformer lost
    force_int_remainder_cols in 1.9) with nothing edited: 'undo the change' is no advice."""
    path = begun_under_other_versions(tmp_path, status="done", scikit_learn="0.0.1")
    data = state.load(path, lazy=True)
    data["families"]["lr"]["estimator_fingerprint"] = "as another version fingerprints it"
    state.save(path, data)
    result = invoke("run", "--state", str(path), "--grids", QUICK, "--families", "lr,nb")
    assert result.exit_code == 1
    assert (f"  'lr': it was searched with scikit-learn 0.0.1 (this is {search_sklearn()}), the likely cause if "
            "you edited nothing (another scikit-learn's estimators differ in their parameters or code); to keep "
            'its results, install the version it was searched with (pip install "scikit-learn==0.0.1"). What '
            "differs: the estimator's code") in result.output, result.output
    assert "to keep the old results as they are, use the versions named above or use another --state" \
        in result.output
    assert "undo the change" not in result.output


def test_a_pending_family_changed_takes_its_new_definition_silently(tmp_path):
    """It has no saved candidates: nothing is lost, and there is nothing to ask."""
    path = begun_under_other_versions(tmp_path, status="pending")
    data = state.load(path, lazy=True)
    data["families"]["lr"]["grid_fingerprint"] = "another grid"
    data["families"]["lr"]["estimator_fingerprint"] = "another estimator"
    state.save(path, data)
    result = invoke("run", "--state", str(path), "--grids", QUICK, "--families", "lr,nb")  # -q: warnings show
    assert result.exit_code == 0, result.output
    assert "changed" not in result.output
    entry = state.load(path, lazy=True)["families"]["lr"]
    assert entry["status"] == "done" and entry["grid_fingerprint"] != "another grid"


def search_sklearn():
    import sklearn

    return sklearn.__version__


def test_a_restart_never_overwrites_an_earlier_backup(tmp_path):
    """Backups are named by the second: two restarts within one second keep both."""
    from datetime import datetime, timedelta

    path = tmp_path / "s.pkl"
    assert invoke("run", "--state", str(path), "--grids", QUICK, "--families", "nb").exit_code == 0
    previous = path.read_bytes()
    now = datetime.now()
    taken = [tmp_path / f"s.pkl.{(now + timedelta(seconds=t)).strftime('%Y%m%d-%H%M%S')}.bak" for t in range(60)]
    for i, backup in enumerate(taken):
        backup.write_text(f"an earlier backup {i}")
    assert invoke("run", "--state", str(path), "--grids", QUICK, "--families", "nb", "--restart").exit_code == 0
    assert all(b.read_text() == f"an earlier backup {i}" for i, b in enumerate(taken))
    [new] = [b for b in tmp_path.glob("s.pkl.*-2.bak")]
    assert new.read_bytes() == previous


def test_added_family_is_simply_added(tmp_path):
    path = tmp_path / "s.pkl"
    grids = tmp_path / "g.py"
    text = (GRIDS / "quick.py").read_text()
    grids.write_text(text.replace('    "nb": (GaussianNB(), {"var_smoothing": [1e-9, 1e-7]}),\n', ""))
    assert invoke("run", "--state", str(path), "--grids", str(grids)).exit_code == 0
    grids.write_text(text)
    report = search.run(search.RunConfig(str(path), grids=str(grids), n_jobs=1, progress=False))
    assert report.tasks_run == 2 * 5 + 1  # nb's two candidates and its refit, nothing else


BAD_GRIDS = {
    "scalar": ('FAMILIES = {"lr": (LogisticRegression(), {"C": 1.0})}',
               "grids file {p!r}, family 'lr': parameter 'C' is 1.0 (float); a grid maps each "
               "parameter to a list of values. Single values need to be wrapped in a list: 'C': [1.0]"),
    "unknown": ('FAMILIES = {"lr": (LogisticRegression(), {"Cee": [1.0]})}',
                "grids file {p!r}, family 'lr': LogisticRegression has no parameter 'Cee'"),
    "empty": ('FAMILIES = {"lr": (LogisticRegression(), {})}',
              "grids file {p!r}, family 'lr': the parameter grid is empty; give at least one "
              "parameter with a list of values"),
    "empty-list": ('FAMILIES = {"lr": (LogisticRegression(), [])}',
                   "grids file {p!r}, family 'lr': the parameter grid is empty; give at least one "
                   "parameter with a list of values"),
    "only-empty-dicts": ('FAMILIES = {"lr": (LogisticRegression(), [{}, {}])}',
                         "grids file {p!r}, family 'lr': the parameter grid is empty"),
    "empty-values": ('FAMILIES = {"lr": (LogisticRegression(), {"C": []})}',
                     "grids file {p!r}, family 'lr': parameter 'C' has an empty list of values"),
    "missing": ("X = 1", "grids file {p!r} defines no FAMILIES; add a dict that maps each family"),
    "not-estimator": ('FAMILIES = {"lr": ("LogisticRegression", {"C": [1]})}',
                      "grids file {p!r}, family 'lr': the estimator is 'LogisticRegression' (str); "
                      "it must be a scikit-learn estimator"),
    "not-pair": ('FAMILIES = {"lr": LogisticRegression()}',
                 "grids file {p!r}, family 'lr': the entry is LogisticRegression() "
                 "(LogisticRegression); it must be a pair (estimator, param_grid)"),
    "syntax": ("FAMILIES = {", "grids file {p!r} has a syntax error at line 2"),
    "from-a-notebook": ("from __main__ import NotebookTransformer",
                        "grids file {p!r} imports from __main__ (cannot import name 'NotebookTransformer' "
                        "from '__main__'"),
    "from-a-notebook-elsewhere": ("from __main__ import NotebookTransformer",
                                  "it takes what a notebook or script defined, and runs only there; resume it "
                                  "with search.run(...) from that notebook or script"),
}


@pytest.mark.parametrize("case", sorted(BAD_GRIDS))
def test_bad_grids_file_gets_a_clear_message(tmp_path, case):
    body, message = BAD_GRIDS[case]
    grids = tmp_path / f"{case}.py"
    grids.write_text("from sklearn.linear_model import LogisticRegression\n" + body + "\n")
    path = tmp_path / "s.pkl"
    result = invoke("run", "--state", str(path), "--grids", str(grids))
    assert result.exit_code == 1
    assert message.format(p=str(grids)) in result.output
    assert "Traceback" not in result.output
    assert not path.exists()  # nothing started


def test_unknown_parameter_suggests_the_close_name(tmp_path):
    grids = tmp_path / "g.py"
    grids.write_text("from sklearn.ensemble import RandomForestClassifier\n"
                     'FAMILIES = {"rf": (RandomForestClassifier(), {"n_estimator": [10]})}\n')
    result = invoke("run", "--state", str(tmp_path / "s.pkl"), "--grids", str(grids))
    assert result.exit_code == 1
    assert "did you mean 'n_estimators'?" in result.output


def test_builtin_default_search_runs_end_to_end(tmp_path, monkeypatch):
    """`search run` with no arguments: the built-in classification families, built-in data."""
    monkeypatch.chdir(tmp_path)
    result = invoke("run", "--families", "lr,nb,knn")
    assert result.exit_code == 0, result.output
    data = pickle.load(open(tmp_path / "search-state.pkl", "rb"))
    assert data["run"]["data"]["source"].startswith("scikit-learn breast cancer")
    assert data["families"]["lr"]["best_score"] > 0.95


def test_fingerprints_are_equal_across_processes(tmp_path):
    """A function with nested code (f_classif has comprehensions) hashes the same in a new process."""
    code = ("import search\nfrom sklearn.feature_selection import SelectKBest, f_classif\n"
            "from sklearn.pipeline import make_pipeline\nfrom sklearn.linear_model import LogisticRegression\n"
            "print(search.fingerprint(make_pipeline(SelectKBest(f_classif), LogisticRegression())))\n"
            "print(search.fingerprint(f_classif))\n")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0].split()) == 2


def test_a_state_fingerprinted_the_old_way_resumes_and_other_data_is_still_told(tmp_path):
    """Tables are now fingerprinted from pandas' row hashes; a state whose fingerprint is the
    joblib.hash of before goes on (checked the way it was made), and new states are the new way."""
    import joblib

    csv = tmp_path / "t.csv"
    _table().drop(columns="name").to_csv(csv, index=False)
    path = tmp_path / "s.pkl"
    args = ["run", "--state", str(path), "--data", str(csv), "--target", "label", "--families", "nb", "--cv", "3"]
    assert invoke(*args).exit_code == 0
    data = state.load(path)
    assert data["run"]["data"]["fingerprint"].startswith("t1-")
    dataset = search.load_dataset(str(csv), "label")
    data["run"]["data"]["fingerprint"] = joblib.hash((dataset.X, dataset.y))
    data["families"]["nb"]["status"] = "partial"  # so that the run has something to do
    state.save(path, data)
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert state.load(path)["run"]["data"]["fingerprint"] == joblib.hash((dataset.X, dataset.y))
    _table().drop(columns="name").assign(a=lambda f: f["a"] + 1).to_csv(csv, index=False)
    other = invoke(*args)
    assert other.exit_code == 1 and "other data" in other.output, other.output


def test_a_grid_with_a_score_function_resumes(tmp_path):
    grids = tmp_path / "g.py"
    grids.write_text(
        "from sklearn.datasets import make_classification\n"
        "from sklearn.feature_selection import SelectKBest, f_classif\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.pipeline import make_pipeline\n"
        "def load_data():\n    return make_classification(n_samples=120, n_features=6, random_state=0)\n"
        'FAMILIES = {"kbest": (make_pipeline(SelectKBest(f_classif), LogisticRegression()),\n'
        '                      {"selectkbest__k": [2, 4]})}\n')
    path = tmp_path / "s.pkl"
    args = ["-q", "run", "--grids", str(grids), "--state", str(path)]
    first = subprocess.run(search_cmd(*args), capture_output=True, text=True, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(search_cmd(*args), capture_output=True, text=True, cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # same grid in a new process: nothing "changed"


def test_shared_preprocessing_is_fitted_once_per_fold_and_equals_gridsearchcv(tmp_path, monkeypatch):
    """Candidates that differ only in a pipeline's last step share its fitted preprocessing."""
    log = tmp_path / "fits.log"
    monkeypatch.setenv("SEARCH_TEST_FIT_LOG", str(log))
    path = tmp_path / "s.pkl"
    done = run_search(["-q", "run", "--grids", str(GRIDS / "shared_prep.py"), "--state", str(path),
                       "--n-jobs", "2"], tmp_path)
    assert done.returncode == 0, done.stderr
    # 8 candidates x 5 folds would fit the scaler 40 times, plus the refit. Shared, each fold is
    # fitted once (twice at most, when both workers need a fold at the same moment).
    fits = log.read_text().splitlines()
    assert 5 + 1 <= len(fits) <= 2 * 5 + 1, len(fits)  # whether one worker or both took part (load decides)
    monkeypatch.delenv("SEARCH_TEST_FIT_LOG")
    data = state.load(path)
    for name, ref in reference(GRIDS / "shared_prep.py").items():
        assert_same_as_gridsearch(data["families"][name], ref)


def test_a_full_disk_costs_the_sharing_not_the_fits(tmp_path):
    """Transformed folds that cannot be written (here a real EFBIG) are kept in memory; no fit fails."""
    import resource

    def small_files():  # files of at most 1 MiB: the data and the state fit, a transformed fold does not
        resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))

    path = tmp_path / "s.pkl"
    proc = start(["-q", "run", "--grids", str(GRIDS / "wide_prep.py"), "--state", str(path), "--n-jobs", "2"],
                 tmp_path, preexec_fn=small_files)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert_same_as_gridsearch(state.load(path)["families"]["poly_lr"], reference(GRIDS / "wide_prep.py")["poly_lr"])


def test_no_room_for_the_workers_data_is_a_clear_error_and_keeps_the_state(tmp_path):
    """The data goes to a temporary folder for the workers; a full disk there says where and what to do."""
    import resource

    path = tmp_path / "s.pkl"
    args = ["-q", "run", "--grids", str(GRIDS / "big_data.py"), "--state", str(path)]
    assert run_search([*args, "--families", "nb"], tmp_path).returncode == 0
    saved = state.load(path)["families"]["nb"]
    assert path.stat().st_size < 300_000

    def small_files():  # the state file fits, the data for the workers (0.8 MB) does not: a real EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    proc = start(args, tmp_path, preexec_fn=small_files)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    assert "could not write the data for the workers to" in err and "TMPDIR" in err, err
    assert "Traceback" not in err
    kept = state.load(path)["families"]["nb"]
    assert kept["status"] == "done" and kept["candidates"] == saved["candidates"]


@pytest.mark.parametrize(("case", "best"), [("right", "b"), ("wrong", "a")])
def test_the_last_refit_starts_while_the_last_fold_runs(tmp_path, monkeypatch, case, best):
    """A worker with nothing left to do refits the likely best; a wrong guess is dropped, not waited for."""
    log = tmp_path / "fits.log"
    monkeypatch.setenv("SEARCH_TEST_FIT_LOG", str(log))
    path, grids = tmp_path / "s.pkl", GRIDS / "early_refit.py"
    done = run_search(["-q", "run", "--grids", str(grids), "--state", str(path), "--cv", "2", "--n-jobs", "2",
                       "--families", case], tmp_path)
    assert done.returncode == 0, done.stderr
    events = [line.split() for line in log.read_text().splitlines()]
    at = {(event, which, fold): float(t) for event, which, fold, t in events}
    assert len(at) == len(events)  # no fit ran twice
    refits = [which for event, which, fold, _ in events if event == "start" and fold == "all"]
    last_fold_end = at[("end", "b", "1")]
    assert at[("start", "b", "all")] < last_fold_end  # b, best so far, refitted while its last fold ran
    if case == "right":
        assert refits == ["b"]  # b is the best: that refit is the family's
    else:
        assert refits == ["b", "a"] and at[("start", "a", "all")] >= last_fold_end
        assert ("end", "b", "all") not in at  # the run ended without waiting for b's 5 s refit
    monkeypatch.delenv("SEARCH_TEST_FIT_LOG")
    module = import_file(grids)
    estimator, grid = module.FAMILIES[case]
    assert_same_as_gridsearch(state.load(path)["families"][case],
                              GridSearchCV(estimator, grid, cv=2).fit(*module.load_data()))
    assert search.load_best(str(path), case).which == best


def test_an_early_refit_of_a_family_that_then_fails_is_not_waited_for(tmp_path, monkeypatch):
    """b's first fold made it the likely best; its last fold fails, and so the whole family."""
    log = tmp_path / "fits.log"
    monkeypatch.setenv("SEARCH_TEST_FIT_LOG", str(log))
    path = tmp_path / "s.pkl"
    done = run_search(["-q", "run", "--grids", str(GRIDS / "early_refit.py"), "--state", str(path), "--cv", "2",
                       "--n-jobs", "2", "--families", "fails"], tmp_path)
    assert done.returncode == 1, done.stderr
    assert "failed: fails (each error's count and the last traceback: `search status --json`)" in done.stderr
    assert "3 of 4 fits of family 'fails' failed" in done.stderr and "Traceback" not in done.stderr
    events = {tuple(line.split()[:3]) for line in log.read_text().splitlines()}
    assert ("start", "b", "all") in events and ("end", "b", "all") not in events
    assert state.load(path)["families"]["fails"]["status"] == "failed"


def _table(n=60):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=n), "c": rng.choice(["x", "y"], n)})
    frame["label"] = np.where(frame["a"] + rng.normal(0, 0.5, n) > 0, "yes", "no")
    frame["amount"] = 2 * frame["a"] + rng.normal(size=n)
    frame["name"] = [f"row{i}" for i in range(n)]
    return frame


UNSEARCHABLE = {
    "cv-above-every-class": (None, ["--target", "label", "--cv", "1000"],
                             "--cv 1000: the folds are stratified by class, and no class of target 'label' "
                             "has 1000 rows"),
    "cv-above-rows": (None, ["--target", "amount", "--cv", "61"],
                      "--cv 61: the data has only 60 rows, fewer than the folds; use --cv 60 or fewer"),
    "identifier-target": (None, ["--target", "name"],
                          "every row has its own value of target 'name', so it looks like an identifier"),
    "text-for-regression": (None, ["--target", "label", "--task", "regression"],
                            "--task regression asks for a regression, but target 'label' holds text"),
    "continuous-for-classification": (None, ["--target", "amount", "--task", "classification"],
                                      "--task classification asks for a classification, but target "
                                      "'amount' holds continuous values"),
    "regression-grids-on-text": (None, ["--target", "label", "--grids", "regression"],
                                 "--grids regression (its families are all regressors) asks for a "
                                 "regression, but target 'label' holds text"),
    "regression-scorer": (None, ["--target", "label", "--scoring", "r2"],
                          "--scoring r2 cannot score classification predictions of target 'label'"),
    "f1-of-text-labels": (None, ["--target", "label", "--scoring", "f1"],
                          "--scoring f1 scores the class 1 as the positive one, and the classes of target 'label' "
                          "are 'no', 'yes': choose --scoring f1_macro (each class taken as the positive one in "
                          "turn, averaged), or make the target 1 for the positive class and 0 for the other"),
    "average-precision-of-text-labels": (None, ["--target", "label", "--scoring", "average_precision"],
                                         "choose --scoring roc_auc, which needs no positive class, or make the "
                                         "target 1 for the positive class"),
    "constant-quantity": (lambda f: f.assign(amount=5.0), ["--target", "amount", "--task", "regression"],
                          "target 'amount' has the same value (5) in all 60 rows: there is nothing to predict"),
    "numbers-written-as-text": (lambda f: f.assign(amount=[f"{v * 1000 + 9000:,.0f}" for v in f["amount"]]),
                                ["--target", "amount"],
                                "so it would be read as 60 classes; if it is a quantity, write them "
                                "without thousands separators (151000, not 151,000)"),
    "currency-as-text": (lambda f: f.assign(amount=[f"${v * 1000 + 9000:,.0f}" for v in f["amount"]]),
                         ["--target", "amount"],
                         "so it would be read as 60 classes; if it is a quantity, write them without currency "
                         "signs, units or thousands separators (151000, not $151,000)"),
    "whole-prices-for-classifiers": (lambda f: f.assign(amount=(f["amount"] * 1000).round() + 9000),
                                     ["--target", "amount", "--grids", "classification"],
                                     "target 'amount' holds 60 distinct numbers in 60 rows: if it is a quantity "
                                     "(a price, a count), search it with regression families (--grids regression)"),
    "mostly-rare-classes": (lambda f: f.assign(label=[v if i < 25 else f"c{i}" for i, v in enumerate(f["label"])]),
                            ["--target", "label"],
                            "35 of the 60 rows of target 'label' are in classes of fewer than 5 rows (35 of its "
                            "37 classes, e.g. 'c25', 'c26', 'c27', ...): too few for 5-fold cross-validation to "
                            "train and test on each; merge the rare classes, or choose another --target"),
    "classifiers-for-regression": (None, ["--target", "amount", "--task", "regression", "--grids", "classification",
                                          "--families", "lr"],
                                   "--task regression, but 'lr' of the built-in classification families is a "
                                   "classifier, made for the other task; choose families of regressors"),
    "regression-family-on-classes": (lambda f: f.assign(amount=np.arange(60) % 4),
                                     ["--target", "amount", "--families", "ridge"],
                                     "--families: 'ridge' not in the built-in classification families; "
                                     "expected one of lr, knn, rf, nb, svm, hgb; it is a built-in regression "
                                     "family, and the task is classification "
                                     "from the target's values: add --task regression"),
    "few-whole-numbers": (lambda f: f.head(15).assign(amount=np.arange(15.0)), ["--target", "amount"],
                          "target 'amount' holds numbers, read as classes (at most 20 distinct whole "
                          "numbers): if it is a quantity, add --task regression"),
    "infinite-feature": (lambda f: f.assign(a=f["a"].where(f.index != 7, np.inf)), ["--target", "label"],
                         "holds infinity in 1 row(s), the first row 8; scikit-learn's estimators cannot fit"),
    "single-class": (lambda f: f.assign(label="yes"), ["--target", "label"],
                     "target 'label' has a single class ('yes') in all 60 rows"),
    "no-features": (lambda f: f[["label"]], ["--target", "label"],
                    "has no feature columns besides the target 'label'"),
}


@pytest.mark.parametrize("case", sorted(UNSEARCHABLE))
def test_data_no_family_can_search_is_refused_before_the_state_is_touched(tmp_path, case):
    """Refused at once with the fix, not after every fit failed; --restart leaves the old file."""
    change, args, message = UNSEARCHABLE[case]
    frame = _table()
    csv = tmp_path / "t.csv"
    (change(frame) if change else frame).to_csv(csv, index=False)
    path = tmp_path / "s.pkl"
    state.save(path, {"format_version": 1, "run": {}, "families": {}})
    before = path.read_bytes()
    result = invoke("run", "--state", str(path), "--data", str(csv), *args, "--restart")
    assert result.exit_code == 1, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert path.read_bytes() == before and not list(tmp_path.glob("s.pkl.*.bak"))


def test_a_delimiter_ending_every_line_is_read_and_an_extra_field_refused(tmp_path):
    """pandas would make the first column the index when rows have one field more than the header."""
    frame = _table()
    lines = frame.to_csv(index=False).splitlines()
    trailing = tmp_path / "trailing.csv"
    trailing.write_text("\n".join([lines[0]] + [line + "," for line in lines[1:]]) + "\n")
    read = search.read_table(str(trailing))
    pd.testing.assert_frame_equal(read[frame.columns], frame)
    shifted = tmp_path / "shifted.csv"
    shifted.write_text("\n".join([lines[0], "9," + lines[1], *lines[2:]]) + "\n")
    path = tmp_path / "s.pkl"
    result = invoke("run", "--state", str(path), "--data", str(shifted), "--target", "label")
    assert result.exit_code == 1
    assert f"--data {shifted}: a row has more fields than the header" in result.output
    assert not path.exists()


@pytest.mark.parametrize("sep, decimal, message", [
    (";", ",", "the file seems to separate its fields with semicolons (;) and write decimals with commas (1,5), "
               "not commas: save it with comma separators and '.' decimals (1.5)"),
    ("\t", ".", "the file seems to separate its fields with tabs, not commas: save it with comma separators, "
                "or read it in a grids file's load_data() with pd.read_csv(path, sep='\\t')"),
])
def test_a_file_separated_by_semicolons_or_tabs_is_named_so(tmp_path, sep, decimal, message):
    """Decimal commas, or commas in a text, split its rows at a comma: not 'more fields than the header'."""
    frame = _table().assign(c=lambda f: f["c"] + ", dark")
    csv = tmp_path / "t.csv"
    frame.to_csv(csv, index=False, sep=sep, decimal=decimal)
    result = invoke("run", "--state", str(tmp_path / "s.pkl"), "--data", str(csv), "--target", "label")
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: --data {csv}: {message}"), result.output


def test_a_regression_metric_on_class_labels_is_warned_about(tmp_path):
    frame = _table().assign(label=lambda f: (f["a"] > 0).astype(int))
    csv = tmp_path / "t.csv"
    frame.drop(columns="name").to_csv(csv, index=False)
    done = run_search(["run", "--state", str(tmp_path / "s.pkl"), "--data", str(csv), "--target", "label",
                       "--families", "nb", "--scoring", "r2"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "WARNING: --scoring r2 is a regression metric: it will score the class labels as numbers" in done.stderr


def test_the_builtin_svr_suits_a_target_in_any_units(tmp_path):
    """A price in dollars: an SVR's C and epsilon in the target's units would predict about the median."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    frame.assign(target=frame["target"] * 1000).to_csv(tmp_path / "t.csv", index=False)
    path = tmp_path / "s.pkl"
    result = invoke("run", "--state", str(path), "--data", str(tmp_path / "t.csv"), "--target", "target",
                    "--families", "svr", "--cv", "3")
    assert result.exit_code == 0, result.output
    assert state.load(path)["families"]["svr"]["best_score"] > 0.3  # R²; 0.02 on the raw target


def test_families_that_are_all_regressors_make_the_task_regression(tmp_path):
    """As GridSearchCV: folds stratify only for classifiers, even on a few-valued integer target."""
    grids = tmp_path / "counts.py"
    grids.write_text(
        "import numpy as np\nfrom sklearn.linear_model import Ridge\n"
        "FAMILIES = {'ridge': (Ridge(), {'alpha': [0.1, 1.0, 10.0]})}\n"
        "def load_data():\n"
        "    rng = np.random.default_rng(3)\n"
        "    X = rng.normal(size=(90, 4))\n"
        "    return X, np.clip(np.round(X[:, 0] * 2 + 3), 0, 6).astype(int)\n"
    )
    path = tmp_path / "s.pkl"
    result = invoke("run", "--state", str(path), "--grids", str(grids))
    assert result.exit_code == 0, result.output
    data = state.load(path)
    assert data["run"]["task"] == "regression"
    assert_same_as_gridsearch(data["families"]["ridge"], reference(grids)["ridge"])


def test_a_family_that_failed_says_why(tmp_path):
    path = tmp_path / "s.pkl"
    result = invoke("run", "--state", str(path), "--grids", str(GRIDS / "failing.py"), "--families", "broken")
    assert result.exit_code == 1
    assert "15 of 15 fits of family 'broken' failed" in result.output
    assert "15 x ValueError: this candidate always fails" in result.output
    assert "Traceback" not in result.output
    status = invoke("status", "--state", str(path))
    assert "broken: 15 of 15 fits of family 'broken' failed" in status.output
    assert "Traceback" not in status.output
    export = invoke("export", "--state", str(path), "-o", str(tmp_path / "m.pkl"))
    assert export.exit_code == 1
    assert "no family is done: 'broken' failed (`search status` says why)" in export.output


def test_a_state_location_that_cannot_be_written_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = invoke("run", "--state", str(blocker / "s.pkl"), "--grids", QUICK)
    assert result.exit_code == 1
    assert f"{blocker}, where the state file {blocker / 's.pkl'} would go, is not a directory" in result.output
    assert "choose another --state PATH" in result.output
    blocker.unlink()
    blocker.mkdir(mode=0o500)  # there, but not writable (root writes anyway)
    if os.geteuid() != 0:
        result = invoke("run", "--state", str(blocker / "s.pkl"), "--grids", QUICK)
        assert result.exit_code == 1
        assert f"cannot create the lock file {blocker / 's.pkl.lock'} beside the state file" in result.output


def test_an_empty_state_path_is_bad_usage(tmp_path):
    result = invoke("run", "--state", "", "--grids", QUICK)
    assert result.exit_code == 2
    assert "the path is empty (an unset shell variable?)" in result.output


@pytest.mark.parametrize("bad, message", [
    ({"format_version": 99, "run": {}, "families": {}}, "is in state format 99, written by a newer"),
    ({"format_version": 1, "families": {}}, "is a checksummed file but not a search's state: it has no 'run'"),
])
def test_a_state_this_version_cannot_read_is_refused(tmp_path, bad, message):
    path = tmp_path / "s.pkl"
    state.save(path, bad)
    before = path.read_bytes()
    for args in (["status"], ["run", "--grids", QUICK]):
        result = invoke(*args, "--state", str(path))
        assert result.exit_code == 1 and message in result.output
    assert path.read_bytes() == before


@pytest.mark.parametrize("body, message", [
    ('FAMILIES = {"lr": (LogisticRegression, {"C": [1]})}',
     "family 'lr': the estimator is the class LogisticRegression, not an estimator; write LogisticRegression()"),
    ('FAMILIES = {"lr": (make_pipeline(StandardScaler(), LogisticRegression), {"logisticregression__C": [1]})}',
     "family 'lr': parameter 'steps' of Pipeline is the class LogisticRegression"),
    ('FAMILIES = {"lr": (LogisticRegression(), {"C": (c for c in [1, 2])})}',
     "parameter 'C' is <generator object"),
])
def test_grids_mistakes_that_used_to_crash_get_a_message(tmp_path, body, message):
    grids = tmp_path / "g.py"
    grids.write_text("from sklearn.linear_model import LogisticRegression\n"
                     "from sklearn.pipeline import make_pipeline\n"
                     "from sklearn.preprocessing import StandardScaler\n" + body + "\n")
    result = invoke("run", "--state", str(tmp_path / "s.pkl"), "--grids", str(grids))
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("returns, message", [
    ("5, 6", "load_data() in the grids file returned X = 5 (int)"),
    ("np.zeros((0, 2)), np.zeros(0)", "has no rows to search on"),
    ("np.ones((4, 2)), np.array([0, 1, np.nan, 1])", "is missing (NaN or None) in 1 of its 4 rows"),
])
def test_load_data_results_no_family_can_use_are_refused(tmp_path, returns, message):
    grids = tmp_path / "g.py"
    grids.write_text("import numpy as np\nfrom sklearn.naive_bayes import GaussianNB\n"
                     "FAMILIES = {'nb': (GaussianNB(), {'var_smoothing': [1e-9]})}\n"
                     f"def load_data():\n    return {returns}\n")
    result = invoke("run", "--state", str(tmp_path / "s.pkl"), "--grids", str(grids))
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


USER_GRIDS = '''
import dataclasses
import functools
import types
import joblib
import numpy as np
import pandas as pd
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from helper_features import scaled  # a module on PYTHONPATH, as the README says

POWER = 1
KEEP = {"alpha", "beta", "gamma"}  # a set: its order changes with each process's hash seed


@dataclasses.dataclass(frozen=True)
class Settings:
    drop: frozenset


SETTINGS = Settings(frozenset({"x", "y", "z"}))
NAMESPACE = types.SimpleNamespace(cols={"u", "v", "w"})
WEIGHTS = pd.DataFrame({"w": np.ones(100)})
TREE = {"name": "root", "children": []}
TREE["children"].append({"name": "leaf", "parent": TREE})  # refers back to itself


def transform(X, power=1):
    assert "beta" in KEEP and "x" in SETTINGS.drop and "u" in NAMESPACE.cols and TREE["children"]
    return np.sign(X) * np.abs(X) ** (POWER * power) * WEIGHTS["w"].iloc[0]


def shifted(X, shift):
    return X + shift


DERIVED = {shifted: True}  # a function as a key


def keyed(X):
    return X if DERIVED else -X


C = {"logisticregression__C": [0.1, 1.0]}
FAMILIES = {
    "plain": (make_pipeline(FunctionTransformer(transform), LogisticRegression()), C),
    "partial": (make_pipeline(FunctionTransformer(functools.partial(shifted, shift=1)), LogisticRegression()), C),
    "helper": (make_pipeline(FunctionTransformer(scaled), LogisticRegression()), C),
    "keyed": (make_pipeline(FunctionTransformer(keyed), LogisticRegression()), C),
}


def load_data():
    return make_classification(n_samples=120, n_features=4, random_state=0)
'''

USER_EDITS = {  # what the user edits -> the family it changes
    "a module constant": ("grids.py", "POWER = 1", "POWER = 3", "plain"),
    "a default argument": ("grids.py", "def transform(X, power=1)", "def transform(X, power=3)", "plain"),
    "a row of a table": ("grids.py", "np.ones(100)", "np.r_[np.ones(50), 2.0, np.ones(49)]", "plain"),
    "the function of a partial": ("grids.py", "return X + shift", "return X - shift", "partial"),
    "a helper module on PYTHONPATH": ("helper_features.py", "FACTOR = 1.0", "FACTOR = 2.0", "helper"),
}


def test_edits_to_the_users_code_are_changes_and_its_models_load_without_it(tmp_path, monkeypatch):
    """Constants, tables, defaults, partials and helper modules the estimators use are part of their
    fingerprint, which is the same in every process whatever its hash seed."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "grids.py").write_text(USER_GRIDS)
    (project / "helper_features.py").write_text("FACTOR = 1.0\n\n\ndef scaled(X):\n    return X * FACTOR\n")
    path = tmp_path / "s.pkl"
    args = ["-q", "run", "--grids", str(project / "grids.py"), "--state", str(path), "--cv", "3", "--n-jobs", "2"]
    missing = run_search(args, tmp_path)
    assert missing.returncode == 1
    assert (f"imports 'helper_features', which lies beside it but is not on Python's path (the runner and "
            f"its workers import it by name); add its directory: PYTHONPATH={project}") in missing.stderr
    monkeypatch.setenv("PYTHONPATH", str(project))
    monkeypatch.syspath_prepend(str(project))  # this process reads the models too
    first = run_search(args, tmp_path)
    assert first.returncode == 0, first.stderr
    saved = path.read_bytes()
    for _ in range(2):  # other processes, other hash seeds: nothing changed, nothing is fitted again
        again = run_search(args, tmp_path)
        assert again.returncode == 0, again.stderr
    before, after = pickle.loads(saved)["families"], state.load(path)["families"]
    for name in before:
        assert after[name]["estimator_fingerprint"] == before[name]["estimator_fingerprint"]
        np.testing.assert_array_equal(after[name]["cv_results"]["mean_fit_time"],
                                      before[name]["cv_results"]["mean_fit_time"])
    for name, (file, old, new, family) in USER_EDITS.items():
        source = project / file
        text = source.read_text()
        source.write_text(text.replace(old, new))
        changed = run_search(args, tmp_path)
        source.write_text(text)
        assert changed.returncode == 1, name
        said = changed.stderr.split(" changed since searched")[0]  # "famil(y|ies) 'a', 'b'"
        assert "changed since searched" in changed.stderr and repr(family) in said, (name, changed.stderr)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import numpy as np, state\n"
            f"data = state.load({str(path)!r}, lazy=True)\n"
            "print(data['families']['plain']['best_estimator'].load().predict(np.ones((2, 4))))\n"
            "data['families']['helper']['best_estimator'].load()\n")
    monkeypatch.setenv("PYTHONPATH", str(Path(search.__file__).parent))  # the project, not the grids
    loaded = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, capture_output=True, text=True)
    assert loaded.stdout.startswith("[")  # the grids file's own code travels with its models
    assert "No module named 'helper_features'" in loaded.stderr  # a module on the path does not


@pytest.mark.parametrize("grids", ["unusual_estimators.py", "token_lists.py", "sparse_rows.py",
                                   "shared_values.py", "other_kinds.py"])
def test_what_gridsearchcv_takes_is_searched_as_it_would_be(tmp_path, grids):
    path = tmp_path / "s.pkl"
    result = invoke("run", "--state", str(path), "--grids", str(GRIDS / grids), "--cv", "3", "--n-jobs", "2")
    assert result.exit_code == 0, result.output
    for name, ref in reference(GRIDS / grids, cv=3).items():
        assert_same_as_gridsearch(state.load(path)["families"][name], ref)


def test_a_worker_that_dies_in_a_fit_fails_that_fit_and_the_run_goes_on(tmp_path):
    """A crash in native code or an out-of-memory kill takes the worker: retried, then a NaN fit."""
    path = tmp_path / "s.pkl"
    done = run_search(["run", "--state", str(path), "--grids", str(GRIDS / "crashing.py"), "--cv", "2",
                       "--n-jobs", "2"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    data = state.load(path)
    assert data["families"]["knn"]["status"] == "done"
    crash = data["families"]["crash"]
    assert crash["status"] == "done" and crash["best_params"] == {"exit": False, "k": 1}, crash.get("error")
    died = np.array([p["exit"] for p in crash["cv_results"]["params"]])
    assert np.isnan(crash["cv_results"]["mean_test_score"][died]).all()
    assert np.isfinite(crash["cv_results"]["mean_test_score"][~died]).all()  # in flight when it died
    assert "the worker running this task died each of the 3 times" in done.stderr


def test_status_json_has_null_for_a_failed_fit(tmp_path):
    path = tmp_path / "s.pkl"
    invoke("run", "--state", str(path), "--grids", str(GRIDS / "failing.py"), "--families", "flaky")
    result = invoke("status", "--state", str(path), "--family", "flaky", "--json")
    rows = json.loads(result.output, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))["candidates"]
    assert [r["mean_test_score"] for r in rows if r["params"]["fail"]] == [None, None]


def test_workers_warnings_are_reported_once_and_columns_that_cost_much_are_named(tmp_path):
    frame = _table(120).assign(empty=np.nan)
    frame.to_csv(tmp_path / "t.csv", index=True)  # the index too, as pandas' to_csv writes it by default
    done = run_search(["run", "--state", str(tmp_path / "s.pkl"), "--data", str(tmp_path / "t.csv"),
                       "--target", "label", "--families", "lr,nb", "--cv", "3"], tmp_path)
    assert done.returncode == 0, done.stderr
    skipped = [line for line in done.stderr.splitlines() if "Skipping features without any observed" in line]
    assert len(skipped) == 1 and skipped[0].startswith("WARNING: UserWarning: "), done.stderr
    assert "_base.py" not in done.stderr  # no raw warning with the file and line it came from
    assert "column 'name' of" in done.stderr and "like an identifier" in done.stderr
    assert "column 'Unnamed: 0' of" in done.stderr and "looks like a row index" in done.stderr


def test_a_numeric_column_named_like_an_identifier_with_a_number_per_row_is_named(caplog):
    n = 40
    frame = pd.DataFrame({"CustomerID": np.arange(1000, 1000 + n), "store_id": np.arange(n) % 4,
                          "paid": np.arange(n), "row-id": np.arange(n)[::-1], "x": np.linspace(0, 1, n)})
    with caplog.at_level("WARNING", logger="search"):
        search.check_columns(frame, "t.csv", builtin=True)
    warned = [r.getMessage() for r in caplog.records]
    assert warned == [f"column {c!r} of t.csv holds a different number in every row and is named like an "
                      "identifier: it is used as an amount, which predicts nothing (or leaks how the rows were "
                      "numbered); remove it from the file if it is an identifier" for c in ("CustomerID", "row-id")]


def test_numbers_with_many_missing_value_marks_are_named_as_numbers_read_as_text(caplog):
    """Nine in ten values had to be numbers: a column with "?" in one row of seven was one-hot encoded
    without a word."""
    n = 70
    frame = pd.DataFrame({"dose": ["?" if i % 7 == 0 else str(i) for i in range(n)],
                          "mixed": ["-" if i % 3 == 0 else f"{i}.5" for i in range(n)],
                          "words": ["?" if i % 7 == 0 else f"w{i % 5}" for i in range(n)],
                          "half": [str(i % 9) if i % 2 else f"lot {i % 9}" for i in range(n)]})
    with caplog.at_level("WARNING", logger="search"):
        search.check_columns(frame, "t.csv", builtin=True)
    warned = [r.getMessage() for r in caplog.records]
    assert [w.split(" of t.csv")[0] for w in warned] == ["column 'dose'", "column 'mixed'"], warned
    assert warned[0].endswith("write them as plain numbers and leave missing values' cells empty (not '?')")
    assert warned[1].endswith("(not '-')")


def test_codes_written_with_leading_zeros_are_named_and_read_as_text_in_a_grids_file(tmp_path, caplog):
    frame = _table(60).drop(columns="name")
    frame["zip"] = [f"{990 + i % 7:05d}" for i in range(60)]  # 00990 ... 00996
    frame["year"] = [2000 + i % 9 for i in range(60)]  # whole numbers without leading zeros
    frame.to_csv(tmp_path / "t.csv", index=False)
    with caplog.at_level("WARNING", logger="search"):
        dataset = search.load_dataset(str(tmp_path / "t.csv"), "label")
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and warned[0].startswith(
        f"column 'zip' of {tmp_path / 't.csv'} is written with leading zeros ('00990', '00991', '00992', ...), "
        "which numbers do not keep: it is read as the numbers they spell (990, 991, 992, ...)"), warned
    assert f"pd.read_csv({str(tmp_path / 't.csv')!r}, dtype={{'zip': str}})" in warned[0]
    assert dataset.X["zip"].tolist()[:2] == [990, 991]
    # read as text, as the warning says: a category, and not "numbers written as text" either
    (tmp_path / "zip_grids.py").write_text(
        "import pandas as pd\nfrom grids import builtin_families\n"
        "FAMILIES = builtin_families('classification')\n"
        "def load_data():\n    frame = pd.read_csv('t.csv', dtype={'zip': str})\n"
        "    return frame.drop(columns='label'), frame['label']\n")
    caplog.clear()
    done = run_search(["-q", "run", "--state", "s.pkl", "--grids", "zip_grids.py", "--families", "lr", "--cv", "3",
                       "--n-jobs", "1"], tmp_path)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert state.load(tmp_path / "s.pkl")["run"]["data"]["text_columns"] == ["c", "zip"]
    (tmp_path / "new.csv").write_text("a,c,amount,zip,year\n0.5,x,1.0,00993,2003\n")
    rows = search.predict_csv(str(tmp_path / "s.pkl"), str(tmp_path / "new.csv"))
    assert rows["zip"].tolist() == ["00993"] and rows["prediction"].tolist()[0] in ("yes", "no")


def test_warnings_that_differ_only_in_their_numbers_are_reported_once(tmp_path):
    grids = tmp_path / "lasso.py"
    grids.write_text(
        "from sklearn.datasets import make_regression\nfrom sklearn.linear_model import Lasso\n"
        "def load_data():\n    return make_regression(n_samples=200, n_features=30, noise=50, random_state=0)\n"
        "FAMILIES = {'lasso': (Lasso(max_iter=2, tol=1e-12), {'alpha': [0.001, 0.01, 0.1]})}\n"
    )
    done = run_search(["run", "--state", str(tmp_path / "s.pkl"), "--grids", str(grids), "--n-jobs", "2"], tmp_path)
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "ConvergenceWarning" in line]
    assert len(warned) == 1, done.stderr
    assert "Duality gap" in warned[0] and "(family 'lasso'; reported once, as are warnings that differ" in warned[0]


def test_predict_reads_columns_as_in_training_and_writes_the_rows_as_they_were(tmp_path):
    """A store "7" stays the category "7" whatever the other rows; "007" and "NA" come back as written."""
    rng = np.random.default_rng(0)
    n = 150
    store = rng.choice(["7", "12", "A1"], n)
    x = rng.normal(size=n)
    pd.DataFrame({"x": x, "store": store, "y": np.where((store == "7") ^ (x > 1), "buy", "skip")}).to_csv(
        tmp_path / "train.csv", index=False)
    path = str(tmp_path / "s.pkl")
    assert invoke("run", "--state", path, "--data", str(tmp_path / "train.csv"), "--target", "y",
                  "--families", "lr", "--cv", "3").exit_code == 0
    alone, with_text = tmp_path / "alone.csv", tmp_path / "with_text.csv"
    alone.write_text("x,store,id\n0.0,7,007\n0.0,12,NA\n")
    with_text.write_text("x,store,id\n0.0,7,007\n0.0,A1,008\n")
    first = search.predict_csv(path, str(alone), proba=True)
    second = search.predict_csv(path, str(with_text), proba=True)
    assert first["proba_buy"][0] == second["proba_buy"][0] > 0.5
    assert list(first["id"]) == ["007", "NA"] and list(first["x"]) == ["0.0", "0.0"]
    # blank header cells stay blank (pandas names them Unnamed: N); a header that says so, as it says
    blanks = tmp_path / "blanks.csv"
    blanks.write_text("x,store,,Unnamed: 3,\n0.0,7,,a,\n")
    out = tmp_path / "out.csv"
    assert invoke("predict", "--state", path, "--data", str(blanks), "-o", str(out)).exit_code == 0
    assert out.read_text().splitlines()[0] == "x,store,,Unnamed: 3,,prediction"
    typo = tmp_path / "typo.csv"
    typo.write_text("x,store\n0.5,7\n?,12\n")
    result = invoke("predict", "--state", path, "--data", str(typo))
    assert result.exit_code == 1
    assert "column 'x' held numbers in training, and here holds text in 1 row ('?'; the first is row 2" \
        in result.output


def test_modules_of_the_users_named_like_this_tools_are_not_taken_for_its_own(tmp_path):
    """A grids.py in the working directory comes first on sys.path under `python -c` and `-m`."""
    (tmp_path / "grids.py").write_text((GRIDS / "quick.py").read_text())
    env = dict(os.environ, PYTHONPATH=str(Path(search.__file__).parent))
    code = ("import search\n"
            "print(search.run(search.RunConfig('s.pkl', grids='grids.py', families=['nb'], n_jobs=1,"
            " progress=False)).done)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.stdout.strip() == "['nb']", done.stderr
    (tmp_path / "state.py").write_text("X = 1\n")
    done = subprocess.run([sys.executable, "-c", "import state, search"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert "a module of yours named 'state'" in done.stderr and "rename yours" in done.stderr


def test_a_probability_scorer_with_a_class_rarer_than_the_folds_is_warned_of(tmp_path):
    frame = _table().iloc[:-3]
    frame = pd.concat([frame, frame.tail(2).assign(label="maybe")])
    frame.to_csv(tmp_path / "t.csv", index=False)
    done = run_search(["run", "--state", str(tmp_path / "s.pkl"), "--data", str(tmp_path / "t.csv"),
                       "--target", "label", "--families", "nb", "--cv", "3", "--scoring", "neg_log_loss"],
                      tmp_path)
    assert "class 'maybe' of target 'label' has fewer rows than --cv 3" in done.stderr
    assert "Every candidate has a failed fold, so none has a mean score" in done.stderr


def test_the_fork_server_never_imports_from_the_working_directory(tmp_path):
    """The console script's runner has no working directory on sys.path; its fork server must not either."""
    marker = tmp_path / "imported"
    (tmp_path / "cloudpickle.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise ImportError\n")
    entry = tmp_path / "bin" / "search"  # what pip writes for the console script
    entry.parent.mkdir()
    entry.write_text("from search import main\nif __name__ == '__main__':\n    main()\n")
    env = dict(os.environ, PYTHONPATH=str(Path(search.__file__).parent))
    done = subprocess.run([sys.executable, str(entry), "-q", "run", "--grids", QUICK, "--families", "nb",
                           "--state", "s.pkl"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not marker.exists()


def test_a_fork_server_that_dies_leaves_the_workers_to_start_without_it(tmp_path):
    """A fork server that fails (here a module it imports raises) or is killed: the run goes on, the
    workers started by loky; before, the runner stopped with click's bare "Aborted!"."""
    (tmp_path / "failing_preload.py").write_text("raise KeyError('a module of the fork server failed')\n")
    code = ("import sys\nimport search\n"
            "search._WORKER_PRELOAD = (*search._WORKER_PRELOAD, 'failing_preload')\n"
            "if __name__ == '__main__':\n    sys.argv[0] = 'search'\n    search.main()\n")
    (tmp_path / "runner.py").write_text(code)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(search.__file__).parent), str(tmp_path)]))
    done = subprocess.run([sys.executable, "runner.py", "-q", "run", "--grids", QUICK, "--families", "nb,lr",
                           "--state", "s.pkl", "--n-jobs", "2"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "WARNING: the fork server that starts the workers has gone (EOFError" in done.stderr
    assert "Aborted" not in done.stderr
    families = state.load(tmp_path / "s.pkl")["families"]
    assert all(families[f]["status"] == "done" for f in ("nb", "lr"))
    assert not any(error for f in ("nb", "lr") for c in families[f]["candidates"].values() for error in c["errors"])


def test_a_save_that_fails_on_a_full_disk_is_reported_once_and_keeps_the_last_save(tmp_path, monkeypatch):
    path = tmp_path / "s.pkl"
    real_open_new, opened = state._fileops.open_new, []

    def full_after_the_first_save(target, *args):
        if os.path.basename(target).startswith(".s.pkl.tmp-"):
            opened.append(target)
            if len(opened) > 1:
                raise OSError(28, os.strerror(28))
        return real_open_new(target, *args)

    monkeypatch.setattr(state._fileops, "open_new", full_after_the_first_save)
    result = invoke("run", "--state", str(path), "--grids", QUICK, "--n-jobs", "1")
    monkeypatch.undo()
    assert result.exit_code == 1, result.output
    assert result.output.count("No space left on device") == 1, result.output
    assert f"free space on the file system of {tmp_path} and try again" in result.output
    assert "Traceback" not in result.output
    assert set(state.load(path)["families"]) == {"lr", "knn", "nb", "tree"}  # the first save, whole


@pytest.mark.parametrize("field, value, wants", [
    ("grids", {"lr": None}, "'classification', 'regression' or the path of a grids file"),
    ("data", pd.DataFrame({"a": [1]}), "the path of a CSV file (to search a table in memory, save it"),
    ("cv", "5", "a whole number of folds, at least 2"),
    ("n_jobs", 2.0, "a whole number of workers (-1: all cores)"),
    ("max_time", "soon", "seconds, or a duration like '30m'"),
    ("max_time", -5, "seconds (0 or more)"),
    ("families", "nb", "a list of family names, e.g. ['nb', 'lr']"),
    ("families", [], "(an empty list would search nothing)"),
    ("task", "classifcation", "'classification', 'regression' or None"),
    ("restart", "yes", "True or False"),
    ("scoring", lambda est, X, y: 0.0, "a scikit-learn scorer's name (the state records it so"),
])
def test_a_library_caller_is_told_which_field_is_wrong(tmp_path, field, value, wants):
    with pytest.raises(search.SearchError, match=re.escape(f"RunConfig.{field} is ")) as info:
        search.RunConfig(str(tmp_path / "s.pkl"), **{field: value})
    assert wants in str(info.value)
    assert not (tmp_path / "s.pkl").exists()


def test_a_library_caller_may_give_paths_and_durations(tmp_path):
    config = search.RunConfig(tmp_path / "s.pkl", grids=Path(QUICK), families=("nb",), max_time="1h30m")
    assert config.state_path == str(tmp_path / "s.pkl") and config.grids == QUICK
    assert config.families == ["nb"] and config.max_time == 5400.0


@pytest.mark.parametrize("target, args, line", [
    ("visits", [], "target 'visits': 20 distinct integers, searched as classification; give --task regression "
                   "if it is a quantity"),
    ("amount", [], "target 'amount': 60 distinct numbers, searched as regression"),
    ("visits", ["--task", "classification"], None),
])
def test_the_task_inferred_from_the_target_is_said_in_one_line(tmp_path, caplog, target, args, line):
    """20 visit counts were searched as 20 classes without a word; --task given: nothing to say."""
    frame = _table().drop(columns="name").assign(visits=np.arange(60) % 20)
    frame.to_csv(tmp_path / "t.csv", index=False)
    with caplog.at_level("INFO"):  # without -q: INFO lines are shown by default
        result = CliRunner().invoke(search.cli, ["run", "--state", str(tmp_path / "s.pkl"), "--data",
                                                 str(tmp_path / "t.csv"), "--target", target, "--families", "knn",
                                                 "--cv", "3", "--n-jobs", "1", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    said = [r.getMessage() for r in caplog.records if "searched as" in r.getMessage()]
    assert said == ([line] if line else []) and all(r.levelname == "INFO" for r in caplog.records
                                                    if "searched as" in r.getMessage())


def test_the_built_in_data_gets_no_advice_on_its_task(tmp_path, caplog):
    """Its task is known: "give --task regression if it is a quantity" of breast cancer's 0/1 was noise."""
    with caplog.at_level("INFO"):
        result = CliRunner().invoke(search.cli, ["run", "--state", str(tmp_path / "s.pkl"), "--families", "nb",
                                                 "--cv", "3", "--n-jobs", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert not [r for r in caplog.records if "searched as" in r.getMessage()]


def test_labels_that_differ_only_in_case_or_spaces_are_named(tmp_path, caplog):
    """'yes', 'yes ' and 'Yes' were three classes without a word; they stay three, with a warning."""
    labels = ["yes", "yes ", "Yes", "no", " no"]
    frame = _table().drop(columns="name").assign(label=[labels[i % 5] for i in range(60)])
    frame.to_csv(tmp_path / "t.csv", index=False)
    with caplog.at_level("WARNING", logger="search"):
        result = invoke("run", "--state", str(tmp_path / "s.pkl"), "--data", str(tmp_path / "t.csv"),
                        "--target", "label", "--families", "nb", "--cv", "3", "--n-jobs", "1")
    assert result.exit_code == 0, result.output
    warned = [r.getMessage() for r in caplog.records if "differ only" in r.getMessage()]
    assert warned == ["target 'label' has labels that differ only in case or surrounding spaces (' no', 'no'; "
                      "'Yes', 'yes', 'yes '), searched as separate classes; if each group is one class, clean "
                      "the column (strip the spaces, write each label one way)"]
    assert sorted(state.load(tmp_path / "s.pkl")["families"]["nb"]["best_estimator"].classes_) == sorted(labels)


def test_a_date_column_is_told_to_become_numbers_not_removed_like_an_identifier(tmp_path, caplog):
    frame = _table().drop(columns="name")
    frame["day"] = pd.date_range("2024-01-01", periods=60, freq="D").strftime("%Y-%m-%d")
    frame["at"] = pd.date_range("2024-01-01", periods=60, freq="37min").strftime("%d/%m/%Y %H:%M")
    frame.to_csv(tmp_path / "t.csv", index=False)
    with caplog.at_level("WARNING", logger="search"):
        search.check_columns(search.load_dataset(str(tmp_path / "t.csv"), "label").X, "t.csv", builtin=True)
    warned = [r.getMessage() for r in caplog.records]
    assert warned == [
        f"column {name!r} of t.csv holds dates, each read as a category of its own (60 of them; a date never "
        f"seen in training is then ignored): derive numbers from it (year, month, day of week: "
        f"pd.to_datetime(X[{name!r}]).dt.month, ...) in a grids file's load_data(), or remove it from the file"
        for name in ("day", "at")], warned


def test_a_family_whose_scorer_returns_nan_on_every_candidate_fails_with_a_message(tmp_path):
    """roc_auc on test folds that lack the rare class returns NaN without raising: no error to show,
    yet no candidate has a mean score. Before, this raised IndexError, and the families after it were
    never searched, run after run."""
    (tmp_path / "rare.py").write_text(
        "import numpy as np\n"
        "from sklearn.datasets import load_breast_cancer\n"
        "from sklearn.naive_bayes import GaussianNB\n"
        "from sklearn.tree import DecisionTreeClassifier\n\n\n"
        "def load_data():\n"
        "    X, y = load_breast_cancer(return_X_y=True)\n"
        "    keep = np.r_[np.flatnonzero(y == 0)[:4], np.flatnonzero(y == 1)[:150]]\n"
        "    return X[keep], y[keep]\n\n\n"
        "FAMILIES = {'dt': (DecisionTreeClassifier(random_state=0), {'max_depth': [1, 3]}),\n"
        "            'nb': (GaussianNB(), {'var_smoothing': [1e-9]})}\n")
    path = tmp_path / "s.pkl"
    result = invoke("run", "--state", str(path), "--grids", str(tmp_path / "rare.py"), "--scoring", "roc_auc",
                    "--n-jobs", "1")
    assert result.exit_code == 1, result.output
    families = state.load(path)["families"]
    assert families["dt"]["status"] == "failed" and families["nb"]["status"] == "failed"
    assert families["dt"]["error"].startswith(
        "2 of 10 folds of family 'dt' scored NaN, though no fit or scorer failed: the scorer returned NaN")
    assert "Use a smaller --cv" in result.output and "Traceback" not in result.output


def test_a_grid_of_dicts_with_the_defaults_as_one_of_them_equals_gridsearchcv(tmp_path):
    """[{}, {"C": [...]}]: the estimator as it is, beside a tuned grid; GridSearchCV searches it, and its
    param_ columns come in the order the candidates first name them (not sorted). Before, the {} was
    refused as an empty grid."""
    grids = tmp_path / "defaults.py"
    grids.write_text(
        "from sklearn.datasets import load_iris\n"
        "from sklearn.svm import SVC\n\n\n"
        "def load_data():\n"
        "    return load_iris(return_X_y=True)\n\n\n"
        "FAMILIES = {'svc': (SVC(), [{}, {'C': [0.1, 10]}]),\n"
        "            'mixed': (SVC(), [{'kernel': ['rbf'], 'gamma': [0.01, 0.1]},\n"
        "                              {'kernel': ['poly'], 'C': [1, 10], 'degree': [2]}, {}])}\n")
    path = tmp_path / "s.pkl"
    assert invoke("run", "--state", str(path), "--grids", str(grids), "--n-jobs", "2").exit_code == 0
    families = state.load(path)["families"]
    for name, ref in reference(grids).items():
        assert_same_as_gridsearch(families[name], ref)
    assert [k for k in families["mixed"]["cv_results"] if k.startswith("param_")] == [
        "param_gamma", "param_kernel", "param_C", "param_degree"]


def test_with_one_worker_the_best_estimator_is_gridsearchcvs_to_the_last_bit(tmp_path):
    """The one worker has all the threads, as GridSearchCV's refit in its caller's process has: the
    models are equal to the last bit (with two workers, the refit's one thread gave 1e-14 differences
    here, documented)."""
    grids = GRIDS / "blas_refit.py"
    path = tmp_path / "s.pkl"
    assert invoke("run", "--state", str(path), "--grids", str(grids), "--n-jobs", "1").exit_code == 0
    ref = reference(grids)["lr"]
    assert_same_as_gridsearch(state.load(path)["families"]["lr"], ref)
    X, _ = load_grids(str(grids)).load_data()
    model = search.load_best(str(path), family="lr")
    np.testing.assert_array_equal(model[-1].coef_, ref.best_estimator_[-1].coef_)
    np.testing.assert_array_equal(model.predict_proba(X), ref.best_estimator_.predict_proba(X))


def _slow_fsync(monkeypatch, seconds: float) -> None:
    """Saves that take ``seconds`` more, as those of a state of hundreds of MB do."""
    real = state._fileops.fsync

    def slow(fd):
        time.sleep(seconds)
        return real(fd)

    monkeypatch.setattr(state._fileops, "fsync", slow)


def test_the_ends_of_small_families_do_not_each_pay_a_costly_checkpoint(tmp_path, monkeypatch):
    """The end of every family forced a checkpoint: eight small families searched after a big one
    (581 MB of best estimators, 1.4 s a save) spent three quarters of the run saving it whole, again
    and again. A family's end is saved at once when its unsaved work is worth a save, else paced."""
    _slow_fsync(monkeypatch, 0.4)
    grids = tmp_path / "small.py"
    grids.write_text("from sklearn.datasets import load_iris\nfrom sklearn.naive_bayes import GaussianNB\n\n"
                     "def load_data():\n    return load_iris(return_X_y=True)\n\n"
                     "FAMILIES = {f'nb{i}': (GaussianNB(), {'var_smoothing': [10.0 ** -i]}) for i in range(6)}\n")
    path = tmp_path / "s.pkl"
    report = search.run(search.RunConfig(str(path), grids=str(grids), cv=2, n_jobs=1, progress=False))
    assert len(report.done) == 6
    assert report.saves <= 3  # the first, the last, perhaps one paced between
    assert all(f["status"] == "done" for f in state.load(path)["families"].values())


def test_costly_checkpoints_still_come_at_least_every_so_often(tmp_path, monkeypatch):
    """Paced to 2% of the wall, a save of 3 s (a big state) was followed by 150 s without one, all of
    whose finished fits a SIGKILL lost. The interval has a ceiling (a minute; 0.5 s here)."""
    _slow_fsync(monkeypatch, 0.2)  # paced to 2%: one save per 10 s
    monkeypatch.setattr(search, "_MAX_SAVE_INTERVAL", 0.5)
    grids = slow_fit_grids(tmp_path, 0.25, 8)
    path = tmp_path / "s.pkl"
    report = search.run(search.RunConfig(str(path), grids=str(grids), cv=2, n_jobs=1, progress=False))
    assert report.done == ["slow"]
    assert report.saves >= 4, report.saves  # over 4 s of fits: every 0.7 s or so


def test_fits_start_while_a_costly_checkpoint_is_written(tmp_path, monkeypatch):
    """A big state's checkpoint took seconds in the runner's own thread, and no fit could start until
    it was written: the workers waited through every save. It is written by a thread now."""
    real, saves = state._fileops.fsync, []

    def slow(fd):  # the second save (the first after a fit) as one of hundreds of MB
        began = time.time()
        time.sleep(2.0 if len(saves) == 1 else 0.0)
        saves.append((began, time.time()))
        return real(fd)

    monkeypatch.setattr(state._fileops, "fsync", slow)
    starts = tmp_path / "starts.txt"
    grids = slow_fit_grids(tmp_path, 0.1, 16, log=starts)
    path = tmp_path / "s.pkl"
    report = search.run(search.RunConfig(str(path), grids=str(grids), cv=2, n_jobs=1, progress=False))
    assert report.done == ["slow"]
    began = [float(line) for line in starts.read_text().split()]
    # written in the run's thread, the save let at most the one task queued ahead start
    a, b = saves[1]
    assert sum(a < t < b for t in began) >= 4, (sum(a < t < b for t in began), len(began))
    assert state.load(path)["families"]["slow"]["status"] == "done"


def test_more_workers_than_cores_are_not_started(tmp_path):
    """--n-jobs 1000 (a typo for 10) on 2 cores started 1000 worker processes: no fit finished in
    three minutes, and the stop took three more. Now one per core, with a warning."""
    cores = joblib.cpu_count()
    path = tmp_path / "s.pkl"
    done = run_search(["-v", "run", "--grids", QUICK, "--families", "nb", "--state", str(path),
                       "--n-jobs", str(cores + 30)], tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (f"--n-jobs {cores + 30} is more than the {cores} cores this process may use; starting {cores} "
            "workers") in done.stderr
    assert state.load(path)["families"]["nb"]["status"] == "done"


def test_a_worker_that_cannot_load_an_estimator_stops_the_run_and_records_no_fit_failure(tmp_path, monkeypatch):
    """Loading a task's estimator in a worker is no part of its fits: a module the worker could not
    import was recorded as every candidate's failed fit (NaN). Here the module refuses worker
    processes, as one missing from their environment would."""
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    (helpers / "picky_helpers.py").write_text(
        "import multiprocessing\n"
        "if multiprocessing.parent_process() is not None:  # a worker\n"
        "    raise ModuleNotFoundError(\"No module named 'picky_helpers'\", name='picky_helpers')\n"
        "def scale(X):\n    return X * 0.5\n")
    grids = tmp_path / "picky.py"
    grids.write_text(
        "from sklearn.datasets import make_classification\nfrom sklearn.linear_model import LogisticRegression\n"
        "from sklearn.pipeline import make_pipeline\nfrom sklearn.preprocessing import FunctionTransformer\n"
        "from picky_helpers import scale\n"
        "def load_data():\n    return make_classification(n_samples=80, random_state=0)\n"
        "FAMILIES = {'lr': (make_pipeline(FunctionTransformer(scale), LogisticRegression()),\n"
        "                   {'logisticregression__C': [0.1, 1.0]})}\n")
    path = tmp_path / "s.pkl"
    monkeypatch.setenv("PYTHONPATH", str(helpers))
    proc = start(["run", "--grids", str(grids), "--state", str(path), "--n-jobs", "2"], tmp_path)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert ("the worker processes could not load the estimator of family 'lr' (ModuleNotFoundError: No module "
            "named 'picky_helpers'), which this process loads") in err
    assert "Traceback" not in err
    assert state.load(path)["families"]["lr"]["folds"] == {}
