"""The morning after: best, export, predict, status --family, and loading where the grids file is not."""

from __future__ import annotations

import io
import json
import os
import platform
import re
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import GRIDS, import_file, run_search

import search
import state


def invoke(*args):
    return CliRunner().invoke(search.cli, ["-q", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def custom_state(tmp_path_factory):
    """A finished search over families that use a function and a lambda of the grids file."""
    where = tmp_path_factory.mktemp("custom")
    grids = where / "my_grids.py"
    grids.write_text((GRIDS / "custom.py").read_text())
    path = where / "state.pkl"
    search.run(search.RunConfig(str(path), grids=str(grids), n_jobs=2, progress=False))
    return path


@pytest.fixture(scope="module")
def table_state(tmp_path_factory):
    """A finished built-in search on a CSV with numeric and categorical columns."""
    where = tmp_path_factory.mktemp("table")
    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame({"size": rng.normal(size=n), "color": rng.choice(["red", "blue"], n)})
    frame["label"] = np.where(frame["size"] + (frame["color"] == "red") > 0.5, "big", "small")
    csv = where / "train.csv"
    frame.to_csv(csv, index=False)
    path = where / "state.pkl"
    search.run(search.RunConfig(str(path), data=str(csv), target="label", families=["lr", "nb", "svm"],
                                n_jobs=2, progress=False))
    return path, frame


def fresh_python(code: str, cwd) -> str:
    """Run ``code`` in a new interpreter in ``cwd``, where no grids file exists."""
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_custom_functions_load_and_predict_elsewhere(custom_state, tmp_path):
    """The state, a pickle and a joblib export load where the grids file does not exist."""
    for fmt in ("pickle", "joblib"):
        out = tmp_path / f"model.{fmt}"
        result = invoke("export", "--state", str(custom_state), "--family", "squared", "-o", str(out),
                        "--format", fmt)
        assert result.exit_code == 0, result.output
    X, _ = import_file(GRIDS / "custom.py").load_data()
    np.save(tmp_path / "X.npy", X)
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    code = (
        "import pickle, joblib, numpy as np, search\n"
        f"X = np.load({str(tmp_path / 'X.npy')!r})\n"
        f"s = pickle.load(open({str(custom_state)!r}, 'rb'))\n"
        "a = s['families']['squared']['best_estimator'].predict(X)\n"
        f"b = pickle.load(open({str(tmp_path / 'model.pickle')!r}, 'rb')).predict(X)\n"
        f"c = joblib.load({str(tmp_path / 'model.joblib')!r}).predict(X)\n"
        f"d = search.load_best({str(custom_state)!r}, family='logged').predict(X)\n"
        "assert (a == b).all() and (a == c).all()\n"
        "print(len(a), len(d))\n"
    )
    assert fresh_python(code, empty).split() == ["200", "200"]


@pytest.mark.parametrize("family, culprit", [("squared", "<lambda>"), ("logged", "signed_log")])
def test_skops_refuses_custom_code_names_it_and_points_to_pickle(custom_state, tmp_path, family, culprit):
    """In a new process, as from the command line: this one still has the grids file imported."""
    out = tmp_path / "m.skops"
    result = run_search(["export", "--state", str(custom_state), "--family", family, "-o", str(out)], tmp_path)
    assert result.returncode == 1
    assert f"cannot be stored as skops: it uses {culprit} from the grids file" in result.stderr
    assert "Export it with --format pickle or --format joblib instead" in result.stderr
    assert "search_user_grids" not in result.stderr  # the grids file's internal module name
    assert "Traceback" not in result.stderr and not out.exists()
    with pytest.raises(search.SearchError, match=f"it uses {re.escape(culprit)} from the grids file"):
        search.export_best(str(custom_state), str(out), family=family)  # this process ran the grids file
    assert not out.exists()


def test_skops_export_prints_the_types_to_trust(table_state, tmp_path):
    path, frame = table_state
    out = tmp_path / "m.skops"
    result = invoke("export", "--state", str(path), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "(skops)" in result.output and "types to trust when loading:" in result.output
    import skops.io as sio

    trusted = sio.get_untrusted_types(file=out)
    assert f"trusted={trusted!r}".replace('"', "'") in result.output.replace('"', "'")
    model = sio.load(out, trusted=trusted)
    assert set(model.predict(frame.drop(columns="label"))) <= {"big", "small"}


def test_best_json_and_tie_rule(table_state):
    path, _ = table_state
    result = invoke("best", "--state", str(path), "--json")
    assert result.exit_code == 0
    best = json.loads(result.output)
    rows = search.status_rows(state.load(path, lazy=True))
    top = max(r["best_score"] for r in rows)
    first_top = next(r["family"] for r in rows if r["best_score"] == top)
    assert best["family"] == first_top and best["best_score"] == top


def test_predict_writes_rows_with_a_prediction_column(table_state, tmp_path):
    path, frame = table_state
    csv = tmp_path / "new.csv"
    frame.head(10).to_csv(csv, index=False)  # the target column is present: ignored
    out = tmp_path / "pred.csv"
    result = invoke("predict", "--state", str(path), "--data", str(csv), "--output", str(out), "--proba",
                    "--family", "lr")
    assert result.exit_code == 0, result.output
    got = pd.read_csv(out)
    assert list(got.columns) == ["size", "color", "label", "prediction", "proba_big", "proba_small"]
    expected = search.load_best(str(path), "lr").predict(frame.head(10).drop(columns="label"))
    assert list(got["prediction"]) == list(expected)
    np.testing.assert_allclose(got["proba_big"] + got["proba_small"], 1.0)


def test_predict_to_stdout(table_state, tmp_path):
    path, frame = table_state
    csv = tmp_path / "new.csv"
    frame.drop(columns="label").head(3).to_csv(csv, index=False)
    result = invoke("predict", "--state", str(path), "--data", str(csv))
    assert result.exit_code == 0
    assert result.output.splitlines()[0] == "size,color,prediction"
    assert len(result.output.splitlines()) == 4


def test_predict_names_missing_columns(table_state, tmp_path):
    path, frame = table_state
    csv = tmp_path / "new.csv"
    frame[["size"]].to_csv(csv, index=False)
    result = invoke("predict", "--state", str(path), "--data", str(csv))
    assert result.exit_code == 1
    assert "the rows lack feature column 'color'" in result.output
    assert "expected columns: size, color" in result.output


def test_proba_without_predict_proba_is_explained(table_state, tmp_path):
    path, frame = table_state
    csv = tmp_path / "new.csv"
    frame.head(3).to_csv(csv, index=False)
    result = invoke("predict", "--state", str(path), "--data", str(csv), "--proba", "--family", "svm")
    assert result.exit_code == 1
    assert "the best estimator of family 'svm' has no predict_proba" in result.output


def test_status_family_top(table_state):
    path, _ = table_state
    result = invoke("status", "--state", str(path), "--family", "svm", "--top", "2", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.output)["candidates"]
    assert len(rows) == 2 and rows[0]["rank"] == 1
    assert rows[0]["mean_test_score"] >= rows[1]["mean_test_score"]
    results = state.load(path, lazy=True)["families"]["svm"]["cv_results"]
    assert rows[0]["params"] == results["params"][int(np.argmin(results["rank_test_score"]))]


def test_unknown_family_lists_the_known_ones(table_state):
    path, _ = table_state
    result = invoke("export", "--state", str(path), "--family", "rf", "-o", "x.pkl")
    assert result.exit_code == 1
    assert "--family 'rf' is not in the state file; it has lr, nb, svm" in result.output


def test_python_api(table_state):
    path, frame = table_state
    data = state.load(path)
    assert data["families"]["lr"]["status"] == "done"
    model = search.load_best(str(path))
    assert model.predict(frame.drop(columns="label").head(2)).shape == (2,)


def saved_under_old_scikit_learn(path, where):
    """A copy of the state at ``path`` that says it was written with scikit-learn 0.0.1."""
    data = state.load(path)
    data["environment"]["scikit-learn"] = "0.0.1"
    other = where / "old.pkl"
    state.save(other, data)
    return other


def saved_under(path, where, **versions):
    """A copy of the state at ``path`` that says its families were made with ``versions``
    (``python="3.1.0"``, ``scikit_learn=...``)."""
    data = state.load(path, lazy=True)
    versions = {name.replace("_", "-"): version for name, version in versions.items()}
    data["environment"].update(versions)
    for entry in data["families"].values():
        for recorded in ("environment", "estimator_environment"):
            if recorded in entry:
                entry[recorded].update(versions)
    other = where / "other-versions.pkl"
    state.save(other, data)
    return other


def other_python_minor() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor + 1}.0"


def test_code_of_the_grids_file_pickled_under_another_python_is_refused(custom_state, tmp_path):
    """cloudpickle keeps such code as bytecode, which another Python minor version cannot read:
    unpickling it there may crash the interpreter with no message (Python 3.11's under 3.12 did)."""
    other = saved_under(custom_state, tmp_path, python=other_python_minor())
    wanted = (f"the best estimator of family 'logged' holds code of my_grids.py (signed_log) pickled by "
              f"value under Python {other_python_minor()}, and this is Python {platform.python_version()}")
    fix = (f"Load it with Python {sys.version_info.major}.{sys.version_info.minor + 1}, or search the family "
           f"again under this Python (search run --grids {custom_state.parent / 'my_grids.py'} --redo-changed)")
    with pytest.raises(search.SearchError, match=re.escape(wanted) + ".*" + re.escape(fix)):
        search.load_best(str(other), family="logged")
    X, _ = import_file(GRIDS / "custom.py").load_data()
    pd.DataFrame(X, columns=[str(i) for i in range(6)]).head(3).to_csv(tmp_path / "rows.csv", index=False)
    for args in (["predict", "--data", "rows.csv"], ["export", "-o", "m.pkl"], ["export", "-o", "m.joblib"]):
        done = run_search([*args, "--state", str(other), "--family", "squared"], tmp_path)
        assert done.returncode == 1, done.stderr
        assert "family 'squared' holds code of my_grids.py (<lambda>) pickled by value" in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "m.pkl").exists() and not (tmp_path / "m.joblib").exists()


def test_code_of_the_grids_file_set_by_the_best_params_is_refused_under_another_python(tmp_path):
    """A function of the grids file in the grid, not in the estimator, is in the best estimator too."""
    grids = tmp_path / "grid_code.py"
    grids.write_text(
        "import numpy as np\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.pipeline import make_pipeline\n"
        "from sklearn.preprocessing import FunctionTransformer\n"
        "def square(X):\n    return X * X\n"
        "FAMILIES = {'lr': (make_pipeline(FunctionTransformer(), LogisticRegression(max_iter=50)),\n"
        "                   {'functiontransformer__func': [square]})}\n")
    path = tmp_path / "s.pkl"
    search.run(search.RunConfig(str(path), grids=str(grids), cv=2, n_jobs=1, progress=False))
    assert search.load_best(str(path)).steps[0][1].func.__name__ == "square"
    other = saved_under(path, tmp_path, python=other_python_minor())
    wanted = (f"the best estimator of family 'lr' holds code of grid_code.py (square) pickled by value under "
              f"Python {other_python_minor()}")
    with pytest.raises(search.SearchError, match=re.escape(wanted)):
        search.load_best(str(other))
    done = run_search(["export", "--state", str(other), "-o", "m.pkl"], tmp_path)
    assert done.returncode == 1 and wanted in done.stderr, done.stderr
    assert not (tmp_path / "m.pkl").exists()


def test_models_without_code_of_the_grids_file_load_under_another_python(table_state, tmp_path):
    other = saved_under(table_state[0], tmp_path, python=other_python_minor())
    with pytest.warns(state.EnvironmentMismatchWarning, match=re.escape(f"python {other_python_minor()}")):
        model = search.load_best(str(other))
    assert model.predict(table_state[1].drop(columns="label").head(2)).shape == (2,)


@pytest.mark.parametrize("fmt", ["joblib", "skops"])
def test_export_under_another_scikit_learn_than_fitted_the_model_is_refused(table_state, tmp_path, fmt):
    """A joblib or skops file is written anew, stamped with this scikit-learn's version: it would
    claim a version that did not fit it, and so load elsewhere without a word."""
    other = saved_under(table_state[0], tmp_path, scikit_learn="0.0.1")
    out = tmp_path / f"m.{fmt}"
    done = run_search(["export", "--state", str(other), "-o", str(out)], tmp_path)
    assert done.returncode == 1, done.stderr
    assert (f"Error: the best estimator of family 'lr' was fitted with scikit-learn 0.0.1, and this is "
            f"scikit-learn {sklearn_version()}: a {fmt} file written here would claim {sklearn_version()}, so that "
            "loading it would not warn of the difference. Export it where scikit-learn 0.0.1 is installed "
            '(pip install "scikit-learn==0.0.1"), or with --format pickle, which keeps the bytes scikit-learn '
            "0.0.1 wrote") in done.stderr
    assert not out.exists()
    kept = run_search(["export", "--state", str(other), "-o", str(tmp_path / "m.pkl")], tmp_path)
    assert kept.returncode == 0, kept.stderr


def test_load_under_another_scikit_learn_version_warns(table_state, tmp_path):
    other = saved_under_old_scikit_learn(table_state[0], tmp_path)
    with pytest.warns(state.EnvironmentMismatchWarning, match="scikit-learn 0.0.1"):
        search.load_best(str(other))


@pytest.mark.parametrize("command", ["export", "predict"])
@pytest.mark.parametrize("target", ["the state", "its previous generation", "another state",
                                    "another state's lock", "the lock of a search not yet saved"])
def test_output_never_overwrites_a_state_file(table_state, tmp_path, command, target):
    """Nor a companion of one: a lock replaced by a new file would let a second runner in."""
    path, frame = table_state
    other = tmp_path / "other.pkl"
    state.save(other, {"format_version": 1, "run": {}, "families": {}})
    (tmp_path / "other.pkl.lock").write_bytes(b"")
    (tmp_path / "starting.pkl.lock").write_bytes(b"")
    (tmp_path / "starting.pkl.lock.owner").write_text('{"pid": 1}')
    output = {"the state": path, "its previous generation": state.previous_path(path),
              "another state": other, "another state's lock": tmp_path / "other.pkl.lock",
              "the lock of a search not yet saved": tmp_path / "starting.pkl.lock"}[target]
    before = output.read_bytes()
    csv = tmp_path / "new.csv"
    frame.head(3).to_csv(csv, index=False)
    args = ["--data", str(csv)] if command == "predict" else []
    result = invoke(command, "--state", str(path), *args, "-o", str(output))
    assert result.exit_code == 1
    assert f"--output {output} is a search's state file" in result.output
    assert output.read_bytes() == before


def test_rows_the_model_cannot_take_are_a_clear_error(table_state, tmp_path):
    path, frame = table_state
    csv = tmp_path / "new.csv"
    frame.head(3).assign(color=[1.5, 2.5, 3.5]).to_csv(csv, index=False)  # read as text, as in training
    result = invoke("predict", "--state", str(path), "--data", str(csv), "--family", "lr")
    assert result.exit_code == 0, result.output  # categories never seen: ignored, as the README says
    frame.head(3).assign(size=["big", "small", "tiny"]).to_csv(csv, index=False)
    result = invoke("predict", "--state", str(path), "--data", str(csv), "--family", "lr")
    assert result.exit_code == 1
    assert "column 'size' held numbers in training, and here holds text in 3 rows" in result.output
    rows = frame.head(3).assign(size=["big", "small", "tiny"])
    with pytest.raises(search.SearchError, match="family 'lr' could not predict for these rows: ValueError"):
        search.predict_frame(str(saved_without_text_columns(path, tmp_path)), rows, "lr")
    assert "Traceback" not in result.output
    empty = tmp_path / "empty.csv"
    empty.write_text("size,color\n")
    result = invoke("predict", "--state", str(path), "--data", str(empty))
    assert result.exit_code == 1 and f"--data {empty} has no rows to predict for" in result.output


def saved_without_text_columns(path, where):
    """The state as a version before ``text_columns`` saved it."""
    data = state.load(path)
    del data["run"]["data"]["text_columns"]
    other = where / "older.pkl"
    state.save(other, data)
    return other


def _lookup_city(X):
    """A model's own code that fails on rows it was not made for (a KeyError, not a ValueError)."""
    codes = {"paris": 0.0, "rome": 1.0}
    return np.array([[codes[city]] for city in X["city"]])


def _hand_made_state(path, model, columns, target="y"):
    state.save(path, {
        "format_version": 1, "environment": state.environment(),
        "run": {"data": {"columns": columns, "target": target}, "family_order": ["m"], "scoring": None},
        "families": {"m": {"status": "done", "best_score": 1.0, "best_params": {}, "n_candidates": 1,
                           "candidates": {}, "estimator": "m", "best_estimator": state.Pickled(model)}},
    })


def test_any_error_of_the_models_own_code_is_a_clear_error(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    train = pd.DataFrame({"city": ["paris", "rome"] * 5})
    model = make_pipeline(FunctionTransformer(_lookup_city), LogisticRegression()).fit(train, [0, 1] * 5)
    path = tmp_path / "s.pkl"
    _hand_made_state(path, model, ["city"])
    csv = tmp_path / "new.csv"
    csv.write_text("city\nparis\ntokyo\n")
    result = invoke("predict", "--state", str(path), "--data", str(csv))
    assert result.exit_code == 1
    assert ("family 'm' could not predict for these rows: KeyError: 'tokyo'; the error comes from the "
            "model's own code") in result.output
    assert "Traceback" not in result.output


def test_a_predict_failure_under_other_versions_names_them_first(tmp_path):
    """A model of one scikit-learn run by another's code fails in ways no row explains (1.9's
    LogisticRegression under 1.4: no attribute 'multi_class')."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    train = pd.DataFrame({"city": ["paris", "rome"] * 5})
    model = make_pipeline(FunctionTransformer(_lookup_city), LogisticRegression()).fit(train, [0, 1] * 5)
    _hand_made_state(tmp_path / "s.pkl", model, ["city"])
    other = saved_under(tmp_path / "s.pkl", tmp_path, scikit_learn="0.0.1")
    csv = tmp_path / "new.csv"
    csv.write_text("city\nparis\ntokyo\n")
    result = invoke("predict", "--state", str(other), "--data", str(csv))
    assert result.exit_code == 1
    assert ("family 'm' could not predict for these rows: KeyError: 'tokyo'; it was fitted with scikit-learn "
            f"0.0.1 (this is {sklearn_version()}), the likely cause: install the version it was fitted with "
            '(pip install "scikit-learn==0.0.1") to predict with it, or search the family again under this '
            "environment; if that is not it, the error comes from the model's own code") in result.output


class _AsArray:
    """A first step that keeps no column names (no feature_names_in_)."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X, dtype=float)


@pytest.mark.parametrize("fmt", ["pickle", "joblib"])
def test_export_names_feature_names_in_only_where_the_model_has_it(tmp_path, fmt):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    columns = [f"c{i}" for i in range(10)]
    train = pd.DataFrame(np.arange(40.0).reshape(4, 10), columns=columns)
    for first, named in ((_AsArray(), False), (None, True)):
        model = make_pipeline(*([first] if first else []), LogisticRegression()).fit(train, [0, 1, 0, 1])
        assert hasattr(model, "feature_names_in_") == named
        path = tmp_path / f"{named}.pkl"
        _hand_made_state(path, model, columns)
        result = invoke("export", "--state", str(path), "-o", str(tmp_path / f"{named}.{fmt}"))
        assert result.exit_code == 0, result.output
        shown = "its 10 training columns (c0, c1, c2, ...: model.feature_names_in_)"
        assert (shown in result.output) == named, result.output
        assert "its 10 training columns (c0, c1, c2, ...)" in result.output or named


def test_predict_keeps_its_input_and_says_what_it_replaces(table_state, tmp_path):
    path, frame = table_state
    csv = tmp_path / "new.csv"
    frame.head(3).assign(prediction="old").to_csv(csv, index=False)
    before = csv.read_bytes()
    result = invoke("predict", "--state", str(path), "--data", str(csv), "-o", str(csv))
    assert result.exit_code == 1
    assert f"--output {csv} is the --data file itself" in result.output
    assert csv.read_bytes() == before
    done = run_search(["predict", "--state", str(path), "--data", str(csv), "--family", "lr"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "WARNING: the rows already have column 'prediction'; replaced by this prediction" in done.stderr
    assert "old" not in done.stdout


def test_export_to_stdout_with_the_message_on_stderr(table_state, tmp_path):
    import pickle

    path, frame = table_state
    env = dict(os.environ, PYTHONPATH=os.path.dirname(search.__file__))
    done = subprocess.run([sys.executable, "-m", "search", "export", "--state", str(path), "-o", "-"],
                          cwd=tmp_path, capture_output=True, env=env)
    assert done.returncode == 0, done.stderr
    assert b"wrote the best estimator of" in done.stderr and b"to stdout (pickle)" in done.stderr
    model = pickle.loads(done.stdout)
    assert model.predict(frame.drop(columns="label").head(2)).shape == (2,)


def test_exports_get_the_users_permissions_and_case_blind_extensions(table_state, tmp_path):
    import joblib

    path, frame = table_state
    umask = os.umask(0o022)
    try:
        for name in ("model.JOBLIB", "model.pkl"):
            assert invoke("export", "--state", str(path), "-o", str(tmp_path / name)).exit_code == 0
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
    finally:
        os.umask(umask)
    assert joblib.load(tmp_path / "model.JOBLIB").predict(frame.drop(columns="label").head(2)).shape == (2,)
    assert (tmp_path / "model.JOBLIB").read_bytes() != (tmp_path / "model.pkl").read_bytes()


def test_a_file_that_is_no_state_is_not_called_damaged(table_state, tmp_path):
    """A training CSV or an exported model given as --state: say so; do not advise moving it away."""
    path, frame = table_state
    csv = tmp_path / "train.csv"
    frame.to_csv(csv, index=False)
    model = tmp_path / "model.pkl"
    assert invoke("export", "--state", str(path), "-o", str(model)).exit_code == 0
    for wrong, reason in ((csv, "not a pickle: a CSV or other file given as the state file?"),
                          (model, "no checksum trailer: not written by checkpointed-search")):
        before = wrong.read_bytes()
        for args in (["status"], ["predict", "--data", str(csv)], ["run", "--data", str(csv),
                                                                   "--target", "label"]):
            result = invoke(*args, "--state", str(wrong))
            assert result.exit_code == 1, result.output
            assert f"{wrong} is not a state file ({reason}" in result.output
            assert "mv " not in result.output and "damaged" not in result.output
        assert wrong.read_bytes() == before


def test_best_json_is_the_same_from_run_to_run(table_state):
    path, _ = table_state
    best = json.loads(invoke("best", "--state", str(path), "--json").output)
    assert " at 0x" not in best["estimator"] and "Pipeline(" in best["estimator"]


def test_warnings_are_one_line_each(table_state, tmp_path):
    path, frame = table_state
    other = saved_under_old_scikit_learn(path, tmp_path)
    frame.head(3).to_csv(tmp_path / "rows.csv", index=False)
    done = run_search(["predict", "--state", str(other), "--data", str(tmp_path / "rows.csv")], tmp_path)
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "0.0.1" in line]
    assert warned == ["WARNING: EnvironmentMismatchWarning: state file was written with scikit-learn 0.0.1, "
                      f"this is scikit-learn {sklearn_version()}; estimators may not load or behave the same"]
    assert "state.load(" not in done.stderr and "_checked(" not in done.stderr


def sklearn_version():
    import sklearn

    return sklearn.__version__


@pytest.mark.parametrize("versions", ["the same versions", "another numpy"])
def test_a_model_that_needs_a_missing_module_is_a_clear_error(tmp_path, monkeypatch, versions):
    """As on a machine without a package the model was built with: exit 1 naming it, no traceback.
    Another version of the recorded packages would not bring the module back: the advice is the
    same whatever their versions."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    library = tmp_path / "lib"
    library.mkdir()
    (library / "vanishing_features.py").write_text("def double(X):\n    return X * 2\n")
    monkeypatch.syspath_prepend(str(library))
    from vanishing_features import double  # pickled by reference, as an installed package's function

    X, y = np.arange(20.0).reshape(10, 2), np.array([0, 1] * 5)
    model = make_pipeline(FunctionTransformer(double), LogisticRegression()).fit(X, y)
    path = tmp_path / "s.pkl"
    _hand_made_state(path, model, ["a", "b"])
    if versions == "another numpy":
        path = saved_under(path, tmp_path, numpy="0.0.1")
    csv = tmp_path / "new.csv"
    csv.write_text("a,b\n1,2\n")
    for args in (["predict", "--data", str(csv)], ["export", "-o", str(tmp_path / "m.joblib")]):
        done = run_search([*args, "--state", str(path)], tmp_path)
        assert done.returncode == 1, done.stderr
        assert ("the best estimator of family 'm' cannot be loaded here (ModuleNotFoundError: No module "
                "named 'vanishing_features'); a module it was written with is missing here: install it, or put "
                "its directory on PYTHONPATH") in done.stderr
        assert "Traceback" not in done.stderr


def whole_number_labels_with_gaps(where):
    """A CSV whose target is 0 and 1 with two empty cells, which pandas reads as 0.0 and 1.0."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=120), "b": rng.normal(size=120)})
    frame["label"] = (frame["a"] > 0).astype(int).astype(object)
    frame.loc[[3, 17], "label"] = None
    csv = where / "train.csv"
    frame.to_csv(csv, index=False)
    return csv


def test_whole_number_classes_with_missing_cells_stay_whole_numbers(tmp_path):
    csv = whole_number_labels_with_gaps(tmp_path)
    path = tmp_path / "s.pkl"
    result = invoke("run", "--state", str(path), "--data", str(csv), "--target", "label", "--families", "lr")
    assert result.exit_code == 0, result.output
    classes = search.load_best(str(path)).classes_
    assert classes.dtype.kind == "i" and classes.tolist() == [0, 1]
    out = tmp_path / "pred.csv"
    result = invoke("predict", "--state", str(path), "--data", str(csv), "-o", str(out), "--proba")
    assert result.exit_code == 0, result.output
    header, first = out.read_text().splitlines()[:2]
    assert header == "a,b,label,prediction,proba_0,proba_1"
    assert first.split(",")[3] in ("0", "1")


def test_a_state_begun_with_decimal_classes_resumes_with_them(tmp_path, monkeypatch):
    """States begun before whole-number targets with gaps were read as integers are not refused."""
    csv = whole_number_labels_with_gaps(tmp_path)
    path = tmp_path / "s.pkl"
    with monkeypatch.context() as before:
        before.setattr(search, "_whole_numbers", lambda y: y)
        result = invoke("run", "--state", str(path), "--data", str(csv), "--target", "label", "--families", "lr")
    assert result.exit_code == 0, result.output
    result = invoke("run", "--state", str(path), "--data", str(csv), "--target", "label", "--families", "lr,nb")
    assert result.exit_code == 0, result.output
    families = state.load(path)["families"]
    assert [families[f]["best_estimator"].classes_.dtype.kind for f in ("lr", "nb")] == ["f", "f"]


def readme_serving_code() -> str:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### Serving an exported model", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readmes_serving_recipe_predicts_json_rows_as_predict_does(tmp_path):
    """Rows as a service gets them (a text column of digits sent as numbers, nulls, a row of nulls
    alone), prepared as the README says, predict as `search predict` does on the same rows."""
    rng = np.random.default_rng(2)
    n = 300
    store = rng.choice(["1", "2", "3", "HQ"], n)
    frame = pd.DataFrame({"x": rng.normal(size=n), "store": store, "city": rng.choice(["nice", "lyon"], n)})
    frame["y"] = np.where((np.isin(store, ["1", "2"])) ^ (frame["x"] > 1.2), "yes", "no")
    frame.loc[::7, "city"] = None
    frame.to_csv(tmp_path / "train.csv", index=False)
    path = tmp_path / "s.pkl"
    assert invoke("run", "--state", str(path), "--data", str(tmp_path / "train.csv"), "--target", "y",
                  "--families", "lr").exit_code == 0
    result = invoke("export", "--state", str(path), "-o", str(tmp_path / "model.joblib"))
    assert result.exit_code == 0, result.output
    assert "with the columns x, store, city; give store, city as text (str)" in result.output
    rows = [{"x": 0.1, "store": 1, "city": None}, {"x": None, "store": "HQ", "city": "lyon"},
            {"x": 2.0, "store": 3, "city": "nice"}, {"x": "1.5", "store": None}]  # city absent: missing
    pd.DataFrame(rows).to_csv(tmp_path / "new.csv", index=False)
    result = invoke("predict", "--state", str(path), "--data", str(tmp_path / "new.csv"),
                    "-o", str(tmp_path / "pred.csv"))
    assert result.exit_code == 0, result.output
    expected = pd.read_csv(tmp_path / "pred.csv")["prediction"].tolist()
    code = readme_serving_code().replace('TEXT = ["store", "city"]', 'TEXT = ["store", "city"]  # as printed')
    code += ("import json, sys\n"
             f"rows = json.loads({json.dumps(json.dumps(rows))})\n"
             "numbers = [predict([r, {'x': 0.0, 'store': None, 'city': None}])[0] for r in rows]\n"
             "try:\n    predict([{'x': 0.1, 'stroe': 1, 'city': None}])\n"
             "except ValueError as exc:\n    typo = str(exc)\n"
             "print(json.dumps([predict(rows), [predict([r])[0] for r in rows[:3]], numbers, typo]))\n")
    batch, alone, with_a_null, typo = json.loads(fresh_python(code, tmp_path))
    assert batch == with_a_null == expected  # store 1 beside a null is a float 1.0: still "1"
    assert alone == expected[:3]
    assert typo == "the rows lack the columns ['store']"


@pytest.mark.parametrize("text, message", [
    ("size;color\n0.1;red\n", "The file seems to separate its fields with semicolons (;), not commas: save it "
                               "with comma separators, or read it in a grids file's load_data() with "
                               "pd.read_csv(path, sep=';')"),
    ("size;color\n0,1;red\n", "new.csv: the file seems to separate its fields with semicolons (;) and write "
                               "decimals with commas (1,5), not commas: save it with comma separators and '.' "
                               "decimals (1.5), or read it in a grids file's load_data() with pd.read_csv(path, "
                               "sep=';', decimal=',')"),
    ("size\tcolor\n0.1\tred, dark\n", "new.csv: the file seems to separate its fields with tabs, not commas"),
    (" size,color\n0.1,red\n", "lack feature column 'size' that family"),
    (" size,color\n0.1,red\n", "Did you mean ' size'?"),
    ("size,color,size\n0.1,red,0.2\n", "the header names column 'size' twice (columns 1 and 3); give each"),
    ("size,color\n0.5,red\ninf,blue\n", "column 'size' holds an infinite value in 1 row (the first is row 2 of"),
])
def test_predict_says_what_is_wrong_with_the_file(table_state, tmp_path, text, message):
    path, _ = table_state
    (tmp_path / "new.csv").write_text(text)
    result = invoke("predict", "--state", str(path), "--data", str(tmp_path / "new.csv"))
    assert result.exit_code == 1 and message in result.output, result.output


def test_best_says_a_family_waits_only_for_its_refit(tmp_path):
    """A run stopped between a family's last fit and its refit leaves it partial with every fit done."""
    path = tmp_path / "s.pkl"
    search.run(search.RunConfig(str(path), grids=str(GRIDS / "quick.py"), families=["nb"], n_jobs=1,
                                progress=False))
    data = state.load(path)
    entry = data["families"]["nb"]
    entry["status"] = "partial"
    for key in ("best_estimator", "best_params", "best_score", "best_index", "refit_time"):
        entry.pop(key, None)
    state.save(path, data)
    for args in (["best"], ["export", "--family", "nb", "-o", str(tmp_path / "m.pkl")]):
        result = invoke(*args, "--state", str(path))
        assert result.exit_code == 1
        assert "every fit" in result.output and "the refit of its best candidate on all the data" in result.output
        assert "run `search run`" in result.output
    assert invoke("run", "--state", str(path), "--grids", str(GRIDS / "quick.py"), "--families", "nb").exit_code == 0
    assert invoke("best", "--state", str(path)).output.startswith("nb")


TWO_FAMILIES = (
    "from sklearn.datasets import make_classification\n"
    "from sklearn.linear_model import LogisticRegression\n"
    "from sklearn.naive_bayes import GaussianNB\n"
    "def load_data():\n    return make_classification(n_samples=120, n_features=6, random_state=0)\n"
    "FAMILIES = {\n"
    "    'lr': (LogisticRegression(), {'C': [0.1, 1.0]}),\n"
    "    'nb': (GaussianNB(), {'var_smoothing': [1e-9]}),\n"
    "}\n"
)


def test_a_family_removed_from_the_grids_file_is_left_out_of_best(tmp_path):
    """Its results stay; best, export and predict leave it out unless named; putting it back undoes it."""
    grids, path = tmp_path / "g.py", tmp_path / "s.pkl"
    grids.write_text(TWO_FAMILIES)
    args = ["run", "--state", str(path), "--grids", str(grids)]
    assert invoke(*args).exit_code == 0
    first = invoke("best", "--state", str(path)).output.split()[0]
    [other] = {"lr", "nb"} - {first}
    grids.write_text("\n".join(line for line in TWO_FAMILIES.splitlines() if not line.startswith(f"    '{first}'")))
    result = invoke(*args)
    assert result.exit_code == 0
    assert f"family '{first}' is no longer in {grids}: its results stay" in result.output
    data = state.load(path)
    assert data["families"][first]["status"] == "done" and "removed" in data["families"][first]
    assert invoke("best", "--state", str(path)).output.split()[0] == other
    status = invoke("status", "--state", str(path))
    assert f"no longer in the grids file, so left out of best: {first}" in status.output
    rows = json.loads(invoke("status", "--state", str(path), "--json").output)["families"]
    assert {r["family"]: r["removed"] for r in rows} == {first: True, other: False}
    assert invoke("export", "--state", str(path), "--family", first, "-o", str(tmp_path / "m.pkl")).exit_code == 0
    grids.write_text(TWO_FAMILIES)  # back in the file
    assert invoke(*args).exit_code == 0
    assert "removed" not in state.load(path)["families"][first]
    assert invoke("best", "--state", str(path)).output.split()[0] == first


def test_families_of_another_grids_file_are_not_removed(tmp_path):
    """A state that holds two grids files' families: each run leaves the other file's alone."""
    grids, second, path = tmp_path / "g.py", tmp_path / "g2.py", tmp_path / "s.pkl"
    grids.write_text(TWO_FAMILIES)
    second.write_text(TWO_FAMILIES.replace("'lr': (LogisticRegression(), {'C': [0.1, 1.0]})",
                                           "'lr2': (LogisticRegression(), {'C': [10.0]})"))
    for file, family in ((grids, "lr"), (second, "lr2"), (grids, "lr")):
        result = invoke("run", "--state", str(path), "--grids", str(file), "--families", family)
        assert result.exit_code == 0, result.output
    families = state.load(path)["families"]
    assert set(families) == {"lr", "lr2"} and not any("removed" in entry for entry in families.values())


def test_best_says_when_families_are_not_done_yet(tmp_path):
    path = tmp_path / "s.pkl"
    args = ["run", "--state", str(path), "--grids", str(GRIDS / "quick.py")]
    assert invoke(*args, "--families", "nb").exit_code == 0
    assert invoke(*args, "--families", "nb,lr", "--max-time", "0s").exit_code == 3  # lr: pending
    result = CliRunner().invoke(search.cli, ["best", "--state", str(path)])
    assert result.stdout.startswith("nb\t")
    assert "best of the families done so far: 1 of 2 not done yet (lr); `search run` finishes them" \
        in result.stderr
    assert json.loads(invoke("best", "--state", str(path), "--json").output)["families_not_done"] == ["lr"]


def test_predict_frame_takes_pandas_nullable_columns_and_refuses_other_types(table_state):
    """pd.NA (nullable dtypes, convert_dtypes()) is a missing value like NaN."""
    path, frame = table_state
    rows = frame.drop(columns="label").head(6).copy()
    rows.loc[rows.index[0], "size"] = np.nan
    rows.loc[rows.index[1], "color"] = np.nan
    plain = search.predict_frame(str(path), rows)["prediction"].tolist()
    nullable = rows.convert_dtypes()
    assert nullable["size"].dtype.na_value is pd.NA and nullable["color"].dtype.na_value is pd.NA
    assert search.predict_frame(str(path), nullable)["prediction"].tolist() == plain
    with pytest.raises(search.SearchError, match="predict_frame takes a pandas DataFrame with the training "
                                                 "columns, not a list: for a list of dicts use pd.DataFrame"):
        search.predict_frame(str(path), rows.to_dict("records"))


def test_predict_frame_gives_each_column_as_in_training_whatever_its_python_type(tmp_path):
    """Rows from JSON: the number 7 for the category "7", the text "12" for the number 12. The model
    gets them as ``search predict`` reads a CSV, not as unknown categories."""
    rng = np.random.default_rng(0)
    n = 200
    zone, store, x = rng.choice(["7", "8", "A"], n), rng.choice([12, 13, 14], n), rng.normal(size=n)
    y = np.where((zone == "7") ^ (x > 1) ^ (store == 12), "yes", "no")
    pd.DataFrame({"x": x, "zone": zone, "store": store, "y": y}).to_csv(tmp_path / "t.csv", index=False)
    path = str(tmp_path / "s.pkl")
    search.run(search.RunConfig(path, data=str(tmp_path / "t.csv"), target="y", families=["lr"], n_jobs=1,
                                progress=False))
    (tmp_path / "q.csv").write_text("x,zone,store\n0.5,7,12\n0.5,8,13\n")
    expected = search.predict_csv(path, str(tmp_path / "q.csv"), proba=True)["proba_yes"].tolist()
    for zones, stores in (([7, 8], [12, 13]), (["7", "8"], ["12", "13"]), ([7.0, 8.0], [12.0, 13.0]),
                          ([7, "8"], ["12", 13])):
        rows = pd.DataFrame({"x": [0.5, 0.5], "zone": zones, "store": stores})
        got = search.predict_frame(path, rows, proba=True)
        assert got["proba_yes"].tolist() == pytest.approx(expected), (zones, stores)
        assert got["zone"].tolist() == zones and got["store"].tolist() == stores  # the rows as given
    unseen = search.predict_frame(path, pd.DataFrame({"x": [0.5], "zone": ["Q"], "store": [12]}), proba=True)
    assert unseen["proba_yes"][0] != pytest.approx(expected[0])
    missing = search.predict_frame(path, pd.DataFrame([{"x": 0.5, "zone": None, "store": None}]))
    assert missing["prediction"][0] in ("yes", "no")


def true_false_table(tmp_path, gaps: bool):
    """A CSV whose column `member` (True/False, empty cells if ``gaps``) decides the label."""
    rng = np.random.default_rng(1)
    n = 150
    member = rng.choice([True, False], n)
    frame = pd.DataFrame({"x": rng.normal(size=n), "member": member.astype(object),
                          "label": np.where(member, "yes", "no")})
    if gaps:
        frame.loc[[3, 40, 77], "member"] = None
    csv = tmp_path / ("gaps.csv" if gaps else "full.csv")
    frame.to_csv(csv, index=False)
    return csv, frame


@pytest.mark.parametrize("gaps", [False, True])
def test_true_false_columns_are_searched_and_predicted_as_in_training(tmp_path, gaps):
    """Without gaps, pandas reads booleans, which the built-in imputer refused (every fit failed);
    with gaps, Python objects True/False, which predict read back as the unknown text "True"."""
    csv, frame = true_false_table(tmp_path, gaps)
    path = tmp_path / "s.pkl"
    result = invoke("run", "--state", str(path), "--data", str(csv), "--target", "label",
                    "--families", "lr,nb", "--cv", "3", "--n-jobs", "1")
    assert result.exit_code == 0, result.output
    data = state.load(path)
    assert data["run"]["data"]["boolean_columns"] == ["member"]
    assert "member" not in data["run"]["data"]["text_columns"]
    out = tmp_path / "pred.csv"
    assert invoke("predict", "--state", str(path), "--data", str(csv), "-o", str(out)).exit_code == 0
    predicted = pd.read_csv(out)["prediction"]
    known = frame["member"].notna()
    assert (predicted[known] == frame["label"][known]).all()
    # the model alone, given the rows as pandas reads them or as JSON would have them, agrees
    model = search.load_best(str(path))
    assert model.predict(pd.read_csv(csv)[["x", "member"]]).tolist() == predicted.tolist()
    rows = pd.DataFrame({"x": [0.0, 0.0, 0.0], "member": [True, False, None]})
    assert search.predict_frame(str(path), rows)["prediction"].tolist()[:2] == ["yes", "no"]
    # a row's prediction does not depend on the others: True beside 1 (all read as text) is True
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("x,member\n0,1\n0,True\n0, false \n0,0\n")
    assert search.predict_csv(str(path), str(mixed))["prediction"].tolist() == ["yes", "yes", "no", "no"]
    rows = pd.DataFrame({"x": [0.0] * 4, "member": [True, "True", "FALSE", 0]})
    assert search.predict_frame(str(path), rows)["prediction"].tolist() == ["yes", "yes", "no", "no"]


def test_text_in_a_true_false_column_is_named_as_such(tmp_path):
    csv, _ = true_false_table(tmp_path, gaps=False)
    path = tmp_path / "s.pkl"
    assert invoke("run", "--state", str(path), "--data", str(csv), "--target", "label", "--families", "nb",
                  "--cv", "3", "--n-jobs", "1").exit_code == 0
    new = tmp_path / "new.csv"
    new.write_text("x,member\n0.1,yes\n0.2,no\n0.3,1\n")
    result = invoke("predict", "--state", str(path), "--data", str(new))
    assert result.exit_code == 1
    assert ("column 'member' held True and False in training, and here holds text in 2 rows ('yes', 'no'; "
            "the first is row 1 of the data); write True or False (or 1 or 0) there") in result.output


def test_a_state_begun_with_true_false_as_categories_resumes_and_predicts_with_them(tmp_path, monkeypatch):
    """States begun before True/False columns were read as 1 and 0 go on with the booleans, and
    predict gives them booleans, not the text "True" (an unknown category)."""
    csv, frame = true_false_table(tmp_path, gaps=True)
    path = tmp_path / "s.pkl"
    with monkeypatch.context() as before:
        before.setattr(search, "_booleans_as_numbers", lambda frame: frame)
        before.setattr(search, "boolean_columns", lambda X: [])
        result = invoke("run", "--state", str(path), "--data", str(csv), "--target", "label",
                        "--families", "lr", "--cv", "3", "--n-jobs", "1")
    assert result.exit_code == 0, result.output
    older = state.load(path)
    assert older["run"]["data"].pop("boolean_columns") == [] and older["run"]["data"]["text_columns"] == ["member"]
    state.save(path, older)
    result = invoke("run", "--state", str(path), "--data", str(csv), "--target", "label",
                    "--families", "lr,nb", "--cv", "3", "--n-jobs", "1")
    assert result.exit_code == 0, result.output
    out = tmp_path / "pred.csv"
    assert invoke("predict", "--state", str(path), "--data", str(csv), "-o", str(out)).exit_code == 0
    known = frame["member"].notna()
    assert (pd.read_csv(out)["prediction"][known] == frame["label"][known]).all()


def test_booleans_from_load_data_to_the_builtin_preparation_are_refused_before_any_work(tmp_path):
    """A grids file's load_data() reading the same CSV with pandas gets dtype bool, which the built-in
    preparation's imputer refuses: every fit failed, after the families without it had run."""
    csv, _ = true_false_table(tmp_path, gaps=False)
    grids = tmp_path / "bool_grids.py"
    grids.write_text(
        "import pandas as pd\n"
        "from sklearn.naive_bayes import GaussianNB\n"
        "from grids import builtin_families\n"
        "FAMILIES = {**{k: v for k, v in builtin_families('classification').items() if k in ('lr', 'nb')},\n"
        "            'plain': (GaussianNB(), {'var_smoothing': [1e-9]})}\n"
        f"FRAME = pd.read_csv({str(csv)!r})\n"
        "def load_data():\n"
        "    return FRAME[['x', 'member']], FRAME['label']\n")
    path = tmp_path / "s.pkl"
    result = invoke("run", "--state", str(path), "--grids", str(grids), "--cv", "3", "--n-jobs", "1")
    assert result.exit_code == 1
    assert ("load_data() returned column 'member' of True/False (dtype bool), and families lr, nb begin with "
            "the built-in preparation, whose imputer refuses booleans: every fit would fail. Give it as the "
            "numbers 1 and 0 in load_data(), as --data does: X[['member']] = X[['member']].astype(float)"
            ) in result.output
    assert not path.exists()
    # a family without it takes booleans as they are (scikit-learn makes them numbers)
    result = invoke("run", "--state", str(path), "--grids", str(grids), "--families", "plain", "--cv", "3",
                    "--n-jobs", "1")
    assert result.exit_code == 0, result.output
    # the fix as given works
    grids.write_text(grids.read_text().replace("FRAME[['x', 'member']]",
                                               "FRAME[['x', 'member']].astype({'member': float})"))
    result = invoke("run", "--state", str(tmp_path / "fixed.pkl"), "--grids", str(grids), "--cv", "3",
                    "--n-jobs", "1")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("name, magic", [("pred.csv.gz", b"\x1f\x8b"), ("pred.csv.bz2", b"BZh"),
                                         ("pred.csv.zip", b"PK\x03\x04"), ("pred.csv.xz", b"\xfd7zXZ"),
                                         ("PRED.CSV.GZ", b"\x1f\x8b"), ("pred.csv", b"size,")])
def test_predict_compresses_its_output_as_its_extension_says(table_state, tmp_path, name, magic):
    """pandas reads pred.csv.gz as gzip: a plain CSV under that name was unreadable by it."""
    path, frame = table_state
    csv = tmp_path / "new.csv.gz"
    frame.head(5).to_csv(csv, index=False)
    result = invoke("predict", "--state", str(path), "--data", str(csv), "-o", str(tmp_path / name))
    assert result.exit_code == 0, result.output
    assert (tmp_path / name).read_bytes().startswith(magic)
    got = pd.read_csv(tmp_path / name)
    assert list(got.columns) == ["size", "color", "label", "prediction"] and len(got) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["new.csv.gz", name])  # no temp file left


def _xlsx(where: Path) -> None:
    import zipfile

    with zipfile.ZipFile(where, "w") as book:  # the parts every .xlsx has
        book.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        book.writestr("xl/worksheets/sheet1.xml", '<?xml version="1.0"?><worksheet/>' + "\x9c\xb7" * 50)


NOT_CSV = {
    "book.xlsx": (_xlsx, "--data {} is an Excel workbook, not CSV: save it as CSV UTF-8 (File > Save As) or "
                         "convert it with pandas: python -c 'import pandas as pd; pd.read_excel(\"{}\")"
                         ".to_csv(\"book.csv\", index=False)'"),
    "utf16.csv": (lambda p: p.write_text("size,color\n0.1,red\n", encoding="utf-16"),
                  "--data {} is UTF-16 text, not UTF-8: save it as \"CSV UTF-8\", or convert it, e.g. "
                  "iconv -f utf-16 -t utf-8 {} > converted.csv"),
    # without a byte-order mark pandas read it without an error: columns of NULs, a target "not a column"
    "utf16le.csv": (lambda p: p.write_text("size,color,label\n0.1,red,yes\n", encoding="utf-16-le"),
                    "--data {} is UTF-16 text, not UTF-8: save it as \"CSV UTF-8\", or convert it, e.g. "
                    "iconv -f utf-16le -t utf-8 {} > converted.csv"),
    "utf16be.csv": (lambda p: p.write_text("size,color,label\n0.1,red,yes\n", encoding="utf-16-be"),
                    "--data {} is UTF-16 text, not UTF-8: save it as \"CSV UTF-8\", or convert it, e.g. "
                    "iconv -f utf-16be -t utf-8 {} > converted.csv"),
    "data.parquet": (lambda p: p.write_bytes(b"PAR1\x15\x04\x15\x10\x15\x14L\x15\x04\x15\x00\x12\x00\x00"
                                             b"\x08\x1c\n\x00\x00\x00\n\x00\x00\x00" + bytes(range(256)) + b"PAR1"),
                     "--data {} is a parquet file, not CSV: convert it with pandas: python -c 'import pandas "
                     "as pd; pd.read_parquet(\"{}\").to_csv(\"data.csv\", index=False)'"),
}


@pytest.mark.parametrize("name", sorted(NOT_CSV))
def test_a_file_that_is_no_csv_is_named_for_what_it_is(table_state, tmp_path, name):
    """Not "not UTF-8 text ... iconv -f latin1" for a workbook, nor a tokenizing error for parquet."""
    path, _ = table_state
    write, message = NOT_CSV[name]
    data = tmp_path / name
    write(data)
    for command in (["run", "--state", str(tmp_path / "s.pkl"), "--target", "label"],
                    ["predict", "--state", str(path)]):
        result = invoke(*command, "--data", str(data))
        assert result.exit_code == 1, result.output
        assert result.output == f"Error: {message.format(data, data)}\n"
    assert not (tmp_path / "s.pkl").exists()


def test_a_spreadsheets_empty_columns_are_left_out_and_not_required_at_predict(tmp_path, caplog):
    """Every line ending in ',,': pandas reads 'Unnamed: 3' and 'Unnamed: 4', empty; as features the
    next morning's file, saved without them, was refused for lacking them."""
    frame = _table_for_blank_columns()
    lines = frame.to_csv(index=False).splitlines()
    (tmp_path / "train.csv").write_text("".join(line + ",,\n" for line in lines))
    path = tmp_path / "s.pkl"
    with caplog.at_level("WARNING", logger="search"):
        result = invoke("run", "--state", str(path), "--data", str(tmp_path / "train.csv"), "--target", "label",
                        "--families", "nb", "--cv", "3", "--n-jobs", "1")
    assert result.exit_code == 0, result.output
    left_out = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert left_out == [f"{tmp_path / 'train.csv'}: left out columns 'Unnamed: 3', 'Unnamed: 4', unnamed in the "
                        "header and empty in every row (a spreadsheet's empty columns, most likely); they are "
                        "not features"]
    assert state.load(path)["run"]["data"]["columns"] == ["size", "color"]
    frame.drop(columns="label").head(4).to_csv(tmp_path / "plain.csv", index=False)
    for new in ("plain.csv", "train.csv"):
        result = invoke("predict", "--state", str(path), "--data", str(tmp_path / new), "-o", str(tmp_path / "p.csv"))
        assert result.exit_code == 0, result.output
        assert pd.read_csv(tmp_path / "p.csv")["prediction"].notna().all()


def _table_for_blank_columns(n=60):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"size": rng.normal(size=n), "color": rng.choice(["red", "blue"], n)})
    frame["label"] = np.where(frame["size"] > 0, "big", "small")
    return frame


def test_a_state_begun_with_a_spreadsheets_empty_columns_resumes_with_them(tmp_path, monkeypatch):
    """States begun before such columns were left out go on with them, rather than being refused as
    other data."""
    frame = _table_for_blank_columns()
    csv = tmp_path / "train.csv"
    csv.write_text("".join(line + ",,\n" for line in frame.to_csv(index=False).splitlines()))
    path = tmp_path / "s.pkl"
    args = ("run", "--state", str(path), "--data", str(csv), "--target", "label", "--cv", "3", "--n-jobs", "1")
    with monkeypatch.context() as before:
        before.setattr(search, "_blank_columns", lambda path, frame: [])
        assert invoke(*args, "--families", "nb").exit_code == 0
    assert state.load(path)["run"]["data"]["columns"] == ["size", "color", "Unnamed: 3", "Unnamed: 4"]
    result = invoke(*args, "--families", "nb,lr")
    assert result.exit_code == 0, result.output
    assert state.load(path)["families"]["lr"]["status"] == "done"


NOTEBOOK = '''
import sys
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
import search


class MyScaler(BaseEstimator, TransformerMixin):  # defined in the notebook (here, the script run)
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X) * 2.0


search.run(search.RunConfig(sys.argv[1], grids=sys.argv[2], cv=2, n_jobs=1, progress=False))
'''


@pytest.fixture(scope="module")
def notebook_state(tmp_path_factory):
    """A search run from a notebook (a script here): its grids file imports a class of ``__main__``."""
    where = tmp_path_factory.mktemp("notebook")
    (where / "nb_grids.py").write_text(
        "from __main__ import MyScaler\nfrom sklearn.datasets import load_iris\n"
        "from sklearn.linear_model import LogisticRegression\nfrom sklearn.pipeline import make_pipeline\n\n"
        "def load_data():\n    return load_iris(return_X_y=True)\n\n"
        "FAMILIES = {'lr': (make_pipeline(MyScaler(), LogisticRegression(max_iter=500)),\n"
        "                   {'logisticregression__C': [1.0]})}\n")
    (where / "notebook.py").write_text(NOTEBOOK)
    env = dict(os.environ, PYTHONPATH=str(Path(search.__file__).parent))
    done = subprocess.run([sys.executable, "notebook.py", "s.pkl", "nb_grids.py"], cwd=where, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return where / "s.pkl"


def test_code_of_a_notebook_is_named_so_and_its_fix_is_a_call_from_the_notebook(notebook_state, tmp_path):
    """The messages said the code was the grids file's, and that `search run --grids nb_grids.py
    --redo-changed` would search it again: the command line refuses a grids file that imports from
    __main__."""
    other = saved_under(notebook_state, tmp_path, python=other_python_minor())
    with pytest.raises(search.SearchError) as info:
        search.load_best(str(other))
    assert "holds code defined in the notebook or script that ran the search (__main__) (MyScaler" in str(info.value)
    assert str(info.value).endswith("search.run(RunConfig(..., redo_changed=True)) from that notebook or script)")
    done = run_search(["export", "--state", str(notebook_state), "-o", "m.skops"], tmp_path)
    assert done.returncode == 1, done.stderr
    assert ("it uses MyScaler from the notebook or script that ran the search (__main__), which skops stores "
            "by name only") in done.stderr


def test_the_python_api_refuses_an_unknown_export_format(table_state, tmp_path):
    """Any fmt but "pickle" and "joblib" wrote a skops file, which pickle.load then refused."""
    for fmt in ("onnx", "PICKLE", "joblib "):
        with pytest.raises(search.SearchError, match=re.escape(f"export format {fmt!r} is not one of 'pickle', "
                                                               "'joblib', 'skops'")):
            search.export_best(str(table_state[0]), str(tmp_path / "m.bin"), fmt=fmt)
    assert not (tmp_path / "m.bin").exists()


def test_exporting_to_a_stdout_that_takes_only_text_is_refused(table_state, tmp_path, monkeypatch):
    """ipykernel's stdout has no binary buffer: export_best(path, "-") raised AttributeError there."""
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    with pytest.raises(search.SearchError, match="output '-' writes the model's bytes to standard output, which "
                                                 "takes only text here"):
        search.export_best(str(table_state[0]), "-")


def test_the_reading_functions_take_a_path_as_well_as_a_state_read(table_state):
    """status_rows(path) failed with "TypeError: string indices must be integers"; load_best,
    export_best and predict_frame take a path."""
    path = str(table_state[0])
    data = search.read_state(path)
    assert search.status_rows(path) == search.status_rows(data)
    assert search.best_family(table_state[0]) == search.best_family(data)
    assert search.candidate_rows(path, "lr") == search.candidate_rows(data, "lr")
    with pytest.raises(search.SearchError, match="expected a state file's path or the dictionary read_state"):
        search.status_rows(["lr"])
