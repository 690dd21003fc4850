"""One runner per state file: a kernel lock that names its holder and dies with it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import state
from state import StateLocked

ROOT = Path(__file__).resolve().parents[1]

HOLDER = """
import sys, time
import state
with state.lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SEARCH_STATE_KEY", "SEARCH_STATE_KEY_FILE")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.fixture
def holder(tmp_path):
    """A child process holding the lock of tmp_path/s.pkl."""
    path = tmp_path / "s.pkl"
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline()
        assert line == "locked\n", child.stderr.read()
        yield child, path
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()


def test_the_lock_records_its_holder_and_removes_the_record(tmp_path):
    path = tmp_path / "s.pkl"
    with state.lock(path):
        owner = json.loads((tmp_path / "s.pkl.lock.owner").read_text())
        assert owner["pid"] == os.getpid()
        assert owner["host"] == socket.gethostname()
        assert owner["argv"] == sys.argv
        assert abs(time.time() - time.mktime(time.strptime(owner["since"][:19], "%Y-%m-%dT%H:%M:%S"))) < 60
        for name in ("s.pkl.lock", "s.pkl.lock.owner"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
        state.save(path, {"gen": 1})
        state.save(path, {"gen": 2})
    assert sorted(os.listdir(tmp_path)) == ["s.pkl", "s.pkl.lock", "s.pkl.prev"]


def test_a_second_process_is_told_who_holds_the_lock(holder):
    child, path = holder
    owner = json.loads(Path(f"{path}.lock.owner").read_text())
    expected = (
        f"state file {path} is in use by another runner: pid {child.pid} on host "
        f"{socket.gethostname()} since {owner['since']}; wait for it to finish or stop it "
        f"(kill {child.pid}), or use another --state"
    )
    with pytest.raises(StateLocked, match=f"^{re.escape(expected)}$") as info:
        with state.lock(path):
            pytest.fail("the lock was taken twice")
    assert info.value.exit_code == 4
    assert info.value.holder["pid"] == child.pid and str(path) in info.value.holder["argv"]
    assert child.poll() is None  # the holder is untouched


def test_a_killed_holder_leaves_no_stale_lock(holder):
    child, path = holder
    lock_file = Path(f"{path}.lock")
    inode = lock_file.stat().st_ino
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert Path(f"{path}.lock.owner").exists()  # SIGKILL left its record behind ...
    start = time.monotonic()
    with state.lock(path):  # ... but not the lock
        assert time.monotonic() - start < 1
        assert json.loads(Path(f"{path}.lock.owner").read_text())["pid"] == os.getpid()
    assert lock_file.stat().st_ino == inode  # the lock file was never deleted or replaced


def test_a_second_lock_in_the_same_process_is_refused(tmp_path):
    path = tmp_path / "s.pkl"
    with state.lock(path):
        with pytest.raises(StateLocked, match=re.escape(f"pid {os.getpid()} on host")):
            with state.lock(path):
                pass
        assert (tmp_path / "s.pkl.lock.owner").exists()  # the refused attempt removed nothing
    with state.lock(path):  # released
        pass


def test_a_holder_without_a_record_is_still_reported(tmp_path):
    path = tmp_path / "s.pkl"
    with state.lock(path):
        os.unlink(tmp_path / "s.pkl.lock.owner")
        expected = (
            f"state file {path} is in use by another runner (it has not recorded who it is in "
            f"{path}.lock.owner); wait for it to finish or stop it, or use another --state"
        )
        with pytest.raises(StateLocked, match=f"^{re.escape(expected)}$"):
            with state.lock(path):
                pass


def test_an_error_inside_releases_the_lock(tmp_path):
    path = tmp_path / "s.pkl"
    with pytest.raises(RuntimeError, match="boom"):
        with state.lock(path):
            raise RuntimeError("boom")
    assert sorted(os.listdir(tmp_path)) == ["s.pkl.lock"]
    with state.lock(path):
        pass


def test_a_state_file_in_a_directory_that_does_not_exist_is_refused_not_created(tmp_path):
    """A mistyped --state in a job script must not start a new search in a new directory."""
    path = tmp_path / "typo" / "deeper" / "s.pkl"
    with pytest.raises(state.StateIOError, match=re.escape(
            f"the directory {path.parent} of the state file {path} does not exist; check the path")):
        with state.lock(path):
            pass
    assert not (tmp_path / "typo").exists()
