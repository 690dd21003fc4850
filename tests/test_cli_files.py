"""The command line's files and output: a full disk under stdout or stderr, a removed working
directory, a `~` the shell left as it was, a path ending in `/`, a state file lost beside its
previous generation."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import GRIDS, run_search, search_cmd
from sklearn.datasets import make_classification

import search
import state

QUICK = str(GRIDS / "quick.py")
ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
FULL = "/dev/full"  # every write to it fails with ENOSPC: a full disk without root
needs_dev_full = pytest.mark.skipif(not os.path.exists(FULL), reason="no /dev/full on this system")


def invoke(*args):
    return CliRunner().invoke(search.cli, ["-q", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A finished search of a CSV (nb only), and rows to predict for: (directory, state path, rows CSV)."""
    where = tmp_path_factory.mktemp("searched")
    X, y = make_classification(n_samples=120, n_features=4, random_state=0)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"]).assign(label=y)
    frame.to_csv(where / "train.csv", index=False)
    frame.drop(columns="label").to_csv(where / "rows.csv", index=False)
    path = where / "s.pkl"
    done = run_search(["-q", "run", "--data", "train.csv", "--target", "label", "--families", "nb", "--cv", "3",
                       "--n-jobs", "1", "--state", str(path)], where)
    assert done.returncode == 0, done.stderr
    return where, path, where / "rows.csv"


def run_with(args, cwd, **streams) -> subprocess.CompletedProcess:
    return subprocess.run(search_cmd(*args), cwd=cwd, env=ENV, text=True, timeout=300,
                          **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **streams})


@needs_dev_full
@pytest.mark.parametrize("args, fix", [
    (["status"], "by redirecting it to a file on another file system"),
    (["status", "--json"], "by redirecting it to a file on another file system"),
    (["best", "--json"], "by redirecting it to a file on another file system"),
    (["predict", "--data", "rows.csv"], "with -o/--output PATH"),
    (["export", "-o", "-"], "with -o/--output PATH"),
])
def test_results_that_cannot_be_written_are_an_error_not_a_cut_off_file(searched, args, fix):
    """`search predict ... > pred.csv` on a full disk: before, a cut-off CSV, exit 0 and nothing said."""
    where, path, _ = searched
    with open(FULL, "w") as full:
        done = run_with([*args, "--state", str(path)], where, stdout=full)
    assert done.returncode == 1, done.stderr
    expected = (f"Error: could not write the output of `search {args[0]}` to {FULL} (standard output): No space "
                f"left on device; what was written there is cut short: free space there, or write it elsewhere {fix}")
    assert expected in done.stderr.splitlines(), done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr


@needs_dev_full
def test_a_full_disk_under_stderr_does_not_end_the_search_and_a_closed_pipe_ends_quietly(searched, tmp_path):
    """Progress and log lines that cannot be written are dropped (README); the results are not."""
    with open(FULL, "w") as full:
        done = run_with(["run", "--grids", QUICK, "--families", "nb,lr", "--state", str(tmp_path / "s.pkl")],
                        tmp_path, stderr=full)
    assert done.returncode == 0
    assert "nb" in done.stdout and "lr" in done.stdout  # the results table
    assert {f["status"] for f in state.load(tmp_path / "s.pkl")["families"].values()} == {"done"}
    with open(FULL, "w") as full:  # the table of a run cannot be written: the search is saved all the same
        again = run_with(["run", "--grids", QUICK, "--families", "nb,lr", "--state", str(tmp_path / "s.pkl")],
                         tmp_path, stdout=full)
    assert again.returncode == 0, again.stderr
    assert (f"WARNING: could not write the output of `search run` to {FULL} (standard output): No space left on "
            f"device") in again.stderr
    assert f"(the search is saved in {tmp_path / 's.pkl'}: `search status` shows it)" in again.stderr
    where, path, rows = searched
    read, write = os.pipe()
    os.close(read)  # a `| head` that has what it wanted
    try:
        closed = run_with(["predict", "--state", str(path), "--data", str(rows)], where, stdout=write)
    finally:
        os.close(write)
    assert closed.returncode == 0 and closed.stderr == "", closed.stderr


def test_output_through_a_link_or_to_a_pipe_goes_where_a_shell_would_put_it(searched, tmp_path):
    """Before, -o replaced what it named with a file: a link (to /dev/stdout, to a file elsewhere), a
    device (as root, /dev/null itself), or hung on a named pipe, which it opened to read; all exit 0."""
    import stat
    import threading

    where, path, rows = searched
    for command, name in ((["predict", "--data", str(rows)], "pred.csv"), (["export"], "m.pkl")):
        def write(output, command=command):
            result = invoke(*command, "-o", str(output), "--state", str(path))
            assert result.exit_code == 0, result.output

        write(tmp_path / name)
        expected = (tmp_path / name).read_bytes()
        real = tmp_path / f"real-{name}"
        real.mkdir()
        for target in (real / name, real / f"new-{name}"):  # there, and not yet there
            if target.name == name:
                target.write_text("old")
            link = tmp_path / f"link-{target.name}"
            link.symlink_to(target)
            write(link)
            assert link.is_symlink() and target.read_bytes() == expected
        to_null = tmp_path / f"null-{name}"
        to_null.symlink_to(os.devnull)
        write(to_null)
        assert to_null.is_symlink() and not Path(os.devnull).is_file()
    # a named pipe, in a process of its own: the command hung on it
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    done = subprocess.run(search_cmd("predict", "--data", str(rows), "-o", str(fifo), "--state", str(path)),
                          cwd=where, env=ENV, text=True, capture_output=True, timeout=60)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    reader.join(10)
    assert received == [(tmp_path / "pred.csv").read_bytes()] and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_removed_working_directory_is_named_not_a_traceback(tmp_path, monkeypatch):
    gone = tmp_path / "gone"
    gone.mkdir()
    args = ["run", "-q", "--grids", QUICK, "--families", "nb", "--n-jobs", "1", "--state", str(tmp_path / "s.pkl")]
    shell = f"cd {gone} && rmdir {gone} && exec {' '.join(search_cmd(*args))}"
    done = subprocess.run(["sh", "-c", shell], env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr == (f"Error: the working directory {gone} no longer exists (it was removed while this shell "
                           "was in it); cd to a directory that exists and run the command again\n")
    assert not (tmp_path / "s.pkl").exists() and not (tmp_path / "s.pkl.lock").exists()
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    monkeypatch.delenv("PWD", raising=False)
    with pytest.raises(search.SearchError, match=re.escape("the working directory no longer exists")):
        search.run(search.RunConfig(str(tmp_path / "s.pkl"), grids=QUICK, families=["nb"], progress=False))


def test_a_tilde_the_shell_left_as_it_was_is_the_home_directory(searched, tmp_path, monkeypatch):
    """`--state '~/s.pkl'` or `--state=~/s.pkl`: before, the advice was `mkdir -p '~'`."""
    _, path, _ = searched
    home = tmp_path / "home"
    home.mkdir()
    (home / "s.pkl").write_bytes(path.read_bytes())
    (home / "s.pkl").chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    for option in (["--state", "~/s.pkl"], ["--state=~/s.pkl"]):
        result = invoke("best", *option)
        assert result.exit_code == 0, result.output
        assert result.output.startswith("nb\t")
    result = invoke("run", "--state", "~/new.pkl", "--grids", "~/grids.py")
    assert result.exit_code == 1
    assert f"grids file '{home / 'grids.py'}' does not exist" in result.output
    result = invoke("status", "--state", "~no-such-user-here/s.pkl")
    assert result.exit_code == 2
    assert ("~no-such-user-here/s.pkl starts with ~no-such-user-here, which names no home directory here (no such "
            "user); write the path out") in result.output
    assert not (tmp_path / "~").exists() and not (tmp_path / "~no-such-user-here").exists()


def test_a_path_ending_in_a_slash_is_refused_not_made_a_file(tmp_path, monkeypatch):
    """`--state results/` made a plain file named results (and results.lock, results.prev)."""
    monkeypatch.chdir(tmp_path)
    result = invoke("run", "--state", "results/", "--grids", QUICK, "--families", "nb")
    assert result.exit_code == 2
    assert ("a state file's path cannot end with /: results/ names a directory; give a file's path, like "
            "results/search-state.pkl (and mkdir -p results/)") in result.output
    (tmp_path / "out").mkdir()
    result = invoke("predict", "--data", "rows.csv", "-o", "out/")
    assert result.exit_code == 2
    assert "the output's path cannot end with /: out/ names a directory; give a file's path, like " \
           "out/predictions.csv\n" in result.output  # the directory exists: no mkdir
    assert sorted(os.listdir(tmp_path)) == ["out"]
    with pytest.raises(search.SearchError, match=re.escape(
            "RunConfig.state_path is 'results/'; it takes the path of a file, not of a directory (like "
            "'results/search-state.pkl')")):
        search.RunConfig("results/")


def test_a_lost_state_file_is_not_started_over_while_its_previous_generation_is_there(searched, tmp_path):
    """The state file removed, PATH.prev is the only copy of the saved work: a new search would
    overwrite it at its second save."""
    _, searched_path, _ = searched
    path, previous = tmp_path / "s.pkl", tmp_path / "s.pkl.prev"
    previous.write_bytes(searched_path.read_bytes())
    previous.chmod(0o600)
    saved = state.load(previous)["updated"]
    kept = previous.read_bytes()
    for command in ("status", "best"):
        result = invoke(command, "--state", str(path))
        assert result.exit_code == 1
        assert re.search(rf"there is no state file at {re.escape(str(path))} \(removed or moved\?\)\. The previous "
                         rf"generation {re.escape(str(previous))} is intact \(saved [-0-9: +]+\); to go back to "
                         rf"it: cp {re.escape(str(previous))} {re.escape(str(path))}\n", result.output), result.output
    args = ["run", "--state", str(path), "--grids", QUICK, "--families", "nb"]
    result = invoke(*args)
    assert result.exit_code == 1
    assert (f"to go back to it: cp {previous} {path}; a new search would overwrite {previous}: to start afresh all "
            f"the same, add --restart (which moves it to {path}.<date>-<time>.bak) or remove it") in result.output
    assert not path.exists() and previous.read_bytes() == kept
    restarted = invoke(*args, "--restart")
    assert restarted.exit_code == 0, restarted.output
    backups = list(tmp_path.glob("s.pkl.*.bak"))
    assert len(backups) == 1 and backups[0].read_bytes() == kept
    assert state.load(backups[0])["updated"] == saved
    previous.unlink()
    path.unlink()
    assert "there is no state file at" in invoke("status", "--state", str(path)).output  # nothing left: as before
    assert invoke(*args).exit_code == 0  # a new search
