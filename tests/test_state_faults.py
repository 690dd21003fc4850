"""Saves that fail or are killed: the state on disk is always a whole generation.

Faults are injected by patching the project's own file-operations module,
``state._fileops``, never the standard library; real faults come from
RLIMIT_FSIZE and SIGKILL in child processes.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import KEY_VARIABLES

import state
from state import StateIOError

ROOT = Path(__file__).resolve().parents[1]


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def generation(n: int) -> dict:
    """Generation n of a test state: its blob is derived from n, so a mix of two shows."""
    return {"gen": n, "blob": hashlib.sha256(str(n).encode()).digest() * 8192}  # 256 KiB


def check_generation(data: dict) -> int:
    assert data == generation(data["gen"])
    return data["gen"]


def listing(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def oserror(code: int) -> OSError:
    return OSError(code, os.strerror(code))


@pytest.fixture
def saved(tmp_path):
    """A state file at generation 2 whose previous generation is 1."""
    path = tmp_path / "s.pkl"
    state.save(path, generation(1))
    state.save(path, generation(2))
    return path


def fail_at(monkeypatch, name: str, call: int, error: BaseException, *, after_real: bool = False) -> list:
    """Make the ``call``-th call of ``_fileops.<name>`` raise ``error`` (after doing its work, if asked)."""
    real = getattr(state._fileops, name)
    calls = []

    def failing(*args, **kwargs):
        calls.append(args)
        if len(calls) == call:
            if after_real:
                real(*args, **kwargs)
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(state._fileops, name, failing)
    return calls


# (function, which call fails, errno, after the real call?, the step the message names,
#  generation in PATH.prev afterwards)
FAULTS = {
    "ENOSPC creating the temp file": ("open_new", 1, errno.ENOSPC, False, "creating the temporary file", 1),
    "EPERM at fchmod": ("fchmod", 1, errno.EPERM, False, "creating the temporary file", 1),
    "ENOSPC at the first write": ("write", 1, errno.ENOSPC, False, "writing the temporary file", 1),
    "ENOSPC at a later write": ("write", 2, errno.ENOSPC, False, "writing the temporary file", 1),
    "EIO at fsync": ("fsync", 1, errno.EIO, False, "flushing", 1),
    # the first close() is of the existing file, after checking its trailer
    "EIO at close": ("close", 2, errno.EIO, True, "closing", 1),
    "EIO at link": ("link", 1, errno.EIO, False, "keeping the previous generation", 1),
    "EIO renaming onto PATH.prev": ("replace", 1, errno.EIO, False, "keeping the previous generation", 1),
    "EACCES renaming onto PATH": ("replace", 2, errno.EACCES, False, "renaming", 2),
}


@pytest.mark.parametrize("fault", FAULTS, ids=list(FAULTS))
def test_a_failed_save_names_the_error_and_leaves_the_state(saved, monkeypatch, fault):
    name, call, code, after_real, step, prev_generation = FAULTS[fault]
    before = saved.read_bytes()
    calls = fail_at(monkeypatch, name, call, oserror(code), after_real=after_real)
    with pytest.raises(StateIOError) as info:
        state.save(saved, generation(3))
    assert len(calls) >= call  # the fault did fire
    message = str(info.value)
    assert message.startswith(f"could not save state file {saved}: [Errno {code}] {os.strerror(code)} (while {step}")
    intact = f"; the previous state in {saved} is intact"
    hint = f"; free space on the file system of {saved.parent} and try again" if code == errno.ENOSPC else ""
    assert message.endswith(intact + hint)
    assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == code
    monkeypatch.undo()
    assert listing(saved.parent) == ["s.pkl", "s.pkl.prev"]  # no temporary file left
    assert saved.read_bytes() == before
    assert check_generation(state.load(saved)) == 2
    assert check_generation(state.load(state.previous_path(saved))) == prev_generation
    state.save(saved, generation(3))  # and the next save works
    assert check_generation(state.load(saved)) == 3


def test_enospc_names_the_path_and_the_os_error_in_full(saved, monkeypatch):
    fail_at(monkeypatch, "write", 1, oserror(errno.ENOSPC))
    with pytest.raises(
        StateIOError, match=re.escape(f"could not save state file {saved}: [Errno 28] No space left on device")
    ):
        state.save(saved, generation(3))


def test_a_full_disk_says_how_much_room_a_save_of_a_big_state_takes(tmp_path, monkeypatch):
    """A reviewer freed room for the new file of a 900 MB state, and the save failed again: it holds
    the new file, the current one and the previous generation at once."""
    path = tmp_path / "s.pkl"
    state.save(path, {**generation(1), "blob": bytes(3 * 2**20)})
    state.save(path, {**generation(2), "blob": bytes(2 * 2**20)})
    fail_at(monkeypatch, "write", 1, oserror(errno.ENOSPC))
    with pytest.raises(StateIOError) as info:
        state.save(path, {**generation(3), "blob": bytes(2 * 2**20)})
    assert str(info.value).endswith(
        f"free space on the file system of {tmp_path} and try again (a save holds, for a moment, the new file, "
        "about as large as the current one (2 MiB), it and the previous generation (3 MiB): about 7 MiB in all)")


def test_a_failed_first_save_creates_nothing(tmp_path, monkeypatch):
    path = tmp_path / "s.pkl"
    fail_at(monkeypatch, "fsync", 1, oserror(errno.EIO))
    with pytest.raises(StateIOError, match=re.escape("[Errno 5] Input/output error (while flushing")) as info:
        state.save(path, generation(1))
    assert str(info.value).endswith(f"; {path} was not created")
    assert listing(tmp_path) == []


def test_a_failed_directory_sync_says_the_new_state_is_in_place(saved, monkeypatch):
    calls = fail_at(monkeypatch, "fsync_dir", 1, oserror(errno.EIO))
    expected = (
        f"{saved} was written, but syncing its directory {saved.parent} to disk failed: "
        f"[Errno 5] Input/output error; the new file is in place but may not survive a crash "
        f"of the machine; the previous generation is in {saved}.prev"
    )
    with pytest.raises(StateIOError, match=f"^{re.escape(expected)}$"):
        state.save(saved, generation(3))
    assert calls
    monkeypatch.undo()
    assert listing(saved.parent) == ["s.pkl", "s.pkl.prev"]
    assert check_generation(state.load(saved)) == 3
    assert check_generation(state.load(state.previous_path(saved))) == 2


def test_short_writes_still_make_a_whole_file(saved, monkeypatch):
    real = state._fileops.write
    returned = []

    def short(fd, data):
        n = real(fd, memoryview(data)[: max(1, min(len(data) // 3, 4000))])
        returned.append((n, len(data)))
        return n

    monkeypatch.setattr(state._fileops, "write", short)
    state.save(saved, generation(3))
    assert any(n < size for n, size in returned)  # writes really were short
    assert sum(n for n, _ in returned) == saved.stat().st_size
    monkeypatch.undo()
    assert check_generation(state.load(saved)) == 3


def test_a_write_that_writes_nothing_fails_instead_of_looping(saved, monkeypatch):
    monkeypatch.setattr(state._fileops, "write", lambda fd, data: 0)
    with pytest.raises(StateIOError, match=re.escape("[Errno 5] Input/output error (while writing")):
        state.save(saved, generation(3))
    monkeypatch.undo()
    assert listing(saved.parent) == ["s.pkl", "s.pkl.prev"]
    assert check_generation(state.load(saved)) == 2


def test_an_interrupt_during_a_save_leaves_the_state(saved, monkeypatch):
    calls = fail_at(monkeypatch, "write", 2, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        state.save(saved, generation(3))
    assert len(calls) == 2
    monkeypatch.undo()
    assert listing(saved.parent) == ["s.pkl", "s.pkl.prev"]
    assert check_generation(state.load(saved)) == 2


def test_a_failing_cleanup_does_not_hide_the_error(saved, monkeypatch):
    fail_at(monkeypatch, "write", 1, oserror(errno.ENOSPC))
    fail_at(monkeypatch, "unlink", 1, oserror(errno.EIO))
    with pytest.raises(StateIOError, match=re.escape("[Errno 28] No space left on device")):
        state.save(saved, generation(3))
    assert check_generation(state.load(saved)) == 2


def test_without_hard_links_the_previous_generation_is_copied(saved, monkeypatch):
    calls = fail_at(monkeypatch, "link", 1, oserror(errno.EPERM))
    state.save(saved, generation(3))
    assert calls
    monkeypatch.undo()
    assert listing(saved.parent) == ["s.pkl", "s.pkl.prev"]
    assert check_generation(state.load(saved)) == 3
    prev = state.previous_path(saved)
    assert check_generation(state.load(prev)) == 2
    assert prev.stat().st_ino != saved.stat().st_ino and prev.stat().st_nlink == 1


def test_a_failed_load_read_is_a_state_io_error(saved, monkeypatch):
    fail_at(monkeypatch, "map_read", 1, oserror(errno.EIO))
    assert check_generation(state.load(saved)) == 2  # falls back to read()
    fail_at(monkeypatch, "read", 1, oserror(errno.EIO))
    fail_at(monkeypatch, "map_read", 1, oserror(errno.ENODEV))
    with pytest.raises(
        StateIOError, match=f"^{re.escape(f'could not read state file {saved}: [Errno 5] Input/output error')}$"
    ):
        state.load(saved)


def test_atomic_writer_reports_an_os_error_and_leaves_the_target(tmp_path, monkeypatch):
    target = tmp_path / "model.pkl"
    target.write_bytes(b"old")
    fail_at(monkeypatch, "fsync", 1, oserror(errno.EIO))
    with pytest.raises(
        StateIOError, match=re.escape(f"could not write {target}: [Errno 5] Input/output error")
    ) as info:
        with state.atomic_writer(target) as f:
            f.write(b"new")
    assert str(info.value).endswith(f"; {target} is unchanged")
    assert target.read_bytes() == b"old"
    assert listing(tmp_path) == ["model.pkl"]


# ------------------------------------------------------------------ real faults in child processes


def test_a_file_size_limit_in_a_child_fails_the_save_cleanly(saved):
    code = textwrap.dedent(
        """
        import os, resource, signal, sys
        import state
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        try:
            state.save(sys.argv[1], {"gen": 3, "blob": os.urandom(4 << 20)})
        except state.StateIOError as exc:
            print(exc)
            sys.exit(3)
        """
    )
    before = saved.read_bytes()
    child = subprocess.run([sys.executable, "-c", code, str(saved)], env=child_env(), capture_output=True, text=True)
    assert child.returncode == 3, child.stderr
    assert child.stdout.startswith(f"could not save state file {saved}: [Errno 27] File too large (while writing")
    assert listing(saved.parent) == ["s.pkl", "s.pkl.prev"]
    assert saved.read_bytes() == before
    assert check_generation(state.load(saved)) == 2


KILL_CHILD = """
import hashlib, os, signal, sys
import state

name, when, nth, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
real = getattr(state._fileops, name)
calls = 0

def killing(*args, **kwargs):
    global calls
    calls += 1
    if calls == nth and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    result = real(*args, **kwargs)
    if calls == nth and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)
    return result

setattr(state._fileops, name, killing)
state.save(path, {"gen": 3, "blob": hashlib.sha256(b"3").digest() * 8192})
sys.exit(0)  # the kill point was never reached
"""

# (function, before or after the real call, which call, generation in PATH, in PATH.prev)
KILL_POINTS = [
    ("write", "after", 1, 2, 1),
    ("write", "after", 2, 2, 1),
    ("fsync", "before", 1, 2, 1),
    ("fsync", "after", 1, 2, 1),
    ("close", "after", 1, 2, 1),
    ("link", "after", 1, 2, 1),
    ("replace", "after", 1, 2, 2),  # PATH.prev now holds the current generation
    ("replace", "before", 2, 2, 2),
    ("replace", "after", 2, 3, 2),
    ("fsync_dir", "before", 1, 3, 2),
    ("fsync_dir", "after", 1, 3, 2),
]


@pytest.mark.parametrize(("name", "when", "nth", "in_path", "in_prev"), KILL_POINTS)
def test_a_save_killed_at_any_step_leaves_a_whole_generation(saved, name, when, nth, in_path, in_prev):
    child = subprocess.run(
        [sys.executable, "-c", KILL_CHILD, name, when, str(nth), str(saved)],
        env=child_env(),
        capture_output=True,
        text=True,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr  # killed at that very step
    assert check_generation(state.load(saved)) == in_path
    assert check_generation(state.load(state.previous_path(saved))) == in_prev
    # the next save clears what the killed one left behind
    state.save(saved, generation(4))
    assert listing(saved.parent) == ["s.pkl", "s.pkl.prev"]
    assert check_generation(state.load(state.previous_path(saved))) == in_path


LOOP_CHILD = """
import hashlib, sys
import state

path, n = sys.argv[1], int(sys.argv[2])
while True:
    n += 1
    state.save(path, {"gen": n, "blob": hashlib.sha256(str(n).encode()).digest() * 8192})
    print(n, flush=True)
"""


def test_random_kills_of_a_saving_process_always_leave_a_whole_generation(saved):
    seed = int(time.time())
    rng = random.Random(seed)
    current = 2
    for _ in range(20):
        child = subprocess.Popen(
            [sys.executable, "-c", LOOP_CHILD, str(saved), str(current)],
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            first = child.stdout.readline()  # it is saving by now
            assert first, child.stderr.read()
            time.sleep(rng.uniform(0, 0.05))
        finally:
            child.send_signal(signal.SIGKILL)
            # read through the same text wrapper as readline: lines it has buffered already (a busy
            # machine lets the child print several before this process reads) are not in the pipe
            # any more, where communicate() would look for them
            out = child.stdout.read()
            child.wait()
            child.stdout.close()
            child.stderr.close()
        assert child.returncode == -signal.SIGKILL
        completed = int((first + out).split()[-1])
        current = check_generation(state.load(saved))
        # every finished save is on disk; the one the kill interrupted may be too
        assert current in (completed, completed + 1), f"seed {seed}"
        # PATH.prev is the generation before, or the same one when the kill came
        # between keeping the previous generation and the final rename
        assert check_generation(state.load(state.previous_path(saved))) in (current - 1, current), f"seed {seed}"
    state.save(saved, generation(current + 1))
    assert listing(saved.parent) == ["s.pkl", "s.pkl.prev"]


def test_a_save_into_a_directory_made_read_only_says_how_to_make_it_writable(saved, monkeypatch):
    """A runner whose directory was made read-only while it ran: the message gives the fix."""
    before = saved.read_bytes()
    saved.parent.chmod(0o555)
    try:
        if os.geteuid() == 0:  # root creates files all the same: the kernel's answer to anyone else
            fail_at(monkeypatch, "open_new", 1, oserror(errno.EACCES))
        with pytest.raises(StateIOError) as info:
            state.save(saved, generation(3))
    finally:
        saved.parent.chmod(0o755)
    assert str(info.value).endswith(
        f"; the previous state in {saved} is intact; the directory {saved.parent} is not writable (mode 0555; "
        f"made read-only since the save before?): chmod u+wx {saved.parent} and try again")
    assert saved.read_bytes() == before
