"""Several runs per GPU: how many share one, their DataLoader workers, and CUDA MPS.

A run of the ``paper`` profile leaves most of an H100 or H200 idle (``reports/benchmarks.md``:
Seq2Seg's 24-image step takes 17 ms and uses about 1 GiB), so ``launch.train_runs`` trains
several at once on each GPU when jobs outnumber GPUs. This module holds what it decides with:

- ``runs_per_gpu(rows, ...)``: the number of runs sharing a GPU that ``reports/benchmarks.csv``
  measured fastest in total, ``ASSUMED_RUNS_PER_GPU`` without such a measurement;
- ``data_workers(asked, cores, jobs)``: a job's DataLoader workers, its share of the cores;
- ``mps_daemon(folder, say)``: NVIDIA's Multi-Process Service around the jobs, which lets the
  kernels of the runs sharing a GPU execute at once instead of in turns of time slices.
"""

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from seqseg_lib import measured

# Ours, an assumption and not a measurement: runs per GPU for ``paper`` where the CSV
# has no ``train_step_s`` rows at several concurrencies. Two runs of a few
# GiB each fit any GPU that trains ``paper`` and overlap one run's data loading, validation
# and checkpoints with the other's steps.
ASSUMED_RUNS_PER_GPU = 2
MPS_CONTROL = "nvidia-cuda-mps-control"
# A Unix socket's path holds at most 107 bytes; MPS puts its sockets in the pipe directory
# under names of up to ~20 characters, so a longer directory goes to the system's temp folder.
MPS_PIPE_CHARS = 80
MPS_SECONDS = 30  # the daemon's start and stop, each; past it the launcher goes on


def runs_per_gpu(
    rows: Iterable[dict[str, Any]],
    experiments: Iterable[str] | None = None,
    gpu_name: str | None = None,
) -> int | None:
    """How many ``paper`` runs should share a GPU, from the ``measured.read`` rows of
    ``benchmarks.csv``: ``device_type`` cuda, ``profile`` paper, ``quantity`` train_step_s,
    each the per-run step time with ``concurrent`` runs training on the GPU at once; only
    ``experiments``' rows where given, and only ``gpu_name``'s (a ``device`` containing it)
    where it has any. None without such rows.

    Each series (an experiment on a device at a precision and mode) gives a throughput,
    ``concurrent / train_step_s``, at each concurrency it was measured at, relative to its own
    best; the answer is the concurrency with the highest sum of these over the series (one not
    measured at a concurrency adds 0 there), the smaller on a tie."""
    rows = measured.latest(rows, device_type="cuda", profile="paper", quantity="train_step_s")
    if experiments is not None:
        wanted = set(experiments)
        rows = [row for row in rows if row["experiment"] in wanted]
    if gpu_name is not None and any(gpu_name in row["device"] for row in rows):
        rows = [row for row in rows if gpu_name in row["device"]]
    series: dict[tuple, dict[int, float]] = {}
    for row in rows:
        if row["concurrent"] >= 1 and row["value"] > 0:
            key = (row["device"], row["experiment"], row["precision"], row["mode"])
            series.setdefault(key, {})[row["concurrent"]] = row["concurrent"] / row["value"]
    if not series:
        return None
    score: dict[int, float] = {}
    for throughput in series.values():
        best = max(throughput.values())
        for concurrent, value in throughput.items():
            score[concurrent] = score.get(concurrent, 0.0) + value / best
    return max(sorted(score), key=lambda concurrent: score[concurrent])


def data_workers(asked: int, cores: int, jobs: int) -> int:
    """A job's DataLoader workers (training and validation) when ``jobs`` share ``cores``:
    each job keeps one core for its own process and gets an equal share of the others,
    ``(cores - jobs) // jobs``, but never more than its config ``asked`` for, and at least 1
    (loading then overlaps the steps, if on a busy core). A config that asked for none (the
    ``cpu`` and ``smoke`` profiles, whose data comes from the training process, on its
    threads) keeps none. Workers are run control: the run's results do not change."""
    if asked == 0:
        return 0
    return max(1, min(asked, (cores - jobs) // jobs))


def mps_folder(jobs_folder: Path) -> Path:
    """A new folder for the daemon's pipes and logs: under ``jobs_folder`` (beside the jobs'
    logs), or under the system's temp folder where that path is too long for a socket."""
    jobs_folder.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="mps-", dir=jobs_folder))
    if len(str(folder / "pipe")) <= MPS_PIPE_CHARS:
        return folder
    folder.rmdir()
    return Path(tempfile.mkdtemp(prefix="seqseg-mps-"))


@contextlib.contextmanager
def mps_daemon(jobs_folder: Path, say: Callable[[str], None]) -> Iterator[dict[str, str]]:
    """NVIDIA MPS for the jobs started inside: ``nvidia-cuda-mps-control -d`` on entry, ``quit``
    on exit (an error or Ctrl-C included). Yields the environment the jobs need to reach it
    (``CUDA_MPS_PIPE_DIRECTORY``, ``CUDA_MPS_LOG_DIRECTORY``); ``{}``, plain processes, where
    the command is not on PATH or fails to start, which is said in one line."""
    if shutil.which(MPS_CONTROL) is None:
        yield {}
        return
    folder = mps_folder(jobs_folder)
    environment = {
        "CUDA_MPS_PIPE_DIRECTORY": str(folder / "pipe"),
        "CUDA_MPS_LOG_DIRECTORY": str(folder / "log"),
    }
    for path in environment.values():
        Path(path).mkdir()
    output = folder / "control.out"  # what the command says, read when it fails
    error = _mps_control(["-d"], None, environment, output)
    if error is not None:
        say(f"CUDA MPS did not start ({error}); the runs share their GPUs without it")
        yield {}
        return
    say(f"CUDA MPS started for the runs sharing a GPU (logs: {folder / 'log'})")
    try:
        yield environment
    finally:
        error = _mps_control([], "quit\n", environment, output)
        if error is not None:
            say(f"CUDA MPS did not stop ({error}); `echo quit | {MPS_CONTROL}` stops it")
        shutil.rmtree(folder / "pipe", ignore_errors=True)


def _mps_control(
    args: list[str], stdin: str | None, environment: dict[str, str], output: Path
) -> str | None:
    """Run the MPS control command; None when it succeeded, else why not, in a few words. Its
    output goes to the file ``output``, not to a pipe: the daemon that ``-d`` forks could keep
    a pipe open, and reading it would wait for the daemon's end."""
    with open(output, "a") as sink:
        try:
            done = subprocess.run(
                [MPS_CONTROL, *args],
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=os.environ | environment,
                text=True,
                timeout=MPS_SECONDS,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"{type(error).__name__}: {error}"
    if done.returncode:
        said = " ".join(output.read_text().split())[-200:]
        return f"exit status {done.returncode}" + (f": {said}" if said else "")
    return None
