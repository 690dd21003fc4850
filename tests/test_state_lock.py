"""One runner per state file: a kernel lock that names its holder and dies with it."""

from __future__ import annotations

import errno
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
    """Told as this process's own (a search.run() in another thread of a notebook, say), not as another
    runner's whose pid the message said to kill: the caller's own."""
    path = tmp_path / "s.pkl"
    with state.lock(path):
        with pytest.raises(StateLocked, match=re.escape(f"is in use by a search.run() of this same process "
                                                        f"(pid {os.getpid()}, since ")):
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


def test_whether_a_runner_holds_the_file_is_the_kernels_to_say_not_the_records(holder, tmp_path):
    """A runner SIGKILLed on another node leaves PATH.lock.owner; README: the record is only read to
    name a holder, never to decide whether one exists."""
    child, path = holder
    assert state.holder(path)["pid"] == child.pid
    os.unlink(f"{path}.lock.owner")
    assert state.holder(path) == {}  # held, by a runner that has not said who it is
    child.send_signal(signal.SIGKILL)
    child.wait()
    record = {"pid": 4242, "host": "node17", "since": "2026-01-01T00:00:00+00:00", "argv": ["search", "run"]}
    Path(f"{path}.lock.owner").write_text(json.dumps(record))
    assert state.holder(path) is None  # the record of a runner killed elsewhere, and nobody holds the lock
    with state.lock(path):
        assert state.holder(path)["pid"] == os.getpid()  # the same process asking: held all the same


def test_asking_who_holds_a_file_creates_nothing_and_works_in_a_read_only_directory(tmp_path):
    path = tmp_path / "s.pkl"
    state.save(path, {"gen": 1})
    tmp_path.chmod(0o555)
    try:
        assert state.holder(path) is None
        assert sorted(os.listdir(tmp_path)) == ["s.pkl"]  # no lock file was made to ask
    finally:
        tmp_path.chmod(0o755)


def test_a_runner_that_starts_while_a_reader_asks_waits_for_the_reader(tmp_path):
    """The question (a shared lock, held for microseconds) must not turn a starting runner away."""
    import fcntl
    import threading

    path = tmp_path / "s.pkl"
    with state.lock(path):
        pass
    fd = os.open(f"{path}.lock", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a reader, caught in the middle of its question
    threading.Timer(0.05, os.close, (fd,)).start()
    with state.lock(path):
        pass


def _failing_open(monkeypatch, lock_path, errno_):
    """Opening (or creating) the lock file fails with ``errno_``; everything else opens as usual."""
    real = os.open

    def fake(file, *args, **kwargs):
        if os.fspath(file) == str(lock_path):
            raise OSError(errno_, os.strerror(errno_), str(lock_path))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake)


@pytest.mark.parametrize("errno_, exists, fix", [
    (errno.ENOSPC, False, "the file system of {dir} has no room left (space, inodes or quota: df -h {dir}; "
                          "df -i {dir}): free some and try again, or choose another --state PATH"),
    (errno.EDQUOT, False, "the file system of {dir} has no room left"),
    (errno.EROFS, False, "its file system is mounted read-only: choose another --state PATH on a writable one"),
    (errno.EACCES, True, "it is not writable (mode 0600): chmod 600 {lock}"),
    (errno.EACCES, False, "the state file's directory must be writable: choose another --state PATH or fix the "
                          "directory's permissions"),
])
def test_a_lock_file_that_cannot_be_made_or_opened_is_blamed_on_its_cause(tmp_path, monkeypatch, errno_, exists, fix):
    """Before, every failure was blamed on the directory's permissions."""
    path, lock_path = tmp_path / "s.pkl", tmp_path / "s.pkl.lock"
    if exists:
        lock_path.touch(mode=0o600)
    _failing_open(monkeypatch, lock_path, errno_)
    with pytest.raises(state.StateIOError) as info:
        with state.lock(path):
            pytest.fail("locked")
    assert str(info.value).startswith(f"cannot create the lock file {lock_path} beside the state file: "
                                      f"{os.strerror(errno_)} ({lock_path}); ")
    assert fix.format(dir=tmp_path, lock=lock_path) in str(info.value)


def test_a_lock_file_that_is_a_link_a_directory_or_another_users_names_the_fix(tmp_path):
    path, lock_path = tmp_path / "s.pkl", tmp_path / "s.pkl.lock"
    lock_path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(state.StateIOError, match=re.escape(
            f"it is a symbolic link (to {tmp_path / 'elsewhere'}), and a lock file must be a file of its own: "
            f"remove the link (rm {lock_path}) and try again")):
        with state.lock(path):
            pass
    assert not (tmp_path / "elsewhere").exists()  # not followed
    lock_path.unlink()
    lock_path.mkdir()
    with pytest.raises(state.StateIOError, match=re.escape(
            "it is a directory, where the lock file must be a file: rename or remove it and try again")):
        with state.lock(path):
            pass


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_a_lock_file_of_another_user_says_to_remove_or_chown_it(tmp_path, monkeypatch):
    path, lock_path = tmp_path / "s.pkl", tmp_path / "s.pkl.lock"
    lock_path.touch(mode=0o600)
    os.chown(lock_path, 4242, 4242)
    _failing_open(monkeypatch, lock_path, errno.EACCES)  # root would open it anyway
    with pytest.raises(state.StateIOError, match=re.escape(
            f"it belongs to 4242 (uid 4242) and is not writable by you: unless a runner of theirs is at work on "
            f"this state file, remove it (rm {lock_path}) or have root run: chown root {lock_path}")):
        with state.lock(path):
            pass
