"""The file operations of the state layer, one thin wrapper each.

Every save, load and lock goes through this module, looking each function up
on the module at call time, so a test can inject a fault at one precise step
with ``monkeypatch.setattr(state._fileops, "fsync", failing)``. Keep the
functions free of logic: loops, retries and cleanup belong to the callers.
"""

from __future__ import annotations

import mmap
import os

__all__ = [
    "close",
    "fchmod",
    "flock",
    "fstat",
    "fsync",
    "fsync_dir",
    "link",
    "listdir",
    "lstat",
    "map_read",
    "open_new",
    "open_read",
    "pread",
    "read",
    "replace",
    "unlink",
    "write",
]

_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_new(path: str | os.PathLike[str], mode: int = 0o600) -> int:
    """Create ``path``, which must not exist, for writing; return the descriptor."""
    return os.open(path, _NEW_FLAGS, mode)


def open_read(path: str | os.PathLike[str]) -> int:
    """Open ``path`` for reading without following a final symbolic link."""
    return os.open(path, _READ_FLAGS)


def write(fd: int, data: bytes | memoryview) -> int:
    """Write once; return the number of bytes written, which may be fewer than asked."""
    return os.write(fd, data)


def read(fd: int, size: int) -> bytes:
    """Read at most ``size`` bytes at the current offset."""
    return os.read(fd, size)


def map_read(fd: int, size: int) -> mmap.mmap:
    """Map the first ``size`` bytes of an open file read-only, for one sequential pass."""
    mapping = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
    if hasattr(mapping, "madvise"):
        mapping.madvise(mmap.MADV_SEQUENTIAL)
    return mapping


def pread(fd: int, size: int, offset: int) -> bytes:
    """Read at most ``size`` bytes at ``offset`` without moving the file offset."""
    return os.pread(fd, size, offset)


def flock(fd: int, operation: int) -> None:
    """Apply or remove a kernel lock on an open file (:func:`fcntl.flock`)."""
    import fcntl

    fcntl.flock(fd, operation)


def fchmod(fd: int, mode: int) -> None:
    """Set the permission bits of an open file."""
    os.fchmod(fd, mode)


def fsync(fd: int) -> None:
    """Flush an open file's data and metadata to stable storage."""
    os.fsync(fd)


def close(fd: int) -> None:
    """Close a descriptor."""
    os.close(fd)


def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Rename ``src`` onto ``dst`` atomically, replacing ``dst`` if it exists."""
    os.replace(src, dst)


def link(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Make ``dst`` a hard link to ``src`` (a symbolic link is linked, not followed)."""
    os.link(src, dst, follow_symlinks=False)


def unlink(path: str | os.PathLike[str]) -> None:
    """Remove a file."""
    os.unlink(path)


def fsync_dir(dirpath: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (renames, new and removed names) to stable storage."""
    fd = os.open(dirpath, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def listdir(dirpath: str | os.PathLike[str]) -> list[str]:
    """Names in a directory."""
    return os.listdir(dirpath)


def fstat(fd: int) -> os.stat_result:
    """Status of an open file."""
    return os.fstat(fd)


def lstat(path: str | os.PathLike[str]) -> os.stat_result:
    """Status of ``path`` itself, not of what a symbolic link points to."""
    return os.lstat(path)
