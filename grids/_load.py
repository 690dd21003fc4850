"""Load and validate model families: the built-in sets or a user's grids file.

A grids file is a Python file that defines ``FAMILIES = {name: (estimator,
param_grid)}`` and may define ``load_data()`` returning ``(X, y)``. Everything
is checked before any work starts, so a typo costs a second, not a night.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import os
import shlex
import site
import sys
import sysconfig
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cloudpickle
import numpy as np
from sklearn.base import clone
from sklearn.model_selection import ParameterGrid

from grids._builtin import BUILTIN, builtin_families
from state import SearchError

__all__ = ["GridsError", "Grids", "is_grids_file_module", "is_user_module", "load_grids", "validate_families"]

_MODULE_PREFIX = "search_user_grids_"
_EXAMPLE = 'FAMILIES = {"rf": (RandomForestClassifier(), {"n_estimators": [100, 300]})}'


class GridsError(SearchError):
    """A grids file or a family definition is unusable."""


@dataclass
class Grids:
    """Families to search and where they came from.

    Attributes
    ----------
    source : str
        ``"classification"``, ``"regression"`` or the grids file's path.
    families : dict
        ``{name: (estimator, param_grid)}`` in search order.
    load_data : callable or None
        The grids file's ``load_data`` if it defines one.
    """

    source: str
    families: dict
    load_data: Callable | None = None


def load_grids(spec: str | None, task: str | None = None) -> Grids:
    """Return the families named by ``spec``, validated.

    Parameters
    ----------
    spec : str or None
        ``"classification"``, ``"regression"``, a path to a ``.py`` grids file,
        or None for the built-in families of ``task``.
    task : str or None
        Used when ``spec`` is None.
    """
    if spec is None:
        spec = task or "classification"
    if spec in BUILTIN:
        return Grids(spec, builtin_families(spec))
    path = Path(spec)
    if path.suffix != ".py":
        raise GridsError(
            f"--grids {spec!r} is neither a built-in set nor a Python file; "
            f"expected one of {sorted(BUILTIN)} or a path ending in .py"
        )
    module = _import_file(path)
    if not hasattr(module, "FAMILIES"):
        raise GridsError(
            f"grids file {str(path)!r} defines no FAMILIES; add a dict that maps each family name "
            f"to (estimator, param_grid), for example:\n    {_EXAMPLE}"
        )
    load_data = getattr(module, "load_data", None)
    if load_data is not None and not callable(load_data):
        raise GridsError(
            f"grids file {str(path)!r}: load_data is {load_data!r} "
            f"({type(load_data).__name__}); it must be a function returning (X, y)"
        )
    families = validate_families(module.FAMILIES, where=f"grids file {str(path)!r}")
    return Grids(str(path), families, load_data)


@functools.cache
def _library_paths() -> tuple[str, ...]:
    paths = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths.update(site.getsitepackages())
    paths.add(site.getusersitepackages())
    return tuple(os.path.realpath(p) + os.sep for p in paths)


def is_grids_file_module(name: str | None) -> bool:
    """Whether module ``name`` is a grids file, which no other process can import by that name."""
    return name == "__main__" or (name or "").startswith(_MODULE_PREFIX)


def is_user_module(name: str | None) -> bool:
    """Whether module ``name`` is the user's own code, not an installed library or Python's own.

    The user's code (the grids file, modules on PYTHONPATH or installed in
    development mode) is fingerprinted with the globals, defaults and closures
    its functions read, so that a resume notices when it changes; libraries are
    fingerprinted by name, their versions being in the state's environment.
    """
    if is_grids_file_module(name):
        return True
    module = sys.modules.get(name or "")
    file = getattr(module, "__file__", None)
    if not file:
        return False  # built in, frozen or unknown: not the user's
    return not os.path.realpath(file).startswith(_library_paths())


def _import_file(path: Path):
    if not path.is_file():
        raise GridsError(f"grids file {str(path)!r} does not exist; check the path given to --grids")
    # A stable, private module name: the module's code is pickled by value (below),
    # so estimators that use its functions load where the file does not exist.
    name = _MODULE_PREFIX + "".join(c if c.isalnum() else "_" for c in path.stem)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[name]
        raise GridsError(
            f"grids file {str(path)!r} has a syntax error at line {exc.lineno}: {exc.msg}"
        ) from None
    except ModuleNotFoundError as exc:
        del sys.modules[name]
        beside = path.resolve().parent
        if exc.name and ((beside / f"{exc.name}.py").exists() or (beside / exc.name).is_dir()):
            raise GridsError(
                f"grids file {str(path)!r} imports {exc.name!r}, which lies beside it but is not on "
                f"Python's path (the runner and its workers import it by name); add its directory: "
                f"PYTHONPATH={shlex.quote(str(beside))} search run ..., or install it as a package"
            ) from None
        raise GridsError(
            f"grids file {str(path)!r} failed while being imported: {type(exc).__name__}: {exc}; "
            "install the module, or put its directory on PYTHONPATH"
        ) from None
    except ImportError as exc:
        del sys.modules[name]
        if exc.name != "__main__":
            raise GridsError(
                f"grids file {str(path)!r} failed while being imported: "
                f"{type(exc).__name__}: {exc}; run `python {path}` to see the full traceback"
            ) from None
        raise GridsError(
            f"grids file {str(path)!r} imports from __main__ ({exc}): it takes what a notebook or "
            f"script defined, and runs only there; resume it with search.run(...) from that notebook "
            f"or script (`search status`, `best`, `export` and `predict` work anywhere), or move "
            f"those definitions into the grids file"
        ) from None
    except Exception as exc:
        del sys.modules[name]
        raise GridsError(
            f"grids file {str(path)!r} failed while being imported: "
            f"{type(exc).__name__}: {exc}; run `python {path}` to see the full traceback"
        ) from None
    cloudpickle.register_pickle_by_value(module)
    return module


def validate_families(families: object, *, where: str = "FAMILIES") -> dict:
    """Check every family and return them as a plain dict.

    Raises
    ------
    GridsError
        Naming the family, the parameter, the bad value and its type, and the fix.
    """
    if not isinstance(families, Mapping) or not families:
        raise GridsError(
            f"{where}: FAMILIES is {_show(families)}; it must be a non-empty dict, "
            f"for example:\n    {_EXAMPLE}"
        )
    checked = {}
    for name, entry in families.items():
        if not isinstance(name, str) or not name or "," in name:
            raise GridsError(
                f"{where}: family name {name!r} ({type(name).__name__}) must be a non-empty "
                "string without commas"
            )
        if not (isinstance(entry, Sequence) and len(entry) == 2):
            raise GridsError(
                f"{where}, family {name!r}: the entry is {_show(entry)}; it must be a pair "
                f"(estimator, param_grid), for example:\n    {_EXAMPLE}"
            )
        estimator, grid = entry
        place = _estimator_class(estimator)
        if place is not None:
            where_, cls = place
            raise GridsError(
                f"{where}, family {name!r}: {where_} is the class {cls.__name__}, not an estimator; "
                f"write {cls.__name__}() (with parentheses, and any parameters inside them)"
            )
        if not (hasattr(estimator, "fit") and hasattr(estimator, "get_params")):
            raise GridsError(
                f"{where}, family {name!r}: the estimator is {_show(estimator)}; it must be a "
                "scikit-learn estimator (an object with fit and get_params), e.g. LogisticRegression()"
            )
        _check_grid(name, estimator, grid, where)
        checked[name] = (estimator, grid)
    return checked


def _estimator_class(value, where: str = "the estimator", depth: int = 0, listed: bool = True):
    """``(where, cls)`` for the first estimator class given where an instance belongs, else None.

    That is the estimator itself and the members of its lists (a pipeline's
    steps, a column transformer's transformers, an ensemble's estimators),
    which scikit-learn fits as they are. A parameter holding a class by itself
    may be meant as one (a wrapper that builds its model from it), so it is
    left alone.
    """
    if isinstance(value, type):
        return (where, value) if listed and hasattr(value, "get_params") else None
    if depth > 20:
        return None
    if isinstance(value, (list, tuple)):
        for item in value:
            found = _estimator_class(item, where, depth + 1, listed)
            if found:
                return found
    elif hasattr(value, "get_params"):
        try:
            params = value.get_params(deep=False)
        except Exception:  # not ours to judge here; the checks below report it
            return None
        for key, item in params.items():
            found = _estimator_class(item, f"parameter {key!r} of {type(value).__name__}", depth + 1,
                                     listed=isinstance(item, (list, tuple)))
            if found:
                return found
    return None


def _check_grid(name: str, estimator, grid, where: str) -> None:
    here = f"{where}, family {name!r}"
    subgrids = [grid] if isinstance(grid, Mapping) else grid
    if not isinstance(subgrids, Sequence) or isinstance(subgrids, str):
        raise GridsError(
            f"{here}: the parameter grid is {_show(grid)}; it must be a dict mapping each "
            "parameter to a list of values (or a list of such dicts)"
        )
    if all(isinstance(g, Mapping) and not g for g in subgrids):  # a {} beside others: the defaults
        raise GridsError(
            f"{here}: the parameter grid is empty; give at least one parameter with a list "
            'of values, e.g. {"C": [0.1, 1, 10]}'
        )
    for sub in subgrids:
        if not isinstance(sub, Mapping):
            raise GridsError(
                f"{here}: a grid entry is {_show(sub)}; each must be a dict mapping a parameter "
                "to a list of values"
            )
        for param, values in sub.items():
            if isinstance(values, Iterator):
                raise GridsError(
                    f"{here}: parameter {param!r} is {_show(values)}, which can be read only "
                    f"once; give a list instead: {param!r}: list(...)"
                )
            if isinstance(values, str) or not isinstance(values, (Sequence, np.ndarray)):
                raise GridsError(
                    f"{here}: parameter {param!r} is {_show(values)}; a grid maps each "
                    f"parameter to a list of values. Single values need to be wrapped in a "
                    f"list: {param!r}: [{values!r}]"
                )
            if len(values) == 0:
                raise GridsError(
                    f"{here}: parameter {param!r} has an empty list of values; give at "
                    "least one value or remove the parameter"
                )
    valid = set(estimator.get_params(deep=True))
    for candidate in ParameterGrid(grid):
        try:
            # cloned, as GridSearchCV does: an estimator given as a value must stay as the user made it
            clone(estimator).set_params(**clone(candidate, safe=False))
        except ValueError:
            for param in candidate:
                if param not in valid and param.split("__")[0] not in valid:
                    close = difflib.get_close_matches(param, sorted(valid), n=3)
                    hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
                    raise GridsError(
                        f"{here}: {type(estimator).__name__} has no parameter {param!r}; "
                        f"{hint}valid parameters are listed by "
                        f"estimator.get_params().keys()"
                    ) from None
            raise GridsError(
                f"{here}: the candidate {candidate!r} cannot be set on "
                f"{type(estimator).__name__}; check the parameter names"
            ) from None


def _show(value) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(value).__name__})"
