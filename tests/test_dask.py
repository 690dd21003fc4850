"""`search run --scheduler`: a real dask scheduler and two workers on 127.0.0.1, killed in every way.

The module's cluster is a `dask scheduler` and two `dask worker` processes (one
thread each), as a user starts them; tests that kill a worker leave the cluster
whole again (the worker's nanny restarts it).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import psutil
import pytest
from click.testing import CliRunner
from conftest import GRIDS, HERE, assert_same_as_gridsearch, import_file, reference, run_search, start
from sklearn.model_selection import GridSearchCV

import search
import state

distributed = pytest.importorskip("distributed")

# the helpers below run on the workers and the scheduler, which cannot import this file
cloudpickle.register_pickle_by_value(sys.modules[__name__])

QUICK = str(GRIDS / "quick.py")
SLOW = str(GRIDS / "dask_slow.py")
WIDE = str(GRIDS / "dask_wide.py")
SHARED = str(GRIDS / "shared_prep.py")


# ------------------------------------------------------------------ the cluster


def dask_command(role: str) -> list[str]:
    """`dask scheduler` / `dask worker` of the interpreter running the tests."""
    script = Path(sys.executable).with_name("dask")
    if script.exists():
        return [str(script), role]
    return [sys.executable, "-m", f"distributed.cli.dask_{role}"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """A scheduler and two single-threaded workers, each in its own process group."""

    def __init__(self, logs: Path, worker_paths=(None, None)):
        """``worker_paths``: a folder to add to each worker's PYTHONPATH (None: none)."""
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")])))  # workers import search
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.processes, self.logs = [], []

        def launch(name, *args, path=None):
            self.logs.append(open(logs / f"{name}.log", "w"))
            own = dict(env, PYTHONPATH=os.pathsep.join([str(path), env["PYTHONPATH"]])) if path else env
            self.processes.append(subprocess.Popen(
                [*args], stdout=self.logs[-1], stderr=subprocess.STDOUT, env=own, start_new_session=True))

        port = self.address.rsplit(":", 1)[1]
        self.scheduler_file = logs / "scheduler.json"
        launch("scheduler", *dask_command("scheduler"), "--host", "127.0.0.1", "--port", port,
               "--no-dashboard", "--scheduler-file", str(self.scheduler_file))

        def add_worker(name: str, path=None) -> None:
            launch(f"worker-{name}", *dask_command("worker"), self.address, "--nthreads", "1",
                   "--nworkers", "1", "--no-dashboard", "--name", name,
                   "--local-directory", str(logs), "--death-timeout", "60", path=path)

        self.add_worker = add_worker  # a worker joining late, with its own PYTHONPATH folder
        for i, path in enumerate(worker_paths):
            add_worker(f"w{i}", path)
        try:
            self.client = distributed.Client(self.address, timeout=60, set_as_default=False)
            self.client.wait_for_workers(2, timeout=60)
        except BaseException:
            self.stop()
            raise

    def executed(self) -> dict:
        """Tasks each worker has run so far."""
        return self.client.run(_executed)

    def close(self) -> None:
        self.client.close()
        self.stop()

    def stop(self) -> None:
        for proc in reversed(self.processes):  # workers first, then the scheduler
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in self.logs:
            log.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    started = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        yield started
    finally:
        started.close()


def _executed(dask_worker):
    return dask_worker.state.executed_count


def _data_arrivals(key, dask_worker):
    """How ``key`` reached and left this worker: scatters received, transfers served (bytes)."""
    scattered = sum(1 for entry in dask_worker.state.log
                    if entry[0] == key and entry[1] == "receive-from-scatter")
    served = [entry["total"] for entry in dask_worker.transfer_outgoing_log if key in entry["keys"]]
    return scattered, served


def _copies(dask_worker):
    return list(dask_worker.__dict__.get(search.DaskPool._Ref.slot, {}))


def _n_tasks(dask_scheduler):
    return len(dask_scheduler.tasks)


# ------------------------------------------------------------------ helpers


def invoke(*args):
    return CliRunner().invoke(search.cli, ["-q", *args], catch_exceptions=False)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def progress(path: Path) -> int:
    try:
        data = state.load(path, lazy=True)
    except (FileNotFoundError, state.StateError):
        return 0
    return sum(len(f["candidates"]) for f in data["families"].values())


def wait_for_progress(path: Path, proc, candidates: int) -> None:
    def saved():
        assert proc.poll() is None, proc.communicate()
        return progress(path) >= candidates

    wait_for(saved, 90, f"{candidates} candidates saved")


def assert_equals_gridsearch(path: Path, grids: str) -> None:
    data = state.load(path)
    for name, ref in reference(Path(grids)).items():
        assert_same_as_gridsearch(data["families"][name], ref)


def run_args(path: Path, grids: str, scheduler: str, *extra: str) -> list[str]:
    return ["run", "--grids", grids, "--state", str(path), "--scheduler", scheduler, *extra]


# ------------------------------------------------------------------ results


def test_cluster_run_equals_gridsearchcv(tmp_path, cluster):
    path = tmp_path / "s.pkl"
    before = cluster.executed()
    done = run_search(run_args(path, QUICK, cluster.address), tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"dask scheduler {cluster.address}: 2 worker threads" in done.stderr
    after = cluster.executed()
    n_fits = sum(len(f["candidates"]) * 5 for f in state.load(path)["families"].values())
    assert sum(after[w] - before[w] for w in after) >= n_fits  # the cluster did the fits
    assert_equals_gridsearch(path, QUICK)
    X, _ = import_file(Path(QUICK)).load_data()
    for name, ref in reference(Path(QUICK)).items():
        best = search.load_best(str(path), name)
        assert (best.predict(X) == ref.best_estimator_.predict(X)).all()
    status = invoke("status", "--state", str(path), "--json")
    assert status.exit_code == 0
    assert {f["status"] for f in json.loads(status.output)["families"]} == {"done"}


def test_shared_preprocessing_on_the_cluster_equals_gridsearchcv(tmp_path, cluster):
    """On a cluster each worker keeps transformed folds in its memory (no shared folder)."""
    path = tmp_path / "s.pkl"
    done = run_search(run_args(path, SHARED, cluster.address), tmp_path)
    assert done.returncode == 0, done.stderr
    assert_equals_gridsearch(path, SHARED)


def _preprocessed_entries(dask_worker=None):
    return len(search._WORKER_PREPROCESSED)


def test_transformed_folds_of_another_run_are_never_reused(tmp_path, cluster):
    """Workers outlive runs: a fold with the same family and number of another run's splits is
    another fold. Each worker's transformed folds go when their family is done."""
    for cv in ("5", "3"):
        path = tmp_path / f"cv{cv}.pkl"
        done = run_search(run_args(path, SHARED, cluster.address, "--families", "shared", "--cv", cv), tmp_path)
        assert done.returncode == 0, done.stderr
        assert set(cluster.client.run(_preprocessed_entries).values()) == {0}
    module = import_file(Path(SHARED))
    estimator, grid = module.FAMILIES["shared"]
    assert_same_as_gridsearch(state.load(path)["families"]["shared"],
                              GridSearchCV(estimator, grid, cv=3).fit(*module.load_data()))


def test_a_module_the_workers_lack_is_named_before_the_search(tmp_path, cluster, monkeypatch):
    """The runner finds the grids' helper module; the workers, started elsewhere, do not."""
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    (helpers / "scaling_helpers.py").write_text("def halve(X):\n    return X / 2\n")
    grids = tmp_path / "helped.py"
    grids.write_text(
        "from sklearn.datasets import make_classification\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.pipeline import make_pipeline\n"
        "from sklearn.preprocessing import FunctionTransformer\n"
        "from scaling_helpers import halve\n"
        "def load_data():\n    return make_classification(n_samples=60, random_state=0)\n"
        "FAMILIES = {'lr': (make_pipeline(FunctionTransformer(halve), LogisticRegression()),\n"
        "                   {'logisticregression__C': [0.1, 1.0]})}\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(helpers))
    path = tmp_path / "s.pkl"
    done = run_search(run_args(path, str(grids), cluster.address), tmp_path)
    assert done.returncode == 1, done.stderr
    assert (f"the dask workers at {cluster.address} cannot import 'scaling_helpers', which this search's "
            "families or data need") in done.stderr
    assert f"PYTHONPATH={helpers} dask worker {cluster.address}" in done.stderr
    assert "Traceback" not in done.stderr
    assert state.load(path)["families"]["lr"]["candidates"] == {}  # no fit was tried


HELPED_GRIDS = (
    "from sklearn.datasets import make_classification\n"
    "from sklearn.linear_model import LogisticRegression\n"
    "from sklearn.pipeline import make_pipeline\n"
    "from sklearn.preprocessing import FunctionTransformer\n"
    "from {module} import scale\n"
    "def load_data():\n    return make_classification(n_samples=80, random_state=0)\n"
    "FAMILIES = {{'lr': (make_pipeline(FunctionTransformer(scale), LogisticRegression()),\n"
    "                   {{'logisticregression__C': [0.1, 1.0]}})}}\n"
)


def helped_search(tmp_path, module: str, factor: str) -> tuple[Path, Path]:
    """A grids file whose pipeline uses ``scale`` of the module ``module`` beside it."""
    helpers = tmp_path / "helpers"
    helpers.mkdir(exist_ok=True)
    (helpers / f"{module}.py").write_text(f"def scale(X):\n    return X * {factor}\n")
    grids = tmp_path / "helped.py"
    grids.write_text(HELPED_GRIDS.format(module=module))
    return helpers, grids


def test_a_module_one_worker_lacks_is_named_with_that_worker(tmp_path, monkeypatch):
    """Every worker is checked, not only the one that runs the first task."""
    helpers, grids = helped_search(tmp_path, "half_helpers", "0.5")
    cluster = Cluster(tmp_path, worker_paths=(helpers, None))
    monkeypatch.setenv("PYTHONPATH", str(helpers))  # the runner's, once the workers have theirs
    try:
        lacking = next(address for address, info in cluster.client.scheduler_info()["workers"].items()
                       if info["name"] == "w1")
        for attempt in range(3):  # whichever worker the first task lands on
            path = tmp_path / f"s{attempt}.pkl"
            done = run_search(run_args(path, str(grids), cluster.address), tmp_path)
            assert done.returncode == 1, done.stderr
            assert (f"the dask worker at {lacking} (scheduler {cluster.address}) cannot import "
                    "'half_helpers'") in done.stderr
            assert "Traceback" not in done.stderr
            assert state.load(path)["families"]["lr"]["candidates"] == {}  # no fit was tried
    finally:
        cluster.close()


def test_a_worker_joining_late_without_a_module_stops_the_run_and_records_no_fit_failure(tmp_path, monkeypatch):
    """Workers that join after the start's checks are not checked: one without the grids' helper module
    had its failures to load the estimator recorded as the candidates' failed fits (NaN, kept for good,
    the run exiting 0). Now the run stops (exit 1) naming the worker and the fix, and records nothing
    of it; the same command resumes once the worker is fixed or gone."""
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    (helpers / "late_helpers.py").write_text("import time\n\ndef scale(X):\n    time.sleep(0.2)\n"
                                             "    return X * 0.5\n")
    grids = tmp_path / "helped.py"
    grids.write_text(HELPED_GRIDS.format(module="late_helpers").replace("[0.1, 1.0]", "list(range(1, 13))"))
    cluster = Cluster(tmp_path, worker_paths=(helpers, helpers))
    monkeypatch.setenv("PYTHONPATH", str(helpers))
    path = tmp_path / "s.pkl"
    try:
        proc = start(run_args(path, str(grids), cluster.address), tmp_path)
        deadline = time.monotonic() + 60
        while not path.exists() or not state.load(path, lazy=True)["families"]["lr"]["candidates"]:
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        cluster.add_worker("late")  # without the helpers on its path
        _, err = proc.communicate(timeout=120)
        late = [a for a, info in cluster.client.scheduler_info()["workers"].items() if info["name"] == "late"]
        if proc.returncode == 0:  # the late worker joined after the last task, or took none
            assert not late or cluster.client.run(_executed, workers=late)[late[0]] == 0, err
        else:
            assert proc.returncode == 1, err
            assert (f"the dask worker at {late[0]} (scheduler {cluster.address}) cannot import 'late_helpers'"
                    in err), err
            assert "Traceback" not in err
        entry = state.load(path, lazy=True)["families"]["lr"]  # its estimator needs late_helpers
        assert not [e for c in entry["candidates"].values() for e in c["errors"] if e]
        assert not [f for c in entry.get("folds", {}).values() for f in c.values() if f.get("error")]
    finally:
        cluster.close()


def test_the_worker_command_suggested_for_a_scheduler_file_names_it_as_one(tmp_path, cluster, monkeypatch):
    """`dask worker scheduler.json` takes the file for an address ("missing port number")."""
    helpers, grids = helped_search(tmp_path, "file_helpers", "0.5")
    monkeypatch.setenv("PYTHONPATH", str(helpers))
    done = run_search(run_args(tmp_path / "s.pkl", str(grids), str(cluster.scheduler_file)), tmp_path)
    assert done.returncode == 1, done.stderr
    assert f"PYTHONPATH={helpers} dask worker --scheduler-file {cluster.scheduler_file})" in done.stderr


def test_a_best_estimator_fitted_by_workers_of_another_scikit_learn_is_recorded_so(tmp_path):
    """Its state said the runner's version, so `search export` stamped a model of the workers'
    scikit-learn with the runner's, without the refusal the README promises. Here the workers' package
    metadata says 1.8.0 (a distribution record first on their path), as another install's would."""
    fake = tmp_path / "fake"
    (fake / "scikit_learn-1.8.0.dist-info").mkdir(parents=True)
    (fake / "scikit_learn-1.8.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: scikit-learn\nVersion: 1.8.0\n")
    cluster = Cluster(tmp_path, worker_paths=(fake, fake))
    path = tmp_path / "s.pkl"
    try:
        done = run_search(run_args(path, QUICK, cluster.address, "--families", "nb"), tmp_path)
    finally:
        cluster.close()
    assert done.returncode == 0, done.stderr
    assert "nb: its best estimator was fitted by a worker with scikit-learn 1.8.0 (this is " in done.stderr
    assert state.load(path)["families"]["nb"]["estimator_environment"]["scikit-learn"] == "1.8.0"
    export = run_search(["export", "--state", str(path), "-o", "m.joblib"], tmp_path)
    assert export.returncode == 1, export.stderr
    assert "the best estimator of family 'nb' was fitted with scikit-learn 1.8.0" in export.stderr
    assert not (tmp_path / "m.joblib").exists()


def test_workers_that_kept_an_old_version_of_a_module_are_refused(tmp_path, monkeypatch):
    """A worker keeps the module it imported: after the file changes it would fit the old code
    while the state records the new code's fingerprint."""
    helpers, grids = helped_search(tmp_path, "stale_helpers", "2")
    monkeypatch.setenv("PYTHONPATH", str(helpers))
    cluster = Cluster(tmp_path, worker_paths=(helpers, helpers))
    try:
        first = tmp_path / "first.pkl"
        done = run_search(run_args(first, str(grids), cluster.address), tmp_path)
        assert done.returncode == 0, done.stderr  # both workers have imported stale_helpers now
        (helpers / "stale_helpers.py").write_text("def scale(X):\n    return X * 3.0  # changed\n")
        second = tmp_path / "second.pkl"
        done = run_search(run_args(second, str(grids), cluster.address), tmp_path)
        assert done.returncode == 1, done.stderr
        assert "would fit with other code than this runner's" in done.stderr
        assert "Restart the workers" in done.stderr and "Traceback" not in done.stderr
        assert state.load(second)["families"]["lr"]["candidates"] == {}
        cluster.client.restart()
        done = run_search(run_args(second, str(grids), cluster.address), tmp_path)
        assert done.returncode == 0, done.stderr
        local = tmp_path / "local.pkl"
        assert run_search(["run", "--grids", str(grids), "--state", str(local)], tmp_path).returncode == 0
        monkeypatch.syspath_prepend(str(helpers))  # to load the best estimators here
        on_cluster, here = state.load(second)["families"]["lr"], state.load(local)["families"]["lr"]
        assert on_cluster["cv_results"]["mean_test_score"].tolist() == \
            here["cv_results"]["mean_test_score"].tolist()
    finally:
        cluster.close()


@pytest.mark.parametrize("scheduler_too", [False, True])
def test_a_stop_while_waiting_for_a_first_worker_is_exit_3(tmp_path, scheduler_too):
    """As with worker jobs still queued on a cluster: SIGTERM then is a stop, not a crash. A job
    that runs the scheduler too stops it with the runner: no wait for it to come back, no error."""
    port = free_port()
    scheduler = subprocess.Popen([*dask_command("scheduler"), "--host", "127.0.0.1", "--port", str(port),
                                  "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
    try:
        address = f"tcp://127.0.0.1:{port}"
        wait_for(lambda: _listening(port), 60, "the scheduler")
        proc = start(run_args(tmp_path / "s.pkl", QUICK, address), tmp_path)
        line = ""
        while "has no workers yet" not in line:
            line = proc.stderr.readline()
            assert line, proc.communicate()
        if scheduler_too:
            scheduler.terminate()
            scheduler.wait()
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 3, err
        assert "stopped early (SIGTERM)" in err and "Traceback" not in err
        assert "worker threads" not in err and "ERROR" not in err, err
        assert time.monotonic() - sent < 5  # not the client's 10 s wait for a scheduler to reconnect
    finally:
        with contextlib.suppress(ProcessLookupError):  # stopped already
            os.killpg(scheduler.pid, signal.SIGKILL)
        scheduler.wait()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_a_wrong_early_refit_on_the_cluster_is_dropped_for_the_best(tmp_path, cluster):
    """The likely best ("b", see the grids file) is refitted early, but "a" is the best: "a" is stored."""
    grids = str(GRIDS / "early_refit.py")
    path = tmp_path / "s.pkl"
    done = run_search(run_args(path, grids, cluster.address, "--cv", "2", "--families", "wrong", "-vv"), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "wrong: refitting the likely best {'which': 'b'} while its last folds run" in done.stderr
    module = import_file(Path(grids))
    estimator, grid = module.FAMILIES["wrong"]
    assert_same_as_gridsearch(state.load(path)["families"]["wrong"],
                              GridSearchCV(estimator, grid, cv=2).fit(*module.load_data()))
    assert search.load_best(str(path), "wrong").which == "a"


def test_data_goes_to_each_worker_once_not_with_every_task(tmp_path, cluster, monkeypatch):
    shared, payloads = {}, []
    real_share, real_submit = search.DaskPool.share, search.DaskPool.submit

    def share(pool, data, blobs=()):
        real_share(pool, data, blobs)
        shared.update(key=pool.data_ref.key, size=len(cloudpickle.dumps(data)))

    def submit(pool, fn, *args):
        payloads.append(len(cloudpickle.dumps(args)))
        return real_submit(pool, fn, *args)

    monkeypatch.setattr(search.DaskPool, "share", share)
    monkeypatch.setattr(search.DaskPool, "submit", submit)
    path = tmp_path / "s.pkl"
    before = cluster.executed()
    report = search.run(search.RunConfig(str(path), grids=WIDE, scheduler=cluster.address,
                                         progress=False))
    assert report.done == ["nb"]
    after = cluster.executed()
    ran = sum(after[w] > before[w] for w in after)
    arrivals = cluster.client.run(_data_arrivals, shared["key"])
    scattered = sum(s for s, _ in arrivals.values())
    served = [b for _, bytes_ in arrivals.values() for b in bytes_]
    print(f"\ndata {shared['size']} bytes pickled; scattered {scattered}x, then sent worker to worker "
          f"{len(served)}x ({sum(served)} bytes); {len(payloads)} tasks of at most {max(payloads)} "
          f"bytes ({sum(payloads)} in all); {ran} workers ran tasks")
    assert scattered == 1
    assert scattered + len(served) == ran  # one copy per worker that ran tasks, however many tasks
    assert len(payloads) >= report.tasks_run >= 50  # an early refit dropped for the best is not counted run
    assert max(payloads) < shared["size"] / 100  # a task carries a reference, not the data
    assert cluster.client.run(_copies) == {w: [] for w in after}  # closing dropped the copies
    assert_equals_gridsearch(path, WIDE)


def test_a_scheduler_file_stands_for_its_address_and_n_jobs_caps_the_fits(cluster):
    pool = search.DaskPool(str(cluster.scheduler_file), n_jobs=-1)  # dask scheduler --scheduler-file
    try:
        assert pool.n_workers == 2
    finally:
        pool.close()
    pool = search.DaskPool(cluster.address, n_jobs=1)
    try:
        assert pool.n_workers == 1
    finally:
        pool.close()
    assert len(cluster.client.scheduler_info()["workers"]) == 2  # closing left the cluster up


def test_data_lost_again_as_it_is_sent_is_sent_again(cluster, caplog):
    """Two Client.restart() in a row: the data sent again after the first went with the second before
    the first task read it, and the run stopped (exit 1) blaming the workers' environment."""
    import numpy as np

    pool = search.DaskPool(cluster.address, n_jobs=-1)
    real_submit, probes = pool._client.submit, []

    def submit(fn, *args, **kwargs):
        if fn is search.DaskPool._Ref.probe and not probes:  # the first probe finds the data gone
            probes.append(fn)
            gone = concurrent.futures.CancelledError("the search's data is gone: the workers that held it died")
            return real_submit(lambda error: (_ for _ in ()).throw(error), gone, pure=False)
        return real_submit(fn, *args, **kwargs)

    pool._client.submit = submit
    try:
        pool.share((np.zeros((4, 2)), np.array([0, 1, 0, 1]), [[0, 1], [2, 3]]))
        assert probes and pool.data_ref is not None
        assert "the search's data was lost on the dask cluster as it was sent" in caplog.text
    finally:
        pool.close()


def test_n_jobs_caps_the_fits_in_flight_below_the_clusters_threads(tmp_path, cluster):
    """--n-jobs 1 on two workers: one fit at a time; no task queued ahead, which an idle worker would run."""
    log = tmp_path / "fits.log"
    grids = tmp_path / "timed.py"
    grids.write_text(
        "import time\nfrom sklearn.datasets import make_classification\nfrom sklearn.dummy import DummyClassifier\n"
        f"LOG = {str(log)!r}\n"
        "class Timed(DummyClassifier):\n"
        "    def fit(self, X, y, sample_weight=None):\n"
        "        start = time.time()\n        time.sleep(0.3)\n"
        "        with open(LOG, 'a') as out:\n            out.write(f'{start} {time.time()}\\n')\n"
        "        return super().fit(X, y, sample_weight)\n"
        "def load_data():\n    return make_classification(n_samples=60, random_state=0)\n"
        "FAMILIES = {'timed': (Timed(), {'strategy': ['prior', 'uniform', 'most_frequent', 'stratified']})}\n")
    report = search.run(search.RunConfig(str(tmp_path / "s.pkl"), grids=str(grids), scheduler=cluster.address,
                                         n_jobs=1, cv=2, progress=False))
    assert report.done == ["timed"]
    spans = sorted(tuple(map(float, line.split())) for line in log.read_text().splitlines())
    assert len(spans) == 4 * 2 + 1  # the folds and the refit
    overlaps = [(a, b) for a, b in zip(spans, spans[1:]) if b[0] < a[1] - 0.01]
    assert not overlaps, overlaps


def _results_held(dask_scheduler) -> int:
    """Results of fits and refits the cluster keeps in memory."""
    return sum(1 for key, task in dask_scheduler.tasks.items()
               if str(key).startswith(("fit_fold-", "refit-")) and task.state == "memory")


def test_results_read_are_released_on_the_cluster(tmp_path, cluster):
    """A result the runner has read is released at once: not kept in a worker's memory for the run,
    nor computed again elsewhere when that worker dies."""
    proc = start(["-q", *run_args(tmp_path / "s.pkl", str(GRIDS / "w1_copy.py"), cluster.address),
                  "--families", "lr,knn,nb"], tmp_path)  # 120 quick fits
    held = []
    while proc.poll() is None:
        held.append(cluster.client.run_on_scheduler(_results_held))
        time.sleep(0.05)
    assert proc.wait() == 0, proc.stderr.read()
    assert len(held) > 10 and max(held) <= 3, held  # finished, not read yet: at most one per task in flight


# ------------------------------------------------------------------ faults


def test_worker_killed_mid_search_still_equals_gridsearchcv(tmp_path, cluster):
    path = tmp_path / "s.pkl"
    proc = start(["-q", *run_args(path, SLOW, cluster.address)], tmp_path)
    wait_for_progress(path, proc, candidates=1)
    victim = None

    def fitting():
        nonlocal victim
        for worker, keys in cluster.client.processing().items():
            if any(str(k).startswith("fit_fold") for k in keys):
                victim = worker
                return True
        return False

    wait_for(fitting, 30, "a worker running a fit")
    pid = cluster.client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    removed = [msg for _, msg in cluster.client.get_events("all")
               if msg.get("action") == "remove-worker" and msg.get("worker") == victim]
    assert removed and removed[-1]["processing-tasks"], "the kill landed while the worker was busy"
    assert_equals_gridsearch(path, SLOW)
    cluster.client.wait_for_workers(2, timeout=60)  # its nanny started a new one


def test_runner_sigkilled_then_resumed_against_the_same_cluster(tmp_path, cluster):
    path = tmp_path / "s.pkl"
    args = ["-q", *run_args(path, SLOW, cluster.address)]
    proc = start(args, tmp_path)
    wait_for_progress(path, proc, candidates=3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = state.load(path)
    # the scheduler notices the closed connection and drops the dead runner's tasks and data
    wait_for(lambda: cluster.client.run_on_scheduler(_n_tasks) == 0, 30, "the runner's tasks dropped")
    assert len(cluster.client.scheduler_info()["workers"]) == 2
    resumed = run_search(args, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    final = state.load(path)
    for name, family in saved["families"].items():  # finished candidates were not run again
        for key, record in family["candidates"].items():
            assert final["families"][name]["candidates"][key]["fit_times"] == record["fit_times"]
    assert_equals_gridsearch(path, SLOW)
    # the killed runner's copies of the data went when the next runner started, its own at its end
    assert cluster.client.run(_copies) == {w: [] for w in cluster.client.scheduler_info()["workers"]}


def test_sigterm_and_max_time_stop_with_exit_3_and_resume(tmp_path, cluster):
    path = tmp_path / "s.pkl"
    args = run_args(path, SLOW, cluster.address)
    proc = start(args, tmp_path)
    wait_for_progress(path, proc, candidates=1)
    status = invoke("status", "--state", str(path), "--json")  # readers need no lock, as locally
    assert status.exit_code == 0
    assert {f["status"] for f in json.loads(status.output)["families"]} - {"done"}  # mid-search
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    assert time.monotonic() - sent < 30
    assert "SIGTERM received: stopping, saving what finished" in err
    assert "stopped early (SIGTERM)" in err and "run the same command to resume" in err
    stopped = run_search(["-q", *args, "--max-time", "0s"], tmp_path)  # no time: nothing starts
    assert stopped.returncode == 3, stopped.stderr
    assert "stopped early (max-time)" in stopped.stderr
    done = run_search(["-q", *args], tmp_path)
    assert done.returncode == 0, done.stderr
    assert_equals_gridsearch(path, SLOW)


def test_a_stop_while_the_runner_waits_for_a_lost_scheduler_is_exit_3(tmp_path):
    """A job's end stops the scheduler a moment before the runner: the runner, waiting for the
    scheduler to come back to run the lost work again, printed a traceback (_Stopped) and exited 1."""
    cluster = Cluster(tmp_path)
    path = tmp_path / "s.pkl"
    try:
        proc = start(run_args(path, SLOW, cluster.address), tmp_path)
        wait_for_progress(path, proc, candidates=1)
        cluster.processes[0].send_signal(signal.SIGKILL)  # the scheduler
        time.sleep(2)
        assert proc.poll() is None  # waiting for it
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 3, err
        assert "Traceback" not in err and "stopped early (SIGTERM)" in err
        assert state.load(path)["families"]  # what finished is saved
    finally:
        cluster.close()


def test_a_worker_that_hangs_does_not_hold_a_stopping_runner(tmp_path):
    """A worker stopped (SIGSTOP; swapping, a frozen VM) never answers a Client.run, which has no
    timeout: a SIGTERM'd runner waited in its closing for the scheduler to drop that worker, minutes
    later. Calls that no result depends on now give up after a few seconds."""
    cluster = Cluster(tmp_path)
    path = tmp_path / "s.pkl"
    stopped = cluster.processes[2]  # the second worker's process group
    try:
        proc = start(run_args(path, SLOW, cluster.address), tmp_path)
        wait_for_progress(path, proc, candidates=1)
        os.killpg(stopped.pid, signal.SIGSTOP)
        time.sleep(1)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=90)
        assert proc.returncode == 3, err
        assert time.monotonic() - sent < 30, err
    finally:
        os.killpg(stopped.pid, signal.SIGCONT)
        cluster.close()


def test_unreachable_scheduler_exits_1_at_once_naming_it(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    result = invoke(*run_args(tmp_path / "s.pkl", QUICK, address))
    assert result.exit_code == 1
    assert time.monotonic() - started < 5
    assert f"--scheduler {address}: cannot reach a dask scheduler there (ConnectionRefusedError" \
        in result.output
    assert "check that `dask scheduler` runs there" in result.output


@pytest.mark.parametrize("given, content, message", [
    ("tcp//127.0.0.1:8786", None, "a scheme is followed by '://'; did you mean tcp://127.0.0.1:8786?"),
    ("tcp:127.0.0.1:8786", None, "a scheme is followed by '://'; did you mean tcp://127.0.0.1:8786?"),
    ("sched.json", "", "the scheduler file is empty (the scheduler may not have written it yet); wait until"),
    ("sched.json", '{"id": 1}', 'is not a scheduler file (the JSON that `dask scheduler --scheduler-file PATH` '
                                'writes, with an "address"), nor a file holding an address'),
    ("nope.txt", None, "no such scheduler file; give the path that `dask scheduler --scheduler-file PATH`"),
    (".", None, "is a directory; give the scheduler file in it"),
    ("address.txt", "tcp://127.0.0.1:{port}\n", "cannot reach a dask scheduler at tcp://127.0.0.1:{port}, the "
                                                 "address it holds (ConnectionRefusedError"),
])
def test_a_mistyped_address_or_a_bad_scheduler_file_is_named(tmp_path, monkeypatch, given, content, message):
    """A plain address in a file (dask-jobqueue's scripts write one) is read as the address."""
    monkeypatch.chdir(tmp_path)
    port = free_port()  # nothing listens there
    if content is not None:
        (tmp_path / given).write_text(content.replace("{port}", str(port)))
    result = invoke(*run_args(tmp_path / "s.pkl", QUICK, given))
    assert result.exit_code == 1
    assert f"--scheduler {given}" in result.output and message.replace("{port}", str(port)) in result.output, \
        result.output
    assert "Traceback" not in result.output and not (tmp_path / "s.pkl").exists()


@pytest.mark.parametrize("address", ["", "  "])
def test_an_empty_scheduler_address_is_bad_usage_not_a_local_run(tmp_path, address):
    """`--scheduler "$(cat scheduler.txt)"` of an empty file must not run every fit on the login node."""
    result = invoke(*run_args(tmp_path / "s.pkl", QUICK, address))
    assert result.exit_code == 2
    assert "Invalid value for --scheduler: the address is empty" in result.output
    assert not (tmp_path / "s.pkl").exists()


def test_a_port_that_is_no_scheduler_fails_within_the_connect_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(search.DaskPool, "connect_timeout", 1.0)
    with socket.socket() as server:  # accepts connections (the kernel does), never answers
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        started = time.monotonic()
        result = invoke(*run_args(tmp_path / "s.pkl", QUICK, address))
    assert result.exit_code == 1
    assert time.monotonic() - started < 5
    assert f"--scheduler {address}: no dask scheduler answers there" in result.output


def test_without_distributed_the_message_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    result = invoke(*run_args(tmp_path / "s.pkl", QUICK, "tcp://127.0.0.1:8786"))
    assert result.exit_code == 1
    assert "--scheduler needs dask's distributed scheduler, which is not installed; " \
        "install it with: pip install 'dask[distributed]>=2024.1' (what this tool's dask extra holds)" \
        in result.output


def test_local_cluster_equals_gridsearchcv_and_leaves_no_process(tmp_path):
    path = tmp_path / "s.pkl"
    proc = start(["-q", *run_args(path, QUICK, "local", "--n-jobs", "2")], tmp_path)
    runner, workers = psutil.Process(proc.pid), []
    while proc.poll() is None and len(workers) < 2:
        try:
            workers = runner.children(recursive=True)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert len(workers) >= 2, "the LocalCluster's worker processes were seen"
    gone, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, [p.cmdline() for p in alive]
    assert_equals_gridsearch(path, QUICK)
