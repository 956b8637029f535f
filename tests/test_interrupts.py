"""A clean stop: Ctrl-C (or SIGTERM) on ``train``, ``runs train`` and ``run_all.sh`` ends the
command within seconds in one line, exit status 130, no traceback, locks released; the same
command again resumes.

Each command starts in a session of its own, as a terminal starts a foreground job, and a
terminal's Ctrl-C is SIGINT to that process group (``os.killpg``): every process of the
group gets it at once. ``run_all.sh`` is also sent SIGINT on its pid alone (``kill -INT``),
which bash used to hold until its child ended."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

from seqseg_lib import runs
from seqseg_lib.runlock import is_held

STOPPED_WITHIN = 10.0  # seconds from the signal to the exit


def terminal_signals() -> None:
    """In the child: SIGINT and SIGTERM at their defaults, as a terminal's foreground job has
    them (a signal ignored at a shell's start cannot be trapped, and a test process may have
    inherited one ignored)."""
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_DFL)


def started(command: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO), "SEQSEG_PROGRESS": "log"} | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        preexec_fn=terminal_signals,
    )


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.05)


def interrupted(process: subprocess.Popen, how: str) -> str:
    """Send the signal (``group``: SIGINT to the process group, as Ctrl-C; ``pid``: SIGINT
    to the process alone; ``term``: SIGTERM to it) and return its output once it has ended,
    having checked the exit status and the time it took."""
    sent = time.monotonic()
    if how == "group":
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGINT if how == "pid" else signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert time.monotonic() - sent < STOPPED_WITHIN, output
    assert process.returncode == 130, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    return output


def left_running(folder: Path) -> list[str]:
    """The command lines of processes that name ``folder`` (the jobs of a runs directory in
    it), a second after the command ended."""
    time.sleep(1.0)
    lines = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in lines.splitlines() if str(folder) in line and "pytest" not in line]


SMOKE_TRAIN = ["-m", "seqseg_lib", "train", "unet", "--profile", "smoke", "--checkpoint-every", "1"]


@pytest.mark.parametrize("how", ["group", "term"])
def test_an_interrupted_train_says_so_in_one_line_and_resumes(tmp_path, how):
    run = tmp_path / "run"
    command = [sys.executable, *SMOKE_TRAIN, "--out", str(run)]
    process = started(command)
    wait_for(run / runs.STATUS, process)  # its first checkpoint: step 1 of 4
    output = interrupted(process, how)
    assert output.splitlines()[-1] == (
        "interrupted: 0 finished, 1 partial; rerun the same command to resume"
    ), output
    assert not is_held(run)
    again = subprocess.run(
        command,
        cwd=REPO,
        env=os.environ | {"SEQSEG_PROGRESS": "log"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert "; resumed at epoch " in again.stdout and runs.is_finished(run)


RUNS_TRAIN = ["-m", "seqseg_lib", "runs", "train", "--profile", "smoke", "--jobs", "1"]
RUNS_TRAIN += ["--experiment", "unet", "--experiment", "seq2seg", "--checkpoint-every", "1"]
RUNS_TRAIN += ["--poll-seconds", "0.2"]
FIRST = "unet-synthetic-smoke-seed0"


@pytest.mark.slow
def test_an_interrupted_runs_train_ends_its_jobs_and_resumes(tmp_path):
    command = [sys.executable, *RUNS_TRAIN, "--runs-dir", str(tmp_path)]
    process = started(command)
    wait_for(tmp_path / FIRST / runs.STATUS, process)
    output = interrupted(process, "group")
    last = output.splitlines()[-1]
    assert last.startswith("interrupted: 0 finished, ") and last.endswith(
        " partial; rerun the same command to resume"
    ), output
    assert not is_held(tmp_path / FIRST)
    assert not left_running(tmp_path)
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resumed at epoch 1 step " in again.stdout or f"finished {FIRST}" in again.stdout
    assert runs.is_finished(tmp_path / FIRST)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["group", "pid"])
def test_an_interrupted_run_all_stops_at_once(tmp_path, how):
    """``run_all.sh`` stopped while it trains notebook 01's two runs, one at a time."""
    command = ["bash", str(REPO / "run_all.sh"), "--profile", "smoke", "--jobs", "1"]
    command += ["--runs-dir", str(tmp_path / "runs"), "--reports-dir", str(tmp_path / "reports")]
    command += ["notebooks/01_seq2seg_vs_unet.ipynb"]
    process = started(command, SEQSEG_PYTHON=sys.executable)
    wait_for(tmp_path / "runs" / FIRST / runs.STATUS, process)
    output = interrupted(process, how)
    assert output.splitlines()[-1].startswith("interrupted: "), output
    assert output.splitlines()[-1].endswith("; rerun the same command to resume"), output
    assert not is_held(tmp_path / "runs" / FIRST)
    assert not left_running(tmp_path)
    again = subprocess.run(
        [sys.executable, "-m", "seqseg_lib", "runs", "train", *command[-1:], "--profile", "smoke"]
        + ["--jobs", "1", "--runs-dir", str(tmp_path / "runs"), "--poll-seconds", "0.2"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resumed at epoch 2 step 2: {FIRST}" in again.stdout or "1 done before" in again.stdout
