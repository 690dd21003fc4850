"""One writer per state file: a kernel lock on ``PATH.lock``.

The lock is a :class:`filelock.FileLock` (``flock`` on Unix), so the kernel
releases it when its holder dies, however it dies: there is never a stale lock
to break, and the lock file is never deleted. The holder describes itself in
``PATH.lock.owner`` (JSON: pid, host, start time, argv) so that a second
runner can say who holds the file.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from . import _fileops
from ._errors import StateError, StateIOError, StateLocked
from ._store import StrPath, _process_alive, atomic_writer, is_state_file, previous_path

__all__ = ["companion_of", "companions", "holder", "lock"]

logger = logging.getLogger(__name__)

_OWNER_LIMIT = 1 << 16


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


def holder(path: StrPath) -> dict[str, Any] | None:
    """Who holds the state file ``path``, as it recorded itself (pid, host, since, argv), or None.

    Reads the holder's description without taking the lock; a description left
    by a runner that was killed on this host is ignored.
    """
    owner = _read_owner(_sibling(Path(path), ".lock.owner"))
    if owner is None or not isinstance(owner.get("pid"), int):
        return None
    if owner.get("host") == socket.gethostname() and not _process_alive(owner["pid"]):
        return None
    return owner


@contextmanager
def lock(path: StrPath) -> Iterator[None]:
    """Hold the state file ``path`` for this process, or fail at once.

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
    file_lock = filelock.FileLock(str(lock_path), timeout=0, mode=0o600)
    try:
        file_lock.acquire()
    except filelock.Timeout:
        holder = _read_owner(owner_path)
        error = StateLocked(_locked_message(path, holder))
        error.holder = holder
        raise error from None
    except OSError as exc:  # the directory cannot be created or written
        raise StateIOError(
            f"cannot create the lock file {lock_path} beside the state file: "
            f"{exc.strerror or exc}{f' ({exc.filename})' if exc.filename else ''}; the state file's "
            "directory must be writable: choose another --state PATH "
            "or fix the directory's permissions"
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
