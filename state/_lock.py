"""One writer per state file: a kernel lock on ``PATH.lock``.

The lock is a :class:`filelock.FileLock` (``flock`` on Unix), so the kernel
releases it when its holder dies, however it dies: there is never a stale lock
to break, and the lock file is never deleted. The holder describes itself in
``PATH.lock.owner`` (JSON: pid, host, start time, argv) so that a second
runner can say who holds the file.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shlex
import socket
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from . import _fileops
from ._errors import StateError, StateIOError, StateLocked
from ._store import StrPath, _process_alive, _user, atomic_writer, is_state_file, previous_path

__all__ = ["companion_of", "companions", "holder", "lock"]

logger = logging.getLogger(__name__)

_OWNER_LIMIT = 1 << 16
#: Seconds a runner waits for the lock before it says who holds it.
_READER_GRACE = 0.25


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _read_owner(owner_path: Path) -> dict[str, Any] | None:
    try:
        fd = _fileops.open_read(owner_path)
    except OSError:
        return None
    try:
        text = _fileops.read(fd, _OWNER_LIMIT)
    except OSError:
        return None
    finally:
        _fileops.close(fd)
    try:
        owner = json.loads(text)
    except ValueError:
        return None
    return owner if isinstance(owner, dict) else None


def _live_owner(owner_path: Path) -> dict[str, Any] | None:
    """The holder's record, unless it is missing, unreadable, or left by a runner that died on this host."""
    owner = _read_owner(owner_path)
    if owner is None or not isinstance(owner.get("pid"), int):
        return None
    if owner.get("host") == socket.gethostname() and not _process_alive(owner["pid"]):
        return None
    return owner


def _lock_file_fix(lock_path: Path, error: OSError) -> str:
    """What to do when the lock file ``lock_path`` could not be opened or created, by its cause."""
    quoted = shlex.quote(str(lock_path))
    directory = shlex.quote(str(lock_path.parent))
    try:
        st = _fileops.lstat(lock_path)
    except OSError:
        st = None
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"the file system of {lock_path.parent} has no room left (space, inodes or quota: df -h {directory}; "
                f"df -i {directory}): free some and try again, or choose another --state PATH")
    if error.errno == errno.EROFS:
        return "its file system is mounted read-only: choose another --state PATH on a writable one"
    if st is not None and stat.S_ISLNK(st.st_mode):  # opened without following links: ELOOP
        return (f"it is a symbolic link (to {os.readlink(lock_path)}), and a lock file must be a file of its "
                f"own: remove the link (rm {quoted}) and try again")
    if st is not None and stat.S_ISDIR(st.st_mode):
        return "it is a directory, where the lock file must be a file: rename or remove it and try again"
    if st is not None and error.errno in (errno.EACCES, errno.EPERM):  # the file's own permissions
        me = os.geteuid()
        if st.st_uid == me:
            return f"it is not writable (mode {stat.S_IMODE(st.st_mode):04o}): chmod 600 {quoted}"
        return (f"it belongs to {_user(st.st_uid)} (uid {st.st_uid}) and is not writable by you: unless a runner "
                f"of theirs is at work on this state file, remove it (rm {quoted}) or have root run: "
                f"chown {_user(me)} {quoted}")
    return ("the state file's directory must be writable: choose another --state PATH "
            "or fix the directory's permissions")


def _locked_message(path: Path, owner: dict[str, Any] | None) -> str:
    retry = "or use another --state"
    if owner is None or "pid" not in owner:
        return (
            f"state file {path} is in use by another runner (it has not recorded who it is "
            f"in {_sibling(path, '.lock.owner')}); wait for it to finish or stop it, {retry}"
        )
    pid, host = owner["pid"], owner.get("host", "?")
    since = owner.get("since", "?")
    where = "" if host == socket.gethostname() else f" on host {host}"
    if pid == os.getpid() and not where:
        return (
            f"state file {path} is in use by a search.run() of this same process (pid {pid}, since "
            f"{since}): another thread's, or an earlier call still running; wait for it to return, "
            f"or give this one another state file"
        )
    return (
        f"state file {path} is in use by another runner: pid {pid} on host {host} since "
        f"{since}; wait for it to finish or stop it (kill {pid}{where}), {retry}"
    )


def companions(path: StrPath) -> tuple[Path, ...]:
    """The files a state file ``path`` comes with: its previous generation, its lock and the lock's holder."""
    path = Path(path)
    return (previous_path(path), _sibling(path, ".lock"), _sibling(path, ".lock.owner"))


def companion_of(path: StrPath) -> Path | None:
    """The state file whose companion ``path`` is (see :func:`companions`), or None.

    ``path`` is one if its name is a state file's plus a companion's suffix and
    that state file exists or is being searched into (its lock is there).
    """
    path = Path(path)
    for suffix in (".lock.owner", ".lock", ".prev"):
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            base = path.with_name(path.name[: -len(suffix)])
            if is_state_file(base) or any(p != path and os.path.lexists(p) for p in companions(base)[1:]):
                return base
    return None


def _held(lock_path: Path) -> bool | None:
    """Whether a process holds the kernel lock on ``lock_path``; None when that cannot be told here.

    The lock file is opened read-only and never created (a reader may be in a directory it cannot
    write), and a shared lock is tried without waiting: granted, nobody holds the runners'
    exclusive one, and closing the file releases it at once.
    """
    import fcntl

    try:
        fd = _fileops.open_read(lock_path)
    except FileNotFoundError:  # never removed once made: no runner has locked this state file
        return False
    except OSError:  # not readable by this user, a symbolic link: the record alone must do
        return None
    try:
        _fileops.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):  # EACCES: contention on some file systems
            return True
        return None  # a file system without kernel locks (ENOLCK, EOPNOTSUPP)
    finally:
        _fileops.close(fd)
    return False


def holder(path: StrPath) -> dict[str, Any] | None:
    """Who holds the state file ``path``: its record (pid, host, since, argv), ``{}`` for a holder
    that has not recorded itself, or None when nobody does.

    The kernel lock says whether a runner holds the file (tested with a shared lock that is
    released at once, without creating the lock file or taking the runners' lock);
    ``PATH.lock.owner`` only names the holder: a record that a killed runner left is not
    taken for one. Where the kernel cannot be asked (the lock file is not readable, or the file
    system has no locks), the record decides, ignoring one left by a runner that died on this host.
    """
    path = Path(path)
    held = _held(_sibling(path, ".lock"))
    if held is False:
        return None
    owner = _live_owner(_sibling(path, ".lock.owner"))
    if held is None:
        return owner
    return {} if owner is None else owner


@contextmanager
def lock(path: StrPath) -> Iterator[None]:
    """Hold the state file ``path`` for this process, or fail within a quarter of a second.

    Parameters
    ----------
    path : str or os.PathLike
        The state file; the lock is ``path`` + ``".lock"``, created 0600 and
        left in place, and the holder's description is ``path`` +
        ``".lock.owner"``, removed on release.

    Yields
    ------
    None

    Raises
    ------
    StateLocked
        Another process (or another ``lock`` in this one) holds the lock. The
        message names the holder's pid, host and start time.
    """
    import filelock

    path = Path(path)
    directory = path.parent
    if directory.exists() and not directory.is_dir():
        raise StateIOError(f"{directory}, where the state file {path} would go, is not a directory; "
                           "choose another --state PATH")
    if not directory.is_dir():  # filelock would create it: a mistyped path would start a new search
        raise StateIOError(
            f"the directory {directory} of the state file {path} does not exist; check the path (to "
            f"resume, it must be the one the search was started with), or create it: mkdir -p "
            f"{shlex.quote(str(directory))}"
        )
    lock_path = _sibling(path, ".lock")
    owner_path = _sibling(path, ".lock.owner")
    file_lock = filelock.FileLock(str(lock_path), mode=0o600)
    try:
        # Not 0: a reader asking whether a runner is at work (holder) holds a shared lock for the
        # microseconds of its question; a runner starting then waits for it.
        file_lock.acquire(timeout=_READER_GRACE, poll_interval=0.01)
    except filelock.Timeout:
        holder = _live_owner(owner_path)
        error = StateLocked(_locked_message(path, holder))
        error.holder = holder
        raise error from None
    except OSError as exc:
        raise StateIOError(
            f"cannot create the lock file {lock_path} beside the state file: "
            f"{exc.strerror or exc}{f' ({exc.filename})' if exc.filename else ''}; {_lock_file_fix(lock_path, exc)}"
        ) from exc
    try:
        owner = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now().astimezone().isoformat(timespec="seconds"),
            "argv": list(sys.argv),
        }
        try:
            with atomic_writer(owner_path, mode=0o600) as stream:
                stream.write(json.dumps(owner).encode("utf-8"))
        except StateError as exc:
            # The lock is what matters; without this file a second runner can
            # only say that the state file is in use, not by whom.
            logger.warning("could not record the lock holder in %s: %s", owner_path, exc)
        logger.debug("locked %s", lock_path)
        yield
    finally:
        # Removed while the lock is still held, so it is never a successor's file.
        try:
            _fileops.unlink(owner_path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.warning("could not remove %s: %s", owner_path, exc)
        file_lock.release()
        logger.debug("unlocked %s", lock_path)
