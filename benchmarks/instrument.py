"""Run the runner (or any script) with two light probes: task timelines and checkpoint timings.

Used by ``run.py``; handy on its own to look at one run::

    python benchmarks/instrument.py --trace T.jsonl --saves S.jsonl --module search -- \\
        -q run --grids ../shared/bench/w1.py --state s.pkl --n-jobs 2
    python benchmarks/instrument.py --call search:cli -- -q run ...   # as the `search` script
    python benchmarks/instrument.py --trace T.jsonl --script ../shared/bench/naive_loop.py -- W.py S.pkl

The module (``--module``) runs exactly as ``python -m`` runs it (``runpy`` with
``run_name="__main__"``), so what is measured is the command users type. Nothing
in the project is changed; two functions are wrapped before it starts:

- ``state.save`` (looked up by ``search`` at call time): one JSON line per
  checkpoint with its wall-clock start, duration, file size and the serial work
  (fit + score + refit seconds) the saved state holds.
- loky's ``_ReusablePoolExecutor.submit``, which both the runner's pool and
  joblib's ``Parallel`` (so GridSearchCV) go through: every task runs inside
  :func:`traced`, which writes a ``start`` and an ``end`` line per task from
  the worker process (pid, wall clock, function, parameters, and the task's own
  fit/score/refit seconds when its result reports them).

Lines are appended with one ``write`` each to a file opened with ``O_APPEND``,
so lines from several processes do not interleave and survive a SIGKILL.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import importlib.machinery
import json
import os
import runpy
import sys
import time

__all__ = ["install", "serial_work", "traced", "work_fitted_whole"]


def _append(path: str, record: dict) -> None:
    line = (json.dumps(record, default=repr) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def serial_work(data: dict) -> float:
    """Seconds of fit, score and refit work the runner spent on what a state dict holds.

    Each family's ``time_spent``: the sum of its folds' fit and score times
    and its refit time, except that an ensemble grown from a smaller one on a
    fold counts only the time spent growing it (its ``fit_time`` counts the
    smaller one's members as well).
    """
    return sum(entry.get("time_spent", 0.0) for entry in data.get("families", {}).values())


def work_fitted_whole(data: dict) -> float:
    """The same work had every candidate been fitted whole: fit and score times of every fold, plus refits.

    The difference from :func:`serial_work` is what growing ensembles from
    smaller ones saved.
    """
    total = 0.0
    for entry in data.get("families", {}).values():
        for cand in entry.get("candidates", {}).values():
            total += sum(cand["fit_times"]) + sum(cand["score_times"])
        for folds in entry.get("folds", {}).values():  # finished folds of unfinished candidates
            total += sum(r["fit_time"] + r["score_time"] for r in folds.values())
        total += entry.get("refit_time", 0.0) or 0.0
    return total


def _describe_task(fn, args) -> dict:
    name = getattr(fn, "__name__", type(fn).__name__)
    if name == "fit_fold" and len(args) >= 4:
        return {"fn": name, "params": args[2][0], "grown": len(args[2]) - 1, "fold": args[3]}
    if name == "refit" and len(args) >= 3:
        return {"fn": name, "params": args[2]}
    items = getattr(fn, "items", None)  # joblib's BatchedCalls: (func, args, kwargs) triples
    if items:
        kwargs = items[0][2]
        return {"fn": "batch", "n": len(items), "params": kwargs.get("parameters"),
                "fold": (kwargs.get("split_progress") or [None])[0]}
    return {"fn": name}


def _result_work(result) -> float | None:
    if isinstance(result, list):  # fit_fold: one result per candidate; a joblib batch: one per call
        parts = [r["work"] if isinstance(r, dict) and "work" in r else _result_work(r) for r in result]
        return None if None in parts else sum(parts)
    if isinstance(result, dict):
        if "refit_time" in result:
            return float(result["refit_time"])
        if "fit_time" in result:
            return float(result["fit_time"]) + float(result.get("score_time") or 0.0)
    return None


def traced(log_path: str, task_id: int, fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` in a worker, logging its start and end."""
    base = {"id": task_id, "pid": os.getpid(), **_describe_task(fn, args)}
    _append(log_path, {"ev": "start", "t": time.time(), **base})
    result = fn(*args, **kwargs)
    _append(log_path, {"ev": "end", "t": time.time(), "work": _result_work(result), **base})
    return result


class _AfterImport(importlib.abc.MetaPathFinder):
    """Call ``callback(module)`` right after the module ``name`` is first imported, by whoever imports it."""

    def __init__(self, name: str, callback):
        self.name, self.callback = name, callback

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            self.callback(module)

        spec.loader.exec_module = exec_module
        return spec


def _after_import(name: str, callback) -> None:
    if name in sys.modules:
        callback(sys.modules[name])
    else:
        sys.meta_path.insert(0, _AfterImport(name, callback))


def install(trace_path: str | None = None, saves_path: str | None = None) -> None:
    """Wrap loky's submit (task timeline) and ``state.save`` (checkpoint timings).

    loky's submit is wrapped when the measured program first imports loky,
    not here: importing it up front would add its 0.15 to 0.2 s to the
    measured start-up, which ``search run`` itself pays only later, while
    the fork server imports scikit-learn on the other core.
    """
    if trace_path:
        counter = iter(range(1 << 62))

        def wrap(module):
            original_submit = module._ReusablePoolExecutor.submit

            def submit(self, fn, *args, **kwargs):
                return original_submit(self, traced, trace_path, next(counter), fn, *args, **kwargs)

            module._ReusablePoolExecutor.submit = submit

        _after_import("joblib.externals.loky.reusable_executor", wrap)
    if saves_path:
        import state

        original_save = state.save

        def save(path, data, *args, **kwargs):
            start, t0 = time.time(), time.perf_counter()
            original_save(path, data, *args, **kwargs)
            spent = time.perf_counter() - t0
            try:
                size = os.stat(path).st_size
            except OSError:
                size = None
            _append(saves_path, {"t": start, "dur": spent, "bytes": size, "work": serial_work(data)})

        state.save = save


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", help="append task start/end lines (JSON) to this file")
    parser.add_argument("--saves", help="append one line (JSON) per state.save to this file")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--module", help="run this module as `python -m MODULE` would")
    target.add_argument("--script", help="run this script as `python SCRIPT` would")
    target.add_argument("--call", metavar="MODULE:FUNC",
                        help="import MODULE and call FUNC, as an installed console script does")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments after --")
    opts = parser.parse_args(argv)
    args = opts.args[1:] if opts.args[:1] == ["--"] else opts.args
    install(opts.trace, opts.saves)
    if opts.module:
        sys.argv = [opts.module, *args]
        runpy.run_module(opts.module, run_name="__main__", alter_sys=True)
    elif opts.call:
        module, func = opts.call.split(":")
        sys.argv = [module, *args]
        getattr(importlib.import_module(module), func)()
    else:
        sys.argv = [opts.script, *args]
        sys.path.insert(0, os.path.dirname(os.path.abspath(opts.script)))
        runpy.run_path(opts.script, run_name="__main__")


if __name__ == "__main__":
    # Import this file under its own name so that `traced` pickles by reference.
    import instrument

    instrument.main()
