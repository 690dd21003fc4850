"""Atomic, durable saves and verified loads of the state file.

A state file is a cloudpickle stream (protocol 5) followed by a fixed-size
checksum trailer, so ``pickle.load(open(path, "rb"))`` still works (pickle
stops at its STOP opcode) while :func:`load` detects truncation, damage and
tampering before it unpickles anything.

Trailer layout (:data:`TRAILER_SIZE` = 56 bytes, integers little-endian)::

    offset  size  field
         0     8  magic b"CKSEARCH"
         8     1  trailer format, FORMAT_VERSION (1)
         9     1  algorithm: 1 = SHA-256, 2 = HMAC-SHA256
        10     6  reserved, zero
        16     8  payload length: bytes of pickle before the trailer
        24    32  digest of the payload followed by trailer bytes 0-23

The digest covers the header too, so a flipped algorithm byte or length is
detected like any other damage.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import logging
import mmap
import os
import pickle
import pwd
import secrets
import shlex
import stat
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

from . import _fileops
from ._env import _differences, check_environment
from ._errors import StateCorrupt, StateError, StateIOError, StateUnsafe

__all__ = [
    "FORMAT_VERSION",
    "TRAILER_SIZE",
    "Pickled",
    "atomic_writer",
    "is_state_file",
    "key_from_environment",
    "load",
    "previous_hint",
    "previous_path",
    "save",
]

logger = logging.getLogger(__name__)

StrPath = str | os.PathLike[str]

#: Version of the state file format (written as the trailer's format byte).
FORMAT_VERSION = 1

_MAGIC = b"CKSEARCH"
_HEADER = struct.Struct("<8sBB6xQ")
_DIGEST_SIZE = 32
#: Size in bytes of the checksum trailer after the pickle stream.
TRAILER_SIZE = _HEADER.size + _DIGEST_SIZE
_SHA256 = 1
_HMAC_SHA256 = 2
_ALGORITHMS = {_SHA256: "SHA-256", _HMAC_SHA256: "HMAC-SHA256"}

_KEY_VARIABLE = "SEARCH_STATE_KEY"
_KEY_FILE_VARIABLE = "SEARCH_STATE_KEY_FILE"

# Writes smaller than _DIRECT_WRITE are gathered up to _BUFFER_SIZE; larger ones
# (pickle protocol 5 hands over big bytes objects whole) go straight to the file.
_BUFFER_SIZE = 1 << 20
_DIRECT_WRITE = 1 << 16
# Linux transfers at most this many bytes in one read() or write().
_MAX_READ = 0x7FFFF000
_COPY_CHUNK = 1 << 24
# errno values of link() on a file system without hard links: copy instead.
_NO_HARDLINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS})

_SIGNATURE_MISMATCH = "signature mismatch: changed after it was written, or signed with another key"
_NO_TRAILER = "no checksum trailer: not written by checkpointed-search, refusing to unpickle it"
_NOT_PICKLE = "not a pickle: a CSV or other file given as the state file?"
# Reasons that say the file never was a state file (another pickle, a text file), not a damaged one.
_FOREIGN = (_NO_TRAILER, _NOT_PICKLE)


class Pickled:
    """An object kept as its own pickle bytes inside a state file.

    Storing estimators as ``Pickled`` lets :func:`load` with ``lazy=True``
    read a large state without unpickling them. A plain ``pickle.load`` of the
    state file (or :func:`load` without ``lazy``) returns the object itself,
    not the wrapper, because :meth:`__reduce__` unpickles the bytes.

    Parameters
    ----------
    obj : object, default=None
        The object to keep; pickled with cloudpickle (protocol 5), so functions
        registered with ``cloudpickle.register_pickle_by_value`` are kept by
        value.
    data : bytes, default=None
        Pickle bytes to keep as they are, instead of ``obj``.

    Attributes
    ----------
    data : bytes
        The pickle of the object.
    """

    __slots__ = ("data",)

    def __init__(self, obj: Any = None, *, data: bytes | None = None) -> None:
        if data is None:
            import cloudpickle

            data = cloudpickle.dumps(obj, protocol=5)
        elif obj is not None:
            raise TypeError("Pickled takes an object or data=bytes, not both")
        self.data = bytes(data)

    def load(self) -> Any:
        """Unpickle and return the object."""
        return pickle.loads(self.data)

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (pickle.loads, (self.data,))

    # copy and deepcopy would otherwise go through __reduce__ and unpickle.
    def __copy__(self) -> Pickled:
        return Pickled(data=self.data)

    def __deepcopy__(self, memo: dict[int, Any]) -> Pickled:
        return Pickled(data=self.data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pickled):
            return NotImplemented
        return self.data == other.data

    def __hash__(self) -> int:
        return hash(self.data)

    def __repr__(self) -> str:
        return f"Pickled(<{len(self.data)} bytes>)"


def previous_path(path: StrPath) -> Path:
    """Return where the previous generation of the state file ``path`` is kept.

    Parameters
    ----------
    path : str or os.PathLike
        The state file.

    Returns
    -------
    pathlib.Path
        ``path`` with ``.prev`` appended.
    """
    path = Path(path)
    return path.with_name(path.name + ".prev")


def key_from_environment() -> bytes | None:
    """Return the signing key configured in the environment, if any.

    ``SEARCH_STATE_KEY`` holds the key itself (its UTF-8 bytes);
    ``SEARCH_STATE_KEY_FILE`` names a file whose bytes, stripped of leading and
    trailing whitespace, are the key. An empty variable counts as unset.

    Returns
    -------
    bytes or None
        The key, or None when neither variable is set.

    Raises
    ------
    StateError
        Both variables are set, or the key file cannot be read or is empty.
    """
    text = os.environ.get(_KEY_VARIABLE)
    key_file = os.environ.get(_KEY_FILE_VARIABLE)
    if text and key_file:
        raise StateError(
            f"both {_KEY_VARIABLE} and {_KEY_FILE_VARIABLE} are set; set only one of them "
            f"(unset {_KEY_VARIABLE} to use the key in {key_file})"
        )
    if text:
        return text.encode("utf-8")
    if not key_file:
        return None
    try:
        key = Path(key_file).read_bytes().strip()
    except OSError as exc:
        raise StateError(
            f"cannot read the key file {key_file} named by {_KEY_FILE_VARIABLE}: "
            f"{_describe(exc)}; point {_KEY_FILE_VARIABLE} at a readable file holding the key"
        ) from exc
    if not key:
        raise StateError(
            f"the key file {key_file} named by {_KEY_FILE_VARIABLE} is empty; "
            "write the key into it, or unset the variable to save unsigned state files"
        )
    return key


# --------------------------------------------------------------------- writing


class _Writer:
    """A binary file-like object that writes to a descriptor and hashes what it writes.

    Small writes are gathered in a buffer; large ones are written directly, so
    a big bytes object is hashed and written once, without a copy.
    """

    def __init__(self, fd: int, hasher: Any = None) -> None:
        self._fd = fd
        self._hasher = hasher
        self._buffer = bytearray()
        self._position = 0
        self.closed = False

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        """Number of bytes written so far."""
        return self._position

    def write(self, data: Any) -> int:
        """Write a bytes-like object; return its size in bytes."""
        if self.closed:
            raise ValueError("write to a closed atomic writer")
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        size = view.nbytes
        if self._hasher is not None:
            self._hasher.update(view)
        if size >= _DIRECT_WRITE:
            self.flush()
            _write_all(self._fd, view)
        else:
            self._buffer += view
            if len(self._buffer) >= _BUFFER_SIZE:
                self.flush()
        self._position += size
        return size

    def flush(self) -> None:
        """Write out buffered bytes (this does not fsync)."""
        if self._buffer:
            # Swap rather than clear: a failed write may leave views on the old buffer.
            buffer, self._buffer = self._buffer, bytearray()
            _write_all(self._fd, buffer)

    def close(self) -> None:
        """Stop accepting writes (the descriptor belongs to the caller)."""
        self.closed = True


def _write_all(fd: int, data: Any) -> None:
    view = memoryview(data)
    total = view.nbytes
    offset = 0
    while offset < total:
        written = _fileops.write(fd, view[offset:])
        if written <= 0:
            # A regular file never does this; looping would never end.
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        offset += written


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temps(path: Path) -> None:
    """Remove temporary files that processes killed during a save left behind.

    Only files named after this target whose writer process no longer exists
    on this host are removed; removing one never changes ``path`` itself.
    """
    prefix = f".{path.name}.tmp-"
    try:
        names = _fileops.listdir(path.parent)
    except OSError:
        return
    for name in names:
        if not name.startswith(prefix):
            continue
        pid_text = name[len(prefix) :].split("-", 1)[0]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        if pid == os.getpid() or _process_alive(pid):
            continue
        try:
            _fileops.unlink(path.parent / name)
        except OSError as exc:
            logger.debug("could not remove stale temporary file %s: %s", name, exc)
        else:
            logger.info("removed %s, left behind by process %d that ended during a save", name, pid)


def _copy_file(src: Path, dst: Path) -> None:
    src_fd = _fileops.open_read(src)
    try:
        dst_fd = _fileops.open_new(dst, 0o600)
        try:
            _fileops.fchmod(dst_fd, 0o600)
            while chunk := _fileops.read(src_fd, _COPY_CHUNK):
                _write_all(dst_fd, chunk)
            _fileops.fsync(dst_fd)
        finally:
            _fileops.close(dst_fd)
    finally:
        _fileops.close(src_fd)


def _room_needed(path: Path) -> str:
    """How much room a save of ``path`` takes while it runs, said in a full disk's message."""
    sizes = []
    for file in (path, previous_path(path)):
        with suppress(OSError):
            sizes.append(_fileops.lstat(file).st_size)
    if not sizes or sizes[0] < 2**20:
        return ""
    mib = [round(size / 2**20) for size in sizes]
    kept = f", it and the previous generation ({mib[1]} MiB)" if len(mib) > 1 else " and it"
    return (f" (a save holds, for a moment, the new file, about as large as the current one ({mib[0]} MiB)"
            f"{kept}: about {mib[0] + sum(mib)} MiB in all)")


def _keep_previous(path: Path) -> None:
    """Make the current ``path`` (if any) the previous generation, ``path.prev``.

    ``path`` itself is not changed: it is hard-linked (or, where hard links are
    not supported, copied) to a temporary name that is renamed onto
    ``path.prev``.
    """
    try:
        current = _fileops.lstat(path)
    except FileNotFoundError:
        return
    try:
        kept = _fileops.lstat(previous_path(path))
    except FileNotFoundError:
        pass
    else:
        # A save killed between its two renames leaves PATH.prev a hard link to
        # PATH. It already holds this generation, and rename() between two
        # links to one file does nothing, which would strand the temporary link.
        if (kept.st_dev, kept.st_ino) == (current.st_dev, current.st_ino):
            return
    temp = _temp_path(path)
    try:
        try:
            _fileops.link(path, temp)
        except OSError as exc:
            if exc.errno not in _NO_HARDLINKS:
                raise
            logger.debug("cannot hard-link %s (%s); copying it instead", path, _describe(exc))
            _copy_file(path, temp)
        _fileops.replace(temp, previous_path(path))
    except BaseException:
        with suppress(OSError):
            _fileops.unlink(temp)
        raise


def _unwritable_directory_hint(directory: Path) -> str:
    """How to make ``directory`` writable again, when that is why a save failed ("" when it is writable)."""
    shown = os.path.abspath(directory)
    quoted = shlex.quote(shown)
    try:
        st = os.stat(directory)
        read_only = bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return ""
    if read_only:
        return (f"; the file system of {shown} is mounted read-only (since the save before?): remount it "
                "read-write and try again, or copy the state file to a writable place and use that --state")
    if st.st_uid == os.geteuid():
        if st.st_mode & stat.S_IWUSR and st.st_mode & stat.S_IXUSR:
            return ""
        return (f"; the directory {shown} is not writable (mode {stat.S_IMODE(st.st_mode):04o}; made "
                f"read-only since the save before?): chmod u+wx {quoted} and try again")
    if os.access(directory, os.W_OK | os.X_OK):
        return ""
    return (f"; the directory {shown} belongs to {_user(st.st_uid)} and is not writable by you: have it made "
            "writable and try again, or copy the state file to a directory of yours and use that --state")


@contextmanager
def _atomic_replace(path: Path, *, mode: int, keep_previous: bool, hasher: Any, action: str) -> Iterator[_Writer]:
    """Write a temporary file beside ``path`` and rename it onto ``path``.

    On any exception the temporary file is removed and ``path`` is left as it
    was; an :class:`OSError` is re-raised as :class:`StateIOError`.
    """
    directory = path.parent
    try:
        _fileops.lstat(path)
        existed = True
    except OSError:
        existed = False
    _remove_stale_temps(path)
    temp = _temp_path(path)
    fd: int | None = None
    temp_exists = False
    writer: _Writer | None = None
    step = f"creating the temporary file {temp}"
    try:
        fd = _fileops.open_new(temp, mode)
        temp_exists = True
        _fileops.fchmod(fd, mode)  # exactly `mode`, whatever the umask
        writer = _Writer(fd, hasher)
        step = f"writing the temporary file {temp}"
        yield writer
        writer.flush()
        writer.close()
        step = f"flushing {temp} to disk (fsync)"
        _fileops.fsync(fd)
        step = f"closing {temp}"
        closing, fd = fd, None  # the descriptor is gone even when close() fails
        _fileops.close(closing)
        if keep_previous:
            step = f"keeping the previous generation as {previous_path(path)}"
            _keep_previous(path)
        step = f"renaming {temp} to {path}"
        _fileops.replace(temp, path)
        temp_exists = False
    except BaseException as exc:
        if writer is not None:
            writer.close()
        if fd is not None:
            with suppress(OSError):
                _fileops.close(fd)
        if temp_exists:
            try:
                _fileops.unlink(temp)
            except OSError as unlink_error:
                logger.warning("could not remove the temporary file %s: %s", temp, unlink_error)
        if isinstance(exc, OSError):
            outcome = (
                f"the previous state in {path} is intact"
                if existed and keep_previous
                else (f"{path} is unchanged" if existed else f"{path} was not created")
            )
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                outcome += f"; free space on the file system of {os.path.abspath(directory)} and try again"
                if existed and keep_previous:
                    outcome += _room_needed(path)
            elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                outcome += _unwritable_directory_hint(directory)
            raise StateIOError(f"could not {action} {path}: {_describe(exc)} (while {step}); {outcome}") from exc
        raise
    try:
        _fileops.fsync_dir(directory)
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # the file system cannot sync directories
            logger.debug("cannot fsync directory %s: %s", directory, exc)
            return
        previous = f"; the previous generation is in {previous_path(path)}" if existed and keep_previous else ""
        raise StateIOError(
            f"{path} was written, but syncing its directory {directory} to disk failed: "
            f"{_describe(exc)}; the new file is in place but may not survive a crash "
            f"of the machine{previous}"
        ) from exc


@contextmanager
def atomic_writer(path: StrPath, *, mode: int = 0o600) -> Iterator[Any]:
    """Write a file atomically and durably.

    Yields a binary file-like object (``write``, ``flush``, ``tell``) that
    ``pickle.dump`` and ``joblib.dump`` accept. It writes to a temporary file
    in the same directory, created with ``mode``; when the block ends without
    an exception the file is flushed, fsynced, renamed onto ``path`` and the
    directory is fsynced. If ``path`` is a symbolic link, the link itself is
    replaced.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    mode : int, default=0o600
        Permission bits of the new file (not reduced by the umask).

    Yields
    ------
    file-like
        The binary writer.

    Raises
    ------
    StateIOError
        An :class:`OSError` while writing. On this or any other exception the
        temporary file is removed and ``path`` is left as it was (except for a
        failure to sync the directory after the rename, which the message says).
    """
    with _atomic_replace(Path(path), mode=mode, keep_previous=False, hasher=None, action="write") as writer:
        yield writer


def _check_key(key: Any) -> None:
    if key is None:
        return
    if not isinstance(key, bytes):
        raise TypeError(f"key must be bytes or None, got {type(key).__name__}")
    if not key:
        raise ValueError("key must not be empty; pass key=None to use an unsigned state file")


def _new_hasher(key: bytes | None) -> Any:
    if key is None:
        return hashlib.sha256()
    return hmac.new(key, digestmod=hashlib.sha256)


def save(path: StrPath, data: dict[str, Any], *, key: bytes | None = None) -> None:
    """Save the state dictionary to ``path`` atomically and durably.

    The current file, if any, becomes the previous generation
    (:func:`previous_path`). At every instant ``path`` holds either the old or
    the new complete state; on any error the temporary file is removed and
    ``path`` is left as it was.

    Parameters
    ----------
    path : str or os.PathLike
        The state file.
    data : dict
        The state; pickled with cloudpickle (protocol 5).
    key : bytes, default=None
        Signing key (HMAC-SHA256). None uses :func:`key_from_environment`;
        without a key the trailer holds a SHA-256 checksum.

    Raises
    ------
    StateUnsafe
        The existing ``path`` is a symbolic link, not a regular file, not
        owned by the current user, or group- or world-writable.
    StateCorrupt
        The existing ``path`` has no valid checksum trailer (it is damaged or
        not a state file); it is not overwritten.
    StateIOError
        An :class:`OSError` while saving; the message says which step failed.
    """
    if not isinstance(data, dict):
        raise TypeError(f"the state must be a dict, got {type(data).__name__}")
    path = Path(path)
    if key is None:
        key = key_from_environment()
    _check_key(key)
    try:
        _check_replaceable(path, key)
    except OSError as exc:
        raise StateIOError(
            f"could not save state file {path}: {_describe(exc)} (while checking the existing file); it was not changed"
        ) from exc
    import cloudpickle

    start = time.perf_counter()
    hasher = _new_hasher(key)
    algorithm = _SHA256 if key is None else _HMAC_SHA256
    with _atomic_replace(path, mode=0o600, keep_previous=True, hasher=hasher, action="save state file") as writer:
        cloudpickle.dump(data, writer, protocol=5)
        writer.write(_HEADER.pack(_MAGIC, FORMAT_VERSION, algorithm, writer.tell()))
        # Writing the digest also feeds it to the hasher, which is no longer used.
        writer.write(hasher.digest())
        size = writer.tell()
    logger.debug("saved %s (%d bytes) in %.3f s", path, size, time.perf_counter() - start)


# --------------------------------------------------------------------- reading


class _Damaged(Exception):
    """Internal: the file failed its trailer or digest check, for ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _describe(exc: OSError) -> str:
    if exc.errno is not None:
        return f"[Errno {exc.errno}] {exc.strerror or os.strerror(exc.errno)}"
    return str(exc) or type(exc).__name__


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _file_kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "named pipe"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ]
    return next((name for test, name in kinds if test(mode)), "special file")


def _check_safe(path: Path, st: os.stat_result, action: str) -> None:
    """Refuse what OpenSSH refuses for a key: links, non-files, others' or shared files."""
    quoted = shlex.quote(str(path))
    why = "pickles run code when loaded"
    if stat.S_ISLNK(st.st_mode):
        real = shlex.quote(os.path.realpath(path))
        raise StateUnsafe(
            f"state file {path} is a symbolic link; refusing to {action} it: {why}, so only "
            f"a regular file you own is trusted. Use the file itself (--state {real})"
        )
    if not stat.S_ISREG(st.st_mode):
        raise StateUnsafe(
            f"state file {path} is a {_file_kind(st.st_mode)}, not a regular file; refusing "
            f"to {action} it. Pass the path of a state file (--state PATH)"
        )
    me = os.geteuid()
    if st.st_uid != me:
        raise StateUnsafe(
            f"state file {path} is owned by {_user(st.st_uid)} (uid {st.st_uid}), not by you "
            f"({_user(me)}, uid {me}); refusing to {action} it: {why}, so only a file you own "
            f"is trusted. If you trust it, copy it to a file of your own (cp {quoted} NEW && "
            f"chmod 600 NEW, then use --state NEW) or have root run: chown {_user(me)} {quoted}"
        )
    shared = st.st_mode & 0o022
    if shared:
        who = {0o020: "group-writable", 0o002: "world-writable"}.get(shared, "group- and world-writable")
        raise StateUnsafe(
            f"state file {path} is {who} (mode {stat.S_IMODE(st.st_mode):04o}); refusing to "
            f"{action} it: {why}, and others could have changed it. If you trust its "
            f"contents, fix the permissions: chmod 600 {quoted}"
        )


def _open_checked(path: Path, action: str) -> tuple[int, os.stat_result]:
    """Open ``path`` for reading after the safety checks, and check the file opened."""
    st = _fileops.lstat(path)
    _check_safe(path, st, action)
    try:
        fd = _fileops.open_read(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # replaced by a symbolic link since lstat
            _check_safe(path, _fileops.lstat(path), action)
        raise
    try:
        # The file opened is checked in its turn: a save may have renamed a new one onto the path
        # since the lstat (a reader does not lock), and O_NOFOLLOW kept a symbolic link out.
        opened = _fileops.fstat(fd)
        _check_safe(path, opened, action)
    except BaseException:
        _fileops.close(fd)
        raise
    return fd, opened


def _read_all(fd: int, size: int) -> bytes:
    # One read() per 2 GiB: the result is the kernel's buffer, not a copy of it.
    chunks = []
    remaining = size
    while remaining > 0:
        chunk = _fileops.read(fd, min(remaining, _MAX_READ))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


@contextmanager
def _contents(path: Path, action: str) -> Iterator[tuple[Any, os.stat_result]]:
    """Yield the bytes of ``path`` (checked as by :func:`_check_safe`) and its status.

    The file is memory-mapped where possible: verifying and unpickling then
    read the page cache directly instead of a private copy of the file.
    Writers never change a state file in place (they rename a new file onto
    it), so the mapping cannot change under the reader.
    """
    fd, st = _open_checked(path, action)
    try:
        if st.st_size == 0:
            contents: Any = b""
        else:
            try:
                contents = _fileops.map_read(fd, st.st_size)
            except (OSError, ValueError):  # a file system that cannot map files
                contents = _read_all(fd, st.st_size)
    finally:
        _fileops.close(fd)
    try:
        yield contents, st
    finally:
        if isinstance(contents, mmap.mmap):
            with suppress(BufferError):  # a view is still alive; the map goes with it
                contents.close()


class _Reader:
    """The file-like object :class:`pickle.Unpickler` needs, over a buffer.

    ``readinto`` lets the unpickler copy a large bytes object straight from
    the buffer into the object it builds.
    """

    def __init__(self, buffer: Any) -> None:
        self._buffer = buffer
        self._view = memoryview(buffer)
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else min(self._position + size, len(self._view))
        data = bytes(self._view[self._position : end])
        self._position = end
        return data

    def readinto(self, target: Any) -> int:
        with memoryview(target) as out:
            size = min(out.nbytes, len(self._view) - self._position)
            out[:size] = self._view[self._position : self._position + size]
        self._position += size
        return size

    def readline(self) -> bytes:
        newline = self._buffer.find(b"\n", self._position)
        return self.read(-1 if newline < 0 else newline + 1 - self._position)

    def release(self) -> None:
        self._view.release()


def _missing_trailer_reason(data: bytes) -> str:
    size = len(data)
    if size == 0:
        return "truncated: the file is empty"
    position = data.rfind(_MAGIC)
    if position >= 0:
        if position + TRAILER_SIZE > size:
            return "truncated"
        if _HEADER.unpack_from(data, position)[3] == position:
            extra = size - position - TRAILER_SIZE
            return f"{extra} bytes appended after its checksum trailer"
    if data[:1] != b"\x80":  # every state file starts with pickle's PROTO opcode
        return _NOT_PICKLE
    if data[-1:] == b".":  # ends like a complete pickle: written by something else
        return _NO_TRAILER
    return "truncated"


def _parse_trailer(data: bytes) -> tuple[int, int]:
    """Return ``(algorithm, payload_length)`` from the trailer, or raise :class:`_Damaged`."""
    size = len(data)
    if size < TRAILER_SIZE or data[size - TRAILER_SIZE : size - TRAILER_SIZE + 8] != _MAGIC:
        raise _Damaged(_missing_trailer_reason(data))
    _, version, algorithm, length = _HEADER.unpack_from(data, size - TRAILER_SIZE)
    if version != FORMAT_VERSION:
        raise _Damaged(
            f"unknown checksum trailer format {version}: damaged, or written by a newer "
            f"checkpointed-search (this one reads format {FORMAT_VERSION})"
        )
    if algorithm not in _ALGORITHMS:
        raise _Damaged(f"unknown checksum algorithm {algorithm}")
    if length != size - TRAILER_SIZE:
        raise _Damaged(
            "truncated"
            if length > size - TRAILER_SIZE
            else f"its trailer counts {length} bytes of pickle, the file holds {size - TRAILER_SIZE}"
        )
    return algorithm, length


def _verify(path: Path, data: bytes, algorithm: int, key: bytes | None) -> None:
    """Check the digest; refuse a signed file without a key and an unsigned one with a key."""
    if algorithm == _HMAC_SHA256 and key is None:
        raise StateUnsafe(
            f"state file {path} is signed (HMAC-SHA256) but no key is configured, so it "
            f"cannot be verified; refusing to unpickle it. Set {_KEY_VARIABLE} (the key) or "
            f"{_KEY_FILE_VARIABLE} (a file holding it) to the key it was written with"
        )
    if algorithm == _SHA256 and key is not None:
        raise StateUnsafe(
            f"state file {path} is not signed, but a signing key is configured, so anyone "
            f"could have written it; refusing to unpickle it. If you trust this file, unset "
            f"{_KEY_VARIABLE} and {_KEY_FILE_VARIABLE} to use it unsigned"
        )
    with memoryview(data) as view, view[: len(data) - _DIGEST_SIZE] as signed:
        hasher = _new_hasher(key)
        hasher.update(signed)
        digest = hasher.digest()
    if not hmac.compare_digest(digest, data[len(data) - _DIGEST_SIZE :]):
        raise _Damaged("checksum mismatch" if key is None else _SIGNATURE_MISMATCH)


def _format_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).astimezone().isoformat(sep=" ", timespec="seconds")


def _previous_hint(path: Path, key: bytes | None, also: bool = True) -> tuple[str, bool, str | None]:
    """One sentence on whether the previous generation can replace the damaged (or, with
    ``also=False``, missing) ``path``, whether it can, and why it is damaged (None: it is not)."""
    previous = previous_path(path)
    try:
        with _contents(previous, "load") as (data, st):
            algorithm, _ = _parse_trailer(data)
            _verify(previous, data, algorithm, key)
    except FileNotFoundError:
        return f"There is no previous generation ({previous}) to go back to.", False, None
    except _Damaged as damaged:
        too = " too" if also else ""
        return f"The previous generation {previous} is damaged{too} ({damaged.reason}).", False, damaged.reason
    except (StateError, OSError) as exc:
        detail = _describe(exc) if isinstance(exc, OSError) else str(exc)
        return f"The previous generation {previous} cannot be used{' either' if also else ''}: {detail}", False, None
    return (
        f"The previous generation {previous} is intact (saved {_format_time(st.st_mtime)}); "
        f"to go back to it: cp {shlex.quote(str(previous))} {shlex.quote(str(path))}"
    ), True, None


def _key_source() -> str:
    """Where the signing key in use came from, for messages."""
    if os.environ.get(_KEY_VARIABLE):
        return _KEY_VARIABLE
    if os.environ.get(_KEY_FILE_VARIABLE):
        return f"the file {os.environ[_KEY_FILE_VARIABLE]} that {_KEY_FILE_VARIABLE} names"
    return "the key given to load()"


def previous_hint(path: StrPath, key: bytes | None = None) -> str | None:
    """For a state file ``path`` that does not exist: one sentence on its previous generation, or None.

    A save keeps the previous generation beside the state file (:func:`previous_path`); when the
    state file itself is gone (removed, moved), that is the only copy of the saved work. The
    sentence says whether it is intact, when it was saved, and the ``cp`` that goes back to it.
    Reading it costs one pass over the file (its digest is checked; nothing is unpickled).

    Parameters
    ----------
    path : str or os.PathLike
        The state file.
    key : bytes, default=None
        Signing key; None uses :func:`key_from_environment`.
    """
    path = Path(path)
    if not os.path.lexists(previous_path(path)):
        return None
    if key is None:
        key = key_from_environment()
    return _previous_hint(path, key, also=False)[0]


def _has_trailer(fd: int, size: int) -> bool:
    if size < TRAILER_SIZE:
        return False
    header = _fileops.pread(fd, _HEADER.size, size - TRAILER_SIZE)
    if len(header) != _HEADER.size:
        return False
    magic, version, algorithm, length = _HEADER.unpack(header)
    return magic == _MAGIC and version == FORMAT_VERSION and algorithm in _ALGORITHMS and length == size - TRAILER_SIZE


def is_state_file(path: StrPath) -> bool:
    """Whether ``path`` is a regular file ending in a valid state trailer.

    Only the trailer is read, so this is cheap however large the file; it is
    how commands that write other files refuse to overwrite a state file.
    """
    try:  # a FIFO would block the open until something writes to it
        if not stat.S_ISREG(_fileops.lstat(path).st_mode):
            return False
        fd = _fileops.open_read(path)
    except OSError:
        return False
    try:
        st = _fileops.fstat(fd)
        return stat.S_ISREG(st.st_mode) and _has_trailer(fd, st.st_size)
    except OSError:
        return False
    finally:
        _fileops.close(fd)


def _check_replaceable(path: Path, key: bytes | None) -> None:
    """Refuse to save over an unsafe file or over one without a valid trailer.

    Only the trailer is read (the digest is checked on load), so this costs a
    few system calls however large the file is.
    """
    try:
        fd, st = _open_checked(path, "overwrite")
    except FileNotFoundError:
        return
    try:
        if _has_trailer(fd, st.st_size):
            return
        data = _read_all(fd, st.st_size)
    finally:
        _fileops.close(fd)
    try:
        _parse_trailer(data)
    except _Damaged as damaged:
        quoted = shlex.quote(str(path))
        if damaged.reason in _FOREIGN:
            raise StateCorrupt(
                f"{path} is not a state file ({damaged.reason}); refusing to overwrite it. "
                "Name another file with --state PATH"
            ) from None
        raise StateCorrupt(
            f"state file {path} is damaged ({damaged.reason}); refusing to overwrite it. "
            f"To start afresh, move it away first (mv {quoted} {quoted}.damaged). "
            f"{_previous_hint(path, key)[0]}"
        ) from None


def _lazy_loads(data: bytes, /, *args: Any, **kwargs: Any) -> Pickled:
    return Pickled(data=data)


class _LazyUnpickler(pickle.Unpickler):
    """Unpickler that keeps :class:`Pickled` entries as unopened ``Pickled`` objects."""

    def find_class(self, module: str, name: str) -> Any:
        # Pickled.__reduce__ stores (pickle.loads, (data,)); pickle names that
        # function by its defining module, _pickle (pickle for pure Python).
        if name == "loads" and module in ("_pickle", "pickle"):
            return _lazy_loads
        return super().find_class(module, name)


def load(path: StrPath, *, lazy: bool = False, key: bytes | None = None) -> dict[str, Any]:
    """Verify and load a state file.

    The file is checked before anything is unpickled: it must be a regular
    file owned by the current user and not group- or world-writable, and its
    trailer and digest must match. A damaged file is never modified.

    Parameters
    ----------
    path : str or os.PathLike
        The state file.
    lazy : bool, default=False
        Keep :class:`Pickled` entries (estimators) as unopened ``Pickled``
        objects instead of unpickling them.
    key : bytes, default=None
        Signing key. None uses :func:`key_from_environment`. A signed file
        needs the key; with a key, an unsigned file is refused.

    Returns
    -------
    dict
        The state.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    StateUnsafe
        ``path`` is not safe to unpickle (see above), or its signing does not
        match the key configuration.
    StateCorrupt
        Truncated, damaged, extended, not written by checkpointed-search, or
        signed with another key. The message says whether ``path.prev`` is
        intact and how to go back to it.
    StateIOError
        An :class:`OSError` while reading.
    StateError
        The file is intact but could not be unpickled (a missing or changed
        package).

    Warns
    -----
    EnvironmentMismatchWarning
        The state records package versions that differ from the running ones.
    """
    path = Path(path)
    if key is None:
        key = key_from_environment()
    _check_key(key)
    start = time.perf_counter()
    try:
        with _contents(path, "load") as (data, _):
            try:
                algorithm, _ = _parse_trailer(data)
                _verify(path, data, algorithm, key)
            except _Damaged as damaged:
                hint, intact, previous_damage = _previous_hint(path, key)
                if damaged.reason == previous_damage == _SIGNATURE_MISMATCH:  # one key wrong, not two files
                    quoted = shlex.quote(str(path))
                    raise StateCorrupt(
                        f"state file {path} and its previous generation {previous_path(path)} both fail the "
                        f"signature check; most likely the key ({_key_source()}) is not the one they were "
                        f"signed with: check {_KEY_VARIABLE} or {_KEY_FILE_VARIABLE} and try again. Both were "
                        "left as they are. Only if the key is right were they changed after they were written; "
                        f"then, to start afresh, move the state file away: mv {quoted} {quoted}.damaged"
                    ) from None
                if not intact and damaged.reason in _FOREIGN:  # nothing was damaged: a wrong path
                    raise StateCorrupt(
                        f"{path} is not a state file ({damaged.reason}); it was left as it is. "
                        "Name the state file with --state PATH"
                    ) from None
                if not intact:
                    quoted = shlex.quote(str(path))  # no way back: say how to start afresh
                    hint += f" To start afresh, move the damaged file away: mv {quoted} {quoted}.damaged"
                raise StateCorrupt(
                    f"state file {path} is damaged ({damaged.reason}); it was left as it is. {hint}"
                ) from None
            state = _unpickle(path, data, lazy=lazy)
            size = len(data)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StateIOError(f"could not read state file {path}: {_describe(exc)}") from exc
    if not isinstance(state, dict):
        raise StateError(f"state file {path} holds a {type(state).__name__}, not a state dict")
    logger.debug("loaded %s (%d bytes) in %.3f s", path, size, time.perf_counter() - start)
    if "environment" in state:
        check_environment(state["environment"], stacklevel=3)
    return state


def _unpickle(path: Path, data: Any, *, lazy: bool) -> Any:
    reader = _Reader(data)
    try:
        unpickler = _LazyUnpickler(reader) if lazy else pickle.Unpickler(reader)
        return unpickler.load()
    except Exception as exc:
        raise StateError(
            f"state file {path} is intact but could not be unpickled: "
            f"{type(exc).__name__}: {exc}. {_unpickling_hint(data, exc)}"
        ) from exc
    finally:
        reader.release()


def _unpickling_hint(data: Any, error: Exception) -> str:
    """Say which packages differ from the ones that wrote the file, if that can be read."""
    if isinstance(error, (ImportError, AttributeError)):
        advice = "A module it needs is missing or has changed"
    else:
        advice = "It may need the packages it was written with"
    reader = _Reader(data)
    try:
        state = _LazyUnpickler(reader).load()
        found = _differences(state.get("environment")) if isinstance(state, dict) else []
    except Exception:
        found = []
    finally:
        reader.release()
    if not found:
        return f"{advice}; install the versions it was written with"
    return f"{advice}: {'; '.join(found)}"
