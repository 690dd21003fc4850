"""The software environment a state file was written in, and the check on load."""

from __future__ import annotations

import platform
import warnings
from typing import Any

from ._errors import EnvironmentMismatchWarning

__all__ = ["changed_versions", "check_environment", "environment"]

# Distributions whose versions decide whether pickled estimators load and
# behave the same. pandas is recorded only where it is installed.
_PACKAGES = ("scikit-learn", "numpy", "joblib", "cloudpickle", "pandas")
_OPTIONAL = frozenset({"pandas"})


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, str]:
    """Describe the running interpreter and the packages a state file depends on.

    Versions come from the installed distributions' metadata, so nothing is
    imported (``search status`` stays fast).

    Returns
    -------
    env : dict of str to str
        Keys ``"python"``, ``"scikit-learn"``, ``"numpy"``, ``"joblib"``,
        ``"cloudpickle"``, ``"pandas"`` (only when installed) and
        ``"platform"`` (:func:`platform.platform`).
    """
    env = {"python": platform.python_version()}
    for name in _PACKAGES:
        version = _version(name)
        if version is not None or name not in _OPTIONAL:
            env[name] = version if version is not None else "not installed"
    env["platform"] = platform.platform()
    return env


def _comparable(name: str, version: str) -> str:
    # A pickle depends on Python's minor version, not on its bugfix release.
    if name == "python":
        return ".".join(version.split(".")[:2])
    return version


def changed_versions(recorded: Any, names: tuple[str, ...] = ("python", *_PACKAGES)) -> list[tuple[str, str, str]]:
    """The packages among ``names`` whose version differs from the one ``recorded``.

    Parameters
    ----------
    recorded : dict
        An environment as made by :func:`environment`; keys it lacks are
        skipped. Python is compared by minor version.
    names : tuple of str
        The keys to compare.

    Returns
    -------
    list of (name, recorded version, current version)
        The current version is ``"not installed"`` for a package missing here.
    """
    if not isinstance(recorded, dict):
        return []
    current = environment()
    found = []
    for name in names:
        then = recorded.get(name)
        if not isinstance(then, str):
            continue
        now = current.get(name, "not installed")
        if _comparable(name, then) != _comparable(name, now):
            found.append((name, then, now))
    return found


def _differences(recorded: Any, written: str = "state file was written") -> list[str]:
    """Describe each package whose version differs from the recorded one.

    Parameters
    ----------
    recorded : dict
        The ``"environment"`` entry of a state file (or of one of its
        families), as made by :func:`environment`. Unknown keys and ``"platform"`` are ignored (a
        cluster's nodes differ in kernel version without consequence); Python
        is compared by minor version, since its bugfix releases read each
        other's pickles.

    written : str
        What was written with the recorded versions, to begin each sentence.

    Returns
    -------
    list of str
        One sentence per differing package, e.g. ``"state file was written
        with scikit-learn 1.5.0, this is scikit-learn 1.9.1"``.
    """
    found = []
    for name, then, now in changed_versions(recorded):
        this = f"this environment has no {name}" if now == "not installed" else f"this is {name} {now}"
        found.append(f"{written} with {name} {then}, {this}")
    return found


def check_environment(recorded: dict[str, Any], *, stacklevel: int = 2) -> None:
    """Warn once about each package whose version differs from the recorded one.

    Parameters
    ----------
    recorded : dict
        The ``"environment"`` entry of a state file (see :func:`_differences`
        for what is compared).
    stacklevel : int, default=2
        Passed to :func:`warnings.warn`; the default points at the caller.

    Warns
    -----
    EnvironmentMismatchWarning
        One per differing package, naming both versions.
    """
    for difference in _differences(recorded):
        warnings.warn(
            f"{difference}; estimators may not load or behave the same",
            EnvironmentMismatchWarning,
            stacklevel=stacklevel,
        )
