"""W1 on two local dask workers against the local process pool, on the same machine.

Usage::

    PYTHONPATH=. /work/venv/bin/python benchmarks/dask_vs_local.py --repeats 3

Starts a ``dask scheduler`` and two ``dask worker --nthreads 1`` processes on
127.0.0.1 (as tests/test_dask.py does), then runs
``python -m search -q run --grids W1 --cv 5`` alternately with ``--n-jobs 2``
(the local loky pool) and ``--scheduler tcp://...`` (the two workers), each on
a fresh state file, and prints the medians and their ratio.

wall
    Outside the process: from spawning it to its exit. The dask runs find the
    cluster up, as on a real cluster; the local runs start their pool, as they
    always do.
cpu
    CPU seconds of the runner and its children, plus, for dask, of the cluster's
    processes during the run (the scheduler's share shown apart: on a real
    cluster it has a machine of its own, here it competes with the workers).
other load
    CPU seconds the whole machine spent outside those processes, divided by the
    wall: other people's work competing for the cores. Runs with other load well
    above 0 are not comparable with quiet ones.

Then one more dask run, in this process, measures where the data went: its
pickled size, how often the workers received it (the scatter, and transfers
from worker to worker), and the bytes of every task's arguments.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cloudpickle
import psutil

ROOT = Path(__file__).resolve().parents[1]
W1 = ROOT.parent / "shared" / "bench" / "w1.py"


def dask_command(role: str) -> list[str]:
    script = Path(sys.executable).with_name("dask")
    return [str(script), role] if script.exists() else [sys.executable, "-m", f"distributed.cli.dask_{role}"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_cluster(workdir: Path, n_workers: int):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = open(workdir / "cluster.log", "w")  # noqa: SIM115 - open for the cluster's life
    procs = [subprocess.Popen([*dask_command("scheduler"), "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], stdout=log, stderr=subprocess.STDOUT, env=env,
                              start_new_session=True)]
    for i in range(n_workers):
        procs.append(subprocess.Popen(
            [*dask_command("worker"), address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
             "--name", f"w{i}", "--local-directory", str(workdir)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True))
    from distributed import Client

    client = Client(address, timeout=60, set_as_default=False)
    client.wait_for_workers(n_workers, timeout=120)
    return address, procs, client


def warm(client, grids: Path) -> None:
    """Workers that stay up import scikit-learn once, not per run: do it before timing."""
    sys.path.insert(0, str(ROOT))
    from grids import load_grids

    client.run(cloudpickle.loads, cloudpickle.dumps(load_grids(str(grids)).families))


def stop_cluster(procs, client) -> None:
    client.close()
    for proc in reversed(procs):
        os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def tree_cpu(procs) -> float:
    total = 0.0
    for proc in procs:
        try:
            p = psutil.Process(proc.pid)
            for q in [p, *p.children(recursive=True)]:
                t = q.cpu_times()
                total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def machine_busy() -> float:
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)


def wait_for_quiet(limit: float, patience: float = 180.0) -> None:
    """Wait (at most ``patience`` s) until the machine is less than ``limit`` busy over 2 s."""
    deadline = time.monotonic() + patience
    while psutil.cpu_percent(interval=2.0) / 100 > limit and time.monotonic() < deadline:
        pass


def timed_run(args: list[str], cwd: Path, cluster_procs=()) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cluster = tree_cpu(cluster_procs)
    scheduler = tree_cpu(cluster_procs[:1])
    busy = machine_busy()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "search", "-q", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"search {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    ours = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    ours += tree_cpu(cluster_procs) - cluster
    other = max(0.0, machine_busy() - busy - ours)
    return {"wall": wall, "cpu": ours, "scheduler": tree_cpu(cluster_procs[:1]) - scheduler,
            "other": other / wall}


def data_flow(address: str, client, grids: Path, cv: int, workdir: Path) -> str:
    """One dask run in this process, watched: what the data and the tasks cost in bytes."""
    sys.path.insert(0, str(ROOT))
    import search

    shared, payloads = {}, []
    real_share, real_submit = search.DaskPool.share, search.DaskPool.submit

    def share(pool, data):
        real_share(pool, data)
        shared.update(key=pool.data_ref.key, size=len(cloudpickle.dumps(data)))

    def submit(pool, fn, *args):
        payloads.append(len(cloudpickle.dumps((fn, *args))))
        return real_submit(pool, fn, *args)

    search.DaskPool.share, search.DaskPool.submit = share, submit
    try:
        search.run(search.RunConfig(str(workdir / "flow.pkl"), grids=str(grids), cv=cv,
                                    scheduler=address, progress=False))
    finally:
        search.DaskPool.share, search.DaskPool.submit = real_share, real_submit

    def arrivals(key, dask_worker):
        scattered = sum(1 for e in dask_worker.state.log if e[0] == key and e[1] == "receive-from-scatter")
        served = [e["total"] for e in dask_worker.transfer_outgoing_log if key in e["keys"]]
        return scattered, served

    seen = client.run(arrivals, shared["key"])
    scattered = sum(s for s, _ in seen.values())
    served = [b for _, bs in seen.values() for b in bs]
    n = len(payloads)
    return "\n".join([
        f"data: {shared['size']:,} bytes pickled (X, y and the CV test indices)",
        f"  scattered {scattered}x ({shared['size']:,} bytes) and sent worker to worker {len(served)}x "
        f"({sum(served):,} bytes): {scattered + len(served)} copies for {len(seen)} workers",
        f"tasks: {n}, arguments {statistics.median(payloads):,.0f} bytes median, {max(payloads):,} max, "
        f"{sum(payloads):,} in all (functions by reference, from `search` or `python -m search` alike)",
        f"the data with every task instead: {n * shared['size']:,} bytes",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--grids", type=Path, default=W1)
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quiet", type=float, default=0.25,
                        help="before each run, wait for the machine to be less busy than this (0-1)")
    args = parser.parse_args(argv)
    args.grids = args.grids.resolve()  # the runs start in a temporary directory
    if not args.grids.is_file():
        parser.error(f"{args.grids} does not exist: W1 is in shared/bench/ beside this checkout; "
                     "give its path (or another grids file) with --grids PATH")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the cluster on the way out
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} at start", flush=True)
    with tempfile.TemporaryDirectory(prefix="dask-vs-local-") as tmp:
        workdir = Path(tmp)
        address, procs, client = start_cluster(workdir, args.workers)
        try:
            warm(client, args.grids)
            results: dict[str, list[dict]] = {"local": [], "dask": []}
            for repeat in range(args.repeats):
                for variant in ("local", "dask") if repeat % 2 == 0 else ("dask", "local"):
                    path = workdir / f"{variant}-{repeat}.pkl"
                    wait_for_quiet(args.quiet)
                    common = ["run", "--grids", str(args.grids), "--cv", str(args.cv), "--state", str(path)]
                    if variant == "local":
                        r = timed_run([*common, "--n-jobs", str(args.workers)], workdir)
                    else:
                        r = timed_run([*common, "--scheduler", address], workdir, procs)
                    results[variant].append(r)
                    print(f"repeat {repeat} {variant:5}  wall {r['wall']:6.1f} s  cpu {r['cpu']:6.1f} s "
                          f"(scheduler {r['scheduler']:4.1f} s)  other load {r['other']:.2f}", flush=True)
            medians = {v: statistics.median(r["wall"] for r in rs) for v, rs in results.items()}
            ratios = [d["wall"] / lo["wall"] for d, lo in zip(results["dask"], results["local"])]
            print(f"\nmedian wall: local pool ({args.workers} processes) {medians['local']:.1f} s, "
                  f"dask ({args.workers} workers x 1 thread) {medians['dask']:.1f} s")
            print(f"dask / local: {medians['dask'] / medians['local']:.2f} (ratio of medians); "
                  f"per repeat {', '.join(f'{x:.2f}' for x in ratios)}")
            print()
            print(data_flow(address, client, args.grids, args.cv, workdir))
        finally:
            stop_cluster(procs, client)
    print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
