"""checkpointed-search: resumable scikit-learn grid searches that survive being killed.

The command line (``search run | status | best | export | predict``) is a thin
click layer over the library functions of this module: :func:`run` does the
search, :func:`load_best` and :func:`status_rows` read the state file back.

The loop, in one paragraph: every selected family's parameter grid is expanded
with :class:`~sklearn.model_selection.ParameterGrid`; every candidate (one
parameter combination) is keyed by a hash of its canonical parameters, and
every (candidate, fold) pair not yet in the state file becomes a task. Tasks
run in a pool of worker processes (loky locally, forked from a server that
imported scikit-learn while the runner started; dask on a cluster) that
received the data and the CV splits once; a pipeline whose searched
parameters all belong to its last step has its preprocessing fitted once per
fold and shared. Every finished fold is kept in the state; checkpoints are
paced so saving costs at most about 2% of the wall time (and made at least
once a minute), made at the end of a family whose unsaved work is worth a
save, and forced on exit. When all folds of a candidate are in,
the candidate is recorded; when every candidate of a family is in, its best
candidate is refit on all the data as one more task, and the family is done.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import contextvars
import csv
import errno
import functools
import gc
import hashlib
import io
import logging
import math
import numbers
import os
import re
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import types
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import click


class _OwnPackages:
    """Finds this tool's own ``state`` and ``grids`` packages beside this file, before ``sys.path``.

    Their names are generic: a user's ``grids.py`` in the working directory
    (first on ``sys.path`` under ``python -m`` or ``python -c``) would
    otherwise be imported in their place, by the runner, its fork server
    and its workers alike.
    """

    names = ("state", "grids")

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname.partition(".")[0] not in cls.names:
            return None
        from importlib.machinery import PathFinder

        return PathFinder.find_spec(fullname, path if "." in fullname else [str(Path(__file__).parent)])


if _OwnPackages not in sys.meta_path:
    sys.meta_path.insert(0, _OwnPackages)
for _name in _OwnPackages.names:
    _module = sys.modules.get(_name)
    if _module is not None and Path(getattr(_module, "__file__", None) or "").parent.parent \
            != Path(__file__).parent:
        raise ImportError(f"a module of yours named {_name!r} ({_module.__file__}) was imported before "
                          f"checkpointed-search, whose own {_name!r} it hides; rename yours")

import state  # noqa: E402 - found by _OwnPackages
from state import FORMAT_VERSION, Pickled, SearchError, StateMismatch  # noqa: E402
from state._store import _process_alive  # noqa: E402

__all__ = [
    "RunConfig",
    "RunReport",
    "best_family",
    "candidate_rows",
    "cli",
    "export_best",
    "load_best",
    "main",
    "parse_duration",
    "predict_csv",
    "predict_frame",
    "read_state",
    "run",
    "status_rows",
]

logger = logging.getLogger("search")

DEFAULT_STATE = "search-state.pkl"
# SIGHUP: the terminal closed (a dropped ssh session) with the runner in it; nohup, tmux or a batch
# job keep a search running past a logout.
STOP_SIGNALS = ("SIGTERM", "SIGINT", "SIGUSR1", "SIGHUP")
_SAVE_SHARE = 0.02  # at most this share of the wall time goes to checkpoints
_MIN_SAVE_INTERVAL = 0.5  # seconds; a kill loses at most this much finished work + tasks in flight
_MAX_SAVE_INTERVAL = 60.0  # seconds: a state whose saves take seconds (hundreds of MB) is saved more than
# _SAVE_SHARE allows, rather than leaving minutes of finished fits to a kill
_MAX_ATTEMPTS = 3  # a task whose worker died is retried this many times in all


# --------------------------------------------------------------------------- data


@dataclass
class Dataset:
    """The table to search on: features ``X``, target ``y`` and a description."""

    X: object
    y: object
    source: str
    target: str | None = None
    decimals_target: object = None  # y as read before its whole numbers were made integers again
    # X as read before its columns of True/False were made 1 and 0 and its blank columns left out
    X_as_read: object = None


def load_dataset(data: str | None, target: str | None, load_data=None, task=None) -> Dataset:
    """Return the data to search on.

    ``data`` (a CSV path) wins; else the grids file's ``load_data``; else a
    dataset that ships with scikit-learn (breast cancer for classification,
    diabetes for regression).
    """
    if data is not None:
        return _read_csv(data, target)
    if load_data is not None:
        try:
            loaded = load_data()
        except Exception as exc:
            raise SearchError(
                f"load_data() in the grids file failed: {type(exc).__name__}: {exc}"
            ) from exc
        if not (isinstance(loaded, tuple) and len(loaded) == 2):
            raise SearchError(
                f"load_data() in the grids file returned {type(loaded).__name__}; "
                "it must return a pair (X, y)"
            )
        X, y = loaded
        for name, value in (("X", X), ("y", y)):
            if not (hasattr(value, "shape") or hasattr(value, "__len__")) or isinstance(value, (str, bytes)):
                raise SearchError(
                    f"load_data() in the grids file returned {name} = {value!r:.60} "
                    f"({type(value).__name__}); it must return (X, y): X a table of rows (a 2-D "
                    "array or a pandas DataFrame), y one target value per row"
                )
        if _n_rows(X) != _n_rows(y):
            raise SearchError(
                f"load_data() returned X with {_n_rows(X)} rows and y with {_n_rows(y)}; they must match"
            )
        return Dataset(X, y, "load_data() of the grids file")
    from sklearn.datasets import load_breast_cancer, load_diabetes

    if task == "regression":
        X, y = load_diabetes(return_X_y=True, as_frame=True)
        return Dataset(X, y, "scikit-learn diabetes (built-in)", "target")
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return Dataset(X, y, "scikit-learn breast cancer (built-in)", "target")


def _n_rows(values) -> int:
    shape = getattr(values, "shape", None)  # sparse matrices have no len()
    return shape[0] if shape else len(values)


def read_table(path: str, text_columns=(), as_written: bool = False):
    """Read a CSV with pandas; a missing or unreadable file is a SearchError naming it.

    ``text_columns`` are read as text whatever their values look like (the
    columns that were text in training: "7" stays the category "7", not the
    number 7). ``as_written``: every cell as the exact text in the file, for
    writing the rows back unchanged ("007" stays "007", "NA" stays "NA").
    """
    import pandas as pd

    options = {"dtype": str, "keep_default_na": False} if as_written else \
        {"dtype": dict.fromkeys(text_columns, str)}
    try:
        with warnings.catch_warnings():
            # A row with more fields than the header is an error, not a first column turned into
            # the index (pandas' default) or silently dropped; a delimiter ending every line is fine.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, index_col=False, **options)
            # UTF-16 without its byte-order mark: names full of NULs, or (pandas 2) cut at the first
            # NUL, the rest of the columns unnamed
            if any("\x00" in str(c) or str(c).startswith("Unnamed: ") for c in frame.columns):
                _refuse_other_formats(path)
            if not as_written:  # read once more as written: done when it was read as such
                _check_header(path, frame)
            return frame
    except pd.errors.ParserWarning as exc:
        _refuse_other_formats(path)
        _refuse_other_separators(path)
        raise SearchError(
            f"--data {path}: a row has more fields than the header ({exc}); check the file's "
            "delimiters and quoting"
        ) from None
    except FileNotFoundError:
        raise SearchError(f"--data {path}: no such file; check the path") from None
    except UnicodeDecodeError as exc:
        _refuse_other_formats(path)
        raise SearchError(
            f"--data {path} is not UTF-8 text (it holds the byte "
            f"{exc.object[exc.start:exc.start + 1]!r}); save it as UTF-8 (spreadsheets: \"CSV UTF-8\"), "
            "or convert it, e.g. "
            f"iconv -f latin1 -t utf-8 {shlex.quote(path)} > converted.csv"
        ) from None
    except ImportError:  # a .zst file without the zstandard package
        raise SearchError(f"--data {path}: reading a {Path(path).suffix} file needs the zstandard "
                          "package, which this environment lacks; pip install zstandard, or give "
                          "the file uncompressed or as .gz") from None
    except (OSError, ValueError) as exc:
        _refuse_other_formats(path)
        if isinstance(exc, pd.errors.ParserError):
            _refuse_other_separators(path)
        raise SearchError(f"--data {path} could not be read as CSV: {str(exc).strip()}") from None


def _refuse_other_formats(path: str) -> None:
    """Name the format of a file that failed to read as CSV when its first bytes tell it (an Excel
    workbook, UTF-16 text, parquet), with the way to make a CSV of it; looked at only then."""
    import json
    import zipfile

    try:
        with open(path, "rb") as file:
            start = file.read(4096)
    except OSError:
        return
    name, fix = Path(path).name, ""
    out = "converted.csv" if Path(path).suffix.lower() == ".csv" else Path(path).with_suffix(".csv").name
    if start.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                entries = archive.namelist()
        except (OSError, zipfile.BadZipFile):
            return
        if any(e == "[Content_Types].xml" or e.startswith("xl/") for e in entries):
            kind, reader = "an Excel workbook", "read_excel"
        elif entries:
            fix = (f"--data {path} is a zip archive ({_examples(entries)}), not CSV: unzip it and give "
                   "the CSV file inside" + (", or name it .zip (pandas reads a .zip of one CSV file)"
                                            if len(entries) == 1 and not name.lower().endswith(".zip") else ""))
        else:
            return
    elif start.startswith(b"\xd0\xcf\x11\xe0"):
        kind, reader = "an Excel 97-2003 workbook", "read_excel"
    elif start.startswith(b"PAR1"):
        kind, reader = "a parquet file", "read_parquet"
    elif start.startswith((b"\xff\xfe", b"\xfe\xff")) or start[1:64:2].count(0) > 16 or start[:64:2].count(0) > 16:
        # without a byte-order mark, iconv's utf-16 is big-endian: name the order the NULs show
        encoding = ("utf-16" if start.startswith((b"\xff\xfe", b"\xfe\xff")) else
                    "utf-16le" if start[1:64:2].count(0) > 16 else "utf-16be")
        fix = (f"--data {path} is UTF-16 text, not UTF-8: save it as \"CSV UTF-8\", or convert it, "
               f"e.g. iconv -f {encoding} -t utf-8 {shlex.quote(path)} > {out}")
    elif start.startswith(b"\x1f\x8b") and not name.lower().endswith(".gz"):
        fix = (f"--data {path} is gzip-compressed: name it .csv.gz (pandas reads it then), or "
               f"gunzip it (gunzip -c {shlex.quote(path)} > {out})")
    else:
        return
    if not fix:
        code = f"import pandas as pd; pd.{reader}({json.dumps(path)}).to_csv({json.dumps(out)}, index=False)"
        save = "save it as CSV UTF-8 (File > Save As) or " if reader == "read_excel" else ""
        fix = f"--data {path} is {kind}, not CSV: {save}convert it with pandas: python -c {shlex.quote(code)}"
    raise SearchError(fix) from None


def _check_header(path: str, frame) -> None:
    """Refuse a header that names a column twice (pandas would rename the second ``NAME.1``)."""
    import pandas as pd

    if not any(re.fullmatch(r".+\.\d+", str(c)) for c in frame.columns):
        return  # no renamed column
    header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0].tolist()
    seen: dict[str, int] = {}
    for number, name in enumerate(header, start=1):
        if name in seen:
            raise SearchError(
                f"--data {path}: the header names column {name!r} twice (columns {seen[name]} and "
                f"{number}); give each column its own name"
            )
        seen[name] = number


def _column_hint(wanted: list, columns: list) -> str:
    """What may be meant when the columns ``wanted`` are not among ``columns``: near names, or a file
    whose fields are separated by another character than a comma."""
    import difflib

    columns = list(map(str, columns))
    near = [f"{close[0]!r}" + (f" for {name!r}" if len(wanted) > 1 else "") for name in map(str, wanted)
            if (close := difflib.get_close_matches(name, columns, n=1)
                or [c for c in columns if c.strip().lower() == name.strip().lower()])]
    hint = f" Did you mean {', '.join(near)}?" if near else ""
    if len(columns) == 1 and (advice := _separator_advice(columns[0])):
        hint += f" The file seems to {advice}"
    return hint


_SEPARATORS = {";": "semicolons (;)", "\t": "tabs", "|": "vertical bars (|)"}


def _separator_advice(header: str, rows=()) -> str | None:
    """How to fix a file whose header line separates its fields with another character than a comma
    (``rows``: its first lines, for decimal commas beside semicolons); None if it does not."""
    counts = {sep: header.count(sep) for sep in _SEPARATORS}
    sep = max(counts, key=counts.get)
    if not counts[sep]:
        return None
    decimals = sep == ";" and any(re.search(r"\d,\d", row) for row in rows)
    return (f"separate its fields with {_SEPARATORS[sep]}"
            + (" and write decimals with commas (1,5)" if decimals else "")
            + ", not commas: save it with comma separators" + (" and '.' decimals (1.5)" if decimals else "")
            + f", or read it in a grids file's load_data() with pd.read_csv(path, sep={sep!r}"
            + (", decimal=','" if decimals else "") + ")")


def _refuse_other_separators(path: str) -> None:
    """After a failed parse: name the separator of a file whose header line holds no comma but
    semicolons or tabs (its rows then split at a decimal comma, or at a comma in a text)."""
    import pandas as pd

    try:  # each line as one field, decompressed and decoded as pandas reads the file
        lines = pd.read_csv(path, header=None, sep="\x1f", quoting=csv.QUOTE_NONE, dtype=str, nrows=20,
                            keep_default_na=False, skip_blank_lines=True)[0].tolist()
    except (OSError, ValueError):
        return
    if lines and "," not in lines[0] and (advice := _separator_advice(lines[0], lines[1:])):
        raise SearchError(f"--data {path}: the file seems to {advice}") from None


def _read_csv(path: str, target: str | None) -> Dataset:
    if target is None:
        raise SearchError(f"--data {path} needs --target COLUMN naming the column to predict")
    frame = read_table(path)
    blank = _blank_columns(path, frame)
    if target not in frame.columns:
        raise SearchError(
            f"--target {target!r} is not a column of {path}; its columns are "
            f"{', '.join(map(str, frame.columns))}.{_column_hint([target], frame.columns)}"
        )
    missing = frame[target].isna()
    if missing.any():
        logger.warning("%s: dropped %d rows whose target %r is missing", path, missing.sum(), target)
        frame = frame.loc[~missing].reset_index(drop=True)
    if len(frame) == 0:
        raise SearchError(f"--data {path} has no rows with a value in {target!r}")
    _warn_leading_zeros(path, frame, target)
    y = frame.pop(target)
    whole = _whole_numbers(y) if missing.any() else y
    X = _booleans_as_numbers(frame.drop(columns=blank) if blank else frame)
    return Dataset(X, whole, str(path), target, decimals_target=None if whole is y else y,
                   X_as_read=None if X is frame else frame)


def boolean_columns(X) -> list[str]:
    """The columns of a table that hold True and False only (and maybe missing values)."""
    import pandas as pd

    dtypes = getattr(X, "dtypes", None)
    if not isinstance(dtypes, pd.Series):
        return []
    types = pd.api.types
    return [str(c) for i, (c, dtype) in enumerate(dtypes.items())
            if types.is_bool_dtype(dtype)
            or (types.is_object_dtype(dtype) and types.infer_dtype(X.iloc[:, i], skipna=True) == "boolean")]


def _booleans_as_numbers(frame):
    """``frame`` with its columns of True and False as the numbers 1.0 and 0.0 (missing: NaN).

    pandas reads such a column as booleans, or, with an empty cell, as Python objects: to the
    built-in families the first is a category their imputer refuses (every fit fails), the second
    one whose categories are True and False, which the same file read again for ``search predict``
    does not give (its text columns are read as text). As numbers, both are amounts of 0 and 1, and
    a model gets them as such from any source: booleans, 1 and 0, or the text of a CSV.
    """
    import numpy as np

    booleans = set(boolean_columns(frame))
    columns = [c for c in frame.columns if str(c) in booleans]
    if not columns:
        return frame
    frame = frame.copy()
    for column in columns:
        frame[column] = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
    return frame


def _blank_columns(path: str, frame) -> list:
    """The columns of ``frame`` to leave out, with a warning naming them: those that have no name in
    the header and no value in any row (a spreadsheet's empty columns at the right, every line ending
    in ``,,``; pandas names them ``Unnamed: N``). As features they would be required at predict."""
    blank = [c for i, c in enumerate(frame.columns) if c == f"Unnamed: {i}" and frame[c].isna().all()]
    if not blank:
        return blank
    logger.warning("%s: left out column%s %s, unnamed in the header and empty in every row (a "
                   "spreadsheet's empty columns, most likely); they are not features", path,
                   "s" if len(blank) > 1 else "", ", ".join(map(repr, blank)))
    return blank


_PADDED = r"[-+]?0\d+"  # a number written with leading zeros: 02134, 007


def _text_sample(values):
    """Up to 10,000 of the values present, made text and stripped (a million cells take a third of a
    second; a sample tells what the values look like)."""
    present = values.dropna()
    return present.sample(n=min(len(present), 10_000), random_state=0).astype(str).str.strip()


def _zero_padded(sample) -> bool:
    """Whether text values (a :func:`_text_sample` of them) include numbers written with leading
    zeros: codes kept as text on purpose."""
    return bool(sample.str.fullmatch(_PADDED).any())


def _warn_leading_zeros(path: str, frame, target: str) -> None:
    """Warn of feature columns of numbers written with leading zeros (``02134``, ``007``): codes, most
    likely, that pandas reads as the numbers they spell, to be used as amounts. Judged on the file's
    first rows, read once more as text."""
    import pandas as pd

    numeric = [i for i, (name, dtype) in enumerate(frame.dtypes.items())
               if name != target and pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)]
    if not numeric:
        return
    try:
        written = pd.read_csv(path, usecols=numeric, dtype=str, nrows=10_000, keep_default_na=False,
                              index_col=False)
    except (OSError, ValueError):  # read once already: nothing new to say
        return
    for name in written.columns:
        text = written[name].str.strip()
        padded = pd.unique(text[text.str.fullmatch(_PADDED)])
        if len(padded):
            logger.warning(
                "column %r of %s is written with leading zeros (%s), which numbers do not keep: it is "
                "read as the numbers they spell (%s) and used as an amount, its order and size counting. "
                "If it is a code, not an amount, read it as text in a grids file's load_data(), "
                "pd.read_csv(%r, dtype={%r: str}), and it becomes a category (README: Codes written "
                "with leading zeros)", name, path, _examples(padded),
                _examples([int(v) for v in padded]), str(path), name)


def _whole_numbers(y):
    """``y`` as integers when pandas read it as decimals only for its (dropped) missing cells.

    A column of ``1`` and ``0`` with an empty cell is read as ``1.0`` and ``0.0``: without the cast,
    the classes, the predictions and their ``proba_`` columns would be ``1.0``, not ``1``.
    """
    import numpy as np

    values = y.to_numpy()
    if values.dtype.kind != "f" or not np.all(np.abs(values) < 2 ** 53) or np.any(values != np.round(values)):
        return y
    return y.astype(np.int64)


def infer_task(y) -> str:
    """``"classification"`` for text, boolean, categorical or few-valued integer targets.

    A float target with non-integral values, or an integer one with more than
    20 distinct values, is a regression target. ``--task`` overrides this.
    """
    import numpy as np

    values = np.asarray(y)
    if values.dtype.kind in "OUSb" or str(getattr(y, "dtype", "")) == "category":
        return "classification"
    if values.dtype.kind == "f" and not np.all(np.isfinite(values) & (values == np.round(values))):
        return "regression"
    return "classification" if len(np.unique(values)) <= 20 else "regression"


def _target_name(dataset: Dataset) -> str:
    """The target as messages name it: its column, or the y of where the data came from."""
    return f"target {dataset.target!r}" if dataset.target else f"y ({dataset.source})"


def _inferred_task(dataset: Dataset, task: str) -> str:
    """One line saying what the task inferred from the target's values was inferred from, and how
    to search the other one: 20 visit counts would be 20 classes, silently."""
    import numpy as np
    import pandas as pd

    what = _target_name(dataset)
    values = np.asarray(dataset.y).ravel()
    distinct = len(pd.unique(values))
    if values.dtype.kind in "iu" or (values.dtype.kind == "f" and task == "classification"):
        kind = f"{distinct} distinct integers"
    elif values.dtype.kind == "f":
        kind = f"{distinct} distinct numbers"
    else:
        kind = f"{distinct} distinct values"
    other = ("give --task regression if it is a quantity" if task == "classification" else
             "give --task classification if they are labels")
    if task == "classification" and values.dtype.kind not in "iuf":
        return f"{what}: {kind}, searched as classification"  # text or booleans: classes only
    if task == "regression" and values.dtype.kind == "f" and not np.all(values == np.round(values)):
        return f"{what}: {kind}, searched as regression"  # fractions: a quantity only
    return f"{what}: {kind}, searched as {task}; {other}"


def _warn_near_labels(dataset: Dataset) -> None:
    """Warn of text labels that differ only in case or surrounding spaces ('yes', 'yes ', 'Yes'): each
    is a class of its own, most likely by a typing slip. The labels are kept as they are."""
    import numpy as np
    import pandas as pd

    labels = pd.Series([v for v in pd.unique(pd.Series(np.asarray(dataset.y).ravel())) if isinstance(v, str)],
                       dtype=object)
    groups = [sorted(g) for _, g in labels.groupby(labels.str.strip().str.casefold()) if len(g) > 1]
    if groups:
        logger.warning("%s has labels that differ only in case or surrounding spaces (%s), searched as "
                       "separate classes; if each group is one class, clean the column (strip the spaces, "
                       "write each label one way)", _target_name(dataset),
                       "; ".join(", ".join(map(repr, g)) for g in groups[:5]) + ("; ..." if len(groups) > 5 else ""))


def families_task(families: dict) -> str | None:
    """The task every family's estimator is made for, as GridSearchCV sees it; None if mixed.

    GridSearchCV stratifies its folds when the estimator is a classifier
    (:func:`sklearn.base.is_classifier`), whatever the target looks like; a
    run whose families all agree takes its task from them.
    """
    from sklearn.base import is_classifier, is_regressor

    kinds = {"classification" if is_classifier(est) else "regression" if is_regressor(est) else None
             for est, _ in families.values()}
    return kinds.pop() if len(kinds) == 1 else None


def _examples(values, n: int = 3) -> str:
    import numpy as np

    items = [v.item() if isinstance(v, np.generic) else v for v in values[:n]]
    shown = [f"{v:.4g}" if isinstance(v, float) else repr(v) for v in items]
    return ", ".join(shown) + (", ..." if len(values) > n else "")


_ESTIMATOR_KIND = {"classification": "classifiers", "regression": "regressors"}
_SCORERS = {"classification": "accuracy, balanced_accuracy, f1_macro, roc_auc_ovr, neg_log_loss",
            "regression": "r2, neg_mean_squared_error, neg_mean_absolute_error"}


def check_data(dataset: Dataset, task: str, cv: int, scoring: str | None, why: str) -> None:
    """Refuse, before any work and before the state file is touched, data no family can search.

    ``why`` says where ``task`` came from (for the messages): ``--task``, the
    grids, or the target.
    """
    import numpy as np
    import pandas as pd
    from sklearn.utils.multiclass import type_of_target

    X, y = dataset.X, dataset.y
    what = _target_name(dataset)
    n = _n_rows(y)
    if n == 0:
        raise SearchError(f"{dataset.source} has no rows to search on")
    shape = getattr(X, "shape", None)  # a table; not a list of texts or of token lists
    if shape is not None and len(shape) == 2 and shape[1] == 0:
        raise SearchError(
            f"{dataset.source} has no feature columns besides the {what}; give a table with the "
            "columns to predict from"
        )
    values = np.asarray(y)
    if values.ndim > 2:
        raise SearchError(f"{what} has {values.ndim} dimensions; a target is one value (or one row) per sample")
    missing = int(pd.isna(values).sum()) if values.dtype.kind in "fcOM" else 0
    if missing:
        raise SearchError(
            f"{what} is missing (NaN or None) in {missing} of its {n} rows; drop those rows in load_data()"
        )
    if task == "regression" and values.dtype.kind not in "biuf":
        try:
            values.astype(float)
        except (TypeError, ValueError):
            numbers = _numbers_in_text(pd.Series(values.ravel()))
            raise SearchError(
                f"{why} asks for a regression, but {what} holds text "
                f"({_examples(pd.unique(values.ravel()))}), and a regression needs numbers; "
                + (f"{numbers}, so that they are read as numbers" if numbers else
                   "to predict its values as classes use --task classification (with classification families)")
            ) from None
    if task == "regression" and values.ndim == 1 and len(pd.unique(values)) == 1:
        raise SearchError(
            f"{what} has the same value ({_examples(values[:1])}) in all {n} rows: there is nothing to "
            "predict (every fit would score perfectly); choose another --target"
        )
    inferred = why == "the target's values"
    if task == "classification" and inferred and values.dtype.kind not in "biufc":
        numbers = _numbers_in_text(pd.Series(values.ravel()))
        if numbers:
            distinct = pd.unique(values.ravel())
            raise SearchError(
                f"{what} holds numbers written as text ({_examples(distinct)}), so it would be read as "
                f"{len(distinct)} classes; if it is a quantity, {numbers}; if these are labels, add "
                "--task classification"
            )
    if task == "classification":
        try:
            kind = type_of_target(values)
        except ValueError as exc:
            raise SearchError(f"{what} cannot be used as classes: {exc}") from None
        if kind.startswith("continuous"):
            raise SearchError(
                f"{why} asks for a classification, but {what} holds continuous values "
                f"({_examples(pd.unique(values.ravel()))}), and a classifier needs classes; "
                "use --task regression (with regression families)"
            )
        if kind in ("binary", "multiclass"):  # what GridSearchCV stratifies by
            labels, counts = np.unique(values, return_counts=True)
            if len(labels) < 2:
                raise SearchError(
                    f"{what} has a single class ({_examples(labels)}) in all {n} rows: there is nothing "
                    "to predict (a classifier needs at least two classes to tell apart); choose another --target"
                )
            if counts.max() < cv:
                largest = labels[counts.argmax()]
                if inferred and values.dtype.kind in "iuf":
                    hint = (f"; {what} holds numbers, read as classes (at most 20 distinct whole "
                            "numbers): if it is a quantity, add --task regression")
                elif values.dtype.kind in "iuf" and len(labels) * 2 > n:
                    hint = (f"; {what} holds {len(labels)} distinct numbers in {n} rows: if it is a quantity "
                            "(a price, a count), search it with regression families (--grids regression)")
                elif len(labels) == n:
                    hint = (f"; every row has its own value of {what}, so it looks like an identifier, "
                            "not something to predict: choose another --target")
                else:
                    hint = ""
                fix = f"use --cv {counts.max()} or fewer" if counts.max() >= 2 else "no --cv can split it"
                raise SearchError(
                    f"--cv {cv}: the folds are stratified by class, and no class of {what} has "
                    f"{cv} rows (the largest, {_examples([largest])}, has {counts.max()}); {fix}{hint}"
                )
            small = counts < cv
            rare = int(counts[small].sum())
            if rare * 2 > n and why != "--task classification":
                hint = ("if it is a quantity (a price, a count), search it with regression families "
                        "(--grids regression)" if values.dtype.kind in "iuf" else
                        "merge the rare classes, or choose another --target")
                raise SearchError(
                    f"{rare} of the {n} rows of {what} are in classes of fewer than {cv} rows "
                    f"({int(small.sum())} of its {len(labels)} classes, e.g. {_examples(labels[small])}): "
                    f"too few for {cv}-fold cross-validation to train and test on each; {hint} (to search "
                    "them as classes all the same, add --task classification)"
                )
    if n < cv:
        raise SearchError(f"--cv {cv}: the data has only {n} rows, fewer than the folds; use --cv {n} or fewer")
    _check_scorer(scoring, task, values, what, cv)


# A currency sign or code, or a percent sign, before or after a number: "$151,000", "12 %", "300 EUR".
_UNITS = r"^\s*(?:[$€£¥₹]|[A-Z]{3}\s)\s*|\s*(?:[$€£¥₹%]|\s[A-Z]{3})\s*$"


# What stands for a missing value in files pandas does not read as missing (it does NA, n/a, null, ...).
_MISSING_MARKS = r"[?.*_/-]+|missing|unknown|none|empty|nil"


def _numbers_in_text(values, sample=None) -> str | None:
    """How to write text values that are nearly all numbers so that pandas reads numbers; None if
    they are not numbers (nine in ten of the values at least, thousands separators or decimal commas
    aside). Judged on a sample of a big table's rows (``sample``: :func:`_text_sample` of ``values``,
    if made already); the values that are no numbers, on all."""
    import pandas as pd

    present = values.dropna()
    if len(present) == 0:
        return None
    sample = _text_sample(present) if sample is None else sample

    def plain(t):
        return t.str.replace(r"(?<=\d),(?=\d{3}\b)", "", regex=True)

    for how, clean in (("", None), (" without thousands separators (151000, not 151,000)", plain),
                       (" with a decimal point (1588.65, not 1588,65)",
                        lambda t: t.str.replace(",", ".", regex=False)),
                       (" without currency signs, units or thousands separators (151000, not $151,000)",
                        lambda t: plain(t.str.replace(_UNITS, "", regex=True)))):
        numbers = pd.to_numeric(clean(sample) if clean else sample, errors="coerce").notna()
        share = numbers.mean()
        # nearly all numbers; or mostly, the rest marking missing values (?, -, missing)
        if share >= 0.9 or (share >= 0.5 and sample[~numbers].str.fullmatch(_MISSING_MARKS, case=False).all()):
            text = present.astype(str).str.strip()
            parsed = pd.to_numeric(clean(text) if clean else text, errors="coerce").notna()
            bad = pd.unique(text[~parsed])
            others = f" and leave missing values' cells empty (not {_examples(bad)})" if len(bad) else ""
            return f"write them{how or ' as plain numbers'}{others}"
    return None


def check_columns(X, source: str, builtin: bool) -> None:
    """Warn of feature columns that would cost much and predict nothing, or be read other than meant;
    refuse infinite values the built-in families cannot fit (for a grids file of yours, a warning)."""
    import numpy as np
    import pandas as pd

    if not isinstance(X, pd.DataFrame):  # an array of numbers is checked; anything else is the grids' own
        if isinstance(X, np.ndarray) and X.dtype.kind == "f" and X.ndim == 2 and np.isinf(X).any():
            rows, cols = np.nonzero(np.isinf(X))
            _infinite(f"X ({source}) holds infinity in {len(rows)} place(s), the first in column {cols[0]} "
                      f"of row {rows[0] + 1}", builtin)
        return
    n, text = len(X), set(text_columns(X))
    for column in X.columns:
        values = X[column]
        name = f"column {column!r} of {source}"
        if str(column) not in text:
            if not pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
                continue  # dates, booleans
            infinite = np.isinf(values.to_numpy(dtype=float, na_value=np.nan))
            if infinite.any():
                _infinite(f"{name} holds infinity in {infinite.sum()} row(s), the first row "
                          f"{np.flatnonzero(infinite)[0] + 1}", builtin)
            if str(column).startswith("Unnamed: ") and values.is_monotonic_increasing and values.is_unique:
                logger.warning("%s looks like a row index saved with the table (pandas' to_csv writes one "
                               "unless index=False): it is used as a feature, and can leak how the rows "
                               "were ordered; remove it from the file", name)
            elif (n >= 20 and _identifier_name(column) and pd.api.types.is_integer_dtype(values.dtype)
                  and values.is_unique):
                logger.warning("%s holds a different number in every row and is named like an identifier: "
                               "it is used as an amount, which predicts nothing (or leaks how the rows were "
                               "numbered); remove it from the file if it is an identifier", name)
            continue
        distinct = values.nunique()
        sample = _text_sample(values)  # what the values look like, for the three checks below
        numbers = None if _zero_padded(sample) else _numbers_in_text(values, sample)
        if numbers:
            logger.warning("%s holds numbers, but also text, so each distinct value is read as a category "
                           "(a number never seen in training is then ignored); %s", name, numbers)
        elif distinct > 1 and _dates(sample):
            logger.warning("%s holds dates, each read as a category of its own (%d of them; a date never seen "
                           "in training is then ignored): derive numbers from it (year, month, day of week: "
                           "pd.to_datetime(X[%r]).dt.month, ...) in a grids file's load_data(), or remove it "
                           "from the file", name, distinct, column)
        elif n >= 20 and distinct == values.notna().sum():
            logger.warning("%s holds a different value in every row, like an identifier: it predicts "
                           "nothing, and one-hot encoded it becomes a column per row (slow, memory-"
                           "hungry); remove it from the file", name)
        elif distinct > 100 and distinct > n / 10:
            logger.warning("%s holds %d distinct values: one-hot encoded, it becomes as many columns (slow, "
                           "memory-hungry); remove it, or group its values, if it is not needed", name,
                           distinct)


def _identifier_name(column) -> bool:
    """Whether a column's name says it numbers the rows: id, ID, customer_id, CustomerID, row-id."""
    return re.search(r"(^|[^a-zA-Z])(id|ID|Id)$|[a-z](ID|Id)$", str(column).strip()) is not None


def _dates(sample) -> bool:
    """Whether text values are dates (or times) pandas can parse, nine in ten at least of a
    :func:`_text_sample` of them."""
    import pandas as pd

    if not sample.str.match(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}").mean() >= 0.9:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not infer format": parsed one by one, as meant
        return pd.to_datetime(sample[:1000], errors="coerce", format="mixed").notna().mean() >= 0.9


def _infinite(what: str, builtin: bool) -> None:
    if builtin:
        raise SearchError(f"{what}; scikit-learn's estimators cannot fit infinite values: replace them "
                          "(or leave those cells empty, as missing values)")
    logger.warning("%s; most scikit-learn estimators refuse infinite values, and every fit that does "
                   "would fail", what)


def _check_scorer(scoring: str | None, task: str, y, what: str, cv: int = 5) -> None:
    """A ``--scoring`` that cannot score this task's predictions at all fails here, not in every fit."""
    if scoring is None:
        return
    import numpy as np
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.metrics import get_scorer

    X = np.zeros((len(y), 1))
    dummy = DummyClassifier() if task == "classification" else DummyRegressor()
    scorer = get_scorer(scoring)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scorer(dummy.fit(X, y), X, y)
    except Exception as exc:
        if task == "classification" and "pos_label" in str(exc):  # f1, precision, recall of labels not 0/1
            from sklearn.metrics import get_scorer_names

            other = (f"{scoring}_macro (each class taken as the positive one in turn, averaged)"
                     if f"{scoring}_macro" in get_scorer_names() else "roc_auc, which needs no positive class")
            raise SearchError(
                f"--scoring {scoring} scores the class 1 as the positive one, and the classes of {what} are "
                f"{_examples(np.unique(y))}: choose --scoring {other}, or make the target 1 for the positive "
                "class and 0 for the other (in the CSV, or in a grids file's load_data())"
            ) from None
        raise SearchError(
            f"--scoring {scoring} cannot score {task} predictions of {what}: "
            f"{type(exc).__name__}: {exc}; choose a {task} scorer, e.g. {_SCORERS[task]}"
        ) from None
    if task == "classification" and getattr(scorer, "_response_method", "predict") != "predict":
        labels, counts = np.unique(y, return_counts=True)
        rare = labels[counts < cv]
        if len(rare):
            logger.warning("class%s %s of %s %s fewer rows than --cv %d: some test folds lack %s, and "
                           "--scoring %s, which scores the probability of every class, fails on those "
                           "folds (NaN); a candidate with a failed fold has no mean score. Use a smaller "
                           "--cv, remove the rare classes, or score with e.g. accuracy or f1_macro",
                           "es" if len(rare) > 1 else "", _examples(rare), what,
                           "have" if len(rare) > 1 else "has", cv, "them" if len(rare) > 1 else "it",
                           scoring)
    metric = getattr(scorer, "_score_func", None)
    if task == "classification" and getattr(metric, "__module__", "").endswith("._regression"):
        logger.warning("--scoring %s is a regression metric: it will score the class labels as numbers "
                       "(a distance between classes); for classification choose e.g. %s",
                       scoring, _SCORERS[task])


# ------------------------------------------------------------------- fingerprints


def _canonical(obj, seen: frozenset = frozenset()):
    """A representation of ``obj`` that is equal across processes when ``obj`` is.

    Estimators are described by class and parameters, functions by module,
    name and code, arrays by dtype, shape and a hash of their bytes. Memory
    addresses, which ``repr`` shows for many objects, never enter it. The
    user's own functions and classes (a grids file and the modules beside it,
    see :func:`grids.is_user_module`) are described by what they do: their
    code with the defaults, closures and globals it reads, so that editing a
    constant or a helper they use is a change. ``seen`` stops at cycles.
    """
    import numpy as np

    if hasattr(obj, "get_params") and not isinstance(obj, type):
        params = obj.get_params(deep=False)
        kind = _canonical(type(obj), seen) if _is_users(type(obj)) else _qualname(type(obj))
        return (kind, tuple((k, _canonical(params[k], seen)) for k in sorted(params)))
    if isinstance(obj, dict):
        return ("dict", tuple((repr(k), _canonical(obj[k], seen)) for k in sorted(obj, key=repr)))
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(_canonical(v, seen) for v in obj))
    if isinstance(obj, (set, frozenset)):  # sorted: a set's order changes with the hash seed
        return (type(obj).__name__, tuple(sorted(repr(_canonical(v, seen)) for v in obj)))
    if isinstance(obj, np.ndarray):
        import joblib

        return ("ndarray", str(obj.dtype), obj.shape, joblib.hash(obj))
    if isinstance(obj, functools.partial):
        return ("partial", _canonical(obj.func, seen), _canonical(obj.args, seen),
                _canonical(obj.keywords, seen))
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        code = getattr(obj, "__code__", None)
        body = None if code is None else _canonical(code)
        described = ("function", getattr(obj, "__module__", None), obj.__qualname__, body)
        if code is None or not _is_users(obj) or id(obj) in seen:
            return described
        described += (_reads(obj, code, seen | {id(obj)}),)
        _part(obj.__module__, obj.__qualname__, described)
        return described
    if isinstance(obj, types.CodeType):  # nested code (comprehensions, inner functions): no addresses
        return ("code", obj.co_code, obj.co_names, tuple(_canonical(c) for c in obj.co_consts))
    if isinstance(obj, type):
        if not _is_users(obj) or id(obj) in seen:
            return ("type", _qualname(obj))
        seen = seen | {id(obj)}
        members = tuple((k, _value(getattr(v, "__func__", v), seen)) for k, v in sorted(vars(obj).items())
                        if not (k.startswith("__") and k.endswith("__")) or k == "__init__")
        bases = tuple(_canonical(b, seen) for b in obj.__bases__)
        described = ("type", _qualname(obj), bases, members)
        _part(obj.__module__, obj.__qualname__, described)
        return described
    if isinstance(obj, types.ModuleType):
        return ("module", obj.__name__)
    if isinstance(obj, property):
        return ("property", _canonical(obj.fget, seen), _canonical(obj.fset, seen))
    if isinstance(obj, float) and math.isnan(obj):
        return ("float", "nan")
    if obj is None or isinstance(obj, (str, bytes, bool, numbers.Number)):
        return (type(obj).__name__, repr(obj))
    text = repr(obj)
    if re.search(r" at 0x[0-9a-f]+", text):
        import joblib

        try:
            return (_qualname(type(obj)), joblib.hash(obj))
        except Exception:
            return (_qualname(type(obj)), re.sub(r" at 0x[0-9a-f]+", "", text))
    return (_qualname(type(obj)), text)


# The modules whose code fingerprints describe by what it does, when another process (a dask
# worker) must describe objects as the runner does, whatever its own installation says.
_USERS_MODULES: contextvars.ContextVar[frozenset | None] = contextvars.ContextVar("users_modules",
                                                                                   default=None)


def _is_users(obj) -> bool:
    return _is_users_module(getattr(obj, "__module__", None))


def _is_users_module(module: str | None) -> bool:
    given = _USERS_MODULES.get()
    if given is not None:
        return module in given
    from grids import is_user_module

    return is_user_module(module)


def users_modules() -> frozenset:
    """The loaded modules that are the user's own code (see :func:`grids.is_user_module`)."""
    from grids import is_user_module

    return frozenset(name for name in list(sys.modules) if is_user_module(name))


def code_fingerprints(blobs: list[bytes], users: frozenset) -> list[str]:
    """The fingerprints of the pickled estimators ``blobs`` as this process loads them, the
    modules ``users`` counting as the user's code: another process gets the same ones only
    when it runs the same code (a dask worker keeps the version of a module it first imported)."""
    token = _USERS_MODULES.set(users)
    try:
        return [fingerprint(_worker_estimator(blob)) for blob in blobs]
    finally:
        _USERS_MODULES.reset(token)


def fingerprint_and_parts(obj) -> tuple[str, dict[str, str]]:
    """:func:`fingerprint` of ``obj``, and the pieces of the user's own code it covers, each with
    its own fingerprint: functions and classes (named ``module:qualname``) and the module-level
    values they read (``module:NAME``).

    Kept beside the family's fingerprint, the pieces say which one an edit changed. A
    function's fingerprint covers what it reads, so a changed constant changes the functions
    that read it as well.
    """
    parts: dict[str, str] = {}
    token = _CODE_PARTS.set(parts)
    try:
        return fingerprint(obj), parts
    finally:
        _CODE_PARTS.reset(token)


# Where _canonical records the pieces of user code it describes (None: it does not).
_CODE_PARTS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("code_parts", default=None)


def _part(module, name: str, described) -> None:
    parts = _CODE_PARTS.get()
    if parts is not None:
        parts[f"{module}:{name}"] = hashlib.sha256(repr(described).encode()).hexdigest()[:16]


def _changed_parts(then: dict, now: dict) -> str:
    """The pieces of code (see :func:`fingerprint_and_parts`) that differ, named as the user wrote them."""
    names = sorted(k for k in then.keys() | now.keys() if then.get(k) != now.get(k))
    if not names:
        return ""
    where = collections.defaultdict(list)
    for name in names:
        module, _, qualname = name.partition(":")
        file = getattr(sys.modules.get(module), "__file__", None)
        shown = os.path.basename(file) if file else module
        where[shown].append(qualname + (" (gone)" if name not in now else " (new)" if name not in then else ""))
    return "; ".join(f"{', '.join(items)} in {shown}" for shown, items in where.items())


def _names_in(code: types.CodeType) -> set[str]:
    """The global and attribute names ``code`` uses, its nested code's (comprehensions, inner
    functions) included."""
    names, stack = set(), [code]
    while stack:
        current = stack.pop()
        names.update(current.co_names)
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    return names


def _reads(function, code: types.CodeType, seen: frozenset) -> tuple:
    """What a user's function reads besides its code: defaults, closure cells, globals."""
    names = _names_in(code)
    namespace = getattr(function, "__globals__", {})
    cells = []
    for cell in getattr(function, "__closure__", None) or ():
        try:
            cells.append(_value(cell.cell_contents, seen))
        except ValueError:  # an empty cell: a variable not yet bound
            cells.append(None)
    read = tuple((n, _value(namespace[n], seen)) for n in sorted(names) if n in namespace)
    module = namespace.get("__name__")
    if _is_users_module(module):  # its constants and tables (not a library's that wraps it)
        for n, described in read:
            value = namespace[n]
            if not (isinstance(value, (types.FunctionType, types.ModuleType, functools.partial, type))
                    or hasattr(value, "get_params")):
                _part(module, n, described)
    return (
        _value(getattr(function, "__defaults__", None), seen),
        _value(getattr(function, "__kwdefaults__", None), seen),
        tuple(cells),
        read,
    )


def _value(obj, seen: frozenset):
    """A value the user's code reads (a constant, a table, a settings object), equal across processes.

    Unlike ``repr`` it covers a whole table, and unlike a pickle it does not
    depend on the order of a set; a structure that refers back to itself ends
    the walk there. What cannot be described is described by its type.
    """
    if obj is None or isinstance(obj, (str, bytes, bool, numbers.Number)):
        return _canonical(obj)
    if isinstance(obj, (types.FunctionType, types.MethodType, types.ModuleType, functools.partial, type,
                        property)) or hasattr(obj, "get_params"):
        return _canonical(obj, seen)
    if id(obj) in seen:
        return ("cycle",)
    seen = seen | {id(obj)}
    if isinstance(obj, dict):
        items = sorted((repr(_value(k, seen)), _value(v, seen)) for k, v in obj.items())
        return ("dict", tuple(items))
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(_value(v, seen) for v in obj))
    if isinstance(obj, (set, frozenset)):
        return (type(obj).__name__, tuple(sorted(repr(_value(v, seen)) for v in obj)))
    if hasattr(obj, "__dict__") and not hasattr(obj, "__array__") and not hasattr(obj, "dtypes"):
        return (_qualname(type(obj)), _value(vars(obj), seen))
    import joblib

    try:
        return (_qualname(type(obj)), joblib.hash(obj))  # arrays and tables: their whole contents
    except Exception:
        return (_qualname(type(obj)),)


def _stable_repr(obj) -> str:
    """``repr(obj)`` (kept as is if already a string) without memory addresses, which change every run."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", obj if isinstance(obj, str) else repr(obj))


def _qualname(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def fingerprint(obj) -> str:
    """A short hex digest of ``_canonical(obj)``."""
    return hashlib.sha256(repr(_canonical(obj)).encode()).hexdigest()[:16]


def candidate_key(params: dict) -> str:
    """The content key of one candidate: a hash of its canonical parameters."""
    return fingerprint(params)


def _distinct(keys: list[str]) -> list[str]:
    """Candidate keys made distinct: a candidate the grid holds twice is searched twice, as
    GridSearchCV does (its second copy is ``KEY#2``), not left for ever waiting for itself."""
    seen = collections.Counter()
    distinct = []
    for key in keys:
        seen[key] += 1
        distinct.append(key if seen[key] == 1 else f"{key}#{seen[key]}")
    return distinct


# ------------------------------------------------------------ worker-side functions
# These run in worker processes (loky or dask). They receive the data once per
# worker (a file path for loky, a scattered future for dask) and keep it.

_WORKER_DATA: dict = {}
_WORKER_ESTIMATORS: dict = {}


def _watch_runner(runner_pid: int) -> None:
    """Exit as soon as the runner that started this worker is gone.

    A SIGKILLed runner cannot tell its workers to stop; without this they would
    go on computing for nobody. Workers forked from the fork server are its
    children, not the runner's, so the runner itself is watched, through a
    pidfd where the kernel has them (no polling, no pid reuse). This thread
    cannot run while a fit holds the GIL; the fork server then kills them
    (:func:`_serve_runner`).
    """

    def gone():  # the runner left its copy of the data behind: the first worker to notice removes it
        _remove_data_of(runner_pid)
        os._exit(1)

    def watch():
        try:
            fd = os.pidfd_open(runner_pid)
        except ProcessLookupError:
            gone()
        except (AttributeError, OSError):  # no pidfd here: poll
            while _process_alive(runner_pid):
                time.sleep(0.2)
            gone()
        import select

        select.select([fd], [], [])  # readable once the runner has exited
        gone()

    threading.Thread(target=watch, name="search-runner-watch", daemon=True).start()


def _init_worker(runner_pid: int, env: dict) -> None:
    """Worker initializer: watch the parent and use this worker's share of threads.

    loky passes ``env`` to the workers it starts itself; a worker forked from
    the fork server inherited the server's environment, so its thread pools
    (OpenMP, BLAS) are limited here with threadpoolctl as well, for the
    libraries already loaded, and ``env`` is set for those loaded later.
    """
    _watch_runner(runner_pid)
    from multiprocessing import forkserver

    server = forkserver._forkserver
    if server._forkserver_alive_fd is not None:  # forked from the fork server: see _serve_runner
        os.close(server._forkserver_alive_fd)
        server._forkserver_alive_fd = None
    # loky replaces a worker whose memory grew by 300 MB as "leaking", when psutil is installed:
    # these keep the data and transformed folds on purpose, and a new worker loads them again
    with contextlib.suppress(ImportError, AttributeError):
        from joblib.externals.loky import process_executor

        process_executor._USE_PSUTIL = False
    gc.freeze()  # the modules inherited from the fork server: never walked by the collector
    os.environ.update(env)
    from threadpoolctl import threadpool_limits

    limits = {"openmp": env["OMP_NUM_THREADS"], "blas": env["OPENBLAS_NUM_THREADS"]}
    with contextlib.suppress(ValueError):
        threadpool_limits(limits={api: int(n) for api, n in limits.items()})


def _worker_data(ref):
    if not isinstance(ref, str):  # dask: the scattered (X, y, test_indices) itself
        return ref
    if ref not in _WORKER_DATA:
        import joblib

        _WORKER_DATA.clear()
        _WORKER_DATA[ref] = joblib.load(ref, mmap_mode="r")
    return _WORKER_DATA[ref]


def _worker_estimator(blob: bytes):
    key = hashlib.sha256(blob).digest()
    if key not in _WORKER_ESTIMATORS:
        import cloudpickle

        if len(_WORKER_ESTIMATORS) > 64:
            _WORKER_ESTIMATORS.clear()
        _WORKER_ESTIMATORS[key] = cloudpickle.loads(blob)
    return _WORKER_ESTIMATORS[key]


class WorkerEnvironmentError(Exception):
    """A worker could not load a task's estimator, which the runner loads: the worker's environment
    lacks something of the runner's (a module of yours on PYTHONPATH, a package). Not a failure of
    the fit, so never recorded as one: the run stops, naming it. ``args``: the error, the worker."""


def _task_estimator(blob: bytes):
    """The task's estimator, or :class:`WorkerEnvironmentError` when this worker cannot load it."""
    try:
        return _worker_estimator(blob)
    except Exception as exc:
        where = f"process {os.getpid()} on {socket.gethostname()}"
        if "distributed" in sys.modules:
            with contextlib.suppress(Exception):
                from distributed import get_worker

                where = get_worker().address
        raise WorkerEnvironmentError(exc, where) from exc


def _train_test(test_indices, fold: int, n_samples: int):
    import numpy as np

    test = np.asarray(test_indices[fold])
    mask = np.ones(n_samples, dtype=bool)
    mask[test] = False
    return np.flatnonzero(mask), test


def _shared_preprocessing(estimator, params: dict):
    """A pipeline's steps before the last, when every searched parameter belongs to the last step.

    Candidates that differ only there share the preprocessing fitted on a
    fold, which the workers then fit once per fold instead of once per
    candidate and fold. None for anything else.
    """
    from sklearn.pipeline import Pipeline

    if type(estimator) is not Pipeline or len(estimator.steps) < 2 or not params:
        return None
    last = estimator.steps[-1][0]
    if not all(name.startswith(last + "__") for name in params):
        return None
    return estimator[:-1]


# (data, name): (pair, bytes in memory); the data is its file (local) or its scattered key (dask)
_WORKER_PREPROCESSED: collections.OrderedDict = collections.OrderedDict()
_PREPROCESSED_LOCK = threading.Lock()
_PREPROCESSED_IN_MEMORY = 512 * 2**20  # bytes of transformed folds a worker keeps in memory (dask, no disk)
_PREPROCESSED_LARGEST = 2**30  # a fold transformed to more bytes than this is not kept


def _nbytes(obj) -> int:
    if hasattr(obj, "nbytes"):  # arrays
        return int(obj.nbytes)
    if hasattr(obj, "data") and hasattr(obj.data, "nbytes"):  # sparse matrices: data, indices
        return 2 * int(obj.data.nbytes)
    return sys.getsizeof(obj)  # data frames report their memory


def preprocessed_name(estimator_blob: bytes, fold: int | str) -> str:
    """The file (beside the shared data) that holds a fold transformed by a family's preprocessing."""
    return f"preprocessed-{hashlib.sha256(estimator_blob).hexdigest()[:16]}-{fold}.joblib"


def _preprocessed(data_ref, estimator_blob: bytes, fold: int, prefix, X_train, y_train, X_test):
    """``prefix`` fitted on the fold's training rows: the training and test rows transformed.

    For local workers, kept in a file beside the shared data: every task maps
    it copy-on-write, so the workers share its pages, and a last step that
    changes its input in place (``copy=False``) changes its own copy only.
    Kept in this worker's memory where there is no such file (dask, a full
    disk). Each fold is transformed about once per search, whichever worker
    gets it.
    """
    import joblib

    name = preprocessed_name(estimator_blob, fold)
    path = os.path.join(os.path.dirname(data_ref), name) if isinstance(data_ref, str) else None
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            return joblib.load(path, mmap_mode="c")
    # A dask worker outlives runs: the same family and fold of another run's data is another entry.
    # Data given as itself (a library caller's tuple) has no name to keep its folds under.
    of = data_ref if isinstance(data_ref, str) else getattr(data_ref, "key", None)
    cached = None if of is None else (of, name)
    with _PREPROCESSED_LOCK:  # dask workers may run several tasks at once, in threads
        if cached in _WORKER_PREPROCESSED:
            _WORKER_PREPROCESSED.move_to_end(cached)
            return _private(_WORKER_PREPROCESSED[cached][0])
    pair = (prefix.fit_transform(X_train, y_train), _transform(prefix, X_test))
    size = sum(map(_nbytes, pair))
    if size > _PREPROCESSED_LARGEST or cached is None:
        return pair  # not kept: nobody else sees these
    if path is not None:  # written whole, then renamed: another worker sees all of it or nothing
        temp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            joblib.dump(pair, temp)
            os.replace(temp, path)
            del pair  # this task too takes the file's pages, not a copy beside them
            return joblib.load(path, mmap_mode="c")
        except OSError:  # a full disk costs the sharing between workers, never the fit
            with contextlib.suppress(OSError):
                os.unlink(temp)
    with _PREPROCESSED_LOCK:
        _WORKER_PREPROCESSED[cached] = (pair, size)
        while sum(s for _, s in _WORKER_PREPROCESSED.values()) > _PREPROCESSED_IN_MEMORY:
            _WORKER_PREPROCESSED.popitem(last=False)
    return _private(pair)


def _drop_preprocessed(keep_data: set | None = None, data: str | None = None, prefix: str = "") -> None:
    """Drop this worker's transformed folds: of data not in ``keep_data``, or of ``data`` named ``prefix``*."""
    with _PREPROCESSED_LOCK:
        for key in list(_WORKER_PREPROCESSED):
            of, name = key
            if (keep_data is not None and of not in keep_data) or (of == data and name.startswith(prefix)):
                del _WORKER_PREPROCESSED[key]


def _transform(prefix, X):
    """``prefix.transform(X)`` step by step, as the whole pipeline would transform it.

    Without Pipeline's check that its last step looks fitted: a stateless
    transformer (``fit`` returns self) has no fitted attribute to show, and is
    fitted all the same.
    """
    for _, step in prefix.steps:
        if step is not None and step != "passthrough":
            X = step.transform(X)
    return X


def _private(pair):
    """Copies of kept transformed rows: a last step that changes its input in place (``copy=False``)
    must not change them for the next candidate. A copy costs little next to the preprocessing."""
    import numpy as np

    def private(rows):
        if isinstance(rows, np.ndarray):
            return np.array(rows)  # memory-mapped or not: a writeable array of this task's own
        return rows.copy() if hasattr(rows, "copy") else rows  # data frames, sparse matrices

    return tuple(map(private, pair))


# scikit-learn's ensembles that a warm start grows to more members exactly as a fit to that size would
# build them (given an integer random_state), and the parameter that counts the members. Forests and
# bagging: each member takes its seed in turn, and a warm start skips the seeds of the members already
# there (bagging's out-of-bag score refuses a warm start: not grown). Gradient boosting: each stage fits
# the residuals of the ones before it, with random draws from a generator the warm start goes on with.
# With early stopping that no longer holds (a fit to more stages stops where it did, a grown one stops
# later): gradient boosting with n_iter_no_change is not grown, and a histogram gradient boosting that
# used early stopping is fitted whole (see fit_fold).
_GROWN = {
    **{f"sklearn.ensemble._forest.{name}": "n_estimators" for name in (
        "RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor")},
    **{f"sklearn.ensemble._bagging.{name}": "n_estimators" for name in ("BaggingClassifier", "BaggingRegressor")},
    **{f"sklearn.ensemble._gb.{name}": "n_estimators" for name in (
        "GradientBoostingClassifier", "GradientBoostingRegressor")},
    **{f"sklearn.ensemble._hist_gradient_boosting.gradient_boosting.{name}": "max_iter" for name in (
        "HistGradientBoostingClassifier", "HistGradientBoostingRegressor")},
}
_GROWN_SIZES = frozenset(_GROWN.values())


def grown_size(estimator, params: dict) -> str | None:
    """The name in ``params`` of the ensemble's size, when its ensembles can be grown one from another.

    That is when ``estimator`` set to ``params`` is one of scikit-learn's
    ensembles in :data:`_GROWN` (forests, bagging and gradient boosting, by
    exact class), or a pipeline ending in one, with an integer
    ``random_state`` (with None every fit draws other members anyway), no
    early stopping or bagging's out-of-bag score fixed by its parameters, and
    a positive integer size (``n_estimators``, or ``max_iter`` for histogram
    gradient boosting) taken from ``params``.
    None otherwise, and for anything that fails to set.
    """
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    if not any(k.rpartition("__")[2] in _GROWN_SIZES for k in params):
        return None
    try:
        estimator = clone(estimator).set_params(**clone(params, safe=False))
    except Exception:
        return None
    ensemble, prefix = estimator, ""
    if type(estimator) is Pipeline:
        last, ensemble = estimator.steps[-1]
        prefix = f"{last}__"
    kind = _qualname(type(ensemble))
    if kind not in _GROWN:
        return None
    name = prefix + _GROWN[kind]
    size, seed = params.get(name), ensemble.random_state
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in (size, seed)) or size < 1:
        return None
    if kind.startswith("sklearn.ensemble._gb.") and ensemble.n_iter_no_change is not None:
        return None  # stops early
    if kind.startswith("sklearn.ensemble._hist_gradient_boosting.") and ensemble.early_stopping is True:
        return None  # stops early ("auto": see fit_fold)
    if kind.startswith("sklearn.ensemble._bagging.") and ensemble.oob_score:
        return None  # refuses to warm start (forests do not)
    return name


def growth_chains(estimator, candidates: list[dict]) -> list[list[int]]:
    """The candidates (indices) a worker fits together on a fold, in grid order of each group's first.

    Candidates that differ only in their ensemble's size (see
    :func:`grown_size`) are one group, smallest first: a worker fits the
    smallest ensemble and grows it to the others. Every other candidate is a
    group of its own, and so are ensembles whose sizes repeat.
    """
    groups: dict = {}
    for i, params in enumerate(candidates):
        name = grown_size(estimator, params)
        key = (name, candidate_key({k: v for k, v in params.items() if k != name})) if name else i
        groups.setdefault(key, []).append(i)
    chains = []
    for key, members in groups.items():
        sizes = {candidates[i][key[0]]: i for i in members} if isinstance(key, tuple) else {}
        if len(sizes) == len(members) > 1:
            chains.append([sizes[n] for n in sorted(sizes)])
        else:
            chains.extend([i] for i in members)
    return chains


def _stopped_early(model) -> bool:
    """Whether a fitted model (or its pipeline's last step) used early stopping: then it cannot be grown."""
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    return bool(getattr(final, "do_early_stopping_", False))


_CAUGHT = threading.local()  # .sink: a Counter of the warnings a task's code raised in this thread
_GROWTH_NOISE = "class_weight presets"  # about warm_start, which growing sets, not the user


def _show_warning(message, category, filename, lineno, file=None, line=None):
    sink = getattr(_CAUGHT, "sink", None)
    if sink is None:
        return _show_warning.shown(message, category, filename, lineno, file, line)
    sink[(category.__name__, " ".join(str(message).split()))] += 1


@contextlib.contextmanager
def _warnings_caught(result: dict):
    """Keep the warnings raised in this block (this thread only) in ``result["warnings"]``.

    A worker's warnings, printed by the worker, would reach the terminal raw
    (file and line), once per fit, through the progress bar and past ``-q``;
    the runner reports each once instead (:meth:`_Runner._report_warnings`).
    The filters are left as they are (a dask worker runs tasks in threads),
    so a warning shown once per place is caught once per place.
    """
    if warnings.showwarning is not _show_warning:
        _show_warning.shown = warnings.showwarning
        warnings.showwarning = _show_warning
    _CAUGHT.sink = sink = collections.Counter()
    try:
        yield
    finally:
        _CAUGHT.sink = None
        result["warnings"] = [(*key, n) for key, n in sink.items()]


def fit_fold(data_ref, estimator_blob: bytes, candidates: list[dict], fold: int, scoring) -> list[dict]:
    """Fit candidates on one training fold and score each on the test fold; one result per candidate.

    Mirrors what GridSearchCV does for one (candidate, split) pair, with
    ``error_score=np.nan``: a failing fit or scorer gives NaN and its traceback.
    A pipeline whose searched parameters all belong to its last step is fitted
    as its preprocessing (shared by the candidates, see
    :func:`_preprocessed`) then its last step, and scored through the last
    step on the transformed test rows: the same computations, so the same
    scores; the shared preprocessing's time counts in the fit time of the
    candidate that did it.

    Several candidates are one ensemble at growing sizes (see
    :func:`grown_size`; the runner groups them, smallest first): the first
    is fitted, the next ones grown from it by warm start, each scored at its
    size. A candidate's ``fit_time`` is then what its ensemble took to grow
    from nothing, as if fitted whole; ``work`` is the time this task spent on
    it. An ensemble that used early stopping (histogram gradient boosting's
    ``early_stopping="auto"`` on more than 10,000 rows) is not grown: the
    next size is fitted whole, as after a failure.
    """
    import numpy as np
    from sklearn.base import clone
    from sklearn.metrics import check_scoring
    from sklearn.utils.metaestimators import _safe_split

    X, y, test_indices = _worker_data(data_ref)
    estimator = _task_estimator(estimator_blob)  # outside the fits: a worker's missing module is no fit's
    train, test = _train_test(test_indices, fold, len(y))
    size = next((k for k in candidates[0] if candidates[1][k] != candidates[0][k]), None) \
        if len(candidates) > 1 else None  # the one parameter the runner's chain varies: the size
    results, model, grown = [], None, 0.0
    for params in candidates:
        result: dict = {}
        with _warnings_caught(result):
            start = time.time()
            try:
                if model is None or _stopped_early(model):
                    # the first, the next after a failure, or after early stopping: fitted from nothing
                    model = clone(estimator).set_params(**clone(params, safe=False))
                    X_train, y_train = _safe_split(model, X, y, train)
                    X_test, y_test = _safe_split(model, X, y, test, train)
                    prefix, grown, prefix_name = _shared_preprocessing(model, params), 0.0, ""
                    if prefix is not None:
                        X_train, X_test = _preprocessed(data_ref, estimator_blob, fold, prefix, X_train, y_train,
                                                        X_test)
                        model, prefix_name = model[-1], f"{model.steps[-1][0]}__"
                else:  # the same ensemble, to more members
                    grow = size.removeprefix(prefix_name)  # its name on the model: the ensemble, or the pipeline
                    step, sep, _ = grow.rpartition("__")
                    model.set_params(**{grow: params[size], f"{step}{sep}warm_start": True})
                    result["grown"] = True
                model.fit(X_train, y_train)
            except Exception:
                model, elapsed = None, time.time() - start
                result.update(score=np.nan, fit_time=grown + elapsed, score_time=0.0,
                              error=traceback.format_exc(), work=elapsed)
            else:
                fit_time = time.time() - start
                grown += fit_time
                try:
                    score = check_scoring(model, scoring)(model, X_test, y_test)
                    if hasattr(score, "item"):
                        score = score.item()
                    error = None
                except Exception:
                    score, error = np.nan, "Scoring failed: " + traceback.format_exc()
                score_time = time.time() - start - fit_time
                result.update(score=score, fit_time=grown, score_time=score_time, error=error,
                              work=fit_time + score_time)
        if result.pop("grown", False):  # warm_start is the runner's doing: its warnings are noise
            result["warnings"] = [w for w in result["warnings"] if not w[1].startswith(_GROWTH_NOISE)]
        results.append(result)
    return results


@functools.cache
def _worker_environment() -> dict:
    """The versions of this worker process (a dask worker's may differ from the runner's)."""
    return state.environment()


def refit(data_ref, estimator_blob: bytes, params: dict) -> dict:
    """Fit the best candidate on all the data; return it pickled, the time taken and the versions
    it was fitted with."""
    import cloudpickle
    from sklearn.base import clone

    X, y, _ = _worker_data(data_ref)
    estimator = clone(_task_estimator(estimator_blob))
    estimator = estimator.set_params(**clone(params, safe=False))
    result: dict = {}
    with _warnings_caught(result):
        start = time.time()
        estimator.fit(X, y)
        result["refit_time"] = time.time() - start
    result["blob"] = cloudpickle.dumps(estimator, protocol=5)
    result["environment"] = _worker_environment()
    return result


# -------------------------------------------------------------------------- pools


# What a worker needs to fit the built-in families, imported once in the fork server.
_WORKER_PRELOAD = ("search", "numpy", "joblib", "cloudpickle", "threadpoolctl", "sklearn.base", "sklearn.metrics",
                   "sklearn.model_selection", "sklearn.utils.metaestimators", "grids._builtin")  # search first:
# it makes `grids` this tool's own
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                     "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def _thread_env(n_workers: int) -> dict:
    """Each worker's share of threads for OpenMP and BLAS, as joblib gives them (the user's settings win)."""
    threads = str(max(1, (os.cpu_count() or 1) // n_workers))
    return {var: os.environ.get(var, threads) for var in _THREAD_VARIABLES}


_fork_context = None  # set while this process's fork server runs
_SERVER_OF = "SEARCH_FORK_SERVER_OF"  # set for the fork server's start: the runner's pid


def _serve_runner(runner_pid: int) -> None:
    """In the fork server: when the runner has gone, take its workers and its data with it.

    The server exits when the last holder of its "alive" pipe has closed it;
    the workers close their copies (:func:`_init_worker`), so the runner is the
    last. A SIGKILLed runner's workers also watch it themselves, but with a
    Python thread, which cannot run while a fit holds the GIL in one long C
    call (custom code: scikit-learn's own fits release it); this process is
    idle then, and kills them at once, whatever they are doing. It leaves with
    ``os._exit``: tearing scikit-learn down would take half a second more,
    while it holds the runner's stdout and stderr open.
    """

    def runner_gone():
        # The runner's pipe closes as it dies, a moment before the kernel gives its children another
        # parent; a server that exits while its runner lives (a module it imports failed) leaves alone.
        deadline = time.monotonic() + 1
        while os.getppid() == runner_pid:
            if time.monotonic() > deadline:
                return
            time.sleep(0.005)
        for pid in _children():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        _remove_data_of(runner_pid)
        os._exit(0)

    import atexit

    atexit.register(runner_gone)


def _children() -> list[int]:
    """This process's children, read from /proc (none where there is no /proc: then the workers'
    own watchers are all there is)."""
    me = os.getpid()
    children = []
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    stat = Path(entry.path, "stat").read_bytes()  # "pid (name) state ppid ..."
                    if int(stat.rsplit(b")", 1)[1].split()[1]) == me:
                        children.append(int(entry.name))
    return children


if os.environ.get(_SERVER_OF) == str(os.getppid()):  # this process is a runner's fork server
    del os.environ[_SERVER_OF]  # not the workers': they are forked from it
    _serve_runner(os.getppid())


@contextlib.contextmanager
def _interrupts_kept_from_children():
    """Processes started in this block never receive SIGINT, SIGUSR1 or SIGHUP; this one still does.

    A Ctrl-C, a scheduler's ``--signal=USR1`` or a closed terminal's hangup
    goes to the whole process group. The runner stops its workers itself; a fork server interrupted
    while it imports scikit-learn prints a traceback, and a resource tracker
    killed by SIGUSR1 is relaunched with warnings about every semaphore it
    no longer knows. Blocked here, the signals stay blocked in every process
    started (the mask is inherited through fork and exec); a signal that
    reaches this process meanwhile waits, and is handled when the block ends.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGUSR1, signal.SIGHUP})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker, if it is not running, with interrupts kept from it.

    Its start unblocks SIGINT and SIGTERM whatever the mask was (Python 3.11 and 3.12), and loky
    starts it with every worker if need be: so it goes first, in a block of its own, and the
    processes started after it start with the signals blocked still.
    """
    from multiprocessing import resource_tracker

    with _interrupts_kept_from_children():
        resource_tracker.ensure_running()


def start_fork_server():
    """Start the process that local workers are forked from; return its context (None: not here).

    The server imports scikit-learn (:data:`_WORKER_PRELOAD`) while the
    runner does its own imports, on the other core, and every worker forked
    from it, including one that replaces a dead worker, starts in
    milliseconds with everything loaded: about two seconds less per start on
    two cores than workers that import it all themselves.

    Only the command line uses it. Processes started through a fork server
    import the main module first, as with ``spawn``: harmless for ``search``
    itself, but a user's script that calls :func:`run` without an
    ``if __name__ == "__main__":`` guard would run again in every worker, so
    library callers keep loky's own start method, which never imports it.
    Where fork servers do not exist (Windows), loky starts the workers.
    """
    import multiprocessing
    from multiprocessing import forkserver

    global _fork_context
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return None
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(_WORKER_PRELOAD))
    _own_multiprocessing_folder()
    server = forkserver._forkserver
    start = type(server).ensure_running

    def ensure_running():
        """Start the server with this tool's settings: the first time, and when multiprocessing starts
        it again for the next worker because it was killed (a replacement with its own defaults would
        import from the working directory, and leave the workers of a killed runner running)."""
        with _fork_server_environment():
            _start_resource_tracker()
            with _interrupts_kept_from_children():
                start(server)

    server.ensure_running = ensure_running  # what multiprocessing calls before each worker's start
    ensure_running()
    _fork_context = context
    logger.debug("fork server started; it imports %s", ", ".join(_WORKER_PRELOAD))
    return context


@contextlib.contextmanager
def _fork_server_environment():
    """The environment the fork server starts with (this process's is given back afterwards)."""
    saved = {var: os.environ.get(var) for var in (*_THREAD_VARIABLES, "PYTHONSAFEPATH", _SERVER_OF)}
    # One thread each until a worker's initializer gives it its share: no thread pools exist at a fork.
    os.environ.update({var: os.environ.get(var, "1") for var in _THREAD_VARIABLES})
    # The server runs as `python -c`, which puts the working directory first on its sys.path (and
    # Python 3.11's takes no other): a numbers.py or search.py there would be imported, and run, in
    # every worker in place of the real one. Safe path: the directory is left out (3.11 and later).
    os.environ["PYTHONSAFEPATH"] = "1"
    os.environ[_SERVER_OF] = str(os.getpid())  # see _serve_runner
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def _own_multiprocessing_folder() -> None:
    """Put multiprocessing's folder (``pymp-*``: the fork server's socket) inside one named after this
    process, as its data folder is: a runner killed with its whole job leaves it behind, and the next
    run removes it (:func:`_remove_orphaned_data`) instead of it staying in ``$TMPDIR`` for good."""
    from multiprocessing import util

    folder = tempfile.mkdtemp(prefix=f"search-data-{os.getpid()}-mp-")
    saved, tempfile.tempdir = tempfile.tempdir, folder
    try:
        util.get_temp_dir()  # made in ``folder``, unless this process already has one
    finally:
        tempfile.tempdir = saved
    # after multiprocessing removes its own folder at exit (its finalizer's priority is -100)
    util.Finalize(None, shutil.rmtree, args=(folder,), kwargs={"ignore_errors": True}, exitpriority=-101)


def _fork_server_end(wait: float = 0.5) -> str | None:
    """How the fork server ended ("was killed by SIGKILL"), or None while it runs.

    It is not reaped: multiprocessing waits for it itself before starting
    another. Its pipes close a moment before it becomes a zombie, and loky
    has read them by then, so it is given ``wait`` seconds to become one.
    """
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
    if pid is None or not hasattr(os, "waitid"):
        return None
    deadline = time.monotonic() + wait
    while True:
        try:
            ended = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # reaped already
            return "has ended"
        if ended is not None:
            if ended.si_code in (os.CLD_KILLED, os.CLD_DUMPED):
                return f"was killed by {signal.Signals(ended.si_status).name}"
            return f"exited with code {ended.si_status}"
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.01)


def stop_fork_server() -> None:
    """Stop the fork server now; the next :func:`start_fork_server` starts a new one.

    It holds nothing but imported modules, so it is killed, not asked to
    exit: exiting would tear scikit-learn down for half a second while it
    holds this process's stdout and stderr open, and whoever reads them (a
    pipe, a job script) would wait for that.
    """
    from multiprocessing import forkserver

    global _fork_context
    _fork_context = None
    server = forkserver._forkserver
    server.__dict__.pop("ensure_running", None)  # multiprocessing's own again, for whoever uses it next
    pid = getattr(server, "_forkserver_pid", None)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        server._stop()  # reaps it and forgets it


def local_executor(n_workers: int):
    """The loky executor of this process, started if need be (it is reused while its settings hold).

    Its workers are forked from the fork server when one runs
    (:func:`start_fork_server`), else started by loky; they get their share
    of threads for OpenMP and BLAS, and watch that their runner is alive.
    """
    from joblib.externals.loky import get_reusable_executor

    env = _thread_env(n_workers)
    _start_resource_tracker()
    with _interrupts_kept_from_children():  # loky's resource tracker, and workers loky starts itself
        return get_reusable_executor(max_workers=n_workers, env=env, timeout=60, kill_workers=True,
                                     context=_fork_context, initializer=_init_worker,
                                     initargs=(os.getpid(), env))


def _remove_orphaned_data() -> None:
    """Remove the data folders of runners that were killed before they or their workers could,
    and the semaphores of loky's that a runner killed with its whole process group left."""
    for folder in Path(tempfile.gettempdir()).glob("search-data-*-*"):
        pid = folder.name.split("-")[2]
        if pid.isdigit() and not _process_alive(int(pid)):  # alive, or someone else's: kept
            shutil.rmtree(folder, ignore_errors=True)
    for semaphore in Path("/dev/shm").glob("sem.loky-*-*"):  # named after the process that made it
        pid = semaphore.name.split("-")[1]
        with contextlib.suppress(OSError):
            if pid.isdigit() and semaphore.stat().st_uid == os.getuid() and not _process_alive(int(pid)):
                semaphore.unlink()


def _remove_data_of(runner_pid: int) -> None:
    """Remove the data folder of the runner ``runner_pid``, which has exited."""
    for folder in Path(tempfile.gettempdir()).glob(f"search-data-{runner_pid}-*"):
        shutil.rmtree(folder, ignore_errors=True)


def _local_workers(n_jobs: int) -> int:
    """How many worker processes ``n_jobs`` starts on this machine: joblib's count, but no more than the
    cores this process may use (its CPU affinity and container quota: a Slurm job's cores)."""
    import joblib

    wanted, cores = joblib.effective_n_jobs(n_jobs), joblib.cpu_count()
    if wanted <= cores:
        return wanted
    logger.warning("--n-jobs %d is more than the %d cores this process may use; starting %d workers (more "
                   "would only share the cores, each with its own memory)", n_jobs, cores, cores)
    return cores


class LocalPool:
    """Worker processes on this machine (loky), each limited to its share of threads."""

    loses_inflight = True  # a worker's death breaks the executor and every future in it
    ahead = 1  # tasks submitted beyond the workers: one waits in the queue, to start the moment one is free

    def __init__(self, n_jobs: int):
        self.n_workers = _local_workers(n_jobs)
        _remove_orphaned_data()
        self._tmp = tempfile.mkdtemp(prefix=f"search-data-{os.getpid()}-")
        self._executor = local_executor(self.n_workers)
        self.data_ref = None

    def share(self, data, blobs=()) -> None:
        """Write ``data`` once for the workers to memory-map (the estimators loaded fine here)."""
        self._data = data
        import joblib

        path = os.path.join(self._tmp, "data.joblib")
        try:
            joblib.dump(data, path)
        except OSError as exc:
            raise SearchError(
                f"could not write the data for the workers to {path}: {exc.strerror or exc}; free space "
                f"there, or point TMPDIR at a disk with room (the data takes about as much as in memory)"
            ) from None
        self.data_ref = path

    def _submit(self, fn, *args):
        # loky starts its workers at a submit, and replaces them from the thread it starts there,
        # which keeps this mask: without the fork server (a library call), a Ctrl-C would
        # otherwise kill workers still importing scikit-learn, each with a traceback
        with _interrupts_kept_from_children():
            return self._executor.submit(fn, *args)

    def submit(self, fn, *args):
        try:
            return self._submit(fn, *args)
        except (EOFError, ConnectionError) as exc:  # starting a worker: the fork server died
            if _fork_context is None:
                raise
            logger.warning("the fork server that starts the workers has gone (%s: %s; it was killed, or failed "
                           "as printed above); the workers now start without it, each importing "
                           "scikit-learn itself", type(exc).__name__, exc)
            stop_fork_server()
            with contextlib.suppress(Exception):  # the data stays: the task's arguments name it
                self._executor.shutdown(wait=False, kill_workers=True)
            self._executor = local_executor(self.n_workers)
            return self._submit(fn, *args)

    def release(self, future) -> None:
        """Nothing to do: a local future's result lives in this process only."""

    def forget(self, estimator_blob: bytes) -> None:
        """Delete the transformed folds of a family whose candidates are all done."""
        for fold_file in Path(self._tmp).glob(preprocessed_name(estimator_blob, "*") + "*"):
            fold_file.unlink(missing_ok=True)

    def wait(self, futures, timeout: float):
        done, _ = concurrent.futures.wait(
            futures, timeout=timeout, return_when=concurrent.futures.FIRST_COMPLETED
        )
        return done

    def is_lost(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the worker died (retry), not that the task failed."""
        from joblib.externals.loky.process_executor import BrokenProcessPool

        return isinstance(exc, BrokenProcessPool)

    def cannot_load(self, error: BaseException, worker: str, family: str) -> str:
        """What to do when a worker could not load ``family``'s estimator, which this process loads."""
        return (f"the worker processes could not load the estimator of family {family!r} "
                f"({type(error).__name__}: {error}), which this process loads: they import what it needs "
                "anew, without the working directory on their path; put a module of yours on PYTHONPATH, "
                "or install it, then run the same command again")

    def lost_because(self, exc: BaseException) -> str | None:
        """Why the workers went when it was none of their tasks' doing, or None.

        A killed fork server takes its workers with it: loky learns that they
        exited through the server's pipes, which close with it, and so reports
        them dead, as if a fit had crashed ("a segmentation fault").
        """
        end = _fork_server_end() if _fork_context is not None else None
        return end and f"the fork server that starts the workers {end}, and its workers went with it"

    def recover(self) -> None:
        self.close(kill=True)
        self.__init__(self.n_workers)
        self.share(self._data)

    def close(self, kill: bool = False) -> None:
        # bounded: a shutdown that hangs (a worker stuck sending a result) must not hold the exit,
        # and the workers leave by themselves once their runner has gone
        def shutdown():
            try:
                self._executor.shutdown(wait=True, kill_workers=kill)
            except Exception as exc:  # noqa: BLE001 - the run's result is decided; the pool is going
                logger.debug("the worker pool's shutdown failed: %s", exc)

        closing = threading.Thread(target=shutdown, daemon=True)
        closing.start()
        closing.join(timeout=10)
        if closing.is_alive():
            logger.debug("the worker pool did not shut down within 10 s; leaving it to exit with this process")
        shutil.rmtree(self._tmp, ignore_errors=True)


class DaskPool:
    """Fits sent to a dask cluster; the data is scattered to the workers once.

    Parameters
    ----------
    address : str
        A scheduler address (``tcp://HOST:PORT``), the scheduler file that
        ``dask scheduler --scheduler-file PATH`` writes, or ``"local"`` for a
        LocalCluster of ``n_jobs`` single-threaded worker processes here.
    n_jobs : int
        At most this many fits at a time; negative values count back from the
        cluster's worker threads as in joblib (-1: all of them).

    Tasks only compute and return their results: the runner stays the one
    writer of the state file. The pool never shuts down a cluster it did not
    start; closing it (or killing the runner, which closes its connection)
    makes the scheduler drop this client's tasks and data, and the workers
    stay up for the next run.
    """

    loses_inflight = False  # dask reschedules the tasks of a lost worker elsewhere
    ahead = 1  # as a local pool's, unless --n-jobs caps the fits below the cluster's threads (_refresh)

    connect_timeout = 10.0  # s: a refused port or unknown host fails at once, a silent one after this
    worker_timeout = 120.0  # s to wait for a first worker (worker jobs may still be queued)
    _info_interval = 2.0  # s between refreshes of the cluster's thread count

    def __init__(self, address: str, n_jobs: int, stop=None):
        try:
            import distributed
        except ImportError:
            raise SearchError(
                "--scheduler needs dask's distributed scheduler, which is not installed; "
                "install it with: pip install 'dask[distributed]>=2024.1' (what this tool's dask extra holds)"
            ) from None

        _quiet_distributed()  # its import set its loggers' levels

        self.address = address
        self._n_jobs = n_jobs
        self._stop = stop  # true once the runner must stop: waits for workers end early
        self._cluster = None
        self._data = self._future = self.data_ref = None
        self._blobs: list[bytes] = []
        self._rescattered = 0
        if address == "local":
            self._cluster = distributed.LocalCluster(
                n_workers=_local_workers(n_jobs), threads_per_worker=1, processes=True,
                dashboard_address="127.0.0.1:0",  # a free port: never "8787 is already in use"
                # the workers' own log lines ("Compute Failed" for each failed fit) would land in this
                # terminal: the runner reports failures itself, once; -vv shows them all
                silence_logs=logging.CRITICAL if _DISTRIBUTED_LEVEL > logging.DEBUG else False,
            )
            self._client = distributed.Client(self._cluster, set_as_default=False)
        else:
            self._client = self._connect(address)
        with contextlib.suppress(_Stopped):  # and its scheduler stopped with it
            self._wait_for_workers()
        self.dashboard = None
        if self._stop:  # stopped while waiting for a worker: nothing will run (nor reach a
            self.n_workers = 1  # scheduler stopped with the same job)
            return
        self._refresh()
        with contextlib.suppress(Exception):  # a scheduler started with --no-dashboard has none
            if "dashboard" in self._client.scheduler_info()["services"]:
                self.dashboard = self._client.dashboard_link

    def _connect(self, address: str):
        """A client of the scheduler at ``address``, or a SearchError that names the address."""
        import socket

        from distributed import Client
        from distributed.comm import parse_address, parse_host_port

        fix = ("check that `dask scheduler` runs there and that the address is the one it prints as "
               "'Scheduler at:' (port 8786 unless set; 8787 is its dashboard, not the scheduler)")
        target = address
        if "://" not in address:
            typo = re.match(r"(tcp|tls|inproc|ucx|ws|wss)(?::/?|//)(?!/)(?!\d+$)(.+)", address)
            if typo:
                raise SearchError(f"--scheduler {address}: a scheme is followed by '://'; did you mean "
                                  f"{typo[1]}://{typo[2]}?")
            if os.path.isdir(address):
                raise SearchError(f"--scheduler {address} is a directory; give the scheduler file in it "
                                  "(`dask scheduler --scheduler-file PATH` writes it), or tcp://HOST:PORT")
            if os.path.isfile(address):  # written by `dask scheduler --scheduler-file PATH`
                target = self._read_scheduler_file(address)
            elif address.endswith((".json", ".txt")) or os.sep in address:
                raise SearchError(f"--scheduler {address}: no such scheduler file; give the path that "
                                  "`dask scheduler --scheduler-file PATH` wrote, or the address tcp://HOST:PORT")
        try:
            scheme, location = parse_address(target, strict=False)
            if scheme in ("tcp", "tls"):  # distributed retries a refused port until its timeout
                socket.create_connection(parse_host_port(location), timeout=self.connect_timeout).close()
        except Exception as exc:  # anything here means: no scheduler to talk to
            where = "there" if target == address else f"at {target}, the address it holds"
            raise SearchError(
                f"--scheduler {address}: cannot reach a dask scheduler {where} "
                f"({type(exc).__name__}: {exc}); {fix}"
            ) from None
        # The port answers. distributed's timeout does not bound the handshake with a server that
        # is not a dask scheduler and never replies, so the client is made in a thread we can leave.
        outcome: dict = {}

        def connect():
            try:
                outcome["client"] = Client(target, timeout=self.connect_timeout, set_as_default=False)
            except Exception as exc:  # reported below, with the address
                outcome["error"] = exc

        thread = threading.Thread(target=connect, name="search-dask-connect", daemon=True)
        thread.start()
        thread.join(self.connect_timeout + 1)
        if "client" in outcome:
            return outcome["client"]
        error = outcome.get("error")
        reason = (f"{type(error).__name__}: {error}" if error is not None
                  else f"no dask handshake within {self.connect_timeout:g} s")
        raise SearchError(f"--scheduler {address}: no dask scheduler answers there ({reason}); {fix}")

    @staticmethod
    def _read_scheduler_file(path: str) -> str:
        """The address a scheduler file holds: the JSON ``dask scheduler --scheduler-file`` writes, or a
        line with the address alone (as a script writes ``cluster.scheduler_address`` to a file)."""
        import json

        try:
            with open(path) as file:
                text = file.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise SearchError(f"--scheduler {path}: cannot read the scheduler file ({exc})") from None
        if not text.strip():
            raise SearchError(
                f"--scheduler {path}: the scheduler file is empty (the scheduler may not have written it "
                f"yet); wait until it is, as the README's job scripts do: while [ ! -s {shlex.quote(path)} ]; "
                "do sleep 1; done")
        try:
            return json.loads(text)["address"]
        except (ValueError, KeyError, TypeError):
            line = text.strip()
            if "\n" not in line and re.fullmatch(r"[\w.+-]+://\S+|[\w.-]+:\d+", line):
                return line
        raise SearchError(
            f"--scheduler {path} is not a scheduler file (the JSON that `dask scheduler --scheduler-file "
            f"PATH` writes, with an \"address\"), nor a file holding an address (tcp://HOST:PORT); it "
            f"begins {text.strip()[:40]!r}")

    def _wait_for_workers(self) -> None:
        deadline = time.monotonic() + self.worker_timeout
        if self._total_threads() == 0:
            logger.warning("the dask scheduler at %s has no workers yet; waiting up to %g s for one",
                           self.address, self.worker_timeout)
        while not self._stop and self._total_threads() == 0:
            if time.monotonic() > deadline:
                raise SearchError(
                    f"--scheduler {self.address}: no worker joined in {self.worker_timeout:g} s; "
                    f"start some with `{self._worker_command()}` (or check that the worker jobs "
                    "run), then run the same command again"
                )
            time.sleep(0.5)

    def _total_threads(self) -> int:
        deadline = time.monotonic() + self.connect_timeout + 1
        while True:
            self._check_connected()
            try:
                return sum(self._client.nthreads().values())
            except OSError:  # the scheduler went away during the call (distributed's CommClosedError)
                if self._stop:
                    raise _Stopped from None
                if time.monotonic() > deadline:
                    raise SearchError(self._lost_message()) from None
                time.sleep(0.2)  # the client notices, and reconnects if the scheduler comes back

    def _refresh(self) -> None:
        """Follow workers that join or leave: ``n_workers`` is the cluster's threads, capped by n_jobs."""
        threads = total = self._total_threads()
        if self._n_jobs > 0:
            total = min(total, self._n_jobs)
        elif self._n_jobs < -1:
            total += self._n_jobs + 1
        self.n_workers = max(1, total)
        # a task queued ahead waits on a busy worker; under a cap, it would run on an idle one
        self.ahead = 1 if self.n_workers >= threads else 0
        self._next_refresh = time.monotonic() + self._info_interval

    def _check_connected(self) -> None:
        deadline = time.monotonic() + self.connect_timeout + 1
        while self._client.status == "connecting" and time.monotonic() < deadline and not self._stop:
            time.sleep(0.1)  # the client reconnects by itself after a short break; a stopping runner
            # does not wait for a scheduler that its job's end stops too
        if self._client.status != "running":
            if self._stop:
                raise _Stopped
            raise SearchError(self._lost_message())

    def _lost_message(self) -> str:
        return (f"lost the connection to the dask scheduler at {self.address}; what finished is "
                "saved: run the same command again once the scheduler is back")

    class _Ref:
        """What tasks get in place of the data: the key of its scattered copy.

        On a worker, unpacking it (``X, y, test_indices = ref``) gives the data
        from that worker process's own copy, taken on its first task there
        (from the worker's memory, or fetched once from a peer). The tasks do
        not depend on the key as far as dask knows, so the memory manager,
        which drops the replicas it deems idle (broadcast ones included, within
        seconds), never makes the data travel again.
        """

        slot = "_checkpointed_search_data"  # attribute of the distributed.Worker: {key: data}

        def __init__(self, key: str):
            self.key = key

        def __iter__(self):
            from distributed import Future, get_client, get_worker

            worker = get_worker()
            with worker.__dict__.setdefault(self.slot + "_lock", threading.Lock()):
                copies = worker.__dict__.setdefault(self.slot, {})
                if self.key not in copies:
                    if self.key in worker.data:
                        data = worker.data[self.key]
                    else:  # a peer has it: the runner's future holds the key
                        try:
                            data = Future(self.key, get_client(), state="memory").result()
                        except concurrent.futures.CancelledError:  # the runner retries the task
                            raise concurrent.futures.CancelledError(
                                f"the search's data {self.key} is gone: the workers that held it "
                                "died") from None
                    while len(copies) >= 2:  # keep one other runner's copy at most
                        copies.pop(next(iter(copies)))
                    copies[self.key] = data
                return iter(copies[self.key])

        @classmethod
        def prune(cls, keep: set, dask_worker=None) -> None:
            """Drop a worker's copies but those in ``keep`` (run on every worker)."""
            copies = dask_worker.__dict__.get(cls.slot, {})
            for key in set(copies) - keep:
                del copies[key]
            _drop_preprocessed(keep_data=keep)

        @staticmethod
        def live():
            """A function for the scheduler that lists the keys of scattered search data some client
            still holds. Made here, it travels by value: the scheduler needs no checkpointed-search
            (it never runs the tasks)."""

            def live(prefix: str, dask_scheduler=None) -> list:
                return [key for key in dask_scheduler.tasks if str(key).startswith(prefix)]

            return live

        @staticmethod
        def probe(ref, blobs) -> str:
            """The first task: takes a worker's copy of the data, loads the estimators, returns its
            scikit-learn version."""
            import sklearn

            X, y, _ = ref
            for blob in blobs:
                _worker_estimator(blob)
            return sklearn.__version__

    _key_prefix = "checkpointed-search-data-"

    courtesy_timeout = 5.0  # seconds a call that no result depends on may take (a worker may hang)

    def _on_workers(self, fn, *args, on_error: str = "ignore", stoppable: bool = True):
        """``Client.run(fn, *args)`` on every worker, for at most :attr:`courtesy_timeout` seconds and,
        if ``stoppable``, no longer than a stop: it has no timeout of its own, and one worker that
        hangs (stopped, swapping) would hold the runner until the scheduler drops the worker, minutes
        later. Returns None when it gave up; the call may still end later, in its thread."""
        answer: dict = {}

        def call():
            try:
                answer["value"] = self._client.run(fn, *args, on_error=on_error)
            except Exception as exc:  # noqa: BLE001 - given to the caller below
                answer["error"] = exc

        thread = threading.Thread(target=call, daemon=True, name="search-dask-run")
        thread.start()
        deadline = time.monotonic() + self.courtesy_timeout
        while thread.is_alive() and time.monotonic() < deadline and not (stoppable and self._stop):
            thread.join(0.1)
        if thread.is_alive():
            logger.debug("the dask workers did not all answer %s within %g s (one may hang); going on",
                         getattr(fn, "__name__", fn), self.courtesy_timeout)
            return None
        if "error" in answer:
            raise answer["error"]
        return answer["value"]

    def _prune(self, drop: str | None = None) -> None:
        """Drop the workers' copies of data that no client holds any more, and ``drop``'s (this run's, as
        it leaves: even on a stop, or the workers would keep it until the next run)."""
        keep = set(self._client.run_on_scheduler(self._Ref.live(), self._key_prefix)) - {drop}
        self._on_workers(self._Ref.prune, keep, stoppable=drop is None)

    def share(self, data, blobs=()) -> None:
        """Scatter ``data`` once; each worker process takes its copy on its first task.

        Tasks get :class:`DaskPool._Ref`, a few bytes, instead of the data. A
        first task checks that a worker can load the data and the estimators
        (``blobs``): a module they need that the workers lack is reported now,
        not as every fit failing.
        """
        import uuid

        self._data = data
        self._blobs = list(blobs) or self._blobs
        if self._stop:  # stopped while waiting for a worker: nothing will run
            return
        self._prune()  # copies a killed runner left on the workers
        for _ in range(_MAX_ATTEMPTS):
            key = f"{self._key_prefix}{uuid.uuid4().hex}"  # new: never a key a killed runner's copy holds
            while True:
                try:
                    self._future = self._client.scatter({key: data})[key]
                    break
                except TimeoutError:  # the workers left between the check and the scatter
                    self._wait_for_workers()
                    if self._stop:
                        return
            self.data_ref = self._Ref(key)
            self._check_every_worker()
            probe = self._client.submit(self._Ref.probe, self.data_ref, self._blobs, pure=False)
            deadline = time.monotonic() + self.worker_timeout
            while not probe.done():  # a busy cluster may take long: give up on the check, not the run
                if self._stop or time.monotonic() > deadline:
                    return
                time.sleep(0.05)
            lost = probe.exception() if probe.status == "error" else None
            if not isinstance(lost, concurrent.futures.CancelledError):
                break
            # the data went with the workers holding it (restarted again) before the first task read it
            logger.warning("the search's data was lost on the dask cluster as it was sent (%s); sending it again",
                           lost)
            self._wait_for_workers()
            if self._stop:
                return
        try:
            remote = probe.result()
        except ModuleNotFoundError as exc:
            raise SearchError(self._missing_module(exc)) from None
        except concurrent.futures.CancelledError:
            raise SearchError(
                f"the dask cluster at {self.address} lost the search's data {_MAX_ATTEMPTS} times as it was "
                "sent (its workers died or restarted each time); check the workers' logs, then run the same "
                "command again"
            ) from None
        except Exception as exc:
            raise SearchError(
                f"the dask cluster at {self.address} cannot run this search's tasks "
                f"({type(exc).__name__}: {exc}); its scheduler and workers need this runner's "
                "environment (checkpointed-search, scikit-learn and the grids' own imports), "
                "and a restart after an upgrade"
            ) from None
        import sklearn

        if remote != sklearn.__version__:
            logger.warning("the dask workers run scikit-learn %s, this runner %s: results and saved "
                           "estimators follow the workers' version", remote, sklearn.__version__)

    def _check_every_worker(self) -> None:
        """Every worker loads the estimators, and with the code this runner has: a worker keeps the
        version of a module it imported first, and would fit with it after the file changed."""
        users = users_modules()
        here = code_fingerprints(self._blobs, users)
        try:
            answers = self._on_workers(code_fingerprints, self._blobs, users, on_error="return")
        except Exception as exc:  # the check is a courtesy: a worker that left is no reason to fail
            logger.debug("could not check the workers' code: %s", exc)
            return
        if answers is None:  # a worker that hangs, or a stop
            return
        lacking = {w: a for w, a in sorted(answers.items()) if isinstance(a, ModuleNotFoundError)}
        if lacking:
            some = ", ".join(lacking) if len(lacking) < len(answers) else None
            raise SearchError(self._missing_module(next(iter(lacking.values())), some))
        for worker, answer in sorted(answers.items()):
            if isinstance(answer, BaseException):
                logger.debug("could not check the code of worker %s: %s", worker, answer)
            elif answer != here:
                raise SearchError(
                    f"the dask worker at {worker} would fit with other code than this runner's: a "
                    "module of yours that the families use changed after the worker imported it, and "
                    "a worker keeps what it imported. Restart the workers (the `dask worker` "
                    "processes, or Client.restart()), then run the same command again"
                )

    def _worker_command(self) -> str:
        """The command that starts a worker of this cluster."""
        if os.path.isfile(self.address):  # a scheduler file: `dask worker FILE` would take it for an address
            return f"dask worker --scheduler-file {shlex.quote(self.address)}"
        return f"dask worker {self.address}"

    def _missing_module(self, exc: ModuleNotFoundError, workers: str | None = None) -> str:
        """What to do when the workers (or only ``workers``) cannot import a module the data or the
        estimators need."""
        module = sys.modules.get(exc.name or "")
        where = getattr(module, "__file__", None)
        if where and module.__spec__ and module.__spec__.parent == "":  # a top-level module: its folder
            folder = Path(where).parent.parent if Path(where).name == "__init__.py" else Path(where).parent
            fix = (f"start the workers with its directory on PYTHONPATH "
                   f"(PYTHONPATH={shlex.quote(str(folder))} {self._worker_command()}), or install it there")
        else:
            fix = "install it where the workers run (the same environment as this runner's)"
        who = (f"the dask worker{'s' if ', ' in workers else ''} at {workers} (scheduler {self.address})"
               if workers else f"the dask workers at {self.address}")
        return (f"{who} cannot import {exc.name!r}, which this search's "
                f"families or data need ({exc}); {fix}, then run the same command again")

    def cannot_load(self, error: BaseException, worker: str, family: str) -> str:
        """What to do when ``worker`` (one that joined after the start's checks) could not load
        ``family``'s estimator."""
        if isinstance(error, ModuleNotFoundError):
            return self._missing_module(error, worker)
        return (f"the dask worker at {worker} (scheduler {self.address}) could not load the estimator of "
                f"family {family!r} ({type(error).__name__}: {error}); it needs this runner's environment "
                "(checkpointed-search, scikit-learn and the grids' own imports): fix or stop that worker, "
                "then run the same command again")

    def forget(self, estimator_blob: bytes) -> None:
        """Drop the workers' transformed folds of a family whose candidates are all done."""
        with contextlib.suppress(Exception):  # memory kept a while longer is no reason to fail
            self._on_workers(_drop_preprocessed, None, self.data_ref.key, preprocessed_name(estimator_blob, ""))

    def submit(self, fn, *args):
        if self._client.status in ("closing", "closed"):
            self._check_connected()
        return self._client.submit(fn, *args, pure=False)

    def release(self, future) -> None:
        """Let the cluster drop a result this runner has read: a future still referenced (by a
        variable, until it is bound again) would keep it in a worker's memory, and be computed
        again elsewhere if that worker died."""
        with contextlib.suppress(Exception):  # a closed client has released everything already
            future.release()

    def wait(self, futures, timeout: float):
        from distributed import wait

        if time.monotonic() >= self._next_refresh:
            self._refresh()
            if self._future is not None and self._future.cancelled():  # every worker holding it died
                self._rescattered += 1
                logger.log(logging.WARNING if self._rescattered == 1 else logging.DEBUG,
                           "the dask cluster lost the data; scattering it again")
                self.recover()
        try:
            with self._client.as_current():  # wait() uses the current client; ours is not the default
                return wait(list(futures), timeout=timeout, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            return set()
        except concurrent.futures.CancelledError:  # raised if any is cancelled; result() says which
            return {f for f in futures if f.done()}

    def is_lost(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the cluster lost the task (retry it), not that the task failed.

        A cancelled future is lost work: the scattered data went down with
        every worker that held it, or the scheduler restarted or was
        unreachable for a while. A worker that dies while running a task is
        not seen here at all: the scheduler runs the task elsewhere, and gives
        up with ``KilledWorker`` only when the task took
        ``distributed.scheduler.allowed-failures`` workers down with it. The
        task is then the problem (out of memory, a crash in native code) and is
        recorded as a failed fit, like a task that broke local workers three
        times.
        """
        return isinstance(exc, concurrent.futures.CancelledError)

    def lost_because(self, exc: BaseException) -> None:
        """The cluster's losses are told by the scheduler, not here."""

    def recover(self) -> None:
        """After lost work: wait for the connection and a worker; scatter the data again if lost."""
        self._wait_for_workers()
        self._refresh()
        if self._future is None or self._future.cancelled():
            self.share(self._data)

    def close(self, kill: bool = False) -> None:
        """Close the client, and the cluster only if this pool started it (``--scheduler local``).

        The scheduler then drops this client's tasks and data. A fit that is
        already running on a worker thread finishes there and its result is
        discarded: dask does not interrupt running tasks, so ``kill`` changes
        nothing.
        """
        with contextlib.suppress(Exception):  # best effort: the runner is leaving either way
            if self._cluster is None and self._client.status == "running":
                self._prune(drop=self.data_ref.key if self.data_ref else None)
            self._client.close(timeout=self.connect_timeout)
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close(timeout=self.connect_timeout)


# ------------------------------------------------------------------------ results


def cv_results(records: list[dict], n_splits: int) -> dict:
    """Assemble GridSearchCV's ``cv_results_`` from per-candidate records.

    ``records`` are in the order of the family's ParameterGrid. The arithmetic
    is GridSearchCV's own (``BaseSearchCV._format_results``), so means, standard
    deviations and ranks are the same to the last bit.
    """
    import numpy as np

    n = len(records)
    results: dict = {}

    def store(key, rows, splits=False, rank=False):
        array = np.array(rows, dtype=np.float64).reshape(n, n_splits)
        if splits:
            for i in range(n_splits):
                results[f"split{i}_{key}"] = array[:, i]
        if n == 0:  # np.average of nothing divides by zero
            results[f"mean_{key}"] = results[f"std_{key}"] = np.empty(0)
        else:
            means = np.average(array, axis=1)
            results[f"mean_{key}"] = means
            results[f"std_{key}"] = np.sqrt(
                np.average((array - means[:, np.newaxis]) ** 2, axis=1))
        if rank:
            means = results[f"mean_{key}"]
            if n == 0 or np.isnan(means).all():
                ranks = np.ones_like(means, dtype=np.int32)
            else:
                from scipy.stats import rankdata

                filled = np.nan_to_num(means, nan=np.nanmin(means) - 1)
                ranks = rankdata(-filled, method="min").astype(np.int32, copy=False)
            results[f"rank_{key}"] = ranks

    store("fit_time", [r["fit_times"] for r in records])
    store("score_time", [r["score_times"] for r in records])
    params = [r["params"] for r in records]
    names = dict.fromkeys(name for p in params for name in p)  # in the order candidates first name them
    for name in names:  # typed as GridSearchCV types them (numbers as numbers; text, objects: object)
        try:
            typed = np.array([p[name] for p in params if name in p])
        except ValueError:  # sequences of different lengths
            dtype = np.dtype(object)
        else:
            dtype = typed.dtype if typed.dtype.kind != "U" and typed.ndim == 1 else np.dtype(object)
        column = np.ma.MaskedArray(np.empty(n, dtype=dtype), mask=True)
        for i, p in enumerate(params):
            if name in p:
                column[i] = p[name]
        results[f"param_{name}"] = column
    results["params"] = params
    store("test_score", [r["test_scores"] for r in records], splits=True, rank=True)
    return results


def _best(results: dict) -> tuple[int, float] | None:
    import numpy as np

    if not results["params"] or np.isnan(results["mean_test_score"]).all():
        return None
    index = int(results["rank_test_score"].argmin())
    return index, float(results["mean_test_score"][index])


# ------------------------------------------------------------------------- config


@dataclass
class RunConfig:
    """Everything ``search run`` takes; see ``search run --help``."""

    state_path: str = DEFAULT_STATE
    data: str | None = None
    target: str | None = None
    task: str | None = None
    grids: str | None = None
    families: list[str] | None = None
    cv: int = 5
    scoring: str | None = None
    n_jobs: int = -1
    max_time: float | None = None
    restart: bool = False
    redo_changed: bool = False
    scheduler: str | None = None
    progress: bool = True

    def __post_init__(self):
        """Check what a library caller gave, field by field (the command line has checked its own)."""
        def bad(name: str, wants: str):
            value = getattr(self, name)
            shown = repr(value) if len(repr(value)) <= 60 else f"a {type(value).__name__}"
            return SearchError(f"RunConfig.{name} is {shown}; it takes {wants}")

        def path_or_none(name: str, wants: str):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise bad(name, wants)
            if value is not None:
                setattr(self, name, os.fspath(value))

        path_or_none("state_path", "the path of the state file")
        if self.state_path is None:
            raise bad("state_path", "the path of the state file")
        if self.state_path.endswith(os.sep):  # Path() drops the slash: a file named like the directory
            raise bad("state_path", f"the path of a file, not of a directory (like "
                                    f"{self.state_path + DEFAULT_STATE!r})")
        path_or_none("data", "the path of a CSV file (to search a table in memory, save it with "
                             "frame.to_csv('train.csv', index=False), or return it from load_data() "
                             "in a grids file)")
        path_or_none("grids", "'classification', 'regression' or the path of a grids file (a .py "
                              "file with FAMILIES = {name: (estimator, grid)}), where families defined "
                              "in a session can be imported from __main__")
        if callable(self.scoring):  # a scorer made with make_scorer, a function
            raise bad("scoring", "a scikit-learn scorer's name (the state records it so, and a resume checks "
                                 "it), e.g. 'f1_macro', or None for the estimator's score; for a metric of your "
                                 "own, give the estimators of the grids file a score() method that computes it")
        for name in ("target", "scoring", "scheduler"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise bad(name, "a string, or None")
        if self.task not in (None, "classification", "regression"):
            raise bad("task", "'classification', 'regression' or None (inferred from the target)")
        if self.families is not None:
            if isinstance(self.families, str) or not all(isinstance(f, str) for f in self.families):
                raise bad("families", "a list of family names, e.g. ['nb', 'lr'], or None for all")
            if not self.families:
                raise bad("families", "a list of family names, e.g. ['nb', 'lr'], or None for all "
                                      "(an empty list would search nothing)")
            self.families = list(self.families)
        for name in ("cv", "n_jobs"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), numbers.Integral):
                raise bad(name, "a whole number" + (" of folds, at least 2" if name == "cv" else
                                                    " of workers (-1: all cores)"))
        if isinstance(self.max_time, str):
            try:
                self.max_time = parse_duration(self.max_time)
            except ValueError as exc:
                raise bad("max_time", f"seconds, or a duration like '30m' ({exc})") from None
        if self.max_time is not None and (isinstance(self.max_time, bool) or
                                          not isinstance(self.max_time, numbers.Real) or self.max_time < 0):
            raise bad("max_time", "seconds (0 or more), a duration like '30m', or None for no limit")
        for name in ("restart", "redo_changed", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "True or False")


@dataclass
class RunReport:
    """What a run did: ``stopped`` names the signal or ``"max-time"`` when it stopped early."""

    state_path: str
    families: list[str]
    done: list[str] = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    stopped: str | None = None
    wall_time: float = 0.0
    save_time: float = 0.0
    saves: int = 0
    tasks_run: int = 0
    status: list[dict] = field(default_factory=list)  # status_rows() of the state as saved last


def parse_duration(text: str) -> float:
    """Seconds in ``"90s"``, ``"30m"``, ``"2h"``, ``"1h30m"`` or a plain number of seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([dhms])", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ValueError(f"{text!r} is not a duration; write it like 90s, 30m, 2h or 1h30m")
    unit = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(float(a) * unit[b] for a, b in parts)


# ------------------------------------------------------------------------- runner


class _Stopped(BaseException):
    """A stop signal while the run loads (see :meth:`_Stop.raising`); not an error of the user's code."""


class _Stop:
    """Why the run must stop (a signal's name or "max-time"), set from signal handlers."""

    def __init__(self):
        self.reason: str | None = None
        self._raise = False
        self._signum = signal.SIGTERM  # the last stop signal's
        self._in_hook = False  # in raising's hook for the exceptions Python drops
        self._again: threading.Thread | None = None  # giving a dropped stop again (see raising)
        self._loading = False  # in raising's block

    def __bool__(self) -> bool:
        return self.reason is not None

    @contextlib.contextmanager
    def raising(self):
        """While the block runs, a stop signal raises :class:`_Stopped` where the code is.

        For the loading at the start of a run, which writes nothing: imports
        that stall on a slow shared filesystem, or a ``load_data()`` reading a
        big table, would otherwise hold a stop for as long as they take, past
        a scheduler's grace time.
        """
        if self:
            raise _Stopped
        previous = sys.unraisablehook

        def unraisable(failure):
            self._in_hook = True  # a stop signal now is given again once out of here (see on_signals)
            try:
                if isinstance(failure.exc_value, _Stopped):
                    # raised where Python cannot raise (a weakref callback, as importlib's module locks
                    # have, or a __del__), and dropped there: given again from outside, the stop still
                    # cuts the loading short, quietly
                    self._raise = True
                    self._give_again()
                else:
                    previous(failure)
            finally:
                self._in_hook = False

        sys.unraisablehook = unraisable
        self._raise = self._loading = True
        try:
            yield
        finally:
            self._raise = self._loading = False
            if self._again is not None:
                self._again.join()  # no signal of its after the handlers are given back
                self._again = None
            sys.unraisablehook = previous

    def _give_again(self) -> None:
        """Signal the main thread, from another, until a stop is raised where it is not dropped."""
        def again():
            main = threading.main_thread().ident
            while self._loading:
                if self._raise and not self._in_hook:
                    signal.pthread_kill(main, self._signum)  # a signal: it cuts a blocking call short
                time.sleep(0.01)

        if self._again is None:
            self._again = threading.Thread(target=again, name="search-stop-again", daemon=True)
            self._again.start()

    @contextlib.contextmanager
    def on_signals(self, then=None):
        """Turn SIGTERM, SIGINT, SIGUSR1 and SIGHUP (unless ignored, as under nohup) into a graceful
        stop while the block runs.

        Afterwards the signals get their previous handlers back, or ``then``
        (``signal.SIG_IGN``: a process about to exit with its result decided).
        """
        if threading.current_thread() is not threading.main_thread():
            yield self
            return

        def stop(signum, _frame):
            name = signal.Signals(signum).name
            if self.reason is None:
                logger.warning("%s received: stopping, saving what finished", name)
            self.reason, self._signum = name, signum
            if self._raise and self._in_hook:  # raised there, it would be dropped
                self._give_again()
            elif self._raise:
                self._raise = False  # once
                raise _Stopped

        # nohup's way to keep a process through a hangup is SIGHUP ignored: left so, as nohup asks
        nohup = signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        previous = {s: signal.signal(getattr(signal, s), stop) for s in STOP_SIGNALS
                    if not (s == "SIGHUP" and nohup)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(getattr(signal, s), handler if then is None else then)


@dataclass
class _Family:
    name: str
    estimator: object
    blob: bytes
    candidates: list[dict]
    keys: list[str]
    entry: dict  # the family's dict inside the state
    chains: list[list[int]]  # candidates (indices) fitted together on a fold: an ensemble grown, or one alone
    fold_offset: int = 0  # cv: its folds are the run's other splits (see _Runner._fold_offset)


@dataclass
class _Task:
    family: str
    key: str | None  # None for a refit
    params: dict
    fold: int = -1
    attempts: int = 0  # times its worker died while it ran alone (or, on dask, at all)
    suspect: bool = False  # in flight when a local worker died: runs again alone, to tell who did it
    early: bool = False  # a refit of the likely best, started before the family's last folds end
    result: dict | None = None  # an early refit's result, kept until the family's best is known
    grown: tuple = ()  # ((key, params), ...): larger ensembles of this candidate, grown from it on the fold
    submitted: float = 0.0  # time.monotonic() when it was handed to the pool

    def candidates(self) -> list[tuple[str, dict]]:
        return [(self.key, self.params), *self.grown]


def _containers_copied(data):
    """``data`` with its dicts and lists copied, all else shared: what a background checkpoint writes
    while the run goes on adding to the state."""
    if type(data) is dict:
        return {key: _containers_copied(value) for key, value in data.items()}
    if type(data) is list:
        return [_containers_copied(value) for value in data]
    return data


def _suspect_in(inflight: dict) -> bool:
    """Whether a task that must run alone (see ``_Task.suspect``) is in flight."""
    return any(t.suspect for t in inflight.values())


def run(config: RunConfig) -> RunReport:
    """Search every selected family not yet done, resuming from the state file.

    Returns a :class:`RunReport`; raises :class:`state.SearchError` (or a
    subclass) for anything the user must fix, and never leaves the state file
    worse than it found it.
    """
    _check_working_directory()
    # from here on, a stop signal means a graceful stop, not death; another runner holding the file,
    # StateLocked at once
    with _Stop().on_signals() as stop, state.lock(config.state_path):
        # the loading is not cut short here: a stop raised inside an import (numpy's, say) would leave
        # the caller's session with a half-imported module; the process is the caller's, not ours
        report = _run(config, stop, cut_loading=False)
    if report.stopped == "SIGINT":  # Ctrl-C, a notebook's "interrupt kernel": stop the caller too
        raise KeyboardInterrupt(f"search.run stopped by SIGINT; what finished is saved in "
                                f"{config.state_path}, and the same call resumes")
    return report


def _check_working_directory() -> None:
    """Refuse to start a run in a working directory that was removed (while a shell was in it).

    Worker processes start in the runner's working directory, and relative paths resolve in it:
    nothing could be created there, and starting the workers would fail halfway with a traceback.
    """
    try:
        os.getcwd()
    except FileNotFoundError:
        shown = os.environ.get("PWD", "")  # the shell's name for it, if that is the one removed
        shown = f" {shown}" if shown.startswith("/") and not os.path.lexists(shown) else ""
        raise SearchError(f"the working directory{shown} no longer exists (it was removed while this "
                          "shell was in it); cd to a directory that exists and run the command again") from None


def _run(config: RunConfig, stop: _Stop, cut_loading: bool = True) -> RunReport:
    try:
        # nothing is written before the pool starts: a stop can cut anything short
        with stop.raising() if cut_loading else contextlib.nullcontext():
            runner = _prepare(config, stop)
    except BaseException as exc:
        if not (stop and _stopped_in(exc)):
            raise
        return RunReport(config.state_path, list(config.families or ()), stopped=stop.reason)
    return runner.run()


def _stopped_in(exc: BaseException) -> bool:
    """Whether ``exc`` is a stop, or an error that a stop caused: Python turns an exception raised
    in a ``__set_name__`` (a class body of scipy's, being imported) into a RuntimeError, and a
    grids file's or a ``load_data()``'s own handling may wrap it in theirs."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, _Stopped):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _prepare(config: RunConfig, stop: _Stop) -> _Runner:
    """Load and check the grids, the data and the state: the runner, ready to start its pool."""
    if not config.restart and not os.path.lexists(config.state_path):
        gone = _missing_state(config.state_path)
        if gone:  # a new search would replace the previous generation at its second save
            previous = state.previous_path(config.state_path)
            raise SearchError(
                f"{gone.rstrip('.')}; a new search would overwrite {previous}: to start afresh all the same, "
                f"add --restart (which moves it to {config.state_path}.<date>-<time>.bak) or remove it"
            )
    unknown = _unknown_scoring(config.scoring)
    if unknown:
        raise SearchError(f"--scoring {unknown}")
    if config.cv < 2:
        raise SearchError(f"--cv {config.cv} must be at least 2")
    if config.n_jobs == 0:
        raise SearchError("n_jobs 0: 0 workers cannot run anything; use -1 for all cores")
    from grids import load_grids

    grids = load_grids(config.grids, config.task)
    implied = None if config.grids is None else families_task(grids.families)
    dataset = load_dataset(config.data, config.target, grids.load_data, config.task or implied)
    if config.task:
        task, why = config.task, f"--task {config.task}"
    elif implied:
        task, why = implied, f"--grids {config.grids} (its families are all {_ESTIMATOR_KIND[implied]})"
    else:
        task, why = infer_task(dataset.y), "the target's values"
    if config.grids is None and grids.source != task:
        grids = load_grids(task)
    check_data(dataset, task, config.cv, config.scoring, why)
    builtin_data = config.data is None and grids.load_data is None  # scikit-learn's: known, no advice
    if why == "the target's values" and not builtin_data:
        logger.info("%s", _inferred_task(dataset, task))
    if task == "classification":
        _warn_near_labels(dataset)
    check_columns(dataset.X, dataset.source, builtin=config.grids in (None, "classification", "regression"))
    selected = list(grids.families)
    if config.families:
        unknown = [f for f in config.families if f not in grids.families]
        if unknown:
            other = "regression" if task == "classification" else "classification"
            hint = ""
            if config.grids is None and all(f in load_grids(other).families for f in unknown):
                hint = (f"; {'it is a' if len(unknown) == 1 else 'they are'} built-in {other} "
                        f"famil{'y' if len(unknown) == 1 else 'ies'}, and the task is {task} from {why}: "
                        f"add --task {other}")
            where = (f"the built-in {grids.source} families" if grids.source in ("classification", "regression")
                     else f"grids file {grids.source!r}")
            raise SearchError(
                f"--families: {', '.join(map(repr, unknown))} not in {where}; "
                f"expected one of {', '.join(grids.families)}{hint}"
            )
        selected = [f for f in grids.families if f in config.families]
    estimators = {name: grids.families[name][0] for name in selected}
    if config.task:
        _check_kinds(config.task, estimators, grids.source)
    if config.scoring is None:
        _warn_unlike_scores(estimators)
    _refuse_booleans_to_builtin_preparation(dataset.X, estimators)
    return _Runner(config, grids, dataset, task, selected, stop)


def _refuse_booleans_to_builtin_preparation(X, estimators: dict) -> None:
    """Refuse, before any work, columns of dtype bool for families that begin with the built-in
    preparation (``grids.preprocessor()``, as ``builtin_families`` do): its imputer refuses booleans,
    so every fit would fail. ``--data`` gives such columns as 1 and 0; a ``load_data()``'s table is
    given as it is, so the fix is there."""
    import numpy as np
    import pandas as pd

    from grids import preprocessor

    dtypes = getattr(X, "dtypes", None)
    if not isinstance(dtypes, pd.Series):
        return
    columns = [str(c) for c, dtype in dtypes.items() if dtype == np.dtype(bool)]
    if not columns:
        return
    builtin = fingerprint(preprocessor())
    using = [name for name, estimator in estimators.items()
             if hasattr(estimator, "steps") and fingerprint(estimator.steps[0][1]) == builtin]
    if using:
        listed = ", ".join(map(repr, columns))
        raise SearchError(
            f"load_data() returned column{'s' if len(columns) > 1 else ''} {listed} of True/False (dtype bool), "
            f"and famil{'ies' if len(using) > 1 else 'y'} {', '.join(using)} begin{'' if len(using) > 1 else 's'} "
            "with the built-in preparation, whose imputer refuses booleans: every fit would fail. Give "
            f"{'them' if len(columns) > 1 else 'it'} as the numbers 1 and 0 in load_data(), as --data does: "
            f"X[[{listed}]] = X[[{listed}]].astype(float)"
        )


def _check_kinds(task: str, estimators: dict, source: str) -> None:
    """Refuse a --task the families contradict: a classifier searched for a regression treats each
    value of the target as a class, a regressor searched for a classification scores the classes
    as numbers, and either is searched with the other task's folds."""
    from sklearn.base import is_classifier, is_regressor

    other = is_regressor if task == "classification" else is_classifier
    wrong = [name for name, est in estimators.items() if other(est)]
    if wrong:
        kind = _ESTIMATOR_KIND["regression" if task == "classification" else "classification"]
        raise SearchError(
            f"--task {task}, but {', '.join(map(repr, wrong))} of {_families_of(source)} "
            f"{f'is a {kind[:-1]}' if len(wrong) == 1 else f'are {kind}'}, made for the other task; choose "
            f"families of {_ESTIMATOR_KIND[task]} (--families, or --grids {task}), or drop --task"
        )


def _families_of(source: str) -> str:
    """Where families came from, for messages: the built-in set of a task, or a grids file."""
    return f"the built-in {source} families" if source in _ESTIMATOR_KIND else f"the grids file {source}"


def _warn_unlike_scores(estimators: dict) -> None:
    """Warn when the families' own score methods measure different things (accuracy, R², ...)."""
    from sklearn.base import is_classifier, is_regressor

    kinds = collections.defaultdict(list)
    for name, est in estimators.items():
        kind = ("classifiers: accuracy" if is_classifier(est) else "regressors: R²" if is_regressor(est)
                else f"{type(est).__name__}: its own score")
        kinds[kind].append(name)
    if len(kinds) > 1:
        logger.warning("without --scoring each family is scored by its estimator's own score method, and "
                       "these measure different things (%s): `search best` would compare unlike numbers; "
                       "give --scoring NAME to score every family alike",
                       "; ".join(f"{', '.join(names)} ({kind})" for kind, names in kinds.items()))


_NUMBER = re.compile(r"\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")


class _Runner:
    def __init__(self, config, grids, dataset, task, selected, stop: _Stop):
        self.config = config
        self.path = config.state_path
        self.dataset = dataset
        self.task = task
        self.selected = selected
        self.report = RunReport(self.path, selected)
        self._stop = stop
        self._dirty = False
        self._next_save = 0.0
        self._save_cost = 0.0  # the last checkpoint's seconds
        self._saved_work = 0.0  # the fit, score and refit seconds the last checkpoint held
        # a checkpoint being written in the background: (its future, when it began, the work it holds)
        self._saving: tuple[concurrent.futures.Future, float, float] | None = None
        self._save_due = False  # a family's end wanted a checkpoint while one was being written
        self._early: dict[str, _Task] = {}  # family -> its early refit
        self._warned: set[tuple] = set()  # (category, message) of the workers' warnings reported
        self._first_submit = 0.0  # when the run handed its first task to the pool
        self._unfinished: dict[str, float] = {}  # family -> the longest its fits ran unfinished before
        self._lost_work = 0  # tasks the pool lost and the runner ran again
        self.state = self._open_state(grids)
        self.families = self._prepare_families(grids)

    # ---- opening and checking the state

    def _open_state(self, grids) -> dict:
        config, path = self.config, self.path
        # --restart moves the old file (or, with the file gone, its previous generation) away at the
        # first save, once everything else has been checked and the pool has started: a run that
        # cannot start leaves it where it was.
        self._restart_pending = config.restart and any(map(os.path.lexists, (path, state.previous_path(path))))
        try:
            data = None if self._restart_pending else _checked(state.load(path, lazy=True), path)
        except FileNotFoundError:
            data = None
        run_info = self._run_info(grids, data)
        self._environment = state.environment()
        if data is not None and data["run"]["data"]["fingerprint"] != run_info["data"]["fingerprint"]:
            self._keep_older_reading(data["run"]["data"]["fingerprint"], run_info)
        if data is None:
            return {
                "format_version": FORMAT_VERSION,
                "environment": self._environment,
                "created": _now(),
                "updated": _now(),
                "run": run_info,
                "families": {},
            }
        self._check_run(data["run"], run_info)
        for entry in data["families"].values():  # files from before families kept their own
            if entry["status"] != "pending" and "environment" not in entry and "environment" in data:
                entry["environment"] = dict(data["environment"])
        data["environment"] = self._environment  # the last runner's; each family keeps its own
        for key in ("text_columns", "boolean_columns"):  # same data: a state of before them gets them
            data["run"]["data"].setdefault(key, run_info["data"][key])
        data["run"]["family_order"] = run_info["family_order"] + [
            f for f in data["run"]["family_order"] if f not in run_info["family_order"]
        ]
        return data

    def _keep_older_reading(self, saved_fingerprint: str, run_info: dict) -> None:
        """A state begun before the file was read as it is now goes on with the data as it was read
        then, rather than being refused as other data (the data is hashed again only for such a
        state): a whole-number target with missing cells was decimals; columns of True and False
        were booleans (categories), not 1 and 0; a spreadsheet's blank columns were features."""
        import dataclasses

        d = self.dataset
        readings = [(X, y) for X in (d.X, d.X_as_read) for y in (d.y, d.decimals_target)
                    if X is not None and y is not None][1:]
        for X, y in readings:
            if data_fingerprint(X, y, like=saved_fingerprint) == saved_fingerprint:
                self.dataset = dataclasses.replace(d, X=X, y=y, decimals_target=None, X_as_read=None)
                run_info["data"]["fingerprint"] = saved_fingerprint
                run_info["data"].update(text_columns=text_columns(X), columns=list(map(str, X.columns)),
                                        n_features=X.shape[1])
                return

    def _run_info(self, grids, previous) -> dict:
        import joblib
        import numpy as np

        X, y = self.dataset.X, self.dataset.y
        if previous is not None and previous["run"]["cv"]["n_splits"] == self.config.cv:
            test_indices = previous["run"]["cv"]["test_indices"]  # computed once, kept
        else:
            test_indices = self._test_indices(self.task == "classification")
        columns = list(map(str, getattr(X, "columns", [])))
        return {
            "task": self.task,
            "data": {
                "source": self.dataset.source,
                "target": self.dataset.target,
                "n_samples": len(y),
                "columns": columns,
                "n_features": X.shape[1] if getattr(X, "ndim", 0) == 2 else None,
                "text_columns": text_columns(X),
                # those that held True and False in the file (given to the model as 1 and 0)
                "boolean_columns": boolean_columns(X if self.dataset.X_as_read is None else self.dataset.X_as_read),
                # how the saved one was made: a state of before the fast hashes of tables goes on
                "fingerprint": data_fingerprint(X, y, like=previous and previous["run"]["data"]["fingerprint"]),
            },
            "cv": {
                "n_splits": self.config.cv,
                "test_indices": test_indices,
                "fingerprint": joblib.hash([np.asarray(t) for t in test_indices]),
            },
            "scoring": self.config.scoring,
            "grids": grids.source,
            "family_order": list(grids.families),
        }

    def _test_indices(self, classifier: bool) -> list:
        """Each fold's test rows, as GridSearchCV splits for a classifier or for any other estimator."""
        import numpy as np
        from sklearn.model_selection import check_cv

        splitter = check_cv(self.config.cv, self.dataset.y, classifier=classifier)
        return [np.asarray(test, dtype=np.int64) for _, test in splitter.split(self.dataset.X, self.dataset.y)]

    def _fold_offset(self, estimator) -> int:
        """0 if GridSearchCV would split the data for ``estimator`` as for the run's task, else ``cv``.

        GridSearchCV stratifies the folds of a classifier (when the target
        holds classes) and not those of any other estimator, a regressor, a
        clusterer or a plain estimator with a ``score`` method. A family
        split the other way than the run's task uses the run's other splits,
        kept in the state beside the first (``other_test_indices``) and
        numbered after them for the workers.
        """
        from sklearn.base import is_classifier

        if is_classifier(estimator) == (self.task == "classification") or self._other_test_indices is None:
            return 0
        return self.config.cv

    @functools.cached_property
    def _other_test_indices(self) -> list | None:
        """The folds of the families split the other way than the run's task, computed once and kept
        in the state; None when they are the same folds (a target without classes: plain k-fold)."""
        import numpy as np

        cv = self.state["run"]["cv"]
        if "other_test_indices" not in cv:
            other = self._test_indices(self.task != "classification")
            if all(np.array_equal(a, b) for a, b in zip(other, cv["test_indices"])):
                return None
            cv["other_test_indices"] = other
            self._dirty = True
        return cv["other_test_indices"]

    def _check_run(self, saved: dict, now: dict) -> None:
        """Refuse to resume a state made with other data or settings, naming every difference."""
        differences, resume = [], []
        if saved["data"]["fingerprint"] != now["data"]["fingerprint"]:
            differences.append(f"other data: {saved['data']['source']} ({_data_summary(saved['data'])}) and "
                               f"now {now['data']['source']} ({_data_summary(now['data'], saved['data'])})")
            resume.append("the data it was made with")
        for key, option in (("task", "--task"), ("scoring", "--scoring")):
            if saved[key] != now[key]:
                unset = "no --scoring (the estimator's own score)" if key == "scoring" else "no --task"
                then = f"{option} {saved[key]}" if saved[key] else unset
                differences.append(f"{then}, now {f'{option} {now[key]}' if now[key] else unset}")
                resume.append(then if saved[key] else f"no {option}")
        if saved["cv"]["n_splits"] != now["cv"]["n_splits"]:
            differences.append(f"--cv {saved['cv']['n_splits']}, now --cv {now['cv']['n_splits']}")
            resume.append(f"--cv {saved['cv']['n_splits']}")
        if differences:
            raise StateMismatch(
                f"the state file {self.path} was made with {'; with '.join(differences)}. To resume it, "
                f"rerun with {' and '.join(resume)}; to start over and keep the old file as a backup, "
                "add --restart; to keep both searches, use another --state PATH"
            )

    def _prepare_families(self, grids) -> list[_Family]:
        import cloudpickle
        from sklearn.model_selection import ParameterGrid

        prepared, changed, other_versions = [], [], []
        for name in self.selected:
            estimator, grid = grids.families[name]
            candidates = list(ParameterGrid(grid))
            keys = _distinct([candidate_key(c) for c in candidates])
            (estimator_fp, parts), grid_fp = fingerprint_and_parts(estimator), fingerprint(grid)
            entry = self.state["families"].get(name)
            kept = kept_folds = None
            if entry is not None and entry["status"] == "pending":
                entry.pop("environment", None)  # nothing was made with it: the first result sets it
            versions = _versions_changed(entry) if entry is not None else []
            redefined = entry is not None and \
                (entry["estimator_fingerprint"], entry["grid_fingerprint"]) != (estimator_fp, grid_fp)
            if entry is not None and entry["status"] == "failed":
                logger.info("family %r failed in an earlier run: searching it again", name)
                entry = None  # a failed family holds no work worth keeping
            elif entry is not None and entry["status"] == "partial" and versions:
                if not self.config.redo_changed:
                    other_versions.append((name, entry, versions))
                    continue
                logger.warning("family %r was begun with %s: searching it again under this version, "
                               "without its %d saved candidates", name, _versions_text(versions, "then"),
                               len(entry["candidates"]))
                entry = None  # results of two versions are not mixed in one family
            elif redefined and entry["status"] == "pending":
                entry = None  # nothing saved to lose: it is the family as defined now
            elif redefined:
                if not self.config.redo_changed:
                    changed.append((name, _what_changed(entry, estimator, estimator_fp, parts, grid_fp, candidates),
                                    bool(_versions_changed(entry, _CODE_VERSIONS))))
                    continue
                # results of other versions are not mixed with this one's
                same_estimator = entry["estimator_fingerprint"] == estimator_fp and not versions
                kept = {k: v for k, v in entry["candidates"].items()
                        if same_estimator and k in set(keys)}
                kept_folds = {k: v for k, v in entry.get("folds", {}).items()
                              if same_estimator and k in set(keys)}
                logger.warning("family %r changed: searching it again (%d saved candidates "
                               "still apply)", name, len(kept))
                entry = None
            if entry is None:
                kept_time = sum(sum(c["fit_times"]) + sum(c["score_times"]) for c in (kept or {}).values()) + \
                    sum(f["fit_time"] + f["score_time"] for folds in (kept_folds or {}).values()
                        for f in folds.values())
                entry = self.state["families"][name] = {
                    "status": "partial" if kept or kept_folds else "pending",
                    "estimator": _stable_repr(estimator),
                    "estimator_fingerprint": estimator_fp,
                    "grid_fingerprint": grid_fp,
                    "n_candidates": len(candidates),
                    "candidates": kept or {},
                    "folds": kept_folds or {},
                    "time_spent": kept_time,  # the kept candidates' fits and scores, as saved
                    "grids": grids.source,
                    "code_parts": parts,  # to name the piece an edit changes
                }
                self._dirty = True
            entry.setdefault("folds", {})  # files of version 1 before fold-level progress
            if "code_parts" not in entry:  # files from before they were kept: the code is the same
                entry["code_parts"] = parts
            blob = cloudpickle.dumps(estimator, protocol=5)
            prepared.append(_Family(name, estimator, blob, candidates, keys, entry,
                                    growth_chains(estimator, candidates), self._fold_offset(estimator)))
        if other_versions:
            raise StateMismatch(_other_versions_message(other_versions, self.path))
        if changed:
            # searched from another grids file (or the built-in set): most likely a --grids left out
            sources = {self.state["families"][name].get("grids") for name, _, _ in changed} - {grids.source, None}
            one = len(changed) == 1
            hint = "".join(
                f"{'It was' if one else 'They were'} searched from {_families_of(source)}, and this run "
                f"takes {'it' if one else 'them'} from {_families_of(grids.source)}: to resume "
                f"{'it' if one else 'them'}, rerun with --grids {shlex.quote(source)}. "
                for source in sorted(sources))
            keep = ("use the versions named above" if all(v for _, _, v in changed) else
                    "undo the change (or use the versions named above)" if any(v for _, _, v in changed) else
                    "undo the change")
            raise StateMismatch(
                f"famil{'y' if len(changed) == 1 else 'ies'} {', '.join(repr(n) for n, _, _ in changed)} "
                f"changed since searched into {self.path}:\n" +
                "".join(f"  {name!r}: {what}\n" for name, what, _ in changed) + hint +
                f"To search {'it' if len(changed) == 1 else 'them'} again"
                f"{' with these families' if sources else ''} add --redo-changed; to keep "
                f"the old results as they are, {keep} or use another --state"
            )
        self._mark_removed(grids)
        return prepared

    def _mark_removed(self, grids) -> None:
        """Mark the families that were searched from this grids file and are no longer in it: their
        results stay, and `best` leaves them out (a family dropped on purpose is not the best)."""
        for name, entry in self.state["families"].items():
            if name in grids.families:
                if entry.pop("removed", None) is not None:  # put back in the file
                    self._dirty = True
            elif "removed" not in entry and entry.get("grids", self.state["run"]["grids"]) == grids.source:
                entry["removed"] = _now()
                self._dirty = True
                logger.warning("family %r is no longer in %s: its results stay in %s; `search best` leaves it "
                               "out, and so do `export` and `predict` unless given --family %s",
                               name, grids.source, self.path, name)

    # ---- the loop

    def run(self) -> RunReport:
        import numpy as np
        from tqdm import tqdm  # text on stderr everywhere: tqdm.auto warns in notebooks without ipywidgets

        start = time.monotonic()
        deadline = None if self.config.max_time is None else start + self.config.max_time
        fams = {f.name: f for f in self.families}
        queue: collections.deque[_Task] = collections.deque()
        fold_times = collections.defaultdict(list)  # per family: seconds per fit, to plan --max-time
        for fam in self.families:
            self._refresh(fam)
            queue.extend(self._tasks_for(fam))
            fold_times[fam.name].extend(_saved_times(fam.entry))
        # the longest one of a family's fits ran unfinished in earlier runs: it takes that at least
        self._unfinished = {f.name: f.entry.get("cut_short", {}).get("longest", 0.0) for f in self.families}
        self._check_cut_short(queue)
        cut = {f.name for f in self.families if f.entry.get("cut_short")}
        if cut and any(t.family not in cut for t in queue):
            # The last run's stop came while these families' fits ran, none finished: the others go
            # first, or a family whose fits outlast the runs would hold them back in every requeue.
            queue = collections.deque(sorted(queue, key=lambda t: t.family in cut))  # stable
            logger.info("%s last: the last run stopped while %s fits ran, before any finished",
                        ", ".join(sorted(cut)), "its" if len(cut) == 1 else "their")
        progressed: set[str] = set()  # families with a fold or a refit finished in this run
        total = sum(len(f.candidates) * self.config.cv for f in self.families)
        already = sum(_fits_saved(f.entry, self.config.cv) for f in self.families)
        if not queue:
            self._save()
            return self._finish(start)
        pool = self._make_pool()
        if self._restart_pending:  # the run can start: move the old state away now, not after work
            try:
                self._save()
            except BaseException:
                pool.close(kill=True)
                raise
        inflight: dict = {}
        bar = tqdm(total=total, initial=already, unit="fit", file=sys.stderr, dynamic_ncols=True,
                   disable=not self.config.progress, desc="search")
        # Everything loaded by now (scikit-learn, the data, the state) lives as long as the run:
        # the collector's full passes skip it, instead of stalling dispatch for 0.1 s each.
        gc.freeze()
        try:
            cv = self.state["run"]["cv"]
            pool.share((self.dataset.X, self.dataset.y, [*cv["test_indices"], *cv.get("other_test_indices", ())]),
                       [fams[name].blob for name in dict.fromkeys(task.family for task in queue)])
            while True:
                # dispatch: keep every worker busy, one task queued ahead
                while queue and len(inflight) < pool.n_workers + pool.ahead and not self._stop:
                    # the first task that still fits in the time left (of another family, perhaps)
                    task = next((t for t in queue if deadline is None or self._fits(t, fold_times, deadline)),
                                None)
                    if task is None and not self._first_submit:
                        # nothing seems to fit, and nothing ran: the likeliest is tried all the same, for
                        # the run to make progress or, cut short twice, to end the requeues (exit 1)
                        task = min(queue, key=lambda t: self._estimate(t, fold_times))
                    if task is None:
                        break
                    if _suspect_in(inflight) or (task.suspect and inflight):
                        break  # a suspect runs alone
                    queue.remove(task)
                    fam = fams[task.family]
                    try:
                        if task.key is None:
                            fut = pool.submit(refit, pool.data_ref, fam.blob, task.params)
                        else:
                            fut = pool.submit(fit_fold, pool.data_ref, fam.blob,
                                              [params for _, params in task.candidates()],
                                              task.fold + fam.fold_offset, self.config.scoring)
                    except BaseException as exc:  # noqa: BLE001 - a pool broken by a worker's death
                        if not pool.is_lost(exc):
                            raise
                        queue.appendleft(task)
                        if inflight:  # the tasks in flight were lost with it: handled as they come back
                            break
                        pool.recover()  # a worker died idle
                        continue
                    task.submitted = time.monotonic()
                    self._first_submit = self._first_submit or task.submitted
                    inflight[fut] = task
                if not queue and not self._stop and len(inflight) < pool.n_workers and not _suspect_in(inflight):
                    self._start_early_refits(pool, inflight)
                if self._stop or not inflight:
                    if queue and not self._stop:
                        self._stop.reason = "max-time"
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    self._stop.reason = "max-time"
                    break
                for fut in pool.wait(list(inflight), timeout=0.25):
                    task = inflight.pop(fut, None)
                    if task is None:  # a wrong early refit, dropped by a fold of this same batch
                        continue
                    try:
                        result = fut.result()
                    except BaseException as exc:  # noqa: BLE001 - classified just below
                        if self._stop:
                            continue
                        if isinstance(exc, WorkerEnvironmentError):
                            raise SearchError(pool.cannot_load(*exc.args, family=task.family)) from None
                        lost = isinstance(exc, KeyboardInterrupt) or pool.is_lost(exc)
                        cause = pool.lost_because(exc) if lost else None
                        if lost and pool.loses_inflight:
                            # A broken local pool takes every task in flight with it, and says not
                            # whose worker died: alone, the task did it; else each runs again alone.
                            victims = [task, *inflight.values()]
                            inflight.clear()
                            for t in victims:
                                t.attempts += len(victims) == 1 and cause is None
                                t.suspect = t.suspect or cause is None
                            again = task.attempts < _MAX_ATTEMPTS
                            queue.extendleft(self._retry(victims if again else victims[1:], pool))
                        else:
                            task.attempts += lost
                            again = lost and task.attempts < _MAX_ATTEMPTS
                            if again:
                                queue.extendleft(self._retry([task], pool))  # dask keeps the others
                        if again:
                            self._lost_work += 1
                            logger.log(logging.WARNING if self._lost_work == 1 else logging.DEBUG,
                                       "lost work (%s); running it again%s", cause or
                                       f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}",
                                       " (further losses are counted at the end)" if self._lost_work == 1 else "")
                            continue
                        error = "".join(traceback.format_exception(exc))
                        if lost and pool.loses_inflight:  # the last line is what a failure summary shows
                            error += (f"the worker running this task died each of the {_MAX_ATTEMPTS} "
                                      "times it ran alone (a crash in native code, out of memory, or "
                                      f"killed): {str(exc).strip().splitlines()[0]}\n")
                        elif lost:
                            error += (f"the cluster lost this task {_MAX_ATTEMPTS} times (its worker, or "
                                      "the workers holding the data, died: a crash in native code, out of "
                                      "memory, or killed)\n")
                        failed = {"score": np.nan, "fit_time": 0.0, "score_time": 0.0, "work": 0.0,
                                  "error": error}
                        result = failed if task.key is None else [failed] * len(task.candidates())
                    finally:
                        pool.release(fut)  # read: a cluster need not keep it, nor compute it again if lost
                    fam = fams[task.family]
                    self._report_warnings(fam, result)
                    self.report.tasks_run += 1
                    if task.early:  # the family's best is not known yet: kept until it is
                        task.result = result
                        continue
                    progressed.add(task.family)
                    if task.key is None:
                        self._store_refit(fam, result)
                        self._save_family_end()
                        continue
                    for (key, params), fold_result in zip(task.candidates(), result):
                        fold_times[task.family].append(fold_result["fit_time"] + fold_result["score_time"])
                        bar.update(1)
                        folds = self._store_fold(fam, key, task.fold, fold_result)
                        if len(folds) == self.config.cv:
                            self._store_candidate(fam, key, params, folds)
                            if len(fam.entry["candidates"]) == len(fam.candidates):
                                self._candidates_done(fam, pool, queue, inflight)
                            bar.set_description(self._describe(fam))
                self._maybe_save()
        except _Stopped:  # a pool waiting (for its scheduler, a worker) gave up on a stop: a stop like any
            if not self._stop:
                raise
        finally:
            gc.unfreeze()
            bar.close()
            if self._stop:
                self._record_cut_short(inflight.values(), progressed)
            self.report.stopped = self._stop.reason
            try:  # saved first: a pool slow to close must not cost the save its grace time
                self._final_save(failing=sys.exc_info()[1])
            finally:
                pool.close(kill=True)  # idle workers go at once; on a stop, so do fits in flight
        return self._finish(start)

    def _final_save(self, failing: BaseException | None) -> None:
        """Save what finished; when the run is already failing, its error stays the one reported."""
        try:
            try:
                self._save_written(wait=True)
            except state.StateError as error:  # what it held is saved below, or that save says why not
                logger.debug("the last checkpoint failed (%s); saving again", error)
            self._save()
        except state.StateError as error:
            if failing is None:
                raise
            if not _same_failure(error, failing):  # the same error is reported once, by the caller
                logger.error("%s", error)

    def _make_pool(self):
        if self.config.scheduler:
            _remove_orphaned_data()  # of local runs killed on this machine: any search run sweeps them
            pool = DaskPool(self.config.scheduler, self.config.n_jobs, stop=self._stop)
            if not self._stop:  # stopped while waiting for a worker: there are none to tell of
                logger.info("dask scheduler %s: %d worker threads%s", self.config.scheduler,
                            pool.n_workers, f"; dashboard {pool.dashboard}" if pool.dashboard else "")
            return pool
        return LocalPool(self.config.n_jobs)

    def _tasks_for(self, fam: _Family) -> list[_Task]:
        if fam.entry["status"] in ("done", "failed"):
            return []
        done, folds, tasks = fam.entry["candidates"], fam.entry["folds"], []
        for chain in fam.chains:
            for fold in range(self.config.cv):
                todo = [(fam.keys[i], fam.candidates[i]) for i in chain
                        if fam.keys[i] not in done and fold not in folds.get(fam.keys[i], {})]
                if todo:
                    (key, params), *grown = todo
                    tasks.append(_Task(fam.name, key, params, fold, grown=tuple(grown)))
        if not tasks:  # every candidate is in: only the refit is left
            refit_task = self._complete(fam)
            return [refit_task] if refit_task else []
        return tasks

    def _candidates_done(self, fam: _Family, pool, queue: collections.deque, inflight: dict) -> None:
        """Every candidate of ``fam`` is in: its refit next (unless an early one is of its best), or failed."""
        pool.forget(fam.blob)
        refit_task = self._complete(fam)
        if self._adopt_early(fam, refit_task, inflight):
            return  # its refit is done, or under way
        if refit_task is not None:
            queue.appendleft(refit_task)
        else:
            self._save_family_end()

    def _retry(self, lost: list[_Task], pool) -> list[_Task]:
        """Recover the pool; return the tasks to run again, to put back at the head of the queue."""
        for t in lost:
            if t.early:  # a guess, not work owed: forgotten, and guessed again if a worker idles
                self._early.pop(t.family, None)
        pool.recover()
        return [t for t in reversed(lost) if not t.early]

    # ---- early refits

    def _start_early_refits(self, pool, inflight: dict) -> None:
        """Refit the likely best of families whose last folds run, on workers that have nothing else to do.

        Only at the end of a run: every other task is done or running, so
        the guess costs nothing but an idle worker's time. When the family's
        best turns out to be the candidate guessed, its refit is done or
        under way when the last fold ends; otherwise the real refit starts
        then as it always did, and the guess is dropped.
        """
        for fam in self.families:
            if len(inflight) >= pool.n_workers:
                return
            if fam.name in self._early or fam.entry["status"] not in ("pending", "partial") \
                    or any(t.family == fam.name and t.key is None for t in inflight.values()):
                continue
            params = self._likely_best(fam)
            if params is None:
                continue
            task = self._early[fam.name] = _Task(fam.name, None, params, early=True)
            inflight[pool.submit(refit, pool.data_ref, fam.blob, params)] = task
            logger.debug("%s: refitting the likely best %s while its last folds run", fam.name, params)

    def _likely_best(self, fam: _Family) -> dict | None:
        """The candidate with the best mean score over its folds finished so far (first one on ties)."""
        best, best_mean = None, -math.inf
        for key, params in zip(fam.keys, fam.candidates):
            done = fam.entry["candidates"].get(key)
            scores = done["test_scores"] if done else [r["score"] for r in fam.entry["folds"].get(key, {}).values()]
            if not scores or any(map(math.isnan, scores)):
                continue
            mean = math.fsum(scores) / len(scores)
            if mean > best_mean:
                best, best_mean = params, mean
        return best

    def _adopt_early(self, fam: _Family, refit_task: _Task | None, inflight: dict) -> bool:
        """Use the family's early refit if it is of its best candidate (None: the family failed); whether it was."""
        early = self._early.pop(fam.name, None)
        if early is None:
            return False
        if refit_task is None or candidate_key(early.params) != candidate_key(refit_task.params):
            for fut, t in list(inflight.items()):
                if t is early:  # a wrong guess: not waited for; cancelled, or ended by closing the pool
                    del inflight[fut]
                    fut.cancel()
            return False
        early.early = False
        if early.result is not None:  # already done
            self._store_refit(fam, early.result)
            self._save_family_end()
        return True  # else in flight, and its result is stored as the refit's when it comes

    def _record_cut_short(self, tasks, progressed: set[str]) -> None:
        """Note, per family, stops that cut its fits before any of them finished in the run.

        A family whose fits are longer than the runs it gets (``--max-time``, a
        job's time limit) would otherwise be started and abandoned by every
        requeued run, without a word. Runs interrupted with SIGINT do not count.
        """
        now, longest = time.monotonic(), {}
        for task in tasks:
            if task.submitted and not task.early:
                longest[task.family] = max(longest.get(task.family, 0.0), now - task.submitted)
        window = now - self._first_submit if self._first_submit else 0.0
        for fam in self.families:
            if fam.name in progressed and "cut_short" in fam.entry:
                del fam.entry["cut_short"]
            elif fam.name in longest and fam.name not in progressed and self._stop.reason != "SIGINT":
                # (a Ctrl-C, a notebook's interrupt: someone's choice, not a limit the runs will meet again)
                before = fam.entry.get("cut_short", {"runs": 0, "longest": 0.0, "max_time_runs": 0})
                # --max-time ended the run while one of its fits had run through most of it
                whole = self._stop.reason == "max-time" and longest[fam.name] >= 0.8 * window
                fam.entry["cut_short"] = {
                    "runs": before["runs"] + 1,
                    "longest": round(max(before["longest"], longest[fam.name]), 3),
                    "max_time_runs": before["max_time_runs"] + 1 if whole else 0,
                    "max_time": self.config.max_time,  # a longer --max-time deserves another try
                }
            else:
                continue
            self._dirty = True

    def _check_cut_short(self, queue) -> None:
        """Say which families the last runs stopped before any of their fits finished; with
        --max-time, refuse a run in which nothing else is left and they cannot finish either."""
        cut = {f.name: f.entry["cut_short"] for f in self.families
               if f.entry.get("cut_short", {}).get("runs", 0) >= 2 and any(t.family == f.name for t in queue)}
        limit = self.config.max_time
        for name, record in cut.items():
            if record.get("max_time") and (limit is None or limit > record["max_time"]):
                continue  # given more time than the last run had: the advice is taken
            logger.warning("%s: the last %d runs stopped before any of its fits finished (one ran %.1f s); "
                           "it needs longer runs (--max-time, the job's time limit) to make progress",
                           name, record["runs"], record["longest"])
        if limit and cut and all(t.family in cut and cut[t.family]["max_time_runs"] >= 2
                                 and limit <= cut[t.family]["max_time"] for t in queue):
            names = ", ".join(map(repr, cut))
            raise SearchError(
                f"famil{'y' if len(cut) == 1 else 'ies'} {names}: every fit left needs more than "
                f"--max-time {_format_seconds(limit)} gives (the last runs ran them for up to "
                f"{max(r['longest'] for r in cut.values()):.1f} s, and none finished); raise --max-time, "
                "or leave them out with --families"
            )

    def _report_warnings(self, fam: _Family, result) -> None:
        """Log each warning the workers caught once a run (see :func:`_warnings_caught`)."""
        for r in result if isinstance(result, list) else [result]:
            for category, message, _ in r.pop("warnings", ()):
                key = (category, _NUMBER.sub("#", message))  # a duality gap differs in every fit
                if key not in self._warned:
                    self._warned.add(key)
                    logger.warning("%s: %s (family %r; reported once, as are warnings that differ "
                                   "from it only in their numbers)", category, message, fam.name)

    def _estimate(self, task, fold_times) -> float:
        """The seconds ``task`` will likely take: its family's mean fit so far; with none finished,
        the longest one of its fits ran unfinished in earlier runs (it takes that at least), else 0."""
        seen = fold_times.get(task.family)
        estimate = (sum(seen) / len(seen)) if seen else self._unfinished.get(task.family, 0.0)
        if task.grown and seen:  # an ensemble grown to its largest size: about the slowest fit seen
            estimate = max(seen)
        if task.key is None:
            estimate *= self.config.cv / (self.config.cv - 1)
        return estimate

    def _fits(self, task, fold_times, deadline) -> bool:
        return time.monotonic() + self._estimate(task, fold_times) <= deadline

    def _store_fold(self, fam: _Family, key: str, fold: int, result: dict) -> dict:
        """Keep one finished fold in the state (a kill loses only folds in flight); return the candidate's."""
        folds = fam.entry["folds"].setdefault(key, {})
        fam.entry.setdefault("environment", dict(self._environment))  # what its results are made with
        folds[fold] = {k: result[k] for k in ("score", "fit_time", "score_time", "error")}
        fam.entry["time_spent"] += result["work"]
        fam.entry["status"] = "partial"
        self._dirty = True
        return folds

    def _store_candidate(self, fam: _Family, key: str, params: dict, folds: dict) -> None:
        del fam.entry["folds"][key]
        ordered = [folds[i] for i in range(self.config.cv)]
        fam.entry["candidates"][key] = {
            "params": params,
            "test_scores": [r["score"] for r in ordered],
            "fit_times": [r["fit_time"] for r in ordered],
            "score_times": [r["score_time"] for r in ordered],
            "errors": [r["error"] for r in ordered],
        }
        self._refresh(fam)
        self._dirty = True

    def _refresh(self, fam: _Family) -> None:
        """Recompute cv_results and the best candidate from the candidates done so far."""
        done = [fam.entry["candidates"][k] for k in fam.keys if k in fam.entry["candidates"]]
        results = cv_results(done, self.config.cv)
        fam.entry["cv_results"] = results
        fam.entry["n_candidates"] = len(fam.candidates)
        best = _best(results)
        if best is not None:
            fam.entry["best_index"], fam.entry["best_score"] = best
            fam.entry["best_params"] = results["params"][best[0]]

    def _complete(self, fam: _Family) -> _Task | None:
        """All candidates are in: mark the family failed, or return its refit task."""
        entry = fam.entry
        errors = [e for r in entry["candidates"].values() for e in r["errors"] if e]
        n_fits = len(fam.candidates) * self.config.cv
        if _best(entry["cv_results"]) is None:  # reported as failed, with this summary, not warned of
            entry["status"] = "failed"
            nan_folds = sum(math.isnan(s) for r in entry["candidates"].values() for s in r["test_scores"])
            entry["error"] = _failure_summary(fam.name, errors, n_fits, every_candidate=True,
                                              nan_folds=nan_folds)
            self.report.failed[fam.name] = entry["error"]
            self._dirty = True
            return None
        if errors:
            warnings.warn(_failure_summary(fam.name, errors, n_fits),
                          FitFailedWarningGroup, stacklevel=2)
        return _Task(fam.name, None, entry["best_params"])

    def _store_refit(self, fam: _Family, result: dict) -> None:
        entry = fam.entry
        if "blob" not in result:
            entry["status"] = "failed"
            entry["error"] = f"refitting the best candidate on all the data failed:\n{result['error']}"
            self.report.failed[fam.name] = entry["error"]
        else:
            entry["best_estimator"] = Pickled(data=result["blob"])
            entry.setdefault("environment", dict(self._environment))
            made = result.get("environment")  # a dask worker's may differ; absent from older workers
            if isinstance(made, dict):
                entry["estimator_environment"] = made
                differ = state.changed_versions(made, ("python", "scikit-learn", "numpy"))
                if differ:
                    logger.warning("%s: its best estimator was fitted by a worker with %s; the state records "
                                   "them, and export and load_best go by them", fam.name,
                                   _versions_text(differ))
            entry["refit_time"] = result["refit_time"]
            entry["time_spent"] += result["refit_time"]
            entry["status"] = "done"
            entry["finished"] = _now()
            logger.info("%s done: best %s %.4f with %s", fam.name, self._metric(),
                        entry["best_score"], entry["best_params"])
        self._dirty = True

    def _describe(self, fam: _Family) -> str:
        """The bar's label: the family just advanced, and the best score so far with its family."""
        scores = [(f.entry["best_score"], f.name) for f in self.families if "best_score" in f.entry]
        if not scores:
            return fam.name
        score, name = max(scores, key=lambda pair: pair[0])
        return f"{fam.name} (best so far: {name} {score:.4f})"

    def _metric(self) -> str:
        return self.config.scoring or "score"

    # ---- checkpoints

    def _maybe_save(self) -> None:
        if self._save_written(wait=False) and self._dirty and (
                self._save_due or time.monotonic() >= self._next_save):
            self._save(background=True)

    def _work(self) -> float:
        return sum(f.entry.get("time_spent", 0.0) for f in self.families)

    def _save_family_end(self) -> None:
        """At a family's end: a checkpoint now if the work it would keep is worth more than a checkpoint
        costs (a long refit is never left to the pacing), else when the pacing says. A big state's
        saves take seconds, which the ends of small families would otherwise each pay."""
        self._save_due = self._save_due or self._work() - self._saved_work >= self._save_cost
        self._maybe_save()

    def _save(self, background: bool = False) -> None:
        """A checkpoint of what finished, once the one being written (if any) is in.

        With ``background``, a thread writes it from a copy of the state's dicts and lists (their
        leaves shared: results and pickled estimators are never changed in place) while the run goes
        on dispatching: a big state's save takes seconds the workers would otherwise wait through.
        :meth:`_save_written` finishes it; its error is raised there, in the run's thread.
        """
        self._save_written(wait=True)
        if not self._dirty:
            return
        started = time.monotonic()
        if self._restart_pending:
            self._move_previous()
        self.state["updated"] = _now()
        work, self._dirty, self._save_due = self._work(), False, False
        if not background:
            try:
                state.save(self.path, self.state)
            except BaseException:
                self._dirty = True
                raise
            self._saved(started, work)
            return
        snapshot = _containers_copied(self.state)

        def write() -> float:
            state.save(self.path, snapshot)
            return time.monotonic()

        writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="search-checkpoint")
        self._saving = writer.submit(write), started, work  # its error is raised by _save_written
        writer.shutdown(wait=False)  # its thread ends with this save

    def _save_written(self, wait: bool) -> bool:
        """Whether no checkpoint is being written: the background one, if any, finished first (with
        ``wait``) and accounted for. A failed one leaves the state unsaved and raises its error."""
        if self._saving is None:
            return True
        saving, started, work = self._saving
        if not wait and not saving.done():
            return False
        self._saving = None
        try:
            ended = saving.result()
        except BaseException:
            self._dirty = True  # what it held is still to be saved
            raise
        self._saved(started, work, ended)
        return True

    def _saved(self, started: float, work: float, ended: float | None = None) -> None:
        spent = (ended or time.monotonic()) - started
        self.report.save_time += spent
        self.report.saves += 1
        self._save_cost, self._saved_work = spent, work
        # pace checkpoints by their measured cost: saving stays under _SAVE_SHARE of the wall
        self._next_save = time.monotonic() + min(_MAX_SAVE_INTERVAL, max(_MIN_SAVE_INTERVAL, spent / _SAVE_SHARE))

    def _move_previous(self) -> None:
        backup = stamp = f"{self.path}.{datetime.now().strftime('%Y%m%d-%H%M%S')}"
        number = 1
        while os.path.lexists(f"{backup}.bak"):  # two restarts in one second: keep both backups
            number += 1
            backup = f"{stamp}-{number}"
        backup += ".bak"
        # the state file gone, its previous generation is the last of the old search: the new
        # search's second save would replace it
        old = self.path if os.path.lexists(self.path) else str(state.previous_path(self.path))
        try:
            os.replace(old, backup)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise state.StateIOError(
                f"--restart: could not move the previous state {old} to {backup}: "
                f"{exc.strerror or exc}; it is unchanged. Move it away yourself, or use another --state"
            ) from exc
        else:
            logger.warning("--restart: the previous state%s was moved to %s",
                           "" if old == self.path else f" ({old}: {self.path} itself was gone)", backup)
        self._restart_pending = False

    def _finish(self, start: float) -> RunReport:
        if self._lost_work > 1:
            logger.warning("work was lost %d times in this run (workers, or the workers holding the "
                           "data, died) and run again each time", self._lost_work)
        for fam in self.families:
            if fam.entry["status"] == "done":
                self.report.done.append(fam.name)
        if all(fam.entry["status"] in ("done", "failed") for fam in self.families):
            self.report.stopped = None  # a stop that came once all was done stopped nothing
        self.report.wall_time = time.monotonic() - start
        self.report.status = status_rows(self.state)
        return self.report


class FitFailedWarningGroup(UserWarning):
    """Some fits of a family failed; their scores are NaN (GridSearchCV's error_score)."""


_LAST_TRACEBACK = "  Last traceback:"  # in a failure summary, what follows is for `status --json` only


def _data_summary(data: dict, before: dict | None = None) -> str:
    """A dataset's size and fingerprint, and against ``before`` what differs that can be named."""
    text = f"{data['n_samples']} rows, fingerprint {data['fingerprint'][:12]}"
    if before is None:
        return text
    then, now = before.get("columns") or [], data.get("columns") or []
    gone, new = [c for c in then if c not in now], [c for c in now if c not in then]
    if gone or new:
        text += "; " + "; ".join(part for part in (
            f"column{'s' if len(gone) > 1 else ''} {', '.join(gone)} gone" if gone else "",
            f"new column{'s' if len(new) > 1 else ''} {', '.join(new)}" if new else "") if part)
    elif then and then != now:
        text += "; the same columns in another order"
    elif data["n_samples"] == before["n_samples"]:
        text += "; the same columns and number of rows: other values, or the rows in another order"
    return text


# The versions a family's results depend on: a partial family is resumed only under these.
_RESULT_VERSIONS = ("python", "scikit-learn", "numpy")
# Those that change a family's fingerprint with no edit of the user's: scikit-learn's estimators'
# parameters, the bytecode of the user's functions.
_CODE_VERSIONS = ("python", "scikit-learn")


def _versions_changed(entry: dict, names: tuple = _RESULT_VERSIONS) -> list[tuple[str, str, str]]:
    """(package, version recorded, version here) for each of ``names`` that differs from the one
    the family's results were made with."""
    return state.changed_versions(entry.get("environment"), names)


def _versions_text(versions: list, which: str = "both") -> str:
    """``scikit-learn 1.9.1 (this is 1.9.0)`` for each difference; ``which="then"``: the recorded only."""
    shown = {"python": "Python"}
    return " and ".join(f"{shown.get(n, n)} {then}" + (f" (this is {now})" if which == "both" else "")
                        for n, then, now in versions)


def _install_recorded(versions: list, made: str = "begun") -> str:
    """How to get the recorded versions back: pip for packages, the Python of that minor version."""
    fixes = [f"run it with Python {_python_minor(then)}" for n, then, _ in versions if n == "python"]
    pins = " ".join(f'"{n}=={then}"' for n, then, _ in versions if n != "python")
    if pins:
        fixes.append(f"install {'the versions' if ' ' in pins else 'the version'} it was {made} with "
                     f"(pip install {pins})")
    return " and ".join(fixes)


def _other_versions_message(families: list, path: str) -> str:
    """Refuse to resume partial families begun under other versions of what their results depend on."""
    one = len(families) == 1
    lines = "".join(
        f"  {name!r} ({len(entry['candidates'])} candidates saved): {_versions_text(versions)}; to resume it, "
        f"{_install_recorded(versions)}\n" for name, entry, versions in families)
    return (
        f"famil{'y' if one else 'ies'} {', '.join(repr(n) for n, _, _ in families)} of {path} "
        f"{'was' if one else 'were'} begun with other versions, and resuming would mix "
        f"{'its' if one else 'their'} results with this version's:\n{lines}"
        f"To search {'it' if one else 'them'} again under this version instead, add --redo-changed "
        f"(the saved candidates are dropped)"
    )


def _what_changed(entry: dict, estimator, estimator_fp: str, parts: dict, grid_fp: str, candidates: list) -> str:
    """What differs between a family as saved and as defined now, and what --redo-changed keeps."""
    saved = len(entry["candidates"])
    versions = _versions_changed(entry, _CODE_VERSIONS)
    if versions:  # the likely cause, when the user edited nothing
        why = {"python": "another Python compiles your unedited code to other bytecode",
               "scikit-learn": "another scikit-learn's estimators differ in their parameters or code"}
        return (f"it was searched with {_versions_text(versions)}, the likely cause if you edited nothing "
                f"({'; '.join(why[n] for n, _, _ in versions)}); to keep its results, "
                f"{_install_recorded(versions, 'searched')}. What differs: "
                + _what_changed({**entry, "environment": None}, estimator, estimator_fp, parts, grid_fp, candidates))
    if entry["estimator_fingerprint"] != estimator_fp:
        then, now = entry.get("estimator", ""), _stable_repr(estimator)
        edited = _changed_parts(entry["code_parts"], parts) if "code_parts" in entry else ""
        what = (f"the estimator, {_change(then, now)}" if then != now else
                f"the code of yours it uses: {edited}" if edited else
                "the estimator's code (its class, or a function, constant or module of yours it uses)")
        also = " (and the parameter grid)" if entry["grid_fingerprint"] != grid_fp else ""
        return f"{what}{also}; --redo-changed keeps none of its {saved} saved candidates"
    now = {candidate_key(c): c for c in candidates}
    new = [params for key, params in now.items() if key not in entry["candidates"]]
    gone = [c["params"] for key, c in entry["candidates"].items() if key not in now]

    def some(params: list) -> str:
        return ", ".join(map(repr, params[:2])) + (f" and {len(params) - 2} more" if len(params) > 2 else "")

    return (f"the parameter grid, now {len(now)} candidate{'s' * (len(now) != 1)}, was {entry['n_candidates']}"
            + (f"; saved, no longer in it: {some(gone)}" if gone else "")
            + (f"; not searched yet: {some(new)}" if new else "")
            + f"; --redo-changed keeps the {saved - len(gone)} of its {saved} saved candidates still in it")


def _change(then: str, now: str, room: int = 80) -> str:
    """``then → now`` cut to where two texts differ, from the parameter the difference is in."""
    then, now = re.sub(r"\s+", " ", then), re.sub(r"\s+", " ", now)  # reprs break lines to indent
    start = len(os.path.commonprefix([then, now]))
    end = len(os.path.commonprefix([then[start:][::-1], now[start:][::-1]]))
    cut = max(then.rfind(c, 0, start) for c in "(, ") + 1
    if start - cut > room // 2:
        cut = start - room // 2

    def part(text: str) -> str:
        middle = text[cut:len(text) - end]
        return ("…" if cut else "") + (middle if len(middle) <= room else middle[:room] + "…")

    return f"{part(then)} → {part(now)}"


_TABLE_HASH = "t1-"  # fingerprints made from pandas' row hashes; older ones are joblib.hash((X, y))


def data_fingerprint(X, y, like: str | None = None) -> str:
    """A fingerprint of the data: its values, their order and types, and the column names.

    Tables are hashed with pandas' vectorized row hashes (a million rows of text in a second,
    where pickling them for ``joblib.hash`` takes ten). ``like``: a saved fingerprint whose
    method to follow, so that a state begun with ``joblib.hash`` resumes.
    """
    import joblib

    if like is not None and not like.startswith(_TABLE_HASH):
        return joblib.hash((X, y))
    return _TABLE_HASH + hashlib.sha256(b"".join(map(_data_part, (X, y)))).hexdigest()[:32]


def _data_part(obj) -> bytes:
    import joblib
    import pandas as pd

    if isinstance(obj, (pd.DataFrame, pd.Series)):
        try:
            rows = pd.util.hash_pandas_object(obj, index=False).to_numpy()
        except (TypeError, ValueError):  # cells pandas cannot hash (lists of tokens): pickled instead
            return joblib.hash(obj).encode()
        names = list(map(str, obj.columns)) if isinstance(obj, pd.DataFrame) else [str(obj.name)]
        types = list(map(str, obj.dtypes)) if isinstance(obj, pd.DataFrame) else [str(obj.dtype)]
        return repr((type(obj).__name__, names, types, len(obj))).encode() + rows.tobytes()
    return joblib.hash(obj).encode()


def _same_failure(error: BaseException, other: BaseException) -> bool:
    """Whether two errors say the same: equal texts, or two failed saves with the same cause
    (their temporary files have different names)."""
    if str(error) == str(other):
        return True
    return (isinstance(error, state.StateIOError) and isinstance(other, state.StateIOError)
            and getattr(error.__cause__, "errno", None) is not None
            and getattr(error.__cause__, "errno", None) == getattr(other.__cause__, "errno", None))


def _fits_saved(entry: dict, n_splits: int) -> int:
    """A family's (candidate, fold) fits in the state, as the progress bar counts them: the saved
    folds of candidates not yet complete count too."""
    return len(entry["candidates"]) * n_splits + sum(map(len, entry.get("folds", {}).values()))


def _saved_times(entry: dict) -> list[float]:
    """Seconds each saved fit of a family took (fit and score), from earlier runs."""
    times = [f + s for c in entry["candidates"].values() for f, s in zip(c["fit_times"], c["score_times"])]
    times += [r["fit_time"] + r["score_time"] for folds in entry.get("folds", {}).values() for r in folds.values()]
    return [t for t in times if math.isfinite(t)]


def _format_seconds(seconds: float) -> str:
    return f"{seconds:g}s" if seconds < 120 else f"{seconds / 60:g}m"


def _failure_summary(name: str, errors: list[str], n_fits: int, every_candidate: bool = False,
                     nan_folds: int = 0) -> str:
    if not errors:  # every candidate has a NaN score that no error explains: the scorer returned it
        return (f"{nan_folds} of {n_fits} folds of family {name!r} scored NaN, though no fit or scorer "
                "failed: the scorer returned NaN (as roc_auc does on a test fold with one class: the "
                "run's warnings say why). Every candidate has such a fold, so none has a mean score to "
                "rank it by. Use a smaller --cv, remove the rare classes, or choose another --scoring")
    counts = collections.Counter(e.strip().splitlines()[-1] for e in errors)
    lines = [f"{len(errors)} of {n_fits} fits of family {name!r} failed; their score is NaN."]
    if every_candidate and len(errors) < n_fits:
        lines[0] += " Every candidate has a failed fold, so none has a mean score to rank it by."
    lines += [f"  {n} x {message}" for message, n in counts.most_common()]
    lines.append(f"{_LAST_TRACEBACK}\n" + errors[-1].rstrip())
    return "\n".join(lines)


def failure_headline(error: str) -> str:
    """A failed family's error without its traceback: what failed, how often, and why."""
    lines = error.rstrip().splitlines()
    if _LAST_TRACEBACK in lines:
        return "\n".join(lines[: lines.index(_LAST_TRACEBACK)])
    return lines[0] + (f"\n  {lines[-1].strip()}" if len(lines) > 1 else "")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------- read side


def _loaded(data) -> dict:
    """A state's dictionary: ``data`` itself, or the state file it names, read (:func:`read_state`)."""
    if isinstance(data, (str, os.PathLike)):
        return read_state(os.fspath(data))
    if not isinstance(data, dict) or "families" not in data:
        raise SearchError(f"expected a state file's path or the dictionary read_state() returns, got "
                          f"{type(data).__name__}")
    return data


def status_rows(data: dict | str) -> list[dict]:
    """One row per family of a state (a path, or read already): status, progress, best score and params."""
    data = _loaded(data)
    rows = []
    n_splits = data["run"].get("cv", {}).get("n_splits", 0)
    order = data["run"].get("family_order", []) + list(data["families"])
    for name in dict.fromkeys(order):
        entry = data["families"].get(name)
        if entry is None:
            continue
        rows.append({
            "family": name,
            "status": entry["status"],
            "removed": "removed" in entry,  # from the grids file it was searched from
            "candidates_done": len(entry["candidates"]),
            "candidates_total": entry["n_candidates"],
            "fits_done": _fits_saved(entry, n_splits),
            "fits_total": entry["n_candidates"] * n_splits,
            "best_score": entry.get("best_score"),
            "best_params": entry.get("best_params"),
            "time_spent": round(entry.get("time_spent", 0.0), 3),
            "error": entry.get("error"),
        })
    return rows


def run_summary(data: dict, path: str | None = None) -> dict:
    """What a state's search was run on and how it is scored, and who works on it now."""
    run, info = data["run"], data["run"]["data"]
    summary = {
        "task": run.get("task"),
        "data": info.get("source"),
        "target": info.get("target"),
        "rows": info.get("n_samples"),
        "columns": info.get("n_features", len(info.get("columns") or ()) or None),
        "cv": run.get("cv", {}).get("n_splits"),
        "scoring": run.get("scoring"),
        "grids": run.get("grids"),
        "running": None,
    }
    if path is not None:
        with contextlib.suppress(OSError, ValueError):
            summary["running"] = state.holder(path)
    return summary


# The score GridSearchCV uses without a scoring: each estimator's own ``score``.
_DEFAULT_SCORE = {"classification": "accuracy", "regression": "R²"}


def _summary_lines(summary: dict, updated: str | None) -> list[str]:
    """The run summary of ``search status``, for people: two or three lines."""
    shape = " × ".join(f"{summary[k]} {k}" for k in ("rows", "columns") if summary[k])
    target = f"target {summary['target']!r} ({summary['task']})" if summary["target"] else summary["task"]
    lines = [f"data: {summary['data']}" + (f", {shape}" if shape else "") + f"; {target}; "
             f"{_families_of(summary['grids'])}"]
    lines.append(f"scores: {summary['cv']}-fold cross-validation, {_scoring_text(summary)}")
    running = summary["running"]
    saved = f"saved {_readable_time(updated)}" if updated else "never saved"
    if running:
        lines.append(f"{saved}; a runner is at work on it: pid {running.get('pid')} on host "
                     f"{running.get('host', '?')} since {_readable_time(running.get('since', '?'))}")
    elif running is not None:
        lines.append(f"{saved}; a runner is at work on it (it has not recorded who it is)")
    else:
        lines.append(f"{saved}; no runner is at work on it")
    return lines


def _scoring_text(summary: dict) -> str:
    """The scorer of a run, said so that its numbers can be read."""
    scoring = summary["scoring"]
    if scoring is None:
        default = _DEFAULT_SCORE.get(summary["task"])
        return "each estimator's own score" + (f" ({default} unless it defines another)" if default else "")
    if scoring.startswith("neg_"):
        return scoring + " (negated, so that higher is better: -2.5 is an error of 2.5)"
    return scoring


def _readable_time(stamp: str) -> str:
    """An ISO time stamp of this module as people write it: ``2026-11-22 17:56:34 UTC``."""
    return stamp.replace("T", " ").replace("+00:00", " UTC") if isinstance(stamp, str) else str(stamp)


def best_family(data: dict | str, family: str | None = None) -> str:
    """The family with the highest best score among those done, in a state (a path, or read already).

    Ties go to the family that comes first in the run's family order.
    """
    data = _loaded(data)
    rows = status_rows(data)
    done = [r for r in rows if r["status"] == "done" and not r["removed"]]
    if family is not None:
        if family not in data["families"]:
            raise SearchError(
                f"--family {family!r} is not in the state file; it has "
                f"{', '.join(data['families']) or 'no families'}"
            )
        entry = data["families"][family]
        if entry["status"] == "failed":
            raise SearchError(
                f"family {family!r} failed, so it has no best estimator: "
                f"{failure_headline(entry.get('error') or 'no error recorded')}\n"
                f"Fix the cause; the next `search run` searches it again{_IF_DATA}"
            )
        if entry["status"] != "done":
            refit = (" (every fit is done; the refit of its best candidate on all the data is not)"
                     if entry["status"] == "partial" and len(entry["candidates"]) == entry["n_candidates"] else "")
            raise SearchError(
                f"family {family!r} is {data['families'][family]['status']}, not done{refit}; "
                "run `search run` to finish it"
            )
        return family
    if not done:
        failed = [r["family"] for r in rows if r["status"] == "failed"]
        if failed:
            raise SearchError(
                f"no family is done: {', '.join(map(repr, failed))} failed (`search status` says why); "
                "fix the cause, and the next `search run` searches "
                f"{'it' if len(failed) == 1 else 'them'} again{_IF_DATA}"
            )
        waiting = [r["family"] for r in rows
                   if r["status"] == "partial" and r["candidates_done"] == r["candidates_total"]]
        if waiting:
            raise SearchError(
                f"no family is done yet: {', '.join(map(repr, waiting))} "
                f"{'has' if len(waiting) == 1 else 'have'} every fit but not yet the refit of "
                f"{'its' if len(waiting) == 1 else 'their'} best candidate on all the data; "
                "run `search run` again to finish"
            )
        removed = [r["family"] for r in rows if r["status"] == "done" and r["removed"]]
        if removed:
            raise SearchError(
                f"no family of the grids file is done; {', '.join(map(repr, removed))}, done, "
                f"{'was' if len(removed) == 1 else 'were'} removed from it: name one with --family to "
                "use it anyway, or run `search run` to search the others"
            )
        raise SearchError("no family is done yet; run `search run` first")
    return max(done, key=lambda r: r["best_score"])["family"]  # max keeps the first of ties


_IF_DATA = " (if the fix is in the data, the state holds the old data's results: add --restart)"


def read_state(path: str = DEFAULT_STATE) -> dict:
    """Load a state file for reading, verified, leaving best estimators unopened.

    Takes no lock, so it works while a runner writes the file.
    """
    try:
        return _checked(state.load(path, lazy=True), path)
    except FileNotFoundError:
        runner = state.holder(path)
        if runner is not None:
            who = (f" (pid {runner['pid']} on host {runner.get('host', '?')}, since {runner.get('since', '?')})"
                   if runner else "")
            raise SearchError(
                f"the runner that holds {path}{who} has not saved it yet; try again in a few seconds"
            ) from None
        gone = _missing_state(path)
        if gone:
            raise SearchError(gone) from None
        raise SearchError(
            f"there is no state file at {path}; run `search run` first, or name the file "
            "with --state PATH"
        ) from None


def _missing_state(path: str) -> str | None:
    """What to say of a state file that does not exist while its previous generation does (None:
    it does not): it was removed or moved, and that generation is the saved work's last copy."""
    previous = state.previous_hint(path)
    if previous is None:
        return None
    return f"there is no state file at {path} (removed or moved?). {previous}"


def _checked(data: dict, path: str) -> dict:
    """``data``, loaded from ``path``, if it is a search's state this version can read."""
    missing = [k for k in ("format_version", "run", "families") if k not in data]
    if missing:
        raise SearchError(
            f"{path} is a checksummed file but not a search's state: it has no "
            f"{', '.join(map(repr, missing))}; name the state file with --state PATH"
        )
    if not isinstance(data["format_version"], int) or data["format_version"] > FORMAT_VERSION:
        raise SearchError(
            f"{path} is in state format {data['format_version']!r}, written by a newer "
            f"checkpointed-search (this one reads format {FORMAT_VERSION} and older); "
            "upgrade it: python -m pip install -U checkpointed-search"
        )
    return data


def load_best(path: str = DEFAULT_STATE, family: str | None = None):
    """Return the fitted best estimator from a state file.

    Parameters
    ----------
    path : str
        The state file.
    family : str or None
        A family name; None for the best family overall.
    """
    data = read_state(path)
    return _best_estimator(data, best_family(data, family))


def _family_environment(data: dict, name: str) -> dict | None:
    """The versions a family's best estimator was made with: those of the worker that fitted it,
    else the family's own record, or for a state from before families kept one, the state's."""
    entry = data["families"][name]
    for recorded in (entry.get("estimator_environment"), entry.get("environment")):
        if isinstance(recorded, dict):
            return recorded
    return data.get("environment")


def _python_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


_NOTEBOOK = "the notebook or script that ran the search (__main__)"  # where code of __main__ is from


def _refuse_user_code_of_another_python(data: dict, name: str) -> None:
    """Refuse a best estimator that holds the user's code pickled by value under another Python
    minor version: cloudpickle keeps that code as bytecode, which another Python cannot read
    (unpickling it may crash the interpreter, with no message)."""
    import platform

    entry = data["families"][name]
    then = (_family_environment(data, name) or {}).get("python")
    now = platform.python_version()
    if not isinstance(then, str) or _python_minor(then) == _python_minor(now):
        return
    # the estimator's own code, and the grid's that its best parameters set (a FunctionTransformer's func)
    code = ", ".join(sorted({k.partition(":")[2] or k for k in entry.get("code_parts") or {}}
                            | set(_grids_file_objects(list((entry.get("best_params") or {}).values())))))
    if not code:
        return
    source = entry.get("grids") or data["run"].get("grids")
    where = f" of {os.path.basename(source)}" if source and source not in ("classification", "regression") else ""
    again = f"search run --grids {shlex.quote(source)} --redo-changed" if where else "search run --redo-changed"
    if any(k.partition(":")[0] == "__main__" for k in entry.get("code_parts") or {}):
        # defined in a notebook or script, which the command line cannot import
        where = f" defined in {_NOTEBOOK}"
        again = "search.run(RunConfig(..., redo_changed=True)) from that notebook or script"
    raise SearchError(
        f"the best estimator of family {name!r} holds code{where} ({code}) pickled by value under "
        f"Python {then}, and this is Python {now}: Python {_python_minor(now)} cannot load code "
        f"pickled by Python {_python_minor(then)}. Load it with Python {_python_minor(then)}, or "
        f"search the family again under this Python ({again})"
    )


# The import names of the packages whose versions a state records (see state.environment).
_RECORDED_MODULES = frozenset({"sklearn", "numpy", "joblib", "cloudpickle", "pandas"})


def _users_module_missing(exc: Exception) -> bool:
    """Whether ``exc`` says a module is missing that is none of the recorded packages nor Python's own
    (a helper module of the user's, say): another version of those would not bring it back."""
    missing = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
    top = (missing or "").partition(".")[0]
    return bool(top) and top not in _RECORDED_MODULES and top not in sys.stdlib_module_names


def _best_estimator(data: dict, name: str):
    estimator = data["families"][name]["best_estimator"]
    if not isinstance(estimator, Pickled):
        return estimator
    from state._env import _differences

    _refuse_user_code_of_another_python(data, name)
    recorded = _family_environment(data, name)
    differs = _differences(recorded, f"family {name!r} was made")
    if recorded is not data.get("environment"):  # loading the state warned of the last runner's versions
        said = set(state.changed_versions(data.get("environment")))
        for version, difference in zip(state.changed_versions(recorded), differs):  # in the same order
            if version not in said:
                warnings.warn(f"{difference}; its best estimator may not load or behave the same",
                              state.EnvironmentMismatchWarning, stacklevel=3)
    try:
        with warnings.catch_warnings():
            if differs:  # said once here or by the state's load; scikit-learn would repeat it per class
                from sklearn.exceptions import InconsistentVersionWarning

                warnings.simplefilter("ignore", InconsistentVersionWarning)
            return estimator.load()
    except Exception as exc:
        advice = (f"the packages differ from the ones that wrote it: {'; '.join(differs)}"
                  if differs and not _users_module_missing(exc) else
                  "a module it was written with is missing here: install it, or put its directory "
                  "on PYTHONPATH")
        raise SearchError(
            f"the best estimator of family {name!r} cannot be loaded here "
            f"({type(exc).__name__}: {exc}); {advice}"
        ) from None


def candidate_rows(data: dict | str, family: str, top: int | None = None) -> list[dict]:
    """A family's candidates done so far, best first: rank, params, scores, fit time (``data``: a
    state's path, or the state read already)."""
    data = _loaded(data)
    if family not in data["families"]:
        raise SearchError(
            f"--family {family!r} is not in the state file; it has "
            f"{', '.join(data['families']) or 'no families'}"
        )
    results = data["families"][family]["cv_results"]
    rows = [
        {
            "rank": int(results["rank_test_score"][i]),
            "params": results["params"][i],
            "mean_test_score": float(results["mean_test_score"][i]),
            "std_test_score": float(results["std_test_score"][i]),
            "mean_fit_time": float(results["mean_fit_time"][i]),
        }
        for i in range(len(results["params"]))
    ]
    rows.sort(key=lambda r: r["rank"])  # stable: ties keep grid order, as GridSearchCV's best_index_
    return rows[:top] if top else rows


EXPORT_FORMATS = ("pickle", "joblib", "skops")


@dataclass
class Export:
    """What :func:`export_best` wrote; ``untrusted`` lists the types skops asks you to trust."""

    family: str
    format: str
    path: str
    untrusted: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # the table the model takes ([]: an array)
    text_columns: list[str] = field(default_factory=list)  # those to give as text
    feature_names: bool = False  # the model has feature_names_in_, naming the columns it takes


def export_best(path: str, output: str, family: str | None = None, fmt: str | None = None) -> Export:
    """Write one family's best estimator (default: the best overall) to ``output``, atomically.

    Parameters
    ----------
    output : str
        A file, or ``"-"`` for standard output (bytes: not in a notebook).
    fmt : {"pickle", "joblib", "skops"} or None
        None picks by the extension of ``output`` (.joblib, .skops), else pickle.
    """
    if fmt is not None and fmt not in EXPORT_FORMATS:
        raise SearchError(f"export format {fmt!r} is not one of {', '.join(map(repr, EXPORT_FORMATS))}; give "
                          "one of them, or None to pick by the output's extension (.joblib, .skops, else pickle)")
    to_stdout = output == "-"
    if to_stdout and not hasattr(sys.stdout, "buffer"):  # a notebook's stdout takes text only
        raise SearchError("output '-' writes the model's bytes to standard output, which takes only text here "
                          f"({type(sys.stdout).__name__}, as in a notebook); give a file, e.g. 'model.joblib'")
    if to_stdout and sys.stdout.isatty():
        raise SearchError("-o - writes the model's bytes to stdout, which is a terminal here; "
                          "redirect it (-o - > model.pkl) or give a file, e.g. -o model.joblib")
    if not to_stdout:
        check_output(output, path)
    data = read_state(path)
    name = best_family(data, family)
    if fmt is None:
        fmt = {".joblib": "joblib", ".skops": "skops"}.get(Path(output).suffix.lower(), "pickle")
    _refuse_user_code_of_another_python(data, name)  # nor write a file that cannot load
    blob = data["families"][name]["best_estimator"]
    blob = blob if isinstance(blob, Pickled) else Pickled(blob)
    untrusted: list[str] = []
    run_data = data["run"]["data"]
    # joblib and skops write the estimator anew, which scikit-learn stamps with its version
    other = [] if fmt == "pickle" else state.changed_versions(_family_environment(data, name), ("scikit-learn",))
    if other:
        _, then, now = other[0]
        raise SearchError(
            f"the best estimator of family {name!r} was fitted with scikit-learn {then}, and this is "
            f"scikit-learn {now}: a {fmt} file written here would claim {now}, so that loading it would "
            f"not warn of the difference. Export it where scikit-learn {then} is installed "
            f'(pip install "scikit-learn=={then}"), or with --format pickle, which keeps the bytes '
            f"scikit-learn {then} wrote"
        )
    estimator, text = None, _text_in_training(run_data)
    if fmt == "pickle":
        payload = blob.data  # already the estimator's pickle (custom code kept by value)
    elif fmt == "joblib":
        payload = _joblib_bytes(estimator := _best_estimator(data, name), blob)
    else:
        payload, untrusted = _skops_bytes(estimator := _best_estimator(data, name), name)
    if estimator is None and len(run_data.get("columns", [])) > 8:  # for the export command to name them
        with contextlib.suppress(SearchError):
            estimator = _best_estimator(data, name)
    if to_stdout:
        sys.stdout.buffer.write(payload)
        sys.stdout.buffer.flush()
    else:
        write_output(output, payload)
    return Export(name, fmt, output, untrusted, list(run_data.get("columns", [])),
                  [c for c in run_data.get("text_columns", []) if c in text],
                  hasattr(estimator, "feature_names_in_"))


def write_output(output: str, payload) -> None:
    """Write ``payload`` (an export, predictions) to ``output`` where a shell's ``>`` would put it,
    atomically where that can be: a file is replaced whole, or is left as it was; through a symbolic
    link, the file it points to is (the link stays); a device or a named pipe (``/dev/null``,
    ``/dev/stdout``, a FIFO) is written to, not replaced by a file."""
    import stat

    try:
        st = os.stat(output)  # what a link leads to
    except OSError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise SearchError(f"--output {output} is a directory; give a file in it, e.g. "
                          f"-o {shlex.quote(os.path.join(output, 'predictions.csv'))}")
    if st is not None and not stat.S_ISREG(st.st_mode):
        try:
            with open(output, "wb") as out:
                out.write(payload)
        except OSError as exc:
            raise SearchError(f"could not write {output}: {exc.strerror or exc}") from None
        return
    target = os.path.realpath(output) if os.path.islink(output) else output
    with state.atomic_writer(target, mode=_new_file_mode()) as out:
        out.write(payload)


def _new_file_mode() -> int:
    """The permissions a new file gets from this process's umask (exports and predictions are
    the user's files, to share like any other; only the state file stays private)."""
    umask = os.umask(0o077)
    os.umask(umask)
    return 0o666 & ~umask


def check_output(output: str, state_path: str) -> None:
    """Refuse to write an export or predictions over the search's own files, or any state file."""
    if not str(output).strip():
        raise SearchError("--output is empty; give the path of the file to write")
    own = {os.path.realpath(p) for p in (state_path, *state.companions(state_path))}
    if os.path.realpath(output) in own or state.is_state_file(output) or state.companion_of(output):
        raise SearchError(
            f"--output {output} is a search's state file (or one of its companions); writing "
            "there would destroy the saved search. Choose another file, e.g. -o model.joblib "
            "or -o predictions.csv"
        )


def _joblib_bytes(estimator, blob: Pickled) -> bytes:
    import io
    import pickle

    import joblib

    buffer = io.BytesIO()
    try:
        joblib.dump(estimator, buffer)
    except (pickle.PicklingError, AttributeError, TypeError):
        # Custom functions that only exist by value in the state (a lambda, a function of the
        # grids file) cannot be pickled by reference; store the cloudpickle bytes, which
        # joblib.load turns back into the estimator.
        buffer = io.BytesIO()
        joblib.dump(blob, buffer)
    return buffer.getvalue()


def _skops_bytes(estimator, name: str) -> tuple[bytes, list[str]]:
    import skops.io as sio

    # A grids file's code is stored by name, which only a process that ran the grids file (as
    # this one may have) can import: refuse it here, not when someone loads the file elsewhere.
    own = _grids_file_objects(estimator)
    origin = _NOTEBOOK if "__main__" in own.values() else "the grids file"
    why = f"it uses {', '.join(own)} from {origin}, which skops stores by name only" if own else ""
    if not own:
        try:
            payload = sio.dumps(estimator)
            untrusted = sio.get_untrusted_types(data=payload)
            sio.loads(payload, trusted=untrusted)  # what cannot come back here cannot anywhere
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc}; it probably uses a custom function"
    if why:
        raise SearchError(
            f"the best estimator of family {name!r} cannot be stored as skops: {why}. "
            "Export it with --format pickle or --format joblib instead (they carry such code by value)"
        )
    return payload, untrusted


def _grids_file_objects(estimator) -> dict[str, str]:
    """The functions and classes of a grids file (or of ``__main__``) that an estimator holds: their
    names, in order, each with its module."""
    from grids import is_grids_file_module

    found, stack = {}, [estimator]
    while stack:
        obj = stack.pop()
        for thing in (obj, type(obj)):  # a function or class, or the class of an instance
            qualname = getattr(thing, "__qualname__", None)
            module = getattr(thing, "__module__", None)
            if isinstance(qualname, str) and is_grids_file_module(module):
                found.setdefault(qualname, module)
        if hasattr(obj, "get_params") and not isinstance(obj, type):
            stack.extend(obj.get_params(deep=False).values())
        elif isinstance(obj, (list, tuple)):
            stack.extend(obj)
    return dict(sorted(found.items()))


def text_columns(X) -> list[str]:
    """The columns of a table that hold text (or categories), not numbers or booleans."""
    import pandas as pd

    dtypes = getattr(X, "dtypes", None)
    if not isinstance(dtypes, pd.Series):
        return []
    booleans = set(boolean_columns(X))
    return [str(c) for c, dtype in dtypes.items()
            if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype))
            and str(c) not in booleans]


def predict_frame(path: str, frame, family: str | None = None, proba: bool = False):
    """Predict for the rows of ``frame``; return them with a ``prediction`` column added.

    A column named like the training target is ignored; missing feature
    columns are an error that names them.
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise SearchError(
            f"predict_frame takes a pandas DataFrame with the training columns, not a "
            f"{type(frame).__name__}: for a list of dicts use pd.DataFrame(rows), for an array "
            "pd.DataFrame(array, columns=[...])"
        )
    data = read_state(path)
    return _with_predictions(frame.copy(), _predictions(data, frame, family, proba))


def predict_csv(path: str, csv: str, family: str | None = None, proba: bool = False):
    """The rows of the CSV file ``csv`` exactly as written there, with a ``prediction`` column added.

    The model gets each column as it got it in training: a column of text
    then is read as text here, whatever its values look like in this file.
    """
    data = read_state(path)
    frame = read_table(csv, text_columns=_text_in_training(data["run"]["data"]))
    if len(frame) == 0:
        raise SearchError(f"--data {csv} has no rows to predict for")
    added = _predictions(data, frame, family, proba)
    del frame  # the rows as typed for the model go before the rows as written come: one table at a time
    written = read_table(csv, as_written=True)
    if any(c == f"Unnamed: {i}" for i, c in enumerate(written.columns)):  # pandas' name for a blank header cell
        import pandas as pd

        header = pd.read_csv(csv, header=None, nrows=1, dtype=str, keep_default_na=False, index_col=False)
        written.columns = ["" if c == f"Unnamed: {i}" and h == "" else c
                           for i, (c, h) in enumerate(zip(written.columns, header.iloc[0]))]
    return _with_predictions(written, added)


def _text_in_training(info: dict) -> set:
    """The columns that were text in training. A column of True and False was text (categories) to a
    state begun before such columns were read as numbers; its model knows booleans, not the text
    "True", and gets them as it did."""
    return set(info.get("text_columns", ())) - set(info.get("boolean_columns", ()))


def _with_predictions(out, added: dict):
    replaced = [c for c in out.columns if c in added]
    if replaced:
        logger.warning("the rows already have column%s %s; replaced by this prediction",
                       "s" if len(replaced) > 1 else "", ", ".join(map(repr, replaced)))
    for column, values in added.items():
        out[column] = values
    return out


def _predictions(data: dict, frame, family: str | None, proba: bool) -> dict:
    """The columns to add to ``frame``: ``prediction`` and, with ``proba``, one ``proba_CLASS`` each."""
    import numpy as np
    import pandas as pd

    name = best_family(data, family)
    estimator = _best_estimator(data, name)
    info = data["run"]["data"]
    features = info.get("columns") or [c for c in frame.columns if c != info.get("target")]
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise SearchError(
            f"the rows lack feature column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(repr, missing))} that family {name!r} was trained with; "
            f"expected columns: {', '.join(map(str, features))}.{_column_hint(missing, frame.columns)}"
        )
    if len(frame) == 0:
        raise SearchError("the table has no rows to predict for")
    expected = getattr(estimator, "n_features_in_", None)
    if not info.get("columns") and expected is not None and len(features) != expected:
        raise SearchError(
            f"family {name!r} was trained on {expected} unnamed columns (from load_data()), and "
            f"the table has {len(features)}: {', '.join(map(str, features))}; give exactly the "
            "training columns, in the training order"
        )
    retyped = {}  # each column as the model got it in training, as predict_csv reads it
    if "text_columns" in info:
        text = _text_in_training(info)
        for column in features:
            values = frame[column]
            if column in text:
                as_text = _as_text(values)
                if as_text is not values:
                    retyped[column] = as_text
                continue
            if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_datetime64_any_dtype(values.dtype) \
                    or pd.api.types.infer_dtype(values, skipna=True) == "boolean":
                continue  # booleans (with missing values) go as they are: to a model of 0 and 1, they are
            if column in info.get("boolean_columns", ()):  # True/False beside 1/0: read as text, all of them
                said = values.astype(str).str.strip().str.lower()  # True, "true", " FALSE": 1.0 and 0.0
                values = values.where(~said.isin(("true", "false")), (said == "true").astype(float))
            numbers = pd.to_numeric(values, errors="coerce")
            bad = values[numbers.isna() & values.notna()]
            if len(bad):
                held, write = (("True and False", "write True or False (or 1 or 0)")
                               if column in info.get("boolean_columns", ()) else ("numbers", "write numbers"))
                raise SearchError(
                    f"column {column!r} held {held} in training, and here holds text in {len(bad)} "
                    f"row{'s' if len(bad) > 1 else ''} ({_examples(pd.unique(bad))}; the first is "
                    f"row {bad.index[0] + 1} of the data); {write} there, and leave a missing "
                    "value's cell empty"
                )
            retyped[column] = numbers  # "12" is the number 12, as in a CSV, not an unknown category
    # a new table of the columns as they are, but for those retyped: the caller's rows stay as given
    frame = pd.DataFrame({c: retyped.get(c, frame[c]) for c in features}) if retyped else frame[features]
    if proba and not hasattr(estimator, "predict_proba"):
        raise SearchError(
            f"the best estimator of family {name!r} has no predict_proba "
            f"({_stable_repr(estimator[-1] if hasattr(estimator, 'steps') else estimator)}); drop --proba "
            "or choose another --family"
        )
    X = _numpy_missing(frame)
    X = X if info.get("columns") else X.to_numpy()  # as it was trained
    try:
        added = {"prediction": estimator.predict(X)}
        if proba:
            for label, column in zip(estimator.classes_, np.asarray(estimator.predict_proba(X)).T):
                added[f"proba_{label}"] = column
    except Exception as exc:  # the model's code, maybe the user's: any error is about these rows
        _refuse_infinite(frame, features)
        advice = ("check that each column holds the same kind of values as in training"
                  if isinstance(exc, (ValueError, TypeError)) else
                  "the error comes from the model's own code; check the rows against what it expects")
        versions = _versions_changed({"environment": _family_environment(data, name)})
        if versions:  # a model of one version run by another's code: the likely cause, not the rows
            advice = (f"it was fitted with {_versions_text(versions)}, the likely cause: "
                      f"{_install_recorded(versions, 'fitted')} to predict with it, or search the family "
                      f"again under this environment; if that is not it, {advice}")
        raise SearchError(
            f"family {name!r} could not predict for these rows: {type(exc).__name__}: {exc}; {advice}"
        ) from None
    return added


def _as_text(values):
    """A column that was text in training, its numbers made the text a CSV holds for them (7 and 7.0:
    "7"; True: "True"), as ``predict_csv`` reads them: the model's categories are those texts, and a
    number is not one of them. Missing values stay missing."""
    import pandas as pd

    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return values

    def text(v):
        if isinstance(v, str) or v is None or v is pd.NA or (isinstance(v, float) and v != v):
            return v
        if isinstance(v, numbers.Real) and not isinstance(v, bool) and float(v).is_integer():
            return str(int(v))
        return str(v)

    return values.astype(object).map(text)


def _numpy_missing(frame):
    """``frame`` with pandas' nullable columns (``Int64``, ``string``, ... holding ``pd.NA``) as
    numpy ones holding NaN, the missing value the models were trained with."""
    import numpy as np
    import pandas as pd

    nullable = [c for c, dtype in frame.dtypes.items() if getattr(dtype, "na_value", None) is pd.NA]
    if not nullable:
        return frame
    frame = frame.copy()
    for column in nullable:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
            frame[column] = values.astype("float64")
        else:
            frame[column] = values.astype(object).where(values.notna(), np.nan)
    return frame


def _refuse_infinite(frame, features) -> None:
    """Name the first column holding an infinite value (the usual reason a model refuses numbers)."""
    import numpy as np
    import pandas as pd

    for column in features:
        values = frame[column]
        rows = np.flatnonzero(np.isinf(values.to_numpy())) if pd.api.types.is_float_dtype(values.dtype) else []
        if len(rows):
            raise SearchError(
                f"column {column!r} holds an infinite value in {len(rows)} row{'s' if len(rows) > 1 else ''} "
                f"(the first is row {rows[0] + 1} of the data), which the model cannot take; write a "
                "finite number there, or leave the cell empty for a missing value"
            )


# --------------------------------------------------------------------------- CLI


def _home_expanded(value: str) -> str:
    """``value`` with a leading ``~`` expanded as the shell would have; raises ValueError for a ``~user``
    that names no user. The shell leaves a ``~`` as it is inside quotes (``--state '~/s.pkl'``) and
    after an option's ``=`` (``--state=~/s.pkl``); taken as written, it would name a directory called
    ``~`` in the working directory."""
    if not value.startswith("~"):
        return value
    expanded = os.path.expanduser(value)
    if expanded.startswith("~"):
        raise ValueError(f"{value} starts with {value.split(os.sep)[0]}, which names no home directory "
                         "here (no such user); write the path out")
    return expanded


def _expand_home(ctx, param, value):
    """The callback of path options that are not :class:`_File` (``--grids``, ``--scheduler``)."""
    try:
        return value if value is None else _home_expanded(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


class _File(click.Path):
    """A file's path, not a directory's; an empty one (an unset shell variable) is bad usage.

    A leading ``~`` the shell did not expand is expanded (:func:`_home_expanded`).
    """

    def __init__(self, what: str, example: str):
        super().__init__(dir_okay=False)
        self._what = what  # "a state file", for messages
        self._example = example  # a file name to suggest

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value.strip():
            self.fail("the path is empty (an unset shell variable?); give a file's path", param, ctx)
        if isinstance(value, str):
            try:
                value = _home_expanded(value)
            except ValueError as exc:
                self.fail(str(exc), param, ctx)
            if value.endswith(os.sep):  # Path() drops the slash: results/ would make a file named results
                made = "" if os.path.isdir(value) else f" (and mkdir -p {shlex.quote(value)})"
                self.fail(f"{self._what}'s path cannot end with {os.sep}: {value} names a directory; give a "
                          f"file's path, like {value}{self._example}{made}", param, ctx)
        return super().convert(value, param, ctx)


class _Duration(click.ParamType):
    name = "duration"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


_SCORER_ALIASES = {
    "rmse": "neg_root_mean_squared_error", "mse": "neg_mean_squared_error", "mae": "neg_mean_absolute_error",
    "mape": "neg_mean_absolute_percentage_error", "medae": "neg_median_absolute_error",
    "root_mean_squared_error": "neg_root_mean_squared_error", "mean_squared_error": "neg_mean_squared_error",
    "mean_absolute_error": "neg_mean_absolute_error", "log_loss": "neg_log_loss", "logloss": "neg_log_loss",
    "auc": "roc_auc", "f1_score": "f1", "accuracy_score": "accuracy", "r2_score": "r2", "r^2": "r2",
}


def _unknown_scoring(value) -> str | None:
    """What is wrong with a ``--scoring`` value that names no scikit-learn scorer (None: nothing)."""
    if value is None:
        return None
    from sklearn.metrics import get_scorer_names

    if value in get_scorer_names():
        return None
    import difflib

    # the metrics' usual short names; scikit-learn's scorers of errors are negated, so higher is better
    alias = _SCORER_ALIASES.get(value.lower().replace("-", "_"))
    close = [alias] if alias else difflib.get_close_matches(value, get_scorer_names(), n=2)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    if alias and alias.startswith("neg_"):
        hint = f"did you mean {alias} (the error negated, so that higher is better)? "
    return (f"{value!r} is not a scikit-learn scorer; {hint}expected one of "
            f"{', '.join(sorted(get_scorer_names()))}")


def _check_scoring(value) -> None:
    """``--scoring`` names a scikit-learn scorer (checked in the command: the check imports scikit-learn)."""
    unknown = _unknown_scoring(value)
    if unknown:
        raise click.BadParameter(unknown, param_hint="--scoring")


def _family_list(ctx, param, value):
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise click.BadParameter("give family names separated by commas, e.g. --families lr,rf")
    return names


state_option = click.option(
    "--state", "state_path", default=DEFAULT_STATE, show_default=True,
    type=_File("a state file", DEFAULT_STATE), help="The state file.",
)


class _Failure(click.ClickException):
    """A :class:`state.SearchError` shown as click shows its errors, with the error's exit code."""

    def __init__(self, error: SearchError):
        super().__init__(str(error))
        self.exit_code = error.exit_code


class _Group(click.Group):
    """Maps the project's one base exception to its exit code, in this one place."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SearchError as error:
            raise _Failure(error) from None


def _verbosity(f):
    f = click.option("-q", "--quiet", is_flag=True, help="No progress bar; warnings and errors only.")(f)
    return click.option("-v", "--verbose", count=True, help="Debug lines of this tool (-vv: of every library too).")(f)


# dask's own log lines: none unless -vv. A worker that dies (a fit that crashed it) makes the
# scheduler and the client log errors about lost data and restarts, which the runner handles and
# reports itself; shown, they read as if the search were damaged.
_DISTRIBUTED_LEVEL = logging.CRITICAL


def _configure_logging(ctx, verbose: int = 0, quiet: bool = False) -> None:
    """Configure logging once per command, from -q/-v given before or after the command name."""
    ctx.obj = obj = ctx.obj or {"quiet": False, "verbose": 0}
    obj["quiet"] = obj["quiet"] or quiet
    obj["verbose"] = max(obj["verbose"], verbose)
    # default: INFO; -v: this tool's own DEBUG lines too; -vv: every library's (dask's included)
    level = logging.WARNING if obj["quiet"] else (logging.DEBUG if obj["verbose"] > 1 else logging.INFO)
    logging.basicConfig(format="%(levelname)s: %(message)s", stream=sys.stderr)  # no-op if configured
    logging.getLogger().setLevel(level)
    own = logging.DEBUG if obj["verbose"] and not obj["quiet"] else logging.NOTSET
    for name in ("search", "state", "grids"):
        logging.getLogger(name).setLevel(own)
    global _DISTRIBUTED_LEVEL
    _DISTRIBUTED_LEVEL = logging.DEBUG if obj["verbose"] > 1 else logging.CRITICAL
    _quiet_distributed()
    logging.captureWarnings(True)
    warnings.formatwarning = _format_warning


def _quiet_distributed() -> None:
    """Give dask's loggers the level of ``-v``: its configuration sets some of its children's
    levels (``distributed.client`` logs "Failed to reconnect to scheduler" as an error), which
    their parent's level does not reach."""
    for name in ["distributed", *list(logging.root.manager.loggerDict)]:
        if name == "distributed" or (name.startswith("distributed.")
                                     and logging.getLogger(name).level != logging.NOTSET):
            logging.getLogger(name).setLevel(_DISTRIBUTED_LEVEL)


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as one line, ``Category: message``: where in the code it was raised is noise here."""
    if issubclass(category, FitFailedWarningGroup):  # the tracebacks are for `status --json`
        return f"{category.__name__}: {failure_headline(str(message))}\n"
    return f"{category.__name__}: {message}"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@_verbosity
@click.version_option(package_name="checkpointed-search")
@click.pass_context
def cli(ctx, verbose, quiet):
    """Resumable hyperparameter searches for scikit-learn that survive being killed."""
    _configure_logging(ctx, verbose, quiet)
    _exit_quickly()


@functools.cache
def _exit_quickly() -> None:
    """Make this process's exit skip the collection of everything imported.

    At exit the interpreter walks every object the cyclic garbage collector
    tracks; with scikit-learn loaded that takes about half a second, which a
    command pays after its work is done (a search, saved; a status, printed).
    Frozen objects are left to the operating system; nothing of ours needs a
    finalizer then (files are closed and the state is saved and fsynced).
    """
    import atexit

    atexit.register(gc.freeze)


@cli.command("run")
@state_option
@click.option("--data", type=_File("a CSV file", "train.csv"), help="CSV file (default: a built-in dataset).")
@click.option("--target", help="The column of --data to predict.")
@click.option("--task", type=click.Choice(["classification", "regression"]),
              help="Overrides the task inferred from the target.")
@click.option("--grids", callback=_expand_home, help="classification, regression or PATH.py defining FAMILIES.")
@click.option("--families", callback=_family_list, help="Only these families, e.g. lr,rf.")
@click.option("--cv", default=5, show_default=True, type=click.IntRange(min=2), help="CV folds.")
@click.option("--scoring", help="A scikit-learn scorer name (default: the estimator's score).")
@click.option("--n-jobs", default=-1, show_default=True, type=int, help="Worker processes (-1: all cores).")
@click.option("--max-time", type=_Duration(),
              help="Stop starting work that cannot finish within this time (90s, 30m, 2h); exit 3.")
@click.option("--restart", is_flag=True, help="Start over; the old state file is kept as a backup.")
@click.option("--redo-changed", is_flag=True, help="Search again families whose grid or estimator changed, and "
              "partial families begun under another Python, scikit-learn or numpy.")
@click.option("--scheduler", callback=_expand_home, help="A dask scheduler address (tcp://HOST:PORT), the file "
              "`dask scheduler --scheduler-file PATH` writes, or 'local'.")
@_verbosity
@click.pass_context
def run_command(ctx, state_path, data, target, task, grids, families, cv, scoring, n_jobs,
                max_time, restart, redo_changed, scheduler, verbose, quiet):
    """Search every family not yet done, resuming whatever the state file holds."""
    _configure_logging(ctx, verbose, quiet)
    if data is not None and target is None:
        raise click.BadParameter("--data needs --target COLUMN", param_hint="--target")
    if target is not None and data is None:
        raise click.BadParameter("--target goes with --data", param_hint="--data")
    if n_jobs == 0:
        raise click.BadParameter("0 workers cannot run anything; use -1 for all cores",
                                 param_hint="--n-jobs")
    if scheduler is not None and not scheduler.strip():  # "$(cat scheduler.txt)" of an empty file
        raise click.BadParameter("the address is empty (an unset variable, an empty file?); give "
                                 "tcp://HOST:PORT, a scheduler file or 'local', or leave out --scheduler "
                                 "to run on this machine", param_hint="--scheduler")
    _check_working_directory()  # before the lock: a lock file cannot be made in it either
    # A stop signal from here to the exit is a graceful stop (exit 3), or nothing once all is done:
    # ignored from the end of the run, when the exit code is decided, to the exit.
    with _Stop().on_signals(then=signal.SIG_IGN if _WHOLE_PROCESS else None) as stop:
        with state.lock(state_path):  # held by another runner: exit 4 now, not after the imports
            if scheduler is None:  # before this process imports scikit-learn: the two imports overlap
                start_fork_server()
            try:
                _check_scoring(scoring)
                config = RunConfig(state_path, data, target, task, grids, families, cv, scoring, n_jobs,
                                   max_time, restart, redo_changed, scheduler,
                                   progress=not ctx.obj["quiet"])
                from tqdm.contrib.logging import logging_redirect_tqdm

                with logging_redirect_tqdm():
                    report = _run(config, stop)
            finally:
                stop_fork_server()
        _report(ctx, report, state_path, restarted=restart)


def _report(ctx, report: RunReport, state_path: str, restarted: bool = False) -> None:
    if report.status:  # none when stopped before the state was read
        try:
            _print_table(report.status, selected=report.families)
        except _OutputFailed as failure:  # the search's results are in the state: the exit code stands
            logger.warning("%s (the search is saved in %s: `search status` shows it)", failure, state_path)
    if report.stopped:
        again = ("run the same command without --restart to resume (with it, the search would start "
                 "over again)" if restarted else "run the same command to resume")
        if restarted and not report.status:
            again = "nothing was moved, so --restart has not happened yet: run the same command again"
        where = (f"progress is saved in {state_path}" if report.status else
                 f"stopped while loading, before any work: {state_path} is as it was")
        click.echo(f"stopped early ({report.stopped}); {where}; {again}", err=True)
        ctx.exit(3)
    if report.failed:
        for error in report.failed.values():
            click.echo(failure_headline(error), err=True)
        click.echo(f"failed: {', '.join(report.failed)} (each error's count and the last traceback: "
                   "`search status --json`)", err=True)
        ctx.exit(1)


@cli.command("status")
@state_option
@click.option("--family", help="Show this family's candidates, best first.")
@click.option("--top", type=click.IntRange(min=1), help="With --family: only the N best candidates.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status_command(state_path, family, top, as_json):
    """Families with status, candidates done/total, best score and params, time spent."""
    if top is not None and family is None:
        raise click.BadParameter("--top goes with --family NAME", param_hint="--top")
    data = read_state(state_path)
    if family is not None:
        rows = candidate_rows(data, family, top)
        if as_json:
            _echo_json({"state": state_path, "family": family, "candidates": rows})
            return
        click.echo(f"{'rank':>4} {'mean score':>10} {'std':>8} {'fit s':>7}  params")
        for r in rows:
            click.echo(f"{r['rank']:>4} {r['mean_test_score']:>10.4f} {r['std_test_score']:>8.4f} "
                       f"{r['mean_fit_time']:>7.2f}  {r['params']!r}")
        return
    rows = status_rows(data)
    overall = None
    with contextlib.suppress(SearchError):
        overall = best_family(data)
    if as_json:
        _echo_json({"state": state_path, "families": rows, "best": overall, "updated": data.get("updated"),
                    "run": run_summary(data, state_path)})
        return
    _print_table(rows)
    for r in rows:
        if r["status"] == "failed" and r["error"]:
            click.echo(f"{r['family']}: {failure_headline(r['error'])}")
    removed = [r["family"] for r in rows if r["removed"]]
    if removed:
        click.echo(f"no longer in the grids file, so left out of best: {', '.join(removed)} "
                   "(--family NAME still uses one)")
    if overall:
        click.echo(f"best: {overall}")
    for line in _summary_lines(run_summary(data, state_path), data.get("updated")):
        click.echo(line)


@cli.command("best")
@state_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def best_command(state_path, as_json):
    """The best family overall, its score and params (ties: the family searched first)."""
    data = read_state(state_path)
    name = best_family(data)
    entry = data["families"][name]
    summary = run_summary(data)
    result = {"family": name, "best_score": entry["best_score"], "best_params": entry["best_params"],
              "scoring": data["run"]["scoring"] or f"default: {_scoring_text(summary)}",
              "estimator": _stable_repr(entry["estimator"])}
    rows = [r for r in status_rows(data) if not r["removed"]]
    unfinished = [r["family"] for r in rows if r["status"] in ("pending", "partial")]
    result["families_not_done"] = unfinished  # the best so far may change once they are
    if as_json:
        _echo_json(result)
        return
    click.echo(f"{name}\t{entry['best_score']:.6f}\t{entry['best_params']!r}")
    click.echo(f"score: the mean over {summary['cv']} folds of {_scoring_text(summary)}", err=True)
    if unfinished:
        click.echo(f"best of the families done so far: {len(unfinished)} of {len(rows)} not done yet "
                   f"({', '.join(unfinished)}); `search run` finishes them", err=True)


@cli.command("export")
@state_option
@click.option("--family", help="Export this family's best estimator (default: the best overall).")
@click.option("--output", "-o", required=True, type=_File("an export", "model.joblib"),
              help="The file to write (-: stdout).")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS),
              help="Default: by the extension (.joblib, .skops), else pickle.")
def export_command(state_path, family, output, fmt):
    """Write one family's best estimator to a file, atomically."""
    done = export_best(state_path, output, family, fmt)
    err = output == "-"  # stdout holds the model itself
    where = "stdout" if err else done.path
    click.echo(f"wrote the best estimator of {done.family} to {where} ({done.format})", err=err)
    if done.format == "skops":
        trusted = ", ".join(repr(t) for t in done.untrusted) or "(none)"
        click.echo(f"types to trust when loading: {trusted}", err=err)
        click.echo(f"load it with: skops.io.load({'PATH' if err else repr(done.path)}, "
                   f"trusted=[{', '.join(map(repr, done.untrusted))}])", err=err)
    if done.columns:
        text = (f"; give {', '.join(done.text_columns)} as text (str), as in training" if done.text_columns
                else "")
        columns = (f"the columns {', '.join(done.columns)}" if len(done.columns) <= 8 else
                   f"its {len(done.columns)} training columns ({', '.join(done.columns[:3])}, ..."
                   f"{': model.feature_names_in_' if done.feature_names else ''})")
        click.echo(f"it predicts on a pandas DataFrame with {columns}{text}; "
                   "missing values as NaN (README: Serving an exported model)", err=err)


@cli.command("predict")
@state_option
@click.option("--family", help="Use this family's best estimator (default: the best overall).")
@click.option("--data", required=True, type=_File("a CSV file", "new.csv"), help="CSV of rows to predict.")
@click.option("--output", "-o", type=_File("the output", "predictions.csv"),
              help="Write the CSV here (default, or -: stdout).")
@click.option("--proba", is_flag=True, help="Add a proba_<class> column per class.")
def predict_command(state_path, family, data, output, proba):
    """Predict for the rows of a CSV: the same rows with a `prediction` column added."""
    if output == "-":
        output = None  # stdout, as the convention goes
    if output is not None:
        check_output(output, state_path)
        if os.path.exists(output) and os.path.samefile(output, data):
            raise SearchError(
                f"--output {output} is the --data file itself; writing there would replace the "
                "rows read. Choose another file, e.g. -o predictions.csv"
            )
    compression = None if output is None else _compression(output)
    result = predict_csv(state_path, data, family, proba)
    if output is None:
        result.to_csv(sys.stdout, index=False)
        sys.stdout.flush()  # a full disk under `> pred.csv` is reported by this command
        return
    written = io.BytesIO()  # pandas writes bytes (and compresses) only to a file object it knows
    result.to_csv(written, index=False, compression=compression)
    write_output(output, written.getbuffer())
    click.echo(f"wrote {len(result)} predictions to {output}", err=True)


# The extensions pandas compresses a CSV by (read_csv and to_csv infer it from the name), as pandas
# writes them: an archive holds one file, named as the output without its archive extension.
_COMPRESSIONS = {".tar": "", ".tar.gz": "gz", ".tar.bz2": "bz2", ".tar.xz": "xz",
                 ".gz": "gzip", ".bz2": "bz2", ".zip": "zip", ".xz": "xz", ".zst": "zstd"}


def _compression(output: str):
    """How to compress the CSV written to ``output``, from its extension as pandas infers it
    (pred.csv.gz: gzip); None: plain text. The atomic writer is a stream, from which pandas cannot
    tell the name."""
    import importlib.util

    name = os.path.basename(output)
    extension = next((e for e in _COMPRESSIONS if name.lower().endswith(e)), None)
    if extension is None:
        return None
    method = _COMPRESSIONS[extension]
    if method == "zstd" and importlib.util.find_spec("zstandard") is None:
        raise SearchError(f"--output {output}: writing a .zst file needs the zstandard package, which "
                          "this environment lacks; pip install zstandard, or use another extension, "
                          "e.g. -o predictions.csv.gz")
    inner = name[:-len(extension)] or "predictions.csv"
    if extension.startswith(".tar"):
        return {"method": "tar", "mode": f"w:{method}", "archive_name": inner}
    return {"method": "zip", "archive_name": inner} if method == "zip" else method


def _echo_json(value) -> None:
    import json

    click.echo(json.dumps(_no_nan(value), indent=2, default=_jsonable, allow_nan=False))


def _no_nan(value):
    """``value`` with NaN and infinite numbers as None: JSON has no NaN (a failed fit's score is one)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    return value


def _jsonable(value):
    import numpy as np

    if isinstance(value, np.generic):
        return _no_nan(value.item())
    if isinstance(value, np.ndarray):
        return _no_nan(value.tolist())
    return repr(value)


def _print_table(rows: list[dict], selected=None) -> None:
    rows = [r for r in rows if selected is None or r["family"] in selected]
    cells = [(r["family"], r["status"], f"{r['candidates_done']}/{r['candidates_total']}",
              f"{r['fits_done']}/{r['fits_total']}", "" if r["best_score"] is None else f"{r['best_score']:.4f}",
              f"{r['time_spent']:.1f}", "" if r["best_params"] is None else repr(r["best_params"])) for r in rows]
    header = ("family", "status", "done", "fits", "best score", "time s", "best params")
    # columns as wide as their widest cell (a score of -123377.4479, a family name of 20 letters)
    widths = [max(len(c) for c in column) for column in zip(header, *cells)]
    widths = [max(w, least) for w, least in zip(widths, (12, 8, 9, 11, 10, 8, 0))]
    for line in (header, *cells):
        click.echo(" ".join([f"{line[0]:<{widths[0]}}", f"{line[1]:<{widths[1]}}",
                             *(f"{c:>{w}}" for c, w in zip(line[2:6], widths[2:6]))]) + f"  {line[6]}")


_WHOLE_PROCESS = False  # the command owns the process (not a CliRunner in someone else's)


class _OutputFailed(BaseException):
    """Standard output could not take the results (a full disk under ``> pred.csv``, an I/O error);
    the message says what was lost and how to write it elsewhere.

    Not an Exception: code between the write and the command line that catches those (click probes
    a stream with ``write("")`` inside ``except Exception``) must not take it for its own and go on.
    """


# A reader that went away: what it did not read is not wanted (`| head` that has its lines).
_READER_GONE = frozenset({errno.EPIPE, errno.ECONNRESET})


class _Output:
    """A text stream of the command line that tells a reader gone from output lost.

    Once the reader is gone (a ``| head`` that has read its lines: EPIPE; a closed file), what is
    written is dropped, and ``status``, ``best`` and ``predict`` read by a ``head`` end as if read
    to the end (exit 0). Any other failure to write (a full disk, an I/O error) drops the rest too,
    and on stdout (``results=True``), which holds the results, raises :class:`_OutputFailed` once:
    a cut-off CSV must not pass for a whole one. On stderr (progress, log lines) it is dropped
    quietly: a search does not end over a line it could not show; its results are in the state file.
    """

    def __init__(self, stream, results: bool = False):
        self._stream = stream
        self._results = results
        self.lost = False  # set by the first write that failed

    def _guarded(self, call, *args):
        if not self.lost:
            try:
                return call(*args)
            except (OSError, ValueError) as exc:  # ValueError: a closed file
                self.lost = True
                if self._results and isinstance(exc, OSError) and exc.errno not in _READER_GONE:
                    raise _OutputFailed(_output_failure(self._stream, exc)) from exc
        return None

    def write(self, text):
        written = self._guarded(self._stream.write, text)
        return len(text) if written is None else written

    def flush(self):
        self._guarded(self._stream.flush)

    @property
    def buffer(self):
        """The binary stream below (``export -o -`` writes the model's bytes there), guarded alike."""
        return _BinaryOutput(self)

    def __getattr__(self, name):
        return getattr(self._stream, name)


class _BinaryOutput:
    """The binary layer of an :class:`_Output`, written through its guard: a failure loses both."""

    def __init__(self, text: _Output):
        self._text = text

    def write(self, data):
        written = self._text._guarded(self._text._stream.buffer.write, data)
        return len(data) if written is None else written

    def flush(self):
        self._text._guarded(self._text._stream.buffer.flush)

    def __getattr__(self, name):
        return getattr(self._text._stream.buffer, name)


def _output_failure(stream, error: OSError) -> str:
    """What could not be written to ``stream`` (stdout), why, and how to write it elsewhere."""
    target = "standard output"
    with contextlib.suppress(OSError, ValueError, AttributeError):  # a file's name, not pipe:[...]
        name = os.readlink(f"/proc/self/fd/{stream.fileno()}")
        if name.startswith("/"):
            target = f"{name} (standard output)"
    ctx = click.get_current_context(silent=True)
    command = f"`{ctx.command_path}`" if ctx else "the command"
    elsewhere = ("with -o/--output PATH" if ctx and any(p.name == "output" for p in ctx.command.params)
                 else "by redirecting it to a file on another file system")
    fix = (f"free space there, or write it elsewhere {elsewhere}" if error.errno in (errno.ENOSPC, errno.EDQUOT)
           else f"write it elsewhere {elsewhere}")
    return (f"could not write the output of {command} to {target}: {error.strerror or error}; what was "
            f"written there is cut short: {fix}")


def main() -> None:
    """The ``search`` console script: the command line, in a process of its own."""
    global _WHOLE_PROCESS
    _WHOLE_PROCESS = True
    # The resource tracker (a process of multiprocessing's and loky's that outlives a SIGKILLed
    # runner and cleans up after it) warns then of "leaked semaphore objects to clean up", which
    # reads as damage to a user who killed a search on purpose. It inherits this filter.
    os.environ["PYTHONWARNINGS"] = ",".join(
        filter(None, (os.environ.get("PYTHONWARNINGS"), "ignore:resource_tracker:UserWarning")))
    sys.stdout, sys.stderr = _Output(sys.stdout, results=True), _Output(sys.stderr)
    try:
        try:
            cli(prog_name="search")
        finally:
            sys.stdout.flush()  # what is still buffered fails here, not unseen at the exit
    except _OutputFailed as failure:
        click.echo(f"Error: {failure}", err=True)
        sys.exit(1)
    finally:
        if sys.stdout.lost:  # the interpreter's own flush at exit would complain of the broken pipe
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    # `python -m search` runs this file as __main__; use the importable module instead, so that
    # worker functions travel by reference and the workers import scikit-learn once.
    from search import main as _main

    _main()
