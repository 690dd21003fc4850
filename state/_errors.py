"""The project's exceptions and warnings.

One base class, :class:`SearchError`, carries the process exit code the command
line maps it to; the state layer's failures are subclasses of
:class:`StateError`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "EnvironmentMismatchWarning",
    "SearchError",
    "StateCorrupt",
    "StateError",
    "StateIOError",
    "StateLocked",
    "StateMismatch",
    "StateUnsafe",
]


class SearchError(Exception):
    """Base class of every error checkpointed-search reports to its user.

    The message says what is wrong and how to fix it; the command line prints
    it and exits with :attr:`exit_code`.
    """

    #: Process exit code for this error.
    exit_code: int = 1


class StateError(SearchError):
    """A problem with a state file."""


class StateCorrupt(StateError):
    """The state file is damaged and was not unpickled.

    Raised for a truncated file, a flipped bit, bytes appended after the
    checksum trailer, a missing or unknown trailer, or a signature that does
    not match. The damaged file is left as it is.
    """


class StateUnsafe(StateError):
    """The state file is not safe to unpickle.

    It is a symbolic link or not a regular file, is not owned by the current
    user, is group- or world-writable, or its signature status does not match
    the configured key (see :func:`state.key_from_environment`).
    """


class StateLocked(StateError):
    """Another runner holds this state file's lock.

    The message names the holder's pid, host and start time; :attr:`holder`
    is the holder's record (``pid``, ``host``, ``since``, ``argv``) when it
    could be read, else None.
    """

    exit_code: int = 4
    holder: dict[str, Any] | None = None


class StateMismatch(StateError):
    """The state file belongs to a different run (data, CV splits, grid, ...)."""


class StateIOError(StateError):
    """Reading or writing a state file failed with an :class:`OSError`.

    The message names the path and the operating system's error and says what
    happened to the previous state (it is intact unless the message says
    otherwise). The original :class:`OSError` is the ``__cause__``.
    """


class EnvironmentMismatchWarning(UserWarning):
    """The state file was written with different package versions."""
