"""Large states: a state file holding about 1 GB of best estimators.

Builds a state in the runner's schema whose done families carry big fitted
estimators (half of them scikit-learn k-NN models, which keep their training
data, half :class:`BigArrayModel`, which records every time it is unpickled),
each stored as ``state.Pickled`` as the runner stores them, then measures:

1. a checkpoint: ``state.save`` of the whole state, against writing and fsyncing
   the same number of bytes with plain ``os.write`` (and the parts of a save:
   pickling alone, SHA-256 alone);
2. ``search status --state F`` (and ``--json``), as a subprocess: wall time with
   the file in the page cache and not, peak RSS, and whether it unpickled any
   estimator (it must not);
3. a plain ``pickle.load`` in a fresh interpreter: it returns the full dict with
   the estimators themselves, not wrappers;
4. ``state.load`` eager and lazy (the runner opens the state lazily on every
   resume).

Usage::

    PYTHONPATH=. /work/venv/bin/python benchmarks/large_state.py --gb 1.0 --repeats 3
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cloudpickle
import numpy as np
import psutil
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import ParameterGrid
from sklearn.neighbors import KNeighborsClassifier

HERE = Path(__file__).resolve().parent
MAIN = HERE.parent
PYTHON = sys.executable
MARKER_VARIABLE = "LARGE_STATE_UNPICKLE_LOG"


class BigArrayModel(ClassifierMixin, BaseEstimator):
    """A fitted classifier that carries a big array; appends a line to a log when unpickled."""

    def __init__(self, n_bytes: int = 1 << 20):
        self.n_bytes = n_bytes

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.weights_ = np.random.default_rng(0).random(self.n_bytes // 8)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])

    def __setstate__(self, data):
        log = os.environ.get(MARKER_VARIABLE)
        if log:
            with open(log, "a") as f:
                f.write(f"{os.getpid()} unpickled a BigArrayModel\n")
        super().__setstate__(data)


def build_state(total_bytes: int, n_families: int) -> tuple[dict, dict]:
    """A runner-schema state whose families are done and hold ``total_bytes`` of estimators."""
    import search
    import state

    n_samples = 200
    rng = np.random.default_rng(0)
    X = rng.random((n_samples, 5))
    y = (X[:, 0] > 0.5).astype(int)
    test_indices = [np.arange(i, n_samples, 5) for i in range(5)]
    per_family = total_bytes // n_families
    families, kinds = {}, {}
    for i in range(n_families):
        name = f"big{i}"
        if i % 2 == 0:
            rows = per_family // (8 * 50)
            estimator = KNeighborsClassifier(algorithm="brute").fit(rng.random((rows, 50)), rng.integers(0, 2, rows))
            grid = {"n_neighbors": [1, 3, 5, 7]}
        else:
            estimator = BigArrayModel(per_family).fit(X, y)
            grid = {"n_bytes": [per_family, per_family // 2, per_family // 4, per_family // 8]}
        kinds[name] = type(estimator).__name__
        records = []
        for params in ParameterGrid(grid):
            records.append({"params": params, "test_scores": list(rng.random(5)), "fit_times": list(rng.random(5)),
                            "score_times": list(rng.random(5) / 10), "errors": [None] * 5})
        results = search.cv_results(records, 5)
        best = int(results["rank_test_score"].argmin())
        families[name] = {
            "status": "done",
            "estimator": repr(estimator),
            "estimator_fingerprint": search.fingerprint(estimator),
            "grid_fingerprint": search.fingerprint(grid),
            "n_candidates": len(records),
            "candidates": {search.candidate_key(r["params"]): r for r in records},
            "time_spent": float(sum(sum(r["fit_times"]) for r in records)),
            "cv_results": results,
            "best_index": best,
            "best_score": float(results["mean_test_score"][best]),
            "best_params": results["params"][best],
            "best_estimator": state.Pickled(estimator),
            "refit_time": 1.0,
            "finished": "2025-01-01T00:00:00+00:00",
        }
        del estimator
    data = {
        "format_version": state.FORMAT_VERSION,
        "environment": state.environment(),
        "created": "2025-01-01T00:00:00+00:00",
        "updated": "2025-01-01T00:00:00+00:00",
        "run": {
            "task": "classification",
            "data": {"source": "large_state.py", "target": None, "n_samples": n_samples, "columns": [],
                     "fingerprint": "0" * 32},
            "cv": {"n_splits": 5, "test_indices": test_indices, "fingerprint": "0" * 32},
            "scoring": None,
            "grids": "large_state.py",
            "family_order": list(families),
        },
        "families": families,
    }
    return data, kinds


def raw_write(path: Path, payload: bytes) -> float:
    """Seconds to write ``payload`` to a new file and fsync it, with plain writes."""
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view[: 1 << 30]):]
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - t0


def drop_cache(path: Path) -> None:
    """Evict ``path`` from the page cache (its pages are clean after the fsync of a save)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def timed_subprocess(cmd: list[str], env: dict) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=MAIN)
    peak = 0

    def sample():
        nonlocal peak
        ps = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                peak = max(peak, ps.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.join()
    return {"wall": wall, "rc": proc.returncode, "stdout": out.decode(), "stderr": err.decode(), "peak_rss": peak}


CHECK_PLAIN_LOAD = """
import pickle, sys, time
t0 = time.perf_counter()
with open(sys.argv[1], "rb") as f:
    data = pickle.load(f)
wall = time.perf_counter() - t0
import json
out = {"load_s": wall, "type": type(data).__name__, "families": {}}
for name, entry in data["families"].items():
    est = entry["best_estimator"]
    arr = getattr(est, "_fit_X", None)
    if arr is None:
        arr = getattr(est, "weights_", None)
    out["families"][name] = [type(est).__module__ + "." + type(est).__qualname__,
                             None if arr is None else int(arr.nbytes)]
print(json.dumps(out))
"""


def background_save(state, path: Path, data: dict) -> dict:
    """A checkpoint written by a thread, as the runner writes them, while this thread wakes every 5 ms
    as the runner's dispatch loop does for a finished fit: the CPU the save takes (all threads), and
    how late the wake-ups come (waiting for the GIL the saving thread holds while it pickles)."""
    result: dict = {}

    def save() -> None:
        t0, c0 = time.perf_counter(), time.thread_time()
        state.save(path, data)
        result["wall_s"], result["thread_cpu_s"] = time.perf_counter() - t0, time.thread_time() - c0

    lags = []
    thread = threading.Thread(target=save)
    thread.start()
    while thread.is_alive():
        t0 = time.perf_counter()
        time.sleep(0.005)
        lags.append(time.perf_counter() - t0 - 0.005)
    thread.join()
    result["wakeups"], result["lag_max_s"] = len(lags), max(lags, default=0.0)
    result["lag_median_s"] = statistics.median(lags) if lags else 0.0
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="GB of best estimators (default 1.0)")
    parser.add_argument("--families", type=int, default=4, help="done families sharing them (default 4)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="where to write the state (default: a temporary directory in /tmp)")
    opts = parser.parse_args(argv)
    sys.path.insert(0, str(MAIN))
    import state

    workdir = Path(tempfile.mkdtemp(prefix="large-state-", dir=opts.dir))
    path = workdir / "state.pkl"
    marker = workdir / "unpickled.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(MAIN), str(HERE)]), **{MARKER_VARIABLE: str(marker)})
    report: dict = {"dir": str(workdir)}
    try:
        t0 = time.perf_counter()
        data, kinds = build_state(int(opts.gb * 1e9), opts.families)
        print(f"built a state with {opts.families} done families ({', '.join(kinds.values())}) "
              f"in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

        # 1. checkpoint cost against writing the bytes once
        saves, raws = [], []
        for _ in range(opts.repeats):
            t0 = time.perf_counter()
            state.save(path, data)
            saves.append(time.perf_counter() - t0)
            size = path.stat().st_size
            payload = path.read_bytes()
            raws.append(raw_write(workdir / "raw.bin", payload))
            del payload
            (workdir / "raw.bin").unlink()
        t0 = time.perf_counter()
        buffer = io.BytesIO()
        cloudpickle.dump(data, buffer, protocol=5)
        pickle_s = time.perf_counter() - t0
        blob = buffer.getbuffer()
        t0 = time.perf_counter()
        hashlib.sha256(blob).digest()
        sha_s = time.perf_counter() - t0
        del blob, buffer
        report["file_bytes"] = size
        report["save_s"] = saves
        report["raw_write_fsync_s"] = raws
        report["save_over_raw"] = statistics.median(saves) / statistics.median(raws)
        report["pickle_to_memory_s"] = pickle_s
        report["sha256_s"] = sha_s
        report["runner_next_checkpoint_after_s"] = max(0.5, statistics.median(saves) / 0.02)
        report["background"] = background_save(state, path, data)
        del data

        # 2. search status: warm and cold page cache; nothing unpickled
        marker.unlink(missing_ok=True)
        status = {"warm": [], "cold": [], "json_warm": []}
        for _ in range(opts.repeats):
            status["warm"].append(timed_subprocess([PYTHON, "-m", "search", "status", "--state", str(path)], env))
            status["json_warm"].append(timed_subprocess(
                [PYTHON, "-m", "search", "status", "--json", "--state", str(path)], env))
            drop_cache(path)
            status["cold"].append(timed_subprocess([PYTHON, "-m", "search", "status", "--state", str(path)], env))
        for runs in status.values():
            for r in runs:
                if r["rc"] != 0:
                    raise SystemExit(f"search status failed ({r['rc']}): {r['stderr'][-2000:]}")
        report["status_unpickled_estimators"] = len(marker.read_text().splitlines()) if marker.exists() else 0
        for kind, runs in status.items():
            report[f"status_{kind}_s"] = [round(r["wall"], 3) for r in runs]
            report[f"status_{kind}_peak_mib"] = max(r["peak_rss"] for r in runs) / 2**20
        baseline = [timed_subprocess([PYTHON, "-c", "import search"], env)["wall"] for _ in range(opts.repeats)]
        report["import_search_s"] = [round(w, 3) for w in baseline]
        report["status_output"] = status["warm"][0]["stdout"]

        # 3. plain pickle.load in a fresh interpreter returns the estimators themselves
        marker.unlink(missing_ok=True)
        plain = timed_subprocess([PYTHON, "-c", CHECK_PLAIN_LOAD, str(path)], env)
        if plain["rc"] != 0:
            raise SystemExit(f"plain pickle.load failed: {plain['stderr'][-2000:]}")
        report["plain_pickle_load"] = json.loads(plain["stdout"])
        report["plain_pickle_load_wall_s"] = plain["wall"]
        report["plain_load_unpickled_bigarraymodels"] = (len(marker.read_text().splitlines())
                                                         if marker.exists() else 0)

        # 4. the runner's view on resume: eager load against lazy
        for lazy in (False, True):
            t0 = time.perf_counter()
            loaded = state.load(path, lazy=lazy)
            report[f"state_load_{'lazy' if lazy else 'eager'}_s"] = time.perf_counter() - t0
            del loaded
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_report(report, opts, kinds)


def print_report(r: dict, opts, kinds: dict) -> None:
    med = statistics.median
    gb = r["file_bytes"] / 1e9
    print(f"state file: {r['file_bytes'] / 2**20:.0f} MiB, {len(kinds)} done families "
          f"({', '.join(f'{k}={v}' for k, v in kinds.items())})")
    print(f"checkpoint (state.save)              median {med(r['save_s']):.2f} s  {r['save_s']}")
    print(f"write + fsync same bytes (os.write)  median {med(r['raw_write_fsync_s']):.2f} s  "
          f"{[round(x, 3) for x in r['raw_write_fsync_s']]}")
    print(f"  save / raw write                   {r['save_over_raw']:.2f}x  (goal <= 1.0: "
          f"{'PASS' if r['save_over_raw'] <= 1.0 else 'FAIL'}; {gb / med(r['save_s']):.2f} GB/s saved)")
    print(f"  parts: pickle to memory {r['pickle_to_memory_s']:.2f} s, SHA-256 of the bytes {r['sha256_s']:.2f} s")
    print(f"  the runner paces checkpoints to save/0.02: next checkpoint >= "
          f"{r['runner_next_checkpoint_after_s']:.0f} s after one of these")
    bg = r["background"]
    print(f"  written by a thread (as the runner does): {bg['wall_s']:.2f} s, {bg['thread_cpu_s']:.2f} s of CPU; "
          f"the other thread's 5 ms wake-ups late by median {bg['lag_median_s'] * 1e3:.1f} ms, "
          f"at most {bg['lag_max_s'] * 1e3:.0f} ms ({bg['wakeups']} wake-ups)")
    for kind in ("warm", "cold", "json_warm"):
        walls = r[f"status_{kind}_s"]
        verdict = "PASS" if med(walls) <= 2 else "FAIL"
        print(f"search status ({kind:<9})            median {med(walls):.2f} s  {walls}  "
              f"peak RSS {r[f'status_{kind}_peak_mib']:.0f} MiB  (goal <= 2 s: {verdict})")
    print(f"  python -c 'import search' alone    median {med(r['import_search_s']):.2f} s  {r['import_search_s']}")
    print(f"  estimators unpickled by status: {r['status_unpickled_estimators']} (goal 0: "
          f"{'PASS' if r['status_unpickled_estimators'] == 0 else 'FAIL'})")
    plain = r["plain_pickle_load"]
    full = all(not v[0].startswith("state.") and v[1] for v in plain["families"].values())
    print(f"plain pickle.load, fresh interpreter: {plain['type']} in {plain['load_s']:.2f} s; best_estimator types "
          f"{ {k: v[0].rsplit('.', 1)[-1] for k, v in plain['families'].items()} }, "
          f"{sum(v[1] or 0 for v in plain['families'].values()) / 2**20:.0f} MiB of arrays; "
          f"{r['plain_load_unpickled_bigarraymodels']} BigArrayModels unpickled "
          f"(full dict: {'PASS' if full else 'FAIL'})")
    print(f"state.load eager {r['state_load_eager_s']:.2f} s, lazy {r['state_load_lazy_s']:.2f} s "
          f"(the runner loads lazily when it opens a state to resume: estimators stay bytes)")
    print("search status output:\n" + r["status_output"])


if __name__ == "__main__":
    # Import this file under its own name so that BigArrayModel pickles by reference (large_state.BigArrayModel).
    import large_state

    large_state.main()
