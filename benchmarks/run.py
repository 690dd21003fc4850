"""The runner against the hand-written loop, side by side, on W1 and larger workloads (big, boosting, table, forests).

For every repeat the hand-written loop (``shared/bench/naive_loop.py``) and the
runner (``python -m search -q run ...``) run alternately, each as a subprocess
on a fresh state file, and optionally a SIGKILL experiment follows. Usage::

    PYTHONPATH=. /work/venv/bin/python benchmarks/run.py --workload w1 --repeats 3 --kills 4
    PYTHONPATH=. /work/venv/bin/python benchmarks/run.py --workload both --repeats 3 --kills 0

What is measured, and how:

wall
    Outside the process: from spawning it to its exit.
serial work
    Runner: each family's ``time_spent`` in the final state: its folds' fit and
    score times plus its refit time, where an ensemble grown from a smaller one
    counts only the growing. "Fitted whole" is the same with every candidate's
    full ``fit_time``, as if each ensemble had been fitted from nothing: the
    difference is the work growing saved. Loop: its printed ``fit_and_score_s``
    (GridSearchCV's fit and score times; it does not report its refits).
efficiency
    serial work / cores (``--n-jobs``) / wall.
saving share
    The runner's CLI does not log its checkpoint times at ``-q``, so the runner is
    started through ``instrument.py``, which runs ``search`` exactly as
    ``python -m search`` does but times every ``state.save`` call (and logs each
    task's start and end from the workers, for the timeline).
peak memory
    Total RSS of the process tree (the process and all its descendants), sampled
    every 50 ms; the maximum of the sums. Shared pages count once per process
    in both columns alike. Also the total PSS (every 0.5 s), where a page n
    processes share counts 1/n in each: memory-mapped data read by several
    workers counts once.
other load
    CPU seconds the whole machine spent outside the measured process tree,
    divided by the wall: other people's work competing for the cores. Figures
    taken with other load well above 0 are not comparable with quiet ones.
kills
    A fresh runner is SIGKILLed ``--kills`` times, at moments drawn uniformly
    over the uninterrupted run's wall (sorted; the gaps between them are the
    segment lengths), the whole process tree at once as a pre-empted job is,
    then resumed to completion. Kill cost = total wall of all segments /
    uninterrupted wall of the same repeat. Work lost per kill = serial work
    computed in the killed segments (finished tasks' fit + score + refit seconds
    from the trace, and the time spent so far by tasks in flight) minus the serial
    work their state files gained, divided by the kills.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from instrument import serial_work, work_fitted_whole

HERE = Path(__file__).resolve().parent
MAIN = HERE.parent
SHARED_BENCH = MAIN.parent / "shared" / "bench"
PYTHON = sys.executable
SAMPLE_EVERY = 0.05
NICE = 0  # niceness increment for the measured processes (--nice)
GOALS = {  # W1 goals of the issue
    "wall ratio runner/loop": ("<=", 0.85),
    "runner efficiency": (">=", 0.90),
    "kill cost (4 kills + resume)": ("<=", 1.15),
    "saving share of wall": ("<=", 0.02),
    "peak memory runner/loop": ("<=", 1.50),
}


# ---------------------------------------------------------------- process runs


class TreeMonitor(threading.Thread):
    """Samples RSS and CPU time of a process and all its descendants."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.peak_rss = 0
        self.peak_pss = 0  # proportional set size: a page shared by n processes counts 1/n in each
        self._pss_every, self._n = 10, 0  # PSS reads every page table: every 10th sample (0.5 s)
        self.cpu: dict[int, float] = {}
        self._procs: dict[int, psutil.Process] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(SAMPLE_EVERY)

    def sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        rss = pss = 0
        self._n += 1
        with_pss = self._n % self._pss_every == 1
        for proc in procs:
            proc = self._procs.setdefault(proc.pid, proc)  # keep one object per pid
            try:
                with proc.oneshot():
                    rss += proc.memory_info().rss
                    if with_pss:
                        pss += proc.memory_full_info().pss
                    times = proc.cpu_times()
                self.cpu[proc.pid] = times.user + times.system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _busy_cpu() -> float:
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq


def wait_quiet(below: float, timeout: float) -> float:
    """Wait until the machine's other load (cores busy, over 2 s) is below ``below``; return it."""
    deadline = time.monotonic() + timeout
    while True:
        busy0 = _busy_cpu()
        time.sleep(2.0)
        load = (_busy_cpu() - busy0) / 2.0
        if load < below or time.monotonic() >= deadline:
            return load


def launch(cmd: list[str], kill_after: float | None = None, path: Path | None = None) -> dict:
    """Run ``cmd`` to completion (or SIGKILL its tree after ``kill_after`` s); measure it.

    ``path``, when given, comes first on the PYTHONPATH (a prototype of search.py to measure).
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [*([str(path)] if path else []), str(MAIN), str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]))
    busy0 = _busy_cpu()
    t_wall0 = time.time()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=MAIN,
                            preexec_fn=(lambda: os.nice(NICE)) if NICE else None)
    monitor = TreeMonitor(proc.pid)
    monitor.start()
    killed_at = None
    try:
        out, err = proc.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        killed_at = time.time()
        tree = kill_tree(proc.pid)
        out, err = proc.communicate()
        psutil.wait_procs(tree, timeout=10)
    except BaseException:  # interrupted: leave nothing running
        kill_tree(proc.pid)
        raise
    wall = time.perf_counter() - t0
    if killed_at is not None:
        wall = killed_at - t_wall0  # the job's time ends at the kill; reaping it is not its time
    monitor.stop()
    tree_cpu = sum(monitor.cpu.values())
    other = max(0.0, (_busy_cpu() - busy0 - tree_cpu) / wall)
    return {"cmd": cmd, "rc": proc.returncode, "wall": wall, "t0": t_wall0, "t_end": t_wall0 + wall,
            "killed_at": killed_at, "stdout": out.decode(errors="replace"),
            "stderr": err.decode(errors="replace"), "peak_rss": monitor.peak_rss, "peak_pss": monitor.peak_pss,
            "tree_cpu": tree_cpu, "other_load": other}


def kill_tree(pid: int) -> list[psutil.Process]:
    """SIGKILL a process and all its descendants at once, as a pre-empted or timed-out job is killed."""
    try:
        tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    for p in tree:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    return tree


def runner_cmd(grids: Path, state_path: Path, trace: Path, saves: Path, n_jobs: int, entry: str,
               families: str | None = None) -> list[str]:
    target = ["--module", "search"] if entry == "module" else ["--call", "search:cli"]
    return [PYTHON, str(HERE / "instrument.py"), "--trace", str(trace), "--saves", str(saves), *target, "--",
            "-q", "run", "--grids", str(grids), "--state", str(state_path), "--n-jobs", str(n_jobs),
            *(["--families", families] if families else [])]


def loop_cmd(bench_dir: Path, grids: Path, state_path: Path, trace: Path | None) -> list[str]:
    script = str(bench_dir / "naive_loop.py")
    if trace is None:
        return [PYTHON, script, str(grids), str(state_path)]
    return [PYTHON, str(HERE / "instrument.py"), "--trace", str(trace), "--script", script, "--",
            str(grids), str(state_path)]


def remove_state(path: Path) -> None:
    for p in path.parent.glob(path.name + "*"):
        p.unlink()


def load_state(path: Path) -> dict:
    """A runner state file with its estimators unopened ({} when there is none yet)."""
    import state

    try:
        return state.load(path, lazy=True)
    except FileNotFoundError:
        return {}


# ------------------------------------------------------------------ log reading


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def timeline(trace: Path, t0: float, t_end: float, n_jobs: int, killed_at: float | None = None) -> dict:
    """Where the workers' time went, from a task trace."""
    events = read_jsonl(trace)
    starts = {e["id"]: e for e in events if e["ev"] == "start"}
    ends = {e["id"]: e for e in events if e["ev"] == "end"}
    stop = killed_at or t_end
    intervals, computed, in_flight = [], 0.0, 0.0
    for tid, s in starts.items():
        e = ends.get(tid)
        end = e["t"] if e else stop
        intervals.append((s["t"], end, s["pid"], s))
        if e is not None:
            computed += e["work"] if e.get("work") is not None else end - s["t"]
        else:
            in_flight += end - s["t"]  # in flight when killed: the time it had spent
    computed += in_flight
    if not intervals:
        return {"tasks": 0, "computed_work": 0.0, "in_flight_work": 0.0}
    real = [i for i in intervals if not str(i[3].get("fn", "")).startswith("_")]  # not warm-up no-ops
    first = min(i[0] for i in real or intervals)
    last = max(i[1] for i in intervals)
    busy = sum(e - s for s, e, _, _ in intervals)
    in_worker = sum(ends[t]["t"] - starts[t]["t"] - ends[t]["work"] for t in ends
                    if ends[t].get("work") is not None)
    # time during which fewer tasks ran than there are workers, between the first start and last end
    edges = sorted([(s, 1) for s, _, _, _ in intervals] + [(e, -1) for _, e, _, _ in intervals])
    running, prev, under = 0, first, 0.0
    for t, delta in edges:
        if running < n_jobs and t > prev:
            under += (n_jobs - running) * (t - prev)
        running += delta
        prev = max(prev, t)
    tail_tasks = sorted(intervals, key=lambda i: i[1])[-3:]
    return {
        "tasks": len(intervals),
        "startup": first - t0,  # spawn to the first real task's start
        "shutdown": stop - last,  # last task end to exit
        "busy": busy,
        "computed_work": computed,
        "in_flight_work": in_flight,  # of tasks cut by a kill
        "in_worker_overhead": in_worker,  # task time not in fit/score/refit: data, clone, pickling
        "idle_core_s_between": under,  # core-seconds without a task between first start and last end
        "last_tasks": [(round(e - s, 2), round(stop - e, 2), _label(i)) for s, e, _, i in tail_tasks],
    }


def _label(start_event: dict) -> str:
    params = start_event.get("params") or {}
    short = ",".join(f"{k.split('__')[-1]}={v}" for k, v in params.items())
    return f"{start_event.get('fn')}({short}; fold {start_event.get('fold')})"


# -------------------------------------------------------------------- the runs


def run_loop(wl: dict, opts, tag: str) -> dict:
    path = opts.out / f"{tag}-loop.pkl"
    trace = opts.out / f"{tag}-loop-trace.jsonl" if opts.trace_loop else None
    remove_state(path)
    gate(opts)
    res = launch(loop_cmd(opts.bench_dir, wl["grids"], path, trace))
    if res["rc"] != 0:
        raise SystemExit(f"the loop failed ({res['rc']}):\n{res['stderr'][-3000:]}")
    match = re.search(r"fit_and_score_s=([\d.]+)", res["stdout"])
    res["work"] = float(match.group(1))
    res["efficiency"] = res["work"] / opts.n_jobs / res["wall"]
    if trace is not None:
        res["timeline"] = timeline(trace, res["t0"], res["t_end"], opts.n_jobs)
    remove_state(path)
    return res


def run_runner(wl: dict, opts, tag: str) -> dict:
    path = opts.out / f"{tag}-runner.pkl"
    trace, saves = opts.out / f"{tag}-runner-trace.jsonl", opts.out / f"{tag}-runner-saves.jsonl"
    for p in (trace, saves):
        p.unlink(missing_ok=True)
    remove_state(path)
    gate(opts)
    res = launch(runner_cmd(wl["grids"], path, trace, saves, opts.n_jobs, opts.entry, getattr(opts, "families", None)),
                 path=opts.runner_path)
    if res["rc"] != 0:
        raise SystemExit(f"the runner failed ({res['rc']}):\n{res['stderr'][-3000:]}")
    final = load_state(path)
    res["work"], res["work_whole"] = serial_work(final), work_fitted_whole(final)
    res["efficiency"] = res["work"] / opts.n_jobs / res["wall"]
    save_log = read_jsonl(saves)
    res["saves"] = len(save_log)
    res["save_time"] = sum(s["dur"] for s in save_log)
    res["save_share"] = res["save_time"] / res["wall"]
    res["save_max"] = max((s["dur"] for s in save_log), default=0.0)
    res["state_bytes"] = max((s["bytes"] or 0 for s in save_log), default=0)
    res["timeline"] = timeline(trace, res["t0"], res["t_end"], opts.n_jobs)
    remove_state(path)
    return res


def run_kills(wl: dict, opts, tag: str, expected_wall: float, rng: random.Random) -> dict:
    path = opts.out / f"{tag}-kills.pkl"
    remove_state(path)
    moments = sorted(rng.uniform(0, expected_wall) for _ in range(opts.kills))
    gaps = [b - a for a, b in zip([0.0, *moments], moments)]
    segments = []
    for i, gap in enumerate([*gaps, None]):
        trace, saves = opts.out / f"{tag}-kills-{i}-trace.jsonl", opts.out / f"{tag}-kills-{i}-saves.jsonl"
        for p in (trace, saves):
            p.unlink(missing_ok=True)
        before = serial_work(load_state(path))
        if i == 0:
            gate(opts)  # the segments follow each other at once, as a re-submitted job's do
        res = launch(runner_cmd(wl["grids"], path, trace, saves, opts.n_jobs, opts.entry), kill_after=gap,
                     path=opts.runner_path)
        if res["killed_at"] is None and res["rc"] not in (0,):
            raise SystemExit(f"a resumed runner failed ({res['rc']}):\n{res['stderr'][-3000:]}")
        after = serial_work(load_state(path))
        tl = timeline(trace, res["t0"], res["t_end"], opts.n_jobs, res["killed_at"])
        segments.append({"gap": gap, "wall": res["wall"], "killed": res["killed_at"] is not None,
                         "gained": after - before, "computed": tl["computed_work"],
                         "lost": tl["computed_work"] - (after - before), "startup": tl.get("startup"),
                         "in_flight": tl["in_flight_work"],
                         "saves": len(read_jsonl(saves)), "peak_rss": res["peak_rss"],
                         "other_load": res["other_load"]})
        if res["killed_at"] is None:
            break
    killed = [s for s in segments if s["killed"]]
    remove_state(path)
    return {"segments": segments, "kills": len(killed), "wall": sum(s["wall"] for s in segments),
            "lost_per_kill": (sum(s["lost"] for s in killed) / len(killed)) if killed else 0.0,
            "in_flight_per_kill": (sum(s["in_flight"] for s in killed) / len(killed)) if killed else 0.0,
            "final_lost": segments[-1]["lost"]}


def gate(opts) -> None:
    if opts.quiet_below is not None:
        load = wait_quiet(opts.quiet_below, opts.quiet_timeout)
        if load >= opts.quiet_below:
            print(f"  (machine still busy: {load:.2f} cores of other load; measuring anyway)", file=sys.stderr)


def warm_up(opts) -> None:
    """Load the interpreter, numpy and scikit-learn once so the first measured run is not the cold one,
    and compile the project's modules to bytecode, as ``pip install`` does: under
    ``PYTHONDONTWRITEBYTECODE`` (or on a read-only checkout) every start would compile search.py
    again, about 45 ms in the runner and again in its fork server, which an installed ``search``
    never pays."""
    root = opts.runner_path or MAIN
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(root / "search.py"), str(MAIN / "state"),
                    str(MAIN / "grids")], check=True)
    subprocess.run([PYTHON, "-c", "import search, sklearn.ensemble, sklearn.neighbors"], check=True,
                   env=dict(os.environ, PYTHONPATH=str(root)), cwd=MAIN)


def bench_workload(name: str, opts, rng: random.Random) -> dict:
    wl = {"name": name, "grids": opts.bench_dir / "w1.py" if name == "w1" else HERE / f"{name}.py"}
    pairs, discarded = [], []
    for r in range(opts.repeats):
        for attempt in range(1 + opts.retries):
            pair = run_pair(wl, opts, f"{name}-{r}" + (f"-retry{attempt}" if attempt else ""), r, rng)
            if pair["other_load"] <= opts.max_other_load or attempt == opts.retries:
                break
            print(f"[{name} #{r}] other load {pair['other_load']:.2f} cores > {opts.max_other_load}: "
                  "discarding this repeat and doing it again", file=sys.stderr, flush=True)
            discarded.append(pair)
        pairs.append(pair)
    return {"workload": name, "grids": str(wl["grids"]), "pairs": pairs, "discarded": discarded}


def run_pair(wl: dict, opts, tag: str, r: int, rng: random.Random) -> dict:
    name = wl["name"]
    order = ("loop", "runner") if r % 2 == 0 else ("runner", "loop")
    pair: dict = {"tag": tag}
    for which in order:
        pair[which] = (run_loop if which == "loop" else run_runner)(wl, opts, tag)
        _progress(name, r, which, pair[which])
    loads = [pair["loop"]["other_load"], pair["runner"]["other_load"]]
    if opts.kills:
        pair["kills"] = k = run_kills(wl, opts, tag, pair["runner"]["wall"], rng)
        loads.append(sum(s["other_load"] * s["wall"] for s in k["segments"]) / k["wall"])
        print(f"[{name} #{r}] kills: {k['kills']} kills, total wall {k['wall']:.1f} s "
              f"({k['wall'] / pair['runner']['wall']:.2f}x), lost/kill {k['lost_per_kill']:.2f} s "
              f"of work; segments {[round(s['wall'], 1) for s in k['segments']]}; other load {loads[-1]:.2f}",
              file=sys.stderr, flush=True)
    pair["other_load"] = max(loads)
    return pair


def _progress(name: str, r: int, which: str, res: dict) -> None:
    extra = ""
    if which == "runner":
        extra = f", {res['saves']} saves {res['save_time']:.2f} s"
    print(f"[{name} #{r}] {which:<6} wall {res['wall']:6.1f} s  work {res['work']:6.1f} s  "
          f"eff {res['efficiency']:.2f}  peak {res['peak_rss'] / 2**20:6.0f} MiB  "
          f"other load {res['other_load']:.2f}{extra}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ reporting


def summarize(result: dict, max_other_load: float = float("inf")) -> dict:
    """Medians over the repeats whose runs saw at most ``max_other_load`` cores of other load (all if none did)."""
    quiet = [p for p in result["pairs"] if p.get("other_load", 0.0) <= max_other_load]
    pairs = quiet or result["pairs"]
    med = statistics.median
    loop = [p["loop"] for p in pairs]
    runner = [p["runner"] for p in pairs]
    s = {
        "loop wall s": med(r["wall"] for r in loop),
        "runner wall s": med(r["wall"] for r in runner),
        "wall ratio runner/loop": med(p["runner"]["wall"] / p["loop"]["wall"] for p in pairs),
        "loop work s": med(r["work"] for r in loop),
        "runner work s": med(r["work"] for r in runner),
        "runner work fitted whole s": med(r["work_whole"] for r in runner),
        "loop efficiency": med(r["efficiency"] for r in loop),
        "runner efficiency": med(r["efficiency"] for r in runner),
        "saving share of wall": med(r["save_share"] for r in runner),
        "saves per run": med(r["saves"] for r in runner),
        "loop peak MiB": med(r["peak_rss"] for r in loop) / 2**20,
        "runner peak MiB": med(r["peak_rss"] for r in runner) / 2**20,
        "loop peak PSS MiB": med(r["peak_pss"] for r in loop) / 2**20,
        "runner peak PSS MiB": med(r["peak_pss"] for r in runner) / 2**20,
        "peak memory runner/loop": med(p["runner"]["peak_rss"] / p["loop"]["peak_rss"] for p in pairs),
        "peak PSS runner/loop": med(p["runner"]["peak_pss"] / p["loop"]["peak_pss"] for p in pairs),
        "other load (cores)": med(r["other_load"] for p in pairs for r in (p["loop"], p["runner"])),
        "noisy repeats redone": len(result.get("discarded", [])),
        "repeats in these medians": f"{len(pairs)} of {len(result['pairs'])}",
        "ratios per pair": [round(p["runner"]["wall"] / p["loop"]["wall"], 3) for p in pairs],
    }
    tls = [r["timeline"] for r in runner if r.get("timeline", {}).get("tasks")]
    if tls:
        s["runner startup s"] = med(t["startup"] for t in tls)
        s["runner shutdown s"] = med(t["shutdown"] for t in tls)
        s["runner idle core-s between"] = med(t["idle_core_s_between"] for t in tls)
        s["runner in-worker overhead s"] = med(t["in_worker_overhead"] for t in tls)
    ltl = [r["timeline"] for r in loop if r.get("timeline", {}).get("tasks")]
    if ltl:
        s["loop startup s"] = med(t["startup"] for t in ltl)
        s["loop shutdown s"] = med(t["shutdown"] for t in ltl)
        s["loop idle core-s between"] = med(t["idle_core_s_between"] for t in ltl)
    kills = [p for p in pairs if "kills" in p]
    if kills:
        s["kill cost (4 kills + resume)"] = med(p["kills"]["wall"] / p["runner"]["wall"] for p in kills)
        s["kills done per run"] = med(p["kills"]["kills"] for p in kills)
        s["work lost per kill s"] = med(p["kills"]["lost_per_kill"] for p in kills)
        s["  of it in flight s"] = med(p["kills"]["in_flight_per_kill"] for p in kills)
        s["kill cost per pair"] = [round(p["kills"]["wall"] / p["runner"]["wall"], 3) for p in kills]
        s["restart startup s"] = med(seg["startup"] for p in kills for seg in p["kills"]["segments"][1:]
                                     if seg["startup"] is not None) if any(
            len(p["kills"]["segments"]) > 1 for p in kills) else None
    return s


def search_version(opts) -> str:
    """Which search.py was measured: its path, SHA-256 prefix and the checkout's commit."""
    import hashlib

    source = (opts.runner_path or MAIN) / "search.py"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    commit = subprocess.run(["git", "-C", str(MAIN), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return f"{source} sha256:{digest} (checkout at {commit or '?'})"


def print_report(results: list[dict], opts) -> None:
    summaries = {r["workload"]: summarize(r, opts.max_other_load) for r in results}
    names = list(summaries)
    keys = list(dict.fromkeys(k for s in summaries.values() for k in s))
    entry = "python -m search" if opts.entry == "module" else "search (console script)"
    print(f"\nmedians over the repeats with at most {opts.max_other_load} cores of other load; --n-jobs "
          f"{opts.n_jobs}, {psutil.cpu_count()} cores, runner entry: {entry}"
          f"{f', niceness {opts.nice:+d}' if opts.nice else ''}\n{search_version(opts)}")
    print(f"{'figure':<34}" + "".join(f"{n:>16}" for n in names))
    for k in keys:
        cells = []
        for n in names:
            v = summaries[n].get(k)
            cells.append(f"{_fmt(v):>16}")
        print(f"{k:<34}" + "".join(cells))
    print("\ngoals (the issue's, for W1; shown for every workload):")
    for k, (op, limit) in GOALS.items():
        for n in names:
            v = summaries[n].get(k)
            if v is None:
                verdict = "not measured"
            else:
                ok = v <= limit if op == "<=" else v >= limit
                verdict = "PASS" if ok else "FAIL"
            print(f"  {n:<4} {k:<32} {_fmt(v):>10} {op} {limit:<5} {verdict}")
    (opts.out / "summary.json").write_text(json.dumps(summaries, indent=2, default=repr))


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=["w1", "big", "boosting", "table", "forests", "both"], default="w1",
                        help="both: w1 and big")
    parser.add_argument("--repeats", type=int, default=3, help="pairs of runs per workload (default 3)")
    parser.add_argument("--kills", type=int, default=4,
                        help="SIGKILLs per interrupted run, one such run per repeat; 0 skips it (default 4)")
    parser.add_argument("--n-jobs", type=int, default=2, help="runner --n-jobs; the loop always uses 2")
    parser.add_argument("--entry", choices=["module", "script"], default="module",
                        help="start the runner as `python -m search` (module) or as the `search` script does")
    parser.add_argument("--trace-loop", action="store_true", help="also trace the loop's tasks (timeline)")
    parser.add_argument("--bench-dir", type=Path, default=SHARED_BENCH, help="where w1.py and naive_loop.py are")
    parser.add_argument("--out", type=Path, help="keep logs and results here (default: a temporary directory)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--report", type=Path, metavar="RESULTS_JSON",
                        help="only print the table of an earlier run's results.json (with --runner-path, "
                        "--max-other-load as then)")
    parser.add_argument("--runner-path", type=Path,
                        help="a directory with a prototype search.py to run instead of this checkout's")
    parser.add_argument("--max-other-load", type=float, default=0.45,
                        help="redo a repeat during which other processes used more cores than this (default 0.45)")
    parser.add_argument("--retries", type=int, default=2, help="redo a noisy repeat at most this often (default 2)")
    parser.add_argument("--nice", type=int, default=0,
                        help="run the measured processes at this niceness increment (negative needs root): on a "
                        "machine shared with other jobs, -10 gives them the cores; other load is reported either way")
    parser.add_argument("--quiet-below", type=float, default=0.3,
                        help="before each run wait until other load is below this many cores (default 0.3)")
    parser.add_argument("--quiet-timeout", type=float, default=300.0,
                        help="wait at most this many seconds for that (default 300)")
    opts = parser.parse_args(argv)
    if not opts.report and not (opts.bench_dir / "naive_loop.py").is_file():
        parser.error(f"{opts.bench_dir} holds no naive_loop.py: the hand-written loop and W1 are in "
                     "shared/bench/ beside this checkout; give their directory with --bench-dir DIR")
    global NICE
    NICE = opts.nice
    if opts.report:
        results = json.loads(opts.report.read_text())
        opts.out = opts.report.parent
        print_report(results, opts)
        return
    keep = opts.out is not None
    opts.out = (opts.out or Path(tempfile.mkdtemp(prefix="search-bench-"))).resolve()
    opts.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(opts.seed)
    warm_up(opts)
    results = []
    for name in (["w1", "big"] if opts.workload == "both" else [opts.workload]):
        results.append(bench_workload(name, opts, rng))
        (opts.out / "results.json").write_text(json.dumps(results, indent=1, default=repr))
    print_report(results, opts)
    print(f"\nlogs and results.json in {opts.out}" if keep else "", file=sys.stderr)
    if not keep:
        shutil.rmtree(opts.out, ignore_errors=True)


if __name__ == "__main__":
    main()
