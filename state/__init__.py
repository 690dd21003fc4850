"""The state file: atomic save, verified load, locking, environment record.

A state file is a pickled dict followed by a checksum trailer; see
:mod:`state._store` for the format and :func:`save` / :func:`load` for the
guarantees.
"""

from __future__ import annotations

from . import _fileops  # noqa: F401  (tests patch `state._fileops.<function>` to inject faults)
from ._env import changed_versions, check_environment, environment
from ._errors import (
    EnvironmentMismatchWarning,
    SearchError,
    StateCorrupt,
    StateError,
    StateIOError,
    StateLocked,
    StateMismatch,
    StateUnsafe,
)
from ._lock import companion_of, companions, holder, lock
from ._store import (
    FORMAT_VERSION,
    TRAILER_SIZE,
    Pickled,
    atomic_writer,
    is_state_file,
    key_from_environment,
    load,
    previous_hint,
    previous_path,
    save,
)

__all__ = [
    "FORMAT_VERSION",
    "TRAILER_SIZE",
    "EnvironmentMismatchWarning",
    "Pickled",
    "SearchError",
    "StateCorrupt",
    "StateError",
    "StateIOError",
    "StateLocked",
    "StateMismatch",
    "StateUnsafe",
    "atomic_writer",
    "changed_versions",
    "check_environment",
    "companion_of",
    "companions",
    "environment",
    "holder",
    "is_state_file",
    "key_from_environment",
    "load",
    "lock",
    "previous_hint",
    "previous_path",
    "save",
]
