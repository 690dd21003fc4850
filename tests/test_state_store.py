"""The state file: round trips, verification before unpickling, safety checks, signing."""

from __future__ import annotations

import copy
import json
import os
import pickle
import re
import stat
import struct
import subprocess
import sys
import textwrap
import warnings
from datetime import datetime
from pathlib import Path

import joblib
import numpy as np
import pytest
from conftest import KEY_VARIABLES
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import state
from state import Pickled, StateCorrupt, StateError, StateUnsafe

ROOT = Path(__file__).resolve().parents[1]


def child_env(with_project: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARIABLES and k != "PYTHONPATH"}
    if with_project:
        env["PYTHONPATH"] = str(ROOT)
    return env


def run_python(code: str, *args: object, cwd: Path, with_project: bool = True) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        cwd=cwd,
        env=child_env(with_project),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def iris_model():
    X, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=1000).fit(X, y), X


def trailer(path: Path) -> tuple[bytes, int, int, int]:
    """The trailer's magic, format, algorithm and payload length, read by the documented layout."""
    data = path.read_bytes()
    return struct.unpack("<8sBB6xQ", data[-56:-32])


def saved_at(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime).astimezone().isoformat(sep=" ", timespec="seconds")


def listing(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


# ------------------------------------------------------------------ round trips


def test_round_trip_turns_pickled_entries_into_their_objects(tmp_path, iris_model):
    model, X = iris_model
    path = tmp_path / "s.pkl"
    data = {
        "format_version": state.FORMAT_VERSION,
        "scores": np.arange(5, dtype=float) / 3,
        "params": [{"C": 0.1}, {"C": 1.0}],
        "best_estimator": Pickled(model),
        "scorer": lambda y_true, y_pred: float(np.mean(y_true == y_pred)),
    }
    state.save(path, data)
    loaded = state.load(path)

    assert set(loaded) == set(data)
    np.testing.assert_array_equal(loaded["scores"], data["scores"])
    assert loaded["params"] == data["params"]
    assert isinstance(loaded["best_estimator"], LogisticRegression)
    np.testing.assert_array_equal(loaded["best_estimator"].predict(X), model.predict(X))
    assert loaded["scorer"](np.array([1, 2]), np.array([1, 3])) == 0.5
    assert trailer(path) == (b"CKSEARCH", 1, 1, path.stat().st_size - 56)


def test_plain_pickle_load_in_a_fresh_interpreter_needs_no_helper(tmp_path, iris_model):
    model, X = iris_model
    path = tmp_path / "s.pkl"
    state.save(path, {"families": {"lr": {"best_estimator": Pickled(model)}}, "n": 3})
    out = run_python(
        """
        import json, pickle, sys
        with open(sys.argv[1], "rb") as f:
            data = pickle.load(f)
            rest = f.read()
        est = data["families"]["lr"]["best_estimator"]
        print(json.dumps({
            "type": type(est).__name__, "n": data["n"], "rest": len(rest),
            "predictions": est.predict([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]).tolist(),
            "state_imported": "state" in sys.modules,
        }))
        """,
        path,
        cwd=tmp_path,
        with_project=False,
    )
    result = json.loads(out)
    assert result == {
        "type": "LogisticRegression",
        "n": 3,
        "rest": 56,  # pickle stops at STOP; only the trailer is left
        "predictions": model.predict([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]).tolist(),
        "state_imported": False,
    }


def test_functions_registered_by_value_load_without_their_module(tmp_path):
    import cloudpickle

    modules = tmp_path / "mods"
    modules.mkdir()
    (modules / "user_grids_xyz.py").write_text("def score(x):\n    return x * 7\n")
    sys.path.insert(0, str(modules))
    try:
        import user_grids_xyz

        cloudpickle.register_pickle_by_value(user_grids_xyz)
        try:
            state.save(tmp_path / "s.pkl", {"score": user_grids_xyz.score})
        finally:
            cloudpickle.unregister_pickle_by_value(user_grids_xyz)
    finally:
        sys.path.remove(str(modules))
        sys.modules.pop("user_grids_xyz", None)
    out = run_python(
        """
        import sys, state
        print(state.load(sys.argv[1])["score"](6))
        """,
        tmp_path / "s.pkl",
        cwd=tmp_path,
    )
    assert out.strip() == "42"


def test_lazy_load_keeps_pickled_entries_unopened(tmp_path):
    # This pickle names a module that does not exist: unpickling it fails.
    unloadable = b"cno_such_module_xyz\nthing\n."
    path = tmp_path / "s.pkl"
    state.save(path, {"a": Pickled(data=unloadable), "b": Pickled([1, 2]), "c": [Pickled({"x": 1})]})

    lazy = state.load(path, lazy=True)
    assert isinstance(lazy["a"], Pickled) and lazy["a"].data == unloadable
    assert isinstance(lazy["c"][0], Pickled) and lazy["c"][0].load() == {"x": 1}
    assert lazy["b"].load() == [1, 2]
    with pytest.raises(ModuleNotFoundError, match="no_such_module_xyz"):
        lazy["a"].load()

    with pytest.raises(StateError) as info:
        state.load(path)
    assert type(info.value) is StateError
    assert str(info.value).startswith(
        f"state file {path} is intact but could not be unpickled: "
        "ModuleNotFoundError: No module named 'no_such_module_xyz'. A module it needs is missing"
    )


def test_lazy_load_does_not_import_the_estimators_modules(tmp_path, iris_model):
    model, _ = iris_model
    state.save(tmp_path / "s.pkl", {"families": {"lr": {"best_estimator": Pickled(model)}}})
    out = run_python(
        """
        import sys, state
        data = state.load(sys.argv[1], lazy=True)
        before = "sklearn" in sys.modules
        est = data["families"]["lr"]["best_estimator"].load()
        print(before, type(est).__name__, "sklearn" in sys.modules)
        """,
        tmp_path / "s.pkl",
        cwd=tmp_path,
    )
    assert out.split() == ["False", "LogisticRegression", "True"]


def test_pickled_keeps_its_bytes():
    wrapped = Pickled({"a": 1})
    assert pickle.loads(wrapped.data) == {"a": 1}
    assert wrapped == Pickled(data=wrapped.data)
    assert repr(wrapped) == f"Pickled(<{len(wrapped.data)} bytes>)"
    # copies stay wrapped; only pickling turns the wrapper into the object
    assert isinstance(copy.deepcopy(wrapped), Pickled) and isinstance(copy.copy(wrapped), Pickled)
    assert pickle.loads(pickle.dumps([wrapped])) == [{"a": 1}]
    with pytest.raises(TypeError, match="not both"):
        Pickled({"a": 1}, data=b"x")


def test_save_keeps_exactly_the_file_and_its_previous_generation(tmp_path):
    path = tmp_path / "s.pkl"
    state.save(path, {"gen": 1})
    assert listing(tmp_path) == ["s.pkl"]
    state.save(path, {"gen": 2})
    state.save(path, {"gen": 3})
    assert listing(tmp_path) == ["s.pkl", "s.pkl.prev"]
    assert state.load(path) == {"gen": 3}
    assert state.load(state.previous_path(path)) == {"gen": 2}
    assert state.previous_path(path) == tmp_path / "s.pkl.prev"


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_new_files_are_private_whatever_the_umask(tmp_path, umask):
    path = tmp_path / "s.pkl"
    old = os.umask(umask)
    try:
        state.save(path, {"gen": 1})
        state.save(path, {"gen": 2})
        with state.atomic_writer(tmp_path / "model.pkl") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    for name in ("s.pkl", "s.pkl.prev", "model.pkl"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name


def test_save_refuses_what_is_not_a_dict(tmp_path):
    with pytest.raises(TypeError, match="the state must be a dict, got list"):
        state.save(tmp_path / "s.pkl", [1, 2])
    assert listing(tmp_path) == []


def test_an_unpicklable_state_leaves_the_old_one(tmp_path):
    import threading

    path = tmp_path / "s.pkl"
    state.save(path, {"gen": 1})
    before = path.read_bytes()
    with pytest.raises(TypeError, match="lock"):
        state.save(path, {"gen": 2, "lock": threading.Lock()})
    assert path.read_bytes() == before
    assert listing(tmp_path) == ["s.pkl"]


def test_stale_temporary_files_of_dead_processes_are_removed(tmp_path):
    path = tmp_path / "s.pkl"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    (tmp_path / f".s.pkl.tmp-{dead_pid}-0123abcd").write_bytes(b"partial")
    (tmp_path / ".s.pkl.tmp-1-0123abcd").write_bytes(b"pid 1 is alive")
    (tmp_path / ".other.pkl.tmp-999999-0123abcd").write_bytes(b"not ours")
    state.save(path, {"gen": 1})
    assert listing(tmp_path) == [".other.pkl.tmp-999999-0123abcd", ".s.pkl.tmp-1-0123abcd", "s.pkl"]


# ------------------------------------------------------------------ atomic_writer


def test_atomic_writer_takes_joblib_dump(tmp_path, iris_model):
    model, X = iris_model
    target = tmp_path / "model.joblib"
    with state.atomic_writer(target) as f:
        joblib.dump(model, f)
        assert f.tell() > 0
    assert listing(tmp_path) == ["model.joblib"]
    np.testing.assert_array_equal(joblib.load(target).predict(X), model.predict(X))


def test_atomic_writer_leaves_the_target_on_an_exception(tmp_path):
    target = tmp_path / "model.pkl"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with state.atomic_writer(target) as f:
            f.write(b"new" * 100_000)
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert listing(tmp_path) == ["model.pkl"]


# ------------------------------------------------------------------ damaged files


def two_generations(path: Path) -> None:
    state.save(path, {"gen": 1, "blob": bytes(range(256)) * 64})
    state.save(path, {"gen": 2, "blob": bytes(range(255, -1, -1)) * 64})


def flip_bit(offset_from_middle: bool):
    def damage(data: bytes) -> bytes:
        position = len(data) // 2 if offset_from_middle else len(data) - 1
        return data[:position] + bytes([data[position] ^ 0x10]) + data[position + 1 :]

    return damage


NO_TRAILER = "no checksum trailer: not written by checkpointed-search, refusing to unpickle it"
DAMAGES = {
    "truncated to half": (lambda data: data[: len(data) // 2 + 1], "truncated"),
    "truncated in the trailer": (lambda data: data[:-10], "truncated"),
    "emptied": (lambda data: b"", "truncated: the file is empty"),
    "bit flipped in the pickle": (flip_bit(True), "checksum mismatch"),
    "bit flipped in the digest": (flip_bit(False), "checksum mismatch"),
    "bytes appended": (lambda data: data + b"\n\n\n\n\n", "5 bytes appended after its checksum trailer"),
    "plain pickle": (lambda data: pickle.dumps({"gen": 9}), NO_TRAILER),
    "format byte changed": (
        lambda data: data[:-48] + b"\x07" + data[-47:],
        "unknown checksum trailer format 7: damaged, or written by a newer checkpointed-search "
        "(this one reads format 1)",
    ),
}


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_a_damaged_file_is_refused_named_and_left_as_it_is(tmp_path, damage):
    damage_function, reason = DAMAGES[damage]
    path = tmp_path / "s.pkl"
    two_generations(path)
    damaged = damage_function(path.read_bytes())
    path.write_bytes(damaged)
    os.chmod(path, 0o600)
    prev = tmp_path / "s.pkl.prev"
    expected = (
        f"state file {path} is damaged ({reason}); it was left as it is. "
        f"The previous generation {prev} is intact (saved {saved_at(prev)}); "
        f"to go back to it: cp {prev} {path}"
    )
    with pytest.raises(StateCorrupt, match=f"^{re.escape(expected)}$"):
        state.load(path)
    with pytest.raises(StateCorrupt, match=f"^{re.escape(expected)}$"):
        state.load(path, lazy=True)
    assert path.read_bytes() == damaged
    assert listing(tmp_path) == ["s.pkl", "s.pkl.prev"]
    # following the message's advice works
    path.write_bytes(prev.read_bytes())
    assert state.load(path)["gen"] == 1


def test_the_message_says_when_there_is_no_previous_generation(tmp_path):
    path = tmp_path / "s.pkl"
    state.save(path, {"gen": 1})
    path.write_bytes(path.read_bytes()[:-1])
    expected = (
        f"state file {path} is damaged (truncated); it was left as it is. "
        f"There is no previous generation ({path}.prev) to go back to. "
        f"To start afresh, move the damaged file away: mv {path} {path}.damaged"
    )
    with pytest.raises(StateCorrupt, match=f"^{re.escape(expected)}$"):
        state.load(path)


def test_the_message_says_when_the_previous_generation_is_damaged_too(tmp_path):
    path = tmp_path / "s.pkl"
    two_generations(path)
    prev = tmp_path / "s.pkl.prev"
    for damaged in (path, prev):
        damaged.write_bytes(flip_bit(True)(damaged.read_bytes()))
    expected = (
        f"state file {path} is damaged (checksum mismatch); it was left as it is. "
        f"The previous generation {prev} is damaged too (checksum mismatch). "
        f"To start afresh, move the damaged file away: mv {path} {path}.damaged"
    )
    with pytest.raises(StateCorrupt, match=f"^{re.escape(expected)}$"):
        state.load(path)


def test_save_does_not_overwrite_a_damaged_file(tmp_path):
    path = tmp_path / "s.pkl"
    two_generations(path)
    prev = tmp_path / "s.pkl.prev"
    damaged = path.read_bytes()[:-100]
    path.write_bytes(damaged)
    prev_bytes = prev.read_bytes()
    expected = (
        f"state file {path} is damaged (truncated); refusing to overwrite it. "
        f"To start afresh, move it away first (mv {path} {path}.damaged). "
        f"The previous generation {prev} is intact (saved {saved_at(prev)}); "
        f"to go back to it: cp {prev} {path}"
    )
    with pytest.raises(StateCorrupt, match=f"^{re.escape(expected)}$"):
        state.save(path, {"gen": 3})
    assert path.read_bytes() == damaged
    assert prev.read_bytes() == prev_bytes
    assert listing(tmp_path) == ["s.pkl", "s.pkl.prev"]


def test_save_does_not_overwrite_a_file_it_did_not_write(tmp_path):
    path = tmp_path / "notes.pkl"
    path.write_bytes(pickle.dumps({"precious": True}))
    with pytest.raises(StateCorrupt, match=re.escape(f"({NO_TRAILER}); refusing to overwrite it")):
        state.save(path, {"gen": 1})
    assert pickle.loads(path.read_bytes()) == {"precious": True}


# ------------------------------------------------------------------ unsafe files


@pytest.mark.parametrize(
    ("mode", "who"),
    [(0o620, "group-writable"), (0o602, "world-writable"), (0o666, "group- and world-writable")],
)
def test_a_file_others_can_write_is_refused(tmp_path, mode, who):
    path = tmp_path / "s.pkl"
    state.save(path, {"gen": 1})
    os.chmod(path, mode)
    expected = (
        f"state file {path} is {who} (mode {mode:04o}); refusing to load it: pickles run code when "
        f"loaded, and others could have changed it. If you trust its contents, fix the "
        f"permissions: chmod 600 {path}"
    )
    with pytest.raises(StateUnsafe, match=f"^{re.escape(expected)}$"):
        state.load(path)
    with pytest.raises(StateUnsafe, match=re.escape("refusing to overwrite it: pickles run code")):
        state.save(path, {"gen": 2})
    os.chmod(path, 0o600)  # the advice works
    assert state.load(path) == {"gen": 1}


def test_a_symbolic_link_is_refused(tmp_path):
    real = tmp_path / "real.pkl"
    state.save(real, {"gen": 1})
    link = tmp_path / "s.pkl"
    link.symlink_to(real)
    expected = (
        f"state file {link} is a symbolic link; refusing to load it: pickles run code when loaded, "
        f"so only a regular file you own is trusted. Use the file itself (--state {real})"
    )
    with pytest.raises(StateUnsafe, match=f"^{re.escape(expected)}$"):
        state.load(link)
    with pytest.raises(StateUnsafe, match=re.escape(f"state file {link} is a symbolic link; refusing to overwrite")):
        state.save(link, {"gen": 2})
    assert link.is_symlink() and state.load(real) == {"gen": 1}
    assert listing(tmp_path) == ["real.pkl", "s.pkl"]


def test_a_named_pipe_is_refused_without_opening_it(tmp_path):
    path = tmp_path / "s.pkl"
    os.mkfifo(path, 0o600)  # opening a FIFO for reading would block
    with pytest.raises(StateUnsafe, match=re.escape(f"state file {path} is a named pipe, not a regular file")):
        state.load(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_a_file_owned_by_someone_else_is_refused(tmp_path):
    path = tmp_path / "s.pkl"
    state.save(path, {"gen": 1})
    os.chown(path, 4242, -1)
    with pytest.raises(StateUnsafe) as info:
        state.load(path)
    message = str(info.value)
    assert message.startswith(f"state file {path} is owned by 4242 (uid 4242), not by you (root, uid 0)")
    assert message.endswith(f"or have root run: chown root {path}")


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        state.load(tmp_path / "nothing.pkl")


# ------------------------------------------------------------------ signing


def test_a_signed_file_loads_with_its_key_from_any_source(tmp_path, monkeypatch):
    path = tmp_path / "s.pkl"
    state.save(path, {"gen": 1}, key=b"k1")
    assert trailer(path)[2] == 2  # HMAC-SHA256, not plain SHA-256
    assert state.load(path, key=b"k1") == {"gen": 1}

    monkeypatch.setenv("SEARCH_STATE_KEY", "k1")
    assert state.load(path) == {"gen": 1}
    monkeypatch.delenv("SEARCH_STATE_KEY")

    key_file = tmp_path / "key"
    key_file.write_bytes(b"  k1\n")
    monkeypatch.setenv("SEARCH_STATE_KEY_FILE", str(key_file))
    assert state.key_from_environment() == b"k1"
    assert state.load(path) == {"gen": 1}
    state.save(path, {"gen": 2})  # signed with the key from the file
    assert trailer(path)[2] == 2 and state.load(path, key=b"k1") == {"gen": 2}


def test_a_signed_file_is_refused_without_a_key(tmp_path):
    path = tmp_path / "s.pkl"
    state.save(path, {"gen": 1}, key=b"k1")
    expected = (
        f"state file {path} is signed (HMAC-SHA256) but no key is configured, so it cannot be "
        "verified; refusing to unpickle it. Set SEARCH_STATE_KEY (the key) or SEARCH_STATE_KEY_FILE "
        "(a file holding it) to the key it was written with"
    )
    with pytest.raises(StateUnsafe, match=f"^{re.escape(expected)}$"):
        state.load(path)


def test_an_unsigned_file_is_refused_when_a_key_is_configured(tmp_path, monkeypatch):
    path = tmp_path / "s.pkl"
    state.save(path, {"gen": 1})
    monkeypatch.setenv("SEARCH_STATE_KEY", "k1")
    expected = (
        f"state file {path} is not signed, but a signing key is configured, so anyone could have "
        "written it; refusing to unpickle it. If you trust this file, unset SEARCH_STATE_KEY and "
        "SEARCH_STATE_KEY_FILE to use it unsigned"
    )
    with pytest.raises(StateUnsafe, match=f"^{re.escape(expected)}$"):
        state.load(path)


def test_a_file_signed_with_another_key_is_refused(tmp_path):
    path = tmp_path / "s.pkl"
    state.save(path, {"gen": 1}, key=b"k1")
    state.save(path, {"gen": 666}, key=b"attacker")
    reason = "signature mismatch: changed after it was written, or signed with another key"
    prev = tmp_path / "s.pkl.prev"
    expected = (
        f"state file {path} is damaged ({reason}); it was left as it is. "
        f"The previous generation {prev} is intact (saved {saved_at(prev)}); to go back to it: cp {prev} {path}"
    )
    with pytest.raises(StateCorrupt, match=f"^{re.escape(expected)}$"):
        state.load(path, key=b"k1")


def test_a_wrong_key_is_named_before_damage_when_both_generations_fail_the_signature(tmp_path, monkeypatch):
    """Both generations signed, neither matching: a wrong SEARCH_STATE_KEY, not two damaged files."""
    path = tmp_path / "s.pkl"
    state.save(path, {"gen": 1}, key=b"k1")
    state.save(path, {"gen": 2}, key=b"k1")
    before = path.read_bytes()
    monkeypatch.setenv("SEARCH_STATE_KEY", "k2")
    expected = (
        f"state file {path} and its previous generation {path}.prev both fail the signature check; most likely "
        "the key (SEARCH_STATE_KEY) is not the one they were signed with: check SEARCH_STATE_KEY or "
        "SEARCH_STATE_KEY_FILE and try again. Both were left as they are. Only if the key is right were they "
        f"changed after they were written; then, to start afresh, move the state file away: mv {path} {path}.damaged"
    )
    with pytest.raises(StateCorrupt, match=f"^{re.escape(expected)}$"):
        state.load(path)
    assert path.read_bytes() == before
    monkeypatch.setenv("SEARCH_STATE_KEY", "k1")
    assert state.load(path) == {"gen": 2}


def test_a_tampered_signed_file_is_refused(tmp_path):
    path = tmp_path / "s.pkl"
    state.save(path, {"gen": 1, "blob": bytes(1000)}, key=b"k1")
    path.write_bytes(flip_bit(True)(path.read_bytes()))
    with pytest.raises(StateCorrupt, match=re.escape("(signature mismatch: changed after it was written")):
        state.load(path, key=b"k1")


def test_key_configuration_errors(tmp_path, monkeypatch):
    assert state.key_from_environment() is None
    monkeypatch.setenv("SEARCH_STATE_KEY", "")
    assert state.key_from_environment() is None  # empty counts as unset
    monkeypatch.setenv("SEARCH_STATE_KEY", "k")
    monkeypatch.setenv("SEARCH_STATE_KEY_FILE", str(tmp_path / "key"))
    with pytest.raises(StateError, match="both SEARCH_STATE_KEY and SEARCH_STATE_KEY_FILE are set"):
        state.key_from_environment()
    monkeypatch.delenv("SEARCH_STATE_KEY")
    with pytest.raises(
        StateError,
        match=re.escape(f"cannot read the key file {tmp_path / 'key'} named by SEARCH_STATE_KEY_FILE: [Errno 2]"),
    ):
        state.key_from_environment()
    (tmp_path / "key").write_bytes(b"\n")
    with pytest.raises(StateError, match="is empty"):
        state.save(tmp_path / "s.pkl", {"gen": 1})
    with pytest.raises(ValueError, match="key must not be empty"):
        state.save(tmp_path / "s.pkl", {"gen": 1}, key=b"")


# ------------------------------------------------------------------ environment


def test_a_different_package_version_is_named_in_one_warning(tmp_path):
    path = tmp_path / "s.pkl"
    recorded = dict(state.environment(), **{"scikit-learn": "0.0.1"})
    state.save(path, {"environment": recorded})
    now = state.environment()["scikit-learn"]
    expected = (
        f"state file was written with scikit-learn 0.0.1, this is scikit-learn {now}; "
        "estimators may not load or behave the same"
    )
    with pytest.warns(state.EnvironmentMismatchWarning) as record:
        state.load(path)
    assert [str(w.message) for w in record] == [expected]
    assert record[0].filename == __file__  # points at the caller of load()


def test_the_same_environment_loads_without_a_warning(tmp_path):
    path = tmp_path / "s.pkl"
    env = state.environment()
    assert {"python", "scikit-learn", "numpy", "joblib", "cloudpickle", "platform"} <= set(env)
    # another bugfix release of Python and another platform do not matter
    env["python"] = ".".join(env["python"].split(".")[:2]) + ".99"
    env["platform"] = "Elsewhere-1.0"
    state.save(path, {"environment": env})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert state.load(path)["environment"] == env


def test_check_environment_names_a_missing_package():
    with pytest.warns(state.EnvironmentMismatchWarning) as record:
        state.check_environment({"python": "2.7.18", "numpy": state.environment()["numpy"]})
    assert [str(w.message) for w in record] == [
        f"state file was written with python 2.7.18, this is python {state.environment()['python']}; "
        "estimators may not load or behave the same"
    ]


SAVER = """
import sys, time
import state
deadline = time.monotonic() + float(sys.argv[2])
n = 0
while time.monotonic() < deadline:
    n += 1
    state.save(sys.argv[1], {"n": n, "blob": bytes(1000)})
"""


def test_loads_while_another_process_saves_never_fail(tmp_path):
    """A reader does not lock: a save that renamed its new file onto the path between the reader's
    lstat and its open made the load fail ("replaced while it was being opened ... make sure only one
    program writes it"), 702 times in 316,121 loads in a reviewer's loop."""
    path = tmp_path / "s.pkl"
    state.save(path, {"n": 0, "blob": bytes(1000)})
    env = dict(os.environ, PYTHONPATH=str(Path(state.__file__).parents[1]))
    saver = subprocess.Popen([sys.executable, "-c", SAVER, str(path), "4"], env=env)
    loads = 0
    try:
        while saver.poll() is None:
            assert state.load(path, lazy=True)["n"] >= 0
            loads += 1
    finally:
        saver.wait()
    assert saver.returncode == 0 and loads > 100
