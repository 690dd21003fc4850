"""Real runner processes killed with real signals, then resumed with the same command."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path

import psutil
import pytest
from conftest import GRIDS, assert_same_as_gridsearch, reference, run_search, slow_fit_grids, start

import search
import state

SLOW = str(GRIDS / "slow.py")


def wait_for_progress(path, proc, timeout=60.0, candidates=1):
    """Wait until the state file holds at least ``candidates`` finished candidates."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = proc.poll() is None  # read before the file: a run may finish in between
        if path.exists():
            try:
                data = state.load(path, lazy=True)
            except state.StateError:
                data = None
            if data and sum(len(f["candidates"]) for f in data["families"].values()) >= candidates:
                return data
        assert running, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("no progress saved in time")


def workers_of(proc) -> list[psutil.Process]:
    try:
        return psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def fork_servers(proc) -> list[psutil.Process]:
    """The runner's live fork servers (one killed stays a zombie until the runner starts the next)."""
    servers = []
    with contextlib.suppress(psutil.NoSuchProcess):
        for p in psutil.Process(proc.pid).children():
            with contextlib.suppress(psutil.Error):
                if p.status() != psutil.STATUS_ZOMBIE and "forkserver" in " ".join(p.cmdline()):
                    servers.append(p)
    return servers


def has_workers(server: psutil.Process) -> bool:
    """Whether a fork server has forked workers (False once it is gone)."""
    try:
        return bool(server.children())
    except psutil.Error:
        return False


def assert_all_gone(processes, timeout=15.0):
    gone, alive = psutil.wait_procs(processes, timeout=timeout)
    assert not alive, f"processes left running: {[(p.pid, p.cmdline()) for p in alive]}"


def test_sigkill_at_random_moments_then_resume_equals_gridsearchcv(tmp_path):
    path = tmp_path / "s.pkl"
    args = ["-q", "run", "--grids", SLOW, "--state", str(path), "--n-jobs", "2"]
    rng = random.Random(1234)
    kills = 0
    for _ in range(3):
        proc = start(args, tmp_path)
        time.sleep(rng.uniform(1.0, 3.5))
        if proc.poll() is not None:
            break
        children = workers_of(proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        assert_all_gone(children)
        if path.exists():  # else the kill came before the first save (a loaded machine starts slowly)
            state.load(path)  # whatever moment the kill hit, the file loads
    assert kills >= 2
    done = run_search(args, tmp_path)
    assert done.returncode == 0, done.stderr
    data = state.load(path)
    for name, ref in reference(GRIDS / "slow.py").items():
        assert_same_as_gridsearch(data["families"][name], ref)


def test_a_kill_loses_at_most_the_candidates_in_flight(tmp_path):
    path = tmp_path / "s.pkl"
    args = ["-q", "run", "--grids", SLOW, "--state", str(path), "--n-jobs", "2"]
    proc = start(args, tmp_path)
    saved = wait_for_progress(path, proc, candidates=6)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)  # to the end: the workers and the resource tracker too
    # the tracker cleans up after the killed runner; its warning of "leaked semaphore objects"
    # would read as damage
    assert "leaked" not in err and "Warning" not in err, err
    after = state.load(path)
    keys = {n: set(f["candidates"]) for n, f in after["families"].items()}
    assert all(keys[n] >= set(f["candidates"]) for n, f in saved["families"].items())
    resumed = run_search(args, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    final = state.load(path)
    # finished candidates were not computed again: their records are the saved ones, unchanged
    for name, family in after["families"].items():
        for key, record in family["candidates"].items():
            assert final["families"][name]["candidates"][key]["fit_times"] == record["fit_times"]


def test_a_kill_keeps_the_finished_folds_of_an_unfinished_candidate(tmp_path):
    """Folds are progress too: a candidate whose folds take minutes must not start over."""
    path = tmp_path / "s.pkl"
    grids = str(GRIDS / "long_folds.py")
    args = ["-q", "run", "--grids", grids, "--state", str(path), "--n-jobs", "1"]
    proc = start(args, tmp_path)
    deadline = time.monotonic() + 120
    saved = None
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            data = state.load(path, lazy=True)
        except (FileNotFoundError, state.StateError):
            data = None
        if data and not data["families"]["rf"]["candidates"] and \
                sum(map(len, data["families"]["rf"]["folds"].values())) >= 2:
            saved = data
            break
        time.sleep(0.05)
    assert saved is not None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    after = state.load(path)["families"]["rf"]
    (key, folds), = after["folds"].items()
    assert len(folds) >= 2 and after["status"] == "partial"
    status = run_search(["status", "--state", str(path)], tmp_path)
    row = next(line.split() for line in status.stdout.splitlines() if line.startswith("rf "))
    n_splits = state.load(path)["run"]["cv"]["n_splits"]
    assert row[1:4] == ["partial", f"0/{after['n_candidates']}", f"{len(folds)}/{after['n_candidates'] * n_splits}"]
    resumed = run_search([*args[:-1], "2"], tmp_path)  # on both cores: the folds left need not run one by one
    assert resumed.returncode == 0, resumed.stderr
    final = state.load(path)
    record = final["families"]["rf"]["candidates"][key]
    for fold, result in folds.items():  # the saved folds were taken as they were, not fitted again
        assert record["fit_times"][fold] == result["fit_time"]
    assert final["families"]["rf"]["folds"] == {}
    assert_same_as_gridsearch(final["families"]["rf"], reference(GRIDS / "long_folds.py")["rf"])


def test_a_worker_killed_mid_search_is_replaced_and_results_equal_gridsearchcv(tmp_path):
    """The OOM killer takes a worker, not the runner: the fits it held run again on a new worker."""
    path = tmp_path / "s.pkl"
    args = ["run", "--grids", SLOW, "--state", str(path), "--n-jobs", "2"]
    proc = start(args, tmp_path)
    wait_for_progress(path, proc, candidates=2)
    runner = psutil.Process(proc.pid)
    workers = [w for child in runner.children() for w in child.children()]  # forked by the fork server
    assert workers, [c.cmdline() for c in runner.children()]
    workers[0].send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "lost work" in err and "running it again" in err
    data = state.load(path)
    for name, ref in reference(GRIDS / "slow.py").items():
        assert_same_as_gridsearch(data["families"][name], ref)


def test_a_stop_while_a_checkpoint_is_written_in_the_background_saves_all_once_it_is_in(tmp_path):
    """A checkpoint is written by a thread while the fits go on: a SIGTERM in the middle of it waits
    for it, then saves what finished since, and the process exits only then, with nothing left over."""
    marks = tmp_path / "saving"
    marks.mkdir()
    (tmp_path / "runner.py").write_text(
        "import os, sys, time\nimport search, state\nreal = state._fileops.fsync\n\n"
        "def slow(fd):  # the second save (the first after a fit) as one of hundreds of MB\n"
        f"    open(os.path.join({str(marks)!r}, str(time.time())), 'w').close()\n"
        f"    time.sleep(2.0 if len(os.listdir({str(marks)!r})) == 2 else 0.0)\n    return real(fd)\n\n"
        "state._fileops.fsync = slow\n"
        "if __name__ == '__main__':\n    sys.argv[0] = 'search'\n    search.main()\n")
    grids = slow_fit_grids(tmp_path, 0.1, 40)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(GRIDS.parent.parent), str(tmp_path)]))
    proc = subprocess.Popen([sys.executable, "runner.py", "-q", "run", "--grids", str(grids), "--state", "s.pkl",
                             "--n-jobs", "1", "--cv", "2"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(os.listdir(marks)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the first save comes before any fit; the second, in the background, during them
    assert len(os.listdir(marks)) == 2, proc.communicate(timeout=60)[1]
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert "stopped early (SIGTERM)" in err and "Traceback" not in err, err
    assert len(os.listdir(marks)) == 3  # the one being written, then the last
    family = state.load(tmp_path / "s.pkl")["families"]["slow"]
    # finished folds: of candidates with all their folds in, or of those still waiting for some
    assert family["status"] == "partial" and (family["candidates"] or family["folds"]), family
    assert not [name for name in os.listdir(tmp_path) if ".tmp-" in name]


@pytest.mark.parametrize("to", ["runner", "group"])
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT", "SIGUSR1", "SIGHUP"])
def test_stop_signal_saves_and_exits_3_quickly(tmp_path, signame, to):
    """A cluster's time limit or pre-emption: stop dispatching, save, exit 3, no worker left.

    Sent to the whole process group (Slurm's --signal without B:, a Ctrl-C, the hangup of a
    closed terminal), the workers and helper processes get it too: the same stop, and no noise.
    The state saved is the same whatever the signal: two of them resume it to the end."""
    path = tmp_path / "s.pkl"
    args = ["run", "--grids", SLOW, "--state", str(path), "--n-jobs", "2"]
    proc = start(args, tmp_path)
    wait_for_progress(path, proc, candidates=2)
    children = workers_of(proc)
    assert children, "the runner has worker processes"
    sent = time.monotonic()
    if to == "group":
        os.killpg(proc.pid, getattr(signal, signame))  # start() made the runner a session leader
    else:
        proc.send_signal(getattr(signal, signame))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    assert time.monotonic() - sent < 30
    assert f"{signame} received: stopping, saving what finished" in err
    assert "stopped early" in err and "run the same command to resume" in err
    assert "Traceback" not in err and "resource_tracker" not in err, err
    assert_all_gone(children)
    data = state.load(path)
    assert sum(len(f["candidates"]) for f in data["families"].values()) >= 2
    if (signame, to) in {("SIGTERM", "runner"), ("SIGINT", "group")}:  # Slurm's scancel, a Ctrl-C
        resumed = run_search(["-q", *args], tmp_path)
        assert resumed.returncode == 0, resumed.stderr


def test_a_reader_that_stops_reading_does_not_stop_the_search(tmp_path):
    """`search run 2>&1 | head -2`, or a terminal gone: the progress and log lines are dropped,
    the search goes on to the end (exit 0); before, the first write after it raised BrokenPipeError."""
    path = tmp_path / "s.pkl"
    args = ["run", "--grids", str(GRIDS / "quick.py"), "--state", str(path), "--n-jobs", "2"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent.parent))
    read, write = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "search", *args], cwd=tmp_path, env=env,
                            stdout=write, stderr=write, start_new_session=True)
    os.close(write)
    with os.fdopen(read, "rb") as reader:
        assert reader.read(1)  # it has started writing; the reader goes away
    assert proc.wait(timeout=300) == 0
    data = state.load(path)
    assert all(f["status"] == "done" for f in data["families"].values()) and len(data["families"]) == 4
    for name in ("status", "best"):  # read by a `head` that has what it wanted: exit 0, no noise
        read, write = os.pipe()
        os.close(read)
        done = subprocess.run([sys.executable, "-m", "search", name, "--state", str(path)], cwd=tmp_path,
                              env=env, stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
        os.close(write)
        assert done.returncode == 0 and "Error" not in done.stderr, (name, done.stderr)


def test_second_runner_on_the_same_state_exits_4(tmp_path):
    path = tmp_path / "s.pkl"
    args = ["-q", "run", "--grids", SLOW, "--state", str(path)]
    first = start(args, tmp_path)
    try:
        wait_for_progress(path, first, candidates=1)
        second = run_search(["-vv", *args[1:]], tmp_path, timeout=60)
        assert second.returncode == 4, second.stderr
        assert f"pid {first.pid}" in second.stderr
        assert os.uname().nodename in second.stderr
        assert "fork server started" not in second.stderr  # refused before its start-up work
        status = run_search(["status", "--state", str(path)], tmp_path, timeout=60)
        assert status.returncode == 0, status.stderr  # readers take no lock
        assert "partial" in status.stdout or "done" in status.stdout
        assert f"a runner is at work on it: pid {first.pid} on host {os.uname().nodename}" in status.stdout
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    status = run_search(["status", "--state", str(path)], tmp_path, timeout=60)
    assert "no runner is at work on it" in status.stdout  # the killed one is not taken for one
    again = run_search(args, tmp_path)  # a SIGKILLed holder leaves no stale lock
    assert again.returncode == 0, again.stderr


def test_sigterm_while_starting_up_exits_3(tmp_path):
    """A stop signal before the first fit (say, while a big CSV loads) is a clean stop too."""
    path = tmp_path / "s.pkl"
    proc = start(["-q", "run", "--grids", SLOW, "--state", str(path)], tmp_path)
    deadline = time.monotonic() + 60
    while not (tmp_path / "s.pkl.lock").exists():  # the runner has parsed its options and holds the file
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    assert "SIGTERM received" in err


def test_data_folder_of_a_killed_runner_is_removed_by_its_workers(tmp_path):
    path = tmp_path / "s.pkl"
    proc = start(["-q", "run", "--grids", SLOW, "--state", str(path)], tmp_path)
    wait_for_progress(path, proc, candidates=1)
    folders = set(Path(tempfile.gettempdir()).glob(f"search-data-{proc.pid}-*"))
    assert len(folders) == 2  # the data, and multiprocessing's folder (the fork server's socket)
    children = workers_of(proc)
    proc.send_signal(signal.SIGKILL)  # the runner alone: its workers see it go
    proc.wait()
    assert_all_gone(children)
    assert not any(f.exists() for f in folders)


def test_workers_of_a_killed_runner_stop_in_a_fit_that_holds_the_gil(tmp_path):
    """Their own watcher, a thread, cannot run until such a fit returns (minutes here): the fork server,
    which sees the runner go, kills them, and removes the data."""
    proc = start(["-q", "run", "--grids", str(GRIDS / "gil_holding.py"), "--state", str(tmp_path / "s.pkl"),
                  "--n-jobs", "2"], tmp_path)
    deadline = time.monotonic() + 60
    while len(fitting := list(tmp_path.glob("fitting-*"))) < 2:
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    workers = [psutil.Process(int(f.name.split("-")[1])) for f in fitting]
    folders = set(Path(tempfile.gettempdir()).glob(f"search-data-{proc.pid}-*"))
    time.sleep(0.5)  # well inside the C call
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    try:
        assert_all_gone(workers, timeout=10)
    finally:
        for worker in workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()
    assert not any(f.exists() for f in folders)


def test_a_fork_server_killed_mid_run_is_started_again_with_its_safeguards(tmp_path):
    """multiprocessing starts a killed fork server again for the next worker: with this tool's
    settings, so the new one does not import the working directory's numbers.py either, and still
    ends the workers of a runner killed after it. Before, it started with multiprocessing's own."""
    marker = tmp_path / "imported"
    (tmp_path / "numbers.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise ImportError\n")
    path = tmp_path / "s.pkl"
    env = dict(os.environ, PYTHONPATH=str(Path(state.__file__).parents[1]))
    proc = subprocess.Popen([sys.executable, "-P", "-m", "search", "-q", "run", "--grids", SLOW, "--state",
                             str(path), "--n-jobs", "2"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # -P: as the console script
    wait_for_progress(path, proc, candidates=1)
    [server] = fork_servers(proc)
    server.kill()
    deadline = time.monotonic() + 60
    while not (new := [p for p in fork_servers(proc) if p.pid != server.pid]):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    assert new[0].environ().get("PYTHONSAFEPATH") == "1"
    while len(new[0].children()) < 2:  # its workers
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    workers = new[0].children()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert_all_gone(workers, timeout=10)
    assert not marker.exists()


def test_a_killed_fork_server_is_named_and_its_tasks_are_not_blamed(tmp_path):
    """A fork server killed (by hand, or by the OOM killer) takes its workers with it, and the warning
    was loky's "... could be caused by a segmentation fault"; a task alone in flight was blamed for
    it (three times: marked failed). Now the warning names the fork server, and the tasks run again,
    however often it is killed."""
    grids = sleepy_grids(tmp_path, '{"sleepy": (SlowDummy(), {"strategy": ["prior"]})}', seconds=1.2)
    path = tmp_path / "s.pkl"
    proc = start(["-q", "run", "--grids", str(grids), "--state", str(path), "--cv", "2", "--n-jobs", "1"],
                 tmp_path)
    killed = set()
    deadline = time.monotonic() + 120
    while len(killed) < 2:
        for server in fork_servers(proc):
            if server.pid not in killed and has_workers(server):  # its worker, with the first fold's 1.2 s fit
                time.sleep(0.5)
                server.kill()
                killed.add(server.pid)
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "the fork server that starts the workers was killed by SIGKILL, and its workers went with it" in err
    assert "segmentation fault" not in err
    entry = state.load(path)["families"]["sleepy"]
    assert entry["status"] == "done"
    assert not [e for c in entry["candidates"].values() for e in c["errors"] if e]


def test_under_nohup_a_hangup_does_not_stop_the_search(tmp_path):
    """nohup keeps a process through a closed terminal by leaving SIGHUP ignored; the runner used to
    handle it all the same, and stopped (exit 3)."""
    path = tmp_path / "s.pkl"
    proc = start(["-q", "run", "--grids", SLOW, "--state", str(path), "--n-jobs", "2"], tmp_path,
                 preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    wait_for_progress(path, proc, candidates=1)
    os.killpg(proc.pid, signal.SIGHUP)  # the terminal's hangup, to its whole session
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert all(f["status"] == "done" for f in state.load(path)["families"].values())


@pytest.mark.parametrize("pool", [[], ["--scheduler", "local"]], ids=["local", "dask"])
def test_data_folder_left_by_a_runner_and_its_workers_is_removed_by_the_next_runner(tmp_path, pool):
    """When the workers died with their runner (a power cut, a whole job killed): the next run cleans,
    on a dask cluster too (it was the local pool's start that swept)."""
    if pool:
        pytest.importorskip("distributed")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = Path(tempfile.mkdtemp(prefix=f"search-data-{int(dead.stdout)}-"))
    (left / "data.joblib").write_bytes(bytes(1000))
    path = tmp_path / "s.pkl"
    done = run_search(["-q", "run", "--grids", str(GRIDS / "quick.py"), "--families", "nb", "--state", str(path),
                       "--n-jobs", "2", *pool], tmp_path)
    assert done.returncode == 0, done.stderr
    assert not left.exists()


def _read_until(proc, text: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        assert line, f"the runner exited before logging {text!r}"
        if text in line:
            return
    raise AssertionError(f"no {text!r} in time")


@pytest.mark.parametrize("how", ["SIGTERM to the runner", "Ctrl-C to the group"])
def test_a_stop_signal_before_the_first_fit_is_a_graceful_stop(tmp_path, how):
    """While the runner and its fork server import scikit-learn, before it has read a file: exit 3,
    nothing written (the loading is cut short), and the fork server, interrupted too, prints nothing."""
    path = tmp_path / "s.pkl"
    proc = start(["-v", "run", "--grids", SLOW, "--state", str(path), "--n-jobs", "2"], tmp_path)
    _read_until(proc, "fork server started")
    if how == "Ctrl-C to the group":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err[-2000:]
    assert f"stopped early ({how.split()[0].replace('Ctrl-C', 'SIGINT')})" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "stopped while loading, before any work" in err
    assert not path.exists()  # nothing to save yet; the same command starts it


SLOW_IMPORT = GRIDS / "slow_set_name.py"


def stopped_while_importing(monkeypatch, tmp_path, launch, signum=signal.SIGTERM):
    """Launch a process on the grids file SLOW_IMPORT, signal it while it imports that file, and
    return its output and the process once it has ended."""
    marker = tmp_path / "importing"
    monkeypatch.setenv("SEARCH_TEST_IMPORTING", str(marker))
    proc = launch()
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    return out, err, proc


def test_a_stop_inside_an_import_that_wraps_errors_is_still_a_graceful_stop(tmp_path, monkeypatch):
    """A stop raised in a ``__set_name__`` reaches the runner as a RuntimeError (and the grids
    file's loading wraps that): still exit 3, no traceback, nothing written."""
    path = tmp_path / "s.pkl"
    out, err, proc = stopped_while_importing(
        monkeypatch, tmp_path, lambda: start(["run", "--grids", str(SLOW_IMPORT), "--state", str(path)], tmp_path))
    assert proc.returncode == 3, err[-2000:]
    assert "Traceback" not in err and "RuntimeError" not in err, err
    assert "stopped while loading, before any work" in err
    assert not path.exists()


def test_a_stop_inside_a_weakref_callback_while_importing_is_still_a_graceful_stop(tmp_path, monkeypatch):
    """Python drops an exception raised in a weakref callback (importlib's module locks have them) with
    "Exception ignored" and a traceback: the stop must still end the loading, quietly and at once."""
    path = tmp_path / "s.pkl"
    started = time.monotonic()
    out, err, proc = stopped_while_importing(monkeypatch, tmp_path, lambda: start(
        ["run", "--grids", str(GRIDS / "slow_weakref_callback.py"), "--state", str(path)], tmp_path))
    assert proc.returncode == 3, err[-2000:]
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert "stopped while loading, before any work" in err
    assert time.monotonic() - started < 45  # not after the import's 60 s
    assert not path.exists()


def test_a_stop_while_python_reports_a_dropped_exception_is_given_after_the_report(monkeypatch):
    """A stop signal while the loading's hook for dropped exceptions runs (the report of another
    exception, say) is not raised in the hook, where Python would drop it too: it comes right after."""
    reported = []

    def slow_report(failure):  # the hook before the run's: it reports another dropped exception
        threading.Timer(0.2, signal.pthread_kill, (threading.main_thread().ident, signal.SIGTERM)).start()
        time.sleep(1.0)
        reported.append(failure.exc_type)

    class Dropped:
        pass

    def callback(_ref):
        raise ValueError("dropped")

    monkeypatch.setattr(sys, "unraisablehook", slow_report)
    handler = signal.getsignal(signal.SIGTERM)
    stop = search._Stop()
    started = time.monotonic()
    with pytest.raises(search._Stopped), stop.on_signals(), stop.raising():
        dropped = Dropped()
        ref = weakref.ref(dropped, callback)  # noqa: F841 - its callback runs at the del
        del dropped
        time.sleep(30)  # the loading goes on: a stop ends it
    assert reported == [ValueError]  # the report was not cut short
    assert stop.reason == "SIGTERM" and time.monotonic() - started < 10
    assert sys.unraisablehook is slow_report and signal.getsignal(signal.SIGTERM) == handler


def test_a_restart_stopped_while_loading_says_it_has_not_happened(tmp_path, monkeypatch):
    """"Run without --restart to resume" would send a user round in circles: nothing was moved."""
    path = tmp_path / "s.pkl"
    assert run_search(["-q", "run", "--grids", str(GRIDS / "quick.py"), "--families", "nb", "--state", str(path)],
                      tmp_path).returncode == 0
    before = path.read_bytes()
    out, err, proc = stopped_while_importing(monkeypatch, tmp_path, lambda: start(
        ["run", "--grids", str(SLOW_IMPORT), "--state", str(path), "--restart"], tmp_path))
    assert proc.returncode == 3, err[-2000:]
    assert "nothing was moved, so --restart has not happened yet: run the same command again" in err
    assert "without --restart" not in err
    assert path.read_bytes() == before and not list(tmp_path.glob("s.pkl.*.bak"))


LIBRARY_CALL = """
import sys
import search
try:
    search.run(search.RunConfig(sys.argv[1], grids=sys.argv[2], n_jobs=2, progress=False))
except KeyboardInterrupt as exc:
    import numpy, sklearn.linear_model  # the session is still whole
    print("interrupted:", exc, numpy.dtypes.Float64DType.__name__)
    sys.exit(0)
print("returned")
"""


def start_library_call(tmp_path, grids, **kwargs) -> subprocess.Popen:
    script = tmp_path / "calling_search.py"
    script.write_text(LIBRARY_CALL)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.Popen([sys.executable, str(script), str(tmp_path / "s.pkl"), str(grids)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_ctrl_c_in_a_library_call_saves_then_raises_keyboard_interrupt(tmp_path):
    """As a notebook's "interrupt kernel": what finished is saved, and the caller stops too."""
    proc = start_library_call(tmp_path, SLOW)
    wait_for_progress(tmp_path / "s.pkl", proc, candidates=1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.startswith(f"interrupted: search.run stopped by SIGINT; what finished is saved in {tmp_path / 's.pkl'}")
    assert sum(len(f["candidates"]) for f in state.load(tmp_path / "s.pkl")["families"].values()) >= 1


def test_ctrl_c_while_a_library_calls_workers_start_prints_no_tracebacks(tmp_path):
    """A notebook's "interrupt kernel" reaches the kernel's whole process group: workers that loky had
    just started, still importing scikit-learn, died of it with tracebacks (KeyboardInterrupt, "Fatal
    Python error: init_import_site") in the notebook's output. The caller stops them itself."""
    proc = start_library_call(tmp_path, SLOW, start_new_session=True)
    deadline = time.monotonic() + 60
    while len(workers_of(proc)) < 4:  # two resource trackers, two workers
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)  # while the workers import scikit-learn
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.startswith("interrupted: search.run stopped by SIGINT"), out
    assert "Traceback" not in err and "Error" not in err, err


def test_ctrl_c_while_a_library_call_imports_leaves_the_session_whole(tmp_path, monkeypatch):
    """The loading is not cut short in the caller's process: an import interrupted half-way would
    break numpy for the rest of the session."""
    monkeypatch.setenv("SEARCH_TEST_IMPORT_SECONDS", "1")
    out, err, proc = stopped_while_importing(monkeypatch, tmp_path, lambda: start_library_call(tmp_path, SLOW_IMPORT),
                                             signal.SIGINT)
    assert proc.returncode == 0, err
    assert out.startswith("interrupted: search.run stopped by SIGINT") and "Float64DType" in out, out
    assert "Traceback" not in err, err


def test_a_signal_as_the_runner_exits_changes_nothing(tmp_path):
    """Between the results on stdout and the process's end, the exit code is decided."""
    path = tmp_path / "s.pkl"
    args = ["-q", "run", "--grids", str(GRIDS / "quick.py"), "--families", "nb", "--state", str(path)]
    assert run_search(args, tmp_path).returncode == 0
    for _ in range(3):  # nothing to do: straight to the table, then the exit
        proc = start(args, tmp_path)
        assert proc.stdout.readline().startswith("family")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err


def test_a_stop_signal_after_the_last_family_is_done_changes_nothing(tmp_path):
    """The search is complete: exit 0 with the table, not death by the signal, nor 'stopped early'."""
    path = tmp_path / "s.pkl"
    proc = start(["-v", "run", "--grids", str(GRIDS / "quick.py"), "--families", "nb", "--state", str(path),
                  "--n-jobs", "2"], tmp_path)
    _read_until(proc, "nb done")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert out.splitlines()[1].startswith("nb ") and "stopped early" not in err


def test_fits_longer_than_max_time_end_the_requeue_loop_with_a_message(tmp_path):
    """A job requeued on exit 3 must not start and abandon the same fits for ever."""
    path = tmp_path / "s.pkl"
    args = ["run", "--grids", str(GRIDS / "sleepy.py"), "--state", str(path), "--cv", "2",
            "--max-time", "2s"]
    codes = []
    while len(codes) < 5 and (not codes or codes[-1] == 3):
        done = run_search(args, tmp_path)
        codes.append(done.returncode)
    # two runs cut its fits short (a run with nb's refit to do may leave them out: no time left for them)
    assert codes[-1] == 1 and set(codes[:-1]) == {3} and len(codes) in (3, 4), (codes, done.stderr)
    assert state.load(path)["families"]["nb"]["status"] == "done"
    assert "sleepy: the last 2 runs stopped before any of its fits finished" in done.stderr
    assert ("family 'sleepy': every fit left needs more than --max-time 2s gives (the last runs ran "
            "them for up to") in done.stderr
    assert "raise --max-time, or leave them out with --families" in done.stderr
    assert "Traceback" not in done.stderr
    longer = run_search([*args[:-1], "3s"], tmp_path)  # following the advice: tried again
    assert longer.returncode == 3, longer.stderr
    assert "needs longer runs" not in longer.stderr  # the advice was taken: no need to repeat it


def sleepy_grids(tmp_path, families: str, seconds: float = 60) -> Path:
    """tests/grids/sleepy.py with other FAMILIES (in another order), its slow fits of ``seconds``."""
    text = (GRIDS / "sleepy.py").read_text()
    path = tmp_path / "sleepy_variant.py"
    path.write_text(text[:text.index("FAMILIES = {")].replace("time.sleep(60)", f"time.sleep({seconds})")
                    + f"FAMILIES = {families}\n")
    return path


def test_runs_interrupted_by_hand_do_not_count_as_too_short_for_a_family(tmp_path):
    """Two Ctrl-Cs (a notebook's interrupts) while a family's first fit ran: the next run warned that
    the family "needs longer runs (--max-time, the job's time limit)", and put it after the others."""
    grids = sleepy_grids(tmp_path, '{"sleepy": (SlowDummy(), {"strategy": ["prior"]}), '
                                   '"nb": (GaussianNB(), {"var_smoothing": [1e-9]})}')
    path = tmp_path / "s.pkl"
    args = ["-v", "run", "--grids", str(grids), "--state", str(path), "--cv", "2", "--n-jobs", "1"]
    for _ in range(2):
        proc = start(args, tmp_path)
        deadline = time.monotonic() + 60
        while not any(has_workers(server) for server in fork_servers(proc)):  # the worker, with the sleepy fit
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 3, err
    assert "cut_short" not in state.load(path)["families"]["sleepy"]


def test_a_family_whose_fits_outlast_the_runs_does_not_hold_the_others_back(tmp_path):
    """The first family's fits are longer than a run: every requeued run started them first and lost
    them at its stop, and the families after it never ran. Now they go first, and --max-time starts
    a shorter fit of another family rather than none."""
    grids = sleepy_grids(tmp_path, '{"sleepy": (SlowDummy(), {"strategy": ["prior"]}), '
                                   '"nb": (GaussianNB(), {"var_smoothing": [1e-9]}), '
                                   '"nb2": (GaussianNB(), {"var_smoothing": [1e-8]})}')
    path = tmp_path / "s.pkl"
    args = ["-v", "run", "--grids", str(grids), "--state", str(path), "--cv", "2", "--n-jobs", "1",
            "--max-time", "2s"]
    first = run_search(args, tmp_path)  # one worker: the first sleepy fit holds it to the end
    assert first.returncode == 3, first.stderr
    data = state.load(path)
    assert data["families"]["sleepy"]["cut_short"]["runs"] == 1
    assert data["families"]["nb"]["status"] == "pending"
    second = run_search(args, tmp_path)
    assert second.returncode == 3, second.stderr
    assert "sleepy last: the last run stopped while its fits ran, before any finished" in second.stderr
    data = state.load(path)
    # all their fits and refits
    assert all(data["families"][f]["status"] == "done" for f in ("nb", "nb2"))
    # not started again: a fit of it ran the whole last run unfinished, and this one had less time left
    assert data["families"]["sleepy"]["cut_short"]["runs"] == 1


def test_a_fit_that_ran_a_whole_run_unfinished_is_not_started_again_where_it_cannot_end(tmp_path):
    """Both families cut short before (nb's record stale, from a run that stopped its fits too): the
    sleepy fits, with no time measured, counted as taking none, took the worker in every requeued run,
    nb never ran and the exit-1 check, waiting for nb's second cut, never came: exit 3 for ever. The
    longest a fit ran unfinished is what it takes at least."""
    grids = sleepy_grids(tmp_path, '{"sleepy": (SlowDummy(), {"strategy": ["prior"]}), '
                                   '"nb": (GaussianNB(), {"var_smoothing": [1e-9]})}')
    path = tmp_path / "s.pkl"
    args = ["run", "--grids", str(grids), "--state", str(path), "--cv", "2", "--n-jobs", "1", "--max-time", "2s"]
    assert run_search(args, tmp_path).returncode == 3
    data = state.load(path)
    assert data["families"]["nb"]["status"] == "pending" and data["families"]["sleepy"]["cut_short"]["runs"] == 1
    data["families"]["nb"]["cut_short"] = {"runs": 1, "longest": 0.5, "max_time_runs": 0, "max_time": 2.0}
    state.save(path, data)
    second = run_search(args, tmp_path)
    assert second.returncode == 3, second.stderr
    data = state.load(path)
    assert data["families"]["nb"]["status"] == "done" and data["families"]["sleepy"]["cut_short"]["runs"] == 1
    third = run_search(args, tmp_path)  # nothing else left: tried again, as it may end this time
    assert third.returncode == 3, third.stderr
    assert state.load(path)["families"]["sleepy"]["cut_short"]["runs"] == 2
    fourth = run_search(args, tmp_path)
    assert fourth.returncode == 1, fourth.stderr
    assert "family 'sleepy': every fit left needs more than --max-time 2s gives" in fourth.stderr


def test_max_time_starts_another_familys_shorter_fit_when_the_next_one_would_not_end_in_time(tmp_path):
    """Two workers, sleepy's folds take 2.5 s: its first two end at 2.5 s, when its next one (2.5 s
    more) would not end within --max-time; nb's fits would, and run instead of nothing."""
    grids = sleepy_grids(tmp_path, '{"sleepy": (SlowDummy(), {"strategy": ["prior", "most_frequent"]}), '
                                   '"nb": (GaussianNB(), {"var_smoothing": [1e-9]})}', seconds=2.5)
    path = tmp_path / "s.pkl"
    done = run_search(["-q", "run", "--grids", str(grids), "--state", str(path), "--cv", "2", "--n-jobs", "2",
                       "--max-time", "4.5s"], tmp_path)
    assert done.returncode == 3, done.stderr
    families = state.load(path)["families"]
    assert len(families["sleepy"]["candidates"]) == 1 and families["nb"]["status"] == "done"


def test_ctrl_c_while_the_fork_server_imports_is_quiet(tmp_path):
    """Ctrl-C goes to the whole process group: the fork server, importing scikit-learn, must not print."""
    path = tmp_path / "s.pkl"
    proc = start(["-q", "run", "--grids", SLOW, "--state", str(path)], tmp_path)
    deadline = time.monotonic() + 60
    while not (tmp_path / "s.pkl.lock").exists():  # the fork server starts just after the lock
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert "Traceback" not in err, err


def test_a_stop_while_the_data_loads_does_not_wait_for_it(tmp_path):
    """Loading writes nothing: a stop cuts a slow load_data() (or imports stalled on a shared
    filesystem) short, within a scheduler's grace time, instead of waiting for it to end."""
    grids = tmp_path / "slow_load.py"
    grids.write_text((GRIDS / "quick.py").read_text().replace(
        "def load_data():", "def load_data():\n    import time\n    time.sleep(120)\n", 1))
    proc = start(["-q", "run", "--grids", str(grids), "--state", str(tmp_path / "s.pkl")], tmp_path)
    deadline = time.monotonic() + 60
    while not (tmp_path / "s.pkl.lock").exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
    time.sleep(3)  # the imports are done by now, or under way: either is cut short
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert time.monotonic() - sent < 10
    assert "Traceback" not in err and "run the same command to resume" in err
    assert not (tmp_path / "s.pkl").exists()
