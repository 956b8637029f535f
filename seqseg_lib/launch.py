"""Many runs at once: each in its own process, on this machine or as Slurm jobs (submitit).

``train_runs(runs, runs_dir)`` trains the runs of a list of ``(config, variant)`` pairs, as
``engine.load_or_train`` takes them, that are not done yet, ``jobs`` at a time. Each run is one
submitit job: a process on this machine (``executor="local"``) or a Slurm job (``"slurm"``).
Both go through ``submitit.AutoExecutor`` and through one loop (``_run_jobs``), which submits a
run whenever a slot is free and prints a line as each run starts and as it ends; ``"inline"``
trains the runs one after the other in this process, with the same lines (for debugging).

- Threads and devices: on CPU each local job trains on ``cores // jobs`` threads; each local
  GPU job sees its own ``gpus`` devices (``CUDA_VISIBLE_DEVICES``); a Slurm job uses what Slurm
  allocated it (``cpus`` threads).
- Several runs per GPU (``seqseg_lib.packing``): more local jobs than GPUs share them, each
  GPU holding at most ``ceil(jobs / GPUs)``; a job that ends frees its place on its GPU for the
  next run, which goes to the least loaded GPU with a free place. Runs are submitted longest
  first (``longest_first``), so that the last to end is not a long run started last. Each
  local job's DataLoader workers are its share of the cores (``packing.data_workers``). Where
  runs share a GPU and ``nvidia-cuda-mps-control`` is on PATH, CUDA MPS runs around the jobs
  (``packing.mps_daemon``). The ``paper`` profile's default on GPUs is ``GPUs x
  packing.runs_per_gpu`` jobs, the concurrency ``reports/benchmarks.csv`` measured fastest.
- Several GPUs per job: the job starts ``torchrun --standalone --nproc-per-node N -m
  seqseg_lib.launch RUN`` (``seqseg_lib.distributed``), RUN being the run as JSON.
- Time limits: at the limit's signal (USR2, 90 s before a Slurm job's end, 30 s before a local
  one's) submitit calls ``TrainJob.checkpoint``, which requeues the job as it was; the job
  calls ``load_or_train`` again, which resumes from the run's last checkpoint. The engine
  writes one every ``Config.checkpoint_every`` steps and every ``checkpoint_epochs`` epochs:
  the steps after it are trained again, to the same weights. A signal that arrives while a
  checkpoint is written is handled once it is (``runs.signals_held``).
- Preemption: a job that the cluster requeues runs again from its run's last checkpoint. A
  Slurm job has ended when the queue says so (``has_ended``), not when an attempt has left a
  result: one ended by the requeue can leave an error.
- A run directory is trained by one process at a time (``seqseg_lib.runlock``): a job asking
  for a run that another process trains waits for it, then finds it done.

- What it says: a line per run as it starts (``started``, or ``resumed at epoch E step S``
  from its checkpoint) and ends, and a status line (``progress.StatusLine``: runs done, each
  running run's epoch and step as its ``status.json`` has them, the time elapsed and left by
  the plan's step times, ``time_left``), in place on a terminal, every few seconds in a log.
- Ctrl-C or SIGTERM: local jobs' controllers run in sessions of their own
  (``_controllers_apart``), so that the signal reaches this process alone, which ends the
  jobs (``_stop_local``: each run stops, a checkpoint being written is written first, its lock
  is released) and raises ``Interrupted``, whose line says what became of the runs. Slurm
  jobs go on.

Job files (the pickled job, its result, its logs) are ``RUNS_DIR/.jobs/JOB_ID_*``; the local
jobs' controllers write to ``RUNS_DIR/.jobs/controllers.log``.
"""

import contextlib
import dataclasses
import functools
import getpass
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit
import torch
from submitit.core.core import InfoWatcher
from submitit.core.job_environment import JobEnvironment
from submitit.helpers import DelayedSubmission
from submitit.slurm.slurm import SlurmJobEnvironment

from seqseg_lib import distributed, engine, measured, packing
from seqseg_lib.config import Config
from seqseg_lib.experiments import config_from_dict, sized_for_gpu
from seqseg_lib.progress import StatusLine
from seqseg_lib.runs import (
    interrupted_line,
    is_finished,
    read_status,
    run_name,
    signals_held,
    stopped_at,
)

EXECUTORS = ("local", "slurm", "inline")
JOBS_FOLDER = ".jobs"
# Slurm needs a time limit: submitit's own default is 5 minutes. A longer run is requeued and
# resumes, so a limit shorter than a run costs the steps after its last checkpoint, once.
SLURM_MINUTES = 240
LOCAL_MINUTES = 60 * 24 * 365  # local jobs: no limit unless one is asked
POLL_SECONDS = {"local": 2.0, "slurm": 15.0}
# Slurm job states after which a job runs no more ("GONE": left the queue, see QueueWatcher).
ENDED = {
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "GONE",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "TIMEOUT",
}


class Interrupted(KeyboardInterrupt):
    """``train_runs`` stopped by Ctrl-C (SIGINT) or SIGTERM: its local jobs have ended (their
    runs' last checkpoints intact, their locks released); ``str()`` is the line that says
    what became of the runs and how to resume them."""

    def __init__(self, run_dirs: Sequence[Path]) -> None:
        super().__init__(interrupted_line(run_dirs))


@dataclass(frozen=True)
class JobOptions:
    """What each job asks for. ``None`` takes the machine's or the cluster's default."""

    gpus: int | None = None  # per job; None: 1 locally where there are GPUs, else 0
    processes: int | None = None  # per job, under torchrun when > 1; None: max(1, gpus)
    cpus: int | None = None  # Slurm's cpus-per-task, the job's threads; locally cores // jobs
    time_minutes: int | None = None  # then checkpoint, requeue, resume (Slurm: SLURM_MINUTES)
    partition: str | None = None  # Slurm
    sbatch: tuple[tuple[str, str], ...] = ()  # further sbatch options: (("account", "abc"),)
    # time limits (and preemptions) one run may meet before it is reported failed; locally,
    # submitit's controller restarts a job at most 5 times whatever this says
    max_requeues: int = 20


@dataclass(frozen=True)
class RunResult:
    """What became of one run: ``finished``, ``partial`` (stopped at ``max_steps``) or
    ``failed``; ``trained`` is False for a run that was done before (nothing submitted)."""

    run_dir: Path
    state: str
    minutes: float
    trained: bool
    error: str | None = None
    job_id: str | None = None
    log: Path | None = None


@dataclass(frozen=True)
class _Task:
    number: int  # 1-based, in the order of the runs asked
    total: int
    config: Config
    variant: str
    run_dir: Path


@dataclass
class _Submitted:
    task: _Task
    job: Any  # a submitit Job
    slot: str | None
    since: float  # time.monotonic() at submission, then at start
    resumes: dict | None = None  # the run's ``read_status`` at submission: None, from the start
    started: bool = False  # seen running once
    running: bool = False  # seen running since it was last seen queued


@dataclass
class TrainJob(submitit.helpers.Checkpointable):
    """One run's job: ``engine.load_or_train`` in this process, or under torchrun when
    ``processes > 1``. ``devices``: the ``CUDA_VISIBLE_DEVICES`` it sets (local GPU jobs;
    None leaves the allocation's). ``threads``: None takes the job's CPUs. ``environment``:
    further variables it sets (``(name, value)`` pairs: CUDA MPS's)."""

    config: Config
    runs_dir: str
    variant: str = ""
    threads: int | None = None
    devices: str | None = None
    processes: int = 1
    environment: tuple[tuple[str, str], ...] = ()

    def __call__(self) -> str:
        if "SUBMITIT_EXECUTOR" in os.environ:  # a submitit job (not ``inline``)
            plain_signals_in_forks()
            requeue_outlives_its_teardown()
        os.environ.update(self.environment)  # before anything initialises CUDA in this process
        if self.devices is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = self.devices
        run_dir = Path(self.runs_dir) / run_name(self.config, self.variant)
        status = read_status(run_dir)
        where = "from the start"
        if status is not None:
            position = status["position"]
            where = f"from step {position['global_step']} (epoch {position['epoch'] + 1})"
        threads = self.threads or available_cores()
        print(f"training {run_dir.name} {where} on {threads} thread(s)", flush=True)
        if self.processes == 1:
            torch.set_num_threads(threads)
            engine.load_or_train(self.config, self.runs_dir, self.variant)
        else:
            self._torchrun(max(1, threads // self.processes))
        return str(run_dir)

    def _torchrun(self, threads: int) -> None:
        run = {"config": self.config.to_dict(), "runs_dir": self.runs_dir, "variant": self.variant}
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += [f"--nproc-per-node={self.processes}", "-m", "seqseg_lib.launch"]
        process = subprocess.Popen(
            [*command, json.dumps(run)], env=os.environ | {"OMP_NUM_THREADS": str(threads)}
        )
        try:
            code = process.wait()
        finally:  # requeued (SystemExit from submitit's signal handler) or interrupted
            if process.poll() is None:
                process.terminate()
                process.wait()
        if code:
            raise RuntimeError(f"torchrun exited with status {code} (this job's log says why)")

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """Called by submitit at the time limit's signal: the same job again. Nothing to save
        here: the run's state is its last checkpoint, from which ``load_or_train`` resumes."""
        return DelayedSubmission(self, *args, **kwargs)


_forks_registered = False


def plain_signals_in_forks() -> None:
    """submitit's signal handlers are the job process's alone: a process it forks (DataLoader
    workers, the pool rendering synthetic scenes) ignores the requeue signal, which Slurm sends
    to every process of the job, and takes SIGTERM's default action back. With submitit's
    handler, which ignores SIGTERM, a ``multiprocessing.Pool`` would wait forever for its
    terminated workers."""
    global _forks_registered
    if _forks_registered:
        return

    def plain() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCONT, signal.SIG_DFL)
        signal.signal(JobEnvironment._usr_sig(), signal.SIG_IGN)

    os.register_at_fork(after_in_child=plain)
    _forks_registered = True


def requeue_outlives_its_teardown() -> None:
    """At the time limit's signal submitit requeues the job with ``scontrol requeue``, run from
    the job itself; the requeue ends the job, and Slurm's SIGTERM to every process of the job
    can reach that ``scontrol`` before it has returned (a loaded machine is enough). It then
    dies with SIGTERM, submitit raises, and the job ends as failed instead of requeued. Here
    ``scontrol`` starts with SIGTERM ignored (an ignored signal stays ignored across ``exec``;
    Slurm's SIGKILL after ``KillWait`` still ends it), and this process's handler is put back
    once it returns."""
    if getattr(SlurmJobEnvironment._requeue, "outlives_teardown", False):
        return
    requeue = SlurmJobEnvironment._requeue

    def _requeue(self: SlurmJobEnvironment, countdown: int) -> None:
        handler = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            requeue(self, countdown)
        finally:
            signal.signal(signal.SIGTERM, handler)

    _requeue.outlives_teardown = True
    SlurmJobEnvironment._requeue = _requeue


class QueueWatcher(InfoWatcher):
    """Slurm job states from ``squeue``, which every cluster answers; submitit asks ``sacct``,
    which answers only where the cluster keeps accounting (``slurmdbd``). A job absent from
    ``ABSENT_LOOKS`` looks in a row has ended: Slurm forgets ended jobs after ``MinJobAge``
    (300 s by default), longer than the launcher waits between those looks, and one look
    that misses a job (a busy controller, a job being requeued) decides nothing."""

    ABSENT_LOOKS = 2

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._absent: dict[str, int] = {}  # job id: looks in a row without it

    def _make_command(self) -> list[str] | None:
        if not self._registered - self._finished:
            return None
        user = f"--user={getpass.getuser()}"
        return ["squeue", "--noheader", "--states=all", user, "--format=%i|%T"]

    def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
        text = string.decode() if isinstance(string, bytes) else string
        listed = {}
        for line in text.splitlines():
            job_id, _, state = line.strip().partition("|")
            if state:
                listed[job_id] = {"State": state}
        for job_id in self._registered:
            self._absent[job_id] = 0 if job_id in listed else self._absent.get(job_id, 0) + 1
        gone = [job_id for job_id, looks in self._absent.items() if looks >= self.ABSENT_LOOKS]
        return {job_id: {"State": "GONE"} for job_id in gone} | listed

    def get_state(self, job_id: str, mode: str = "standard") -> str:
        return self.get_info(job_id, mode=mode).get("State") or "UNKNOWN"

    def is_done(self, job_id: str, mode: str = "standard") -> bool:
        return self.get_state(job_id, mode=mode) in ENDED


def available_cores() -> int:
    """The CPUs this process may use: Slurm's ``cpus-per-task`` in a job, else its affinity."""
    return int(os.environ.get("SLURM_CPUS_PER_TASK", "0")) or len(os.sched_getaffinity(0))


def train_runs(
    runs: Sequence[tuple[Config, str | None]],
    runs_dir: str | os.PathLike,
    jobs: int | None = None,
    executor: str = "local",
    options: JobOptions = JobOptions(),
    poll_seconds: float | None = None,
    say: Callable[[str], None] | None = None,
    length: Callable[[Config], tuple[int | None, float | None]] | None = None,
) -> list[RunResult]:
    """Train the runs not done yet in ``runs_dir`` (finished, or stopped at their
    ``max_steps``), ``jobs`` at a time (default: locally one per GPU, or one per core and at
    most one per run; on Slurm every run at once, the cluster's scheduler deciding). Returns
    one ``RunResult`` per run, in order; a run that fails does not stop the others. ``say``
    prints the progress lines (default: ``print``). ``poll_seconds``: how often the jobs'
    states are read (default ``POLL_SECONDS``). ``length(config)``: a run's steps and seconds
    per step (None where unknown), by which runs are submitted longest first
    (``longest_first``); without it, in the order asked. ``paper`` runs default locally on
    GPUs to ``packed_jobs``; jobs beyond the runs left are not made."""
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    if (options.gpus or 0) < 0 or (options.processes or 1) < 1:
        raise ValueError(f"expected gpus >= 0 and processes >= 1 per job, got {options}")
    if options.gpus and options.processes not in (None, options.gpus):
        raise ValueError(f"one process per GPU: {options.gpus} GPUs per job, not {options}")
    status = StatusLine() if say is None else None
    say = say or status.say
    tasks = plan(runs, Path(runs_dir).resolve())
    start = time.monotonic()
    try:
        results = _train_tasks(
            tasks, runs_dir, jobs, executor, options, poll_seconds, say, length, status
        )
    except KeyboardInterrupt:
        raise Interrupted([task.run_dir for task in tasks]) from None
    finally:
        if status is not None:
            status.close()
    ordered = [results[task.number] for task in tasks]
    say(totals(ordered, (time.monotonic() - start) / 60))
    return ordered


def _train_tasks(
    tasks: list["_Task"],
    runs_dir: str | os.PathLike,
    jobs: int | None,
    executor: str,
    options: JobOptions,
    poll_seconds: float | None,
    say: Callable[[str], None],
    length: Callable[[Config], tuple[int | None, float | None]] | None,
    status: StatusLine | None,
) -> dict[int, RunResult]:
    """``train_runs``' body: each task's result, by number."""
    results = {t.number: _done_before(t) for t in tasks if _is_done(t)}
    todo = [task for task in tasks if task.number not in results]
    if todo and executor == "inline":
        say(f"training {len(todo)} of {len(tasks)} runs in {runs_dir}, one at a time, here")
        results |= _run_inline(todo, say)
    elif todo:
        todo = longest_first(todo, length) if length else todo
        asked = jobs
        jobs = jobs or packed_jobs(executor, options, [task.config for task in todo], say)
        slots = _slots(executor, options, jobs, len(todo))
        threads = _threads(executor, options, len(slots))
        note = jobs_note(executor, asked, len(slots), len(todo), available_cores())
        if note:
            say(note)
        say(
            f"training {len(todo)} of {len(tasks)} runs in {runs_dir}, {len(slots)} at a time "
            f"as {executor} jobs" + (f" of {threads} thread(s)" if threads else "")
        )
        folder = Path(runs_dir).resolve() / JOBS_FOLDER
        submitter = submitit_executor(executor, folder, options)
        poll = POLL_SECONDS[executor] if poll_seconds is None else poll_seconds
        show = None
        if status is not None:
            remaining = time_left(tasks, length, parallel_runs(executor, slots))
            show = functools.partial(status.update, _status_text, tasks, remaining)
        with _mps_if_shared(executor, slots, folder, say) as environment:
            make = _job_maker(executor, options, threads, len(slots), environment)
            with _controllers_apart(executor, folder):
                results |= _run_jobs(submitter, make, todo, slots, poll, say, show)
    return results


def jobs_note(executor: str, jobs: int | None, slots: int, runs: int, cores: int) -> str | None:
    """A line on ``jobs`` asked where they are not what runs: more than the runs to train (one
    job per run at most), or, locally without GPUs, more than the cores (each job on one
    thread, the jobs sharing the cores); None otherwise."""
    if jobs is None:
        return None
    notes = []
    if jobs > slots:
        notes.append(f"{runs} run(s) to train, so {slots} job(s) at a time")
    if executor == "local" and not visible_gpus() and slots > cores:
        notes.append(
            f"{slots} jobs on {cores} cores: one thread each, sharing the cores (no faster "
            f"than --jobs {cores})"
        )
    return f"--jobs {jobs}: " + "; ".join(notes) if notes else None


def parallel_runs(executor: str, slots: list[str | None]) -> int:
    """How many runs train at the speed of one alone, for the time left: on this machine's
    CPU one (its jobs share the cores), on GPUs one per GPU in use, on Slurm one per job."""
    if executor == "slurm":
        return max(1, len(slots))
    devices = {index for slot in slots if slot is not None for index in slot.split(",")}
    return max(1, len(devices))


def time_left(
    tasks: list["_Task"],
    length: Callable[[Config], tuple[int | None, float | None]] | None,
    parallel: int,
) -> Callable[[], float | None]:
    """``remaining()``: seconds of training left by the plan, the steps each run has left
    (its ``read_status``) times its seconds per step (``length``), over ``parallel`` runs at
    once; None where a run's length is unknown (or without ``length``)."""
    lengths = [length(task.config) if length else (None, None) for task in tasks]

    def remaining() -> float | None:
        seconds = 0.0
        for task, (steps, step_s) in zip(tasks, lengths, strict=True):
            status = read_status(task.run_dir)
            if status is not None and status["position"]["epoch"] >= status["epochs"]:
                continue
            if steps is None or step_s is None:
                return None
            done = 0 if status is None else status["position"]["global_step"]
            seconds += max(0, steps - done) * step_s
        return seconds / parallel

    return remaining


def _status_text(
    tasks: list["_Task"],
    remaining: Callable[[], float | None],
    running: list["_Submitted"],
    elapsed: float,
) -> str:
    """``3/34 runs done, 4.2 min, about 48 min left | unet-...: epoch 2/6 step 130 | ...``:
    each running run's position as its last checkpoint has it (``read_status``); the times
    first, since a terminal's width cuts the end."""
    done = sum(_is_done(task) for task in tasks)
    left = remaining()
    head = f"{done}/{len(tasks)} runs done, {elapsed / 60:.1f} min"
    head += ", time left unknown" if left is None else f", about {left / 60:.0f} min left"
    parts = [head]
    for item in running:
        if not item.started:
            continue
        status = read_status(item.task.run_dir)
        where = "starting"
        if status is not None:
            position = status["position"]
            where = (
                f"epoch {min(position['epoch'] + 1, status['epochs'])}/{status['epochs']} "
                f"step {position['global_step']}"
            )
        parts.append(f"{item.task.run_dir.name}: {where}")
    return " | ".join(parts)


def plan(runs: Sequence[tuple[Config, str | None]], runs_dir: Path) -> list[_Task]:
    """One task per run directory: a run asked twice is trained once; asked twice with
    different configs, it is refused (``ValueError``)."""
    tasks: dict[Path, _Task] = {}
    for config, variant in runs:
        run_dir = runs_dir / run_name(config, variant or "")
        if run_dir in tasks:
            differences = tasks[run_dir].config.differences(config)
            if differences:
                raise ValueError(
                    f"run {run_dir.name} is asked twice with different configs: "
                    + "; ".join(differences)
                )
            continue
        tasks[run_dir] = _Task(len(tasks) + 1, 0, config, variant or "", run_dir)
    return [dataclasses.replace(task, total=len(tasks)) for task in tasks.values()]


def _is_done(task: _Task) -> bool:
    """What ``load_or_train`` skips: a finished run, or one stopped at its ``max_steps``."""
    return is_finished(task.run_dir) or stopped_at(task.run_dir, task.config.max_steps)


def _done_before(task: _Task) -> RunResult:
    state = "finished" if is_finished(task.run_dir) else "partial"
    return RunResult(task.run_dir, state, 0.0, trained=False)


def longest_first(
    tasks: list[_Task], length: Callable[[Config], tuple[int | None, float | None]]
) -> list[_Task]:
    """``tasks`` by their estimated training left, longest first, so that the last run to end
    is not a long one started last: the steps left (``length(config)``'s steps less those
    done) times its seconds per step where every task's are known, else steps alone. A task
    of unknown steps (a dataset's full size) goes first, as likely the longest; ties keep
    their order."""
    lengths = [length(task.config) for task in tasks]
    known = all(seconds is not None for _, seconds in lengths)

    def left(index: int) -> float:
        steps, seconds = lengths[index]
        if steps is None:
            return float("inf")
        status = read_status(tasks[index].run_dir)
        done = 0 if status is None else status["position"]["global_step"]
        return max(0, steps - done) * (seconds if known else 1.0)

    return [tasks[k] for k in sorted(range(len(tasks)), key=left, reverse=True)]


def packed_jobs(
    executor: str,
    options: JobOptions,
    configs: list[Config],
    say: Callable[[str], None],
    benchmarks: Path = measured.BENCHMARKS_CSV,
) -> int | None:
    """The default number of jobs for ``paper`` runs of one GPU each on this machine's GPUs:
    ``GPUs x packing.runs_per_gpu`` of ``benchmarks``' rows for the runs' experiments, or
    ``packing.ASSUMED_RUNS_PER_GPU`` without them (said in a line). None elsewhere: the
    default of one job per GPU, or per core."""
    gpus = len(visible_gpus())
    if executor != "local" or options.gpus not in (None, 1) or not gpus or not configs:
        return None
    if not all(sized_for_gpu(config.profile) for config in configs):
        return None
    experiments = {config.experiment for config in configs}
    per_gpu = packing.runs_per_gpu(measured.read(benchmarks), experiments)
    where = f"the fastest in {benchmarks.name}"
    if per_gpu is None:
        per_gpu = packing.ASSUMED_RUNS_PER_GPU
        where = f"assumed: {benchmarks.name} has no measurement of runs sharing a GPU"
    say(f"{per_gpu} runs per GPU on {gpus} GPU(s) ({where})")
    return gpus * per_gpu


def visible_gpus() -> list[str]:
    """This process's GPUs, as the entries of its ``CUDA_VISIBLE_DEVICES`` where it has one
    (indices or UUIDs of the machine's), else the machine's indices."""
    count = torch.cuda.device_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [str(k) for k in range(count)]
    return [entry.strip() for entry in visible.split(",") if entry.strip()][:count]


def _slots(executor: str, options: JobOptions, jobs: int | None, runs: int) -> list[str | None]:
    """One entry per job running at once, at most one per run: locally on GPUs, the indices
    (among ``visible_gpus``) of the devices of the job in that slot: groups of ``gpus``
    devices, in turn when jobs outnumber them, so that a GPU holds ``ceil(jobs / groups)`` of
    them at most."""
    if executor == "slurm":
        return [None] * min(jobs or runs, runs)
    gpus = len(visible_gpus())
    per_job = 1 if options.gpus is None else options.gpus
    if not gpus or not per_job:
        return [None] * min(jobs or available_cores(), runs)
    if per_job > gpus:
        raise ValueError(f"{per_job} GPUs per job asked; this machine has {gpus}")
    groups = [range(k, k + per_job) for k in range(0, gpus - per_job + 1, per_job)]
    count = min(jobs or len(groups), runs)
    return [",".join(map(str, groups[k % len(groups)])) for k in range(count)]


def job_devices(slot: str, mps: bool) -> str:
    """The ``CUDA_VISIBLE_DEVICES`` of a job in ``slot``: its ``visible_gpus`` entries, since
    a job's variable names the machine's devices; under CUDA MPS the indices themselves, which
    the MPS server maps onto its own devices, the launcher's (NVIDIA's MPS guide, 4.2.1)."""
    if mps:
        return slot
    visible = visible_gpus()
    return ",".join(visible[int(index)] for index in slot.split(","))


def _job_maker(
    executor: str,
    options: JobOptions,
    threads: int | None,
    jobs: int,
    environment: dict[str, str],
) -> Callable[[_Task, str | None], TrainJob]:
    """``make(task, slot)``: the job of ``task`` in ``slot``. A local job's DataLoader
    workers are its share of the cores (``packing.data_workers``; run control, so the run is
    the same run); ``environment``: CUDA MPS's, where it runs."""
    processes = options.processes or max(1, options.gpus or 1)

    def make(task: _Task, slot: str | None) -> TrainJob:
        config = task.config
        if executor == "local":
            workers = packing.data_workers(config.num_workers, available_cores(), jobs)
            config = dataclasses.replace(config, num_workers=workers)
        devices = None if slot is None else job_devices(slot, bool(environment))
        runs_dir, variant = str(task.run_dir.parent), task.variant
        extra = tuple(environment.items())
        return TrainJob(config, runs_dir, variant, threads, devices, processes, extra)

    return make


@contextlib.contextmanager
def _controllers_apart(executor: str, folder: Path) -> Iterator[None]:
    """Local jobs' controllers (submitit's process around each job) start in a session of
    their own, their output in ``folder/controllers.log``: a terminal's Ctrl-C reaches this
    process alone, which then ends the jobs in order (``_stop_local``), and no controller
    prints its own ``KeyboardInterrupt`` traceback on the terminal."""
    if executor != "local":
        yield
        return
    from submitit.local import local

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "controllers.log", "ab") as log:

        class Subprocess:  # ``local.subprocess``, with the controller's own session
            def __getattr__(self, name: str) -> Any:
                return getattr(subprocess, name)

            @staticmethod
            def Popen(*args: Any, **kwargs: Any) -> subprocess.Popen:  # noqa: N802
                kwargs |= {"start_new_session": True, "stdout": log, "stderr": subprocess.STDOUT}
                return subprocess.Popen(*args, **kwargs)

        original, local.subprocess = local.subprocess, Subprocess()
        try:
            yield
        finally:
            local.subprocess = original


STOP_SECONDS = 8.0  # a local job's time to end after Ctrl-C before it is killed


def _stop_local(running: list["_Submitted"]) -> None:
    """End the local jobs of ``running``: SIGINT to each controller, which passes it to its
    job (the run stops; a checkpoint being written is written first, ``signals_held``) and
    kills it a second later; a controller still there after ``STOP_SECONDS`` is killed with
    its session. Further Ctrl-Cs wait meanwhile (``signals_ignored``)."""
    with signals_ignored():
        for item in running:
            item.job.cancel(check=False)
        deadline = time.monotonic() + STOP_SECONDS
        for item in running:
            process = getattr(item.job, "_process", None)
            if process is None:
                continue
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """The block with SIGINT and SIGTERM ignored (a second Ctrl-C while the jobs end)."""
    numbers = (signal.SIGINT, signal.SIGTERM)
    handlers = {number: signal.signal(number, signal.SIG_IGN) for number in numbers}
    try:
        yield
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)


def _mps_if_shared(
    executor: str, slots: list[str | None], folder: Path, say: Callable[[str], None]
) -> contextlib.AbstractContextManager[dict[str, str]]:
    """``packing.mps_daemon`` where local jobs share a GPU, else nothing (``{}``)."""
    devices = [index for slot in slots if slot is not None for index in slot.split(",")]
    if executor != "local" or len(devices) == len(set(devices)):
        return contextlib.nullcontext({})
    return packing.mps_daemon(folder, say)


def least_loaded(free: list[str | None], running: list[str | None]) -> int:
    """The index in ``free`` of the slot whose devices hold the fewest running jobs (the
    first of those on a tie)."""

    def load(slot: str | None) -> int:
        devices = set(slot.split(",")) if slot is not None else set()
        return sum(bool(devices & set(other.split(","))) for other in running if other)

    return min(range(len(free)), key=lambda index: load(free[index]))


def _threads(executor: str, options: JobOptions, jobs: int) -> int | None:
    """Each job's threads: its CPUs on Slurm (None: as allocated), else ``cores // jobs``."""
    if executor == "slurm":
        return options.cpus
    return max(1, available_cores() // jobs)


def submitit_executor(cluster: str, folder: Path, options: JobOptions) -> submitit.AutoExecutor:
    """``AutoExecutor`` for ``local`` or ``slurm``, one job per run (one task, one node)."""
    executor = submitit.AutoExecutor(
        folder=folder,
        cluster=cluster,
        slurm_max_num_timeout=options.max_requeues,
        local_max_num_timeout=options.max_requeues,
    )
    default_minutes = SLURM_MINUTES if cluster == "slurm" else LOCAL_MINUTES
    executor.update_parameters(
        timeout_min=options.time_minutes or default_minutes, nodes=1, tasks_per_node=1
    )
    if cluster == "slurm":  # (a local job's devices and threads are its TrainJob's)
        executor.update_parameters(
            cpus_per_task=options.cpus,
            slurm_gpus_per_node=options.gpus or None,
            slurm_partition=options.partition,
            slurm_additional_parameters=dict(options.sbatch),
        )
    return executor


def _run_jobs(
    executor: submitit.AutoExecutor,
    make: Callable[[_Task, str | None], TrainJob],
    todo: list[_Task],
    slots: list[str | None],
    poll_seconds: float,
    say: Callable[[str], None],
    show: Callable[[list[_Submitted], float], None] | None = None,
) -> dict[int, RunResult]:
    """Submit a task whenever a slot is free, until every task has ended; after each look at
    the jobs, ``show(running, seconds)`` (the status line)."""
    waiting, free, running, results = list(todo), list(slots), [], {}
    start = time.monotonic()
    # one look at the queue for all the jobs (``squeue``: see QueueWatcher)
    watcher = QueueWatcher(delay_s=poll_seconds) if executor.cluster == "slurm" else None
    try:
        while waiting or running:
            while waiting and free:
                slot = free.pop(least_loaded(free, [item.slot for item in running]))
                task = waiting.pop(0)
                # a Ctrl-C meanwhile comes once the job is among those it stops (its
                # controller is in a session of its own: the terminal's signal misses it)
                with signals_held():
                    submitted = _submit(executor, make(task, slot), task, slot, watcher, say)
                    if isinstance(submitted, RunResult):
                        results[task.number] = submitted
                        free.append(slot)
                    else:
                        running.append(submitted)
            time.sleep(poll_seconds)
            for item in list(running):
                _watch(item, say)
                if has_ended(item.job):
                    results[item.task.number] = _ended(item, say)
                    running.remove(item)
                    free.append(item.slot)
            if show is not None:
                show(running, time.monotonic() - start)
    except KeyboardInterrupt:
        if executor.cluster == "local":  # this machine's jobs end with the command
            _stop_local(running)
        else:
            jobs = " ".join(item.job.job_id for item in running)
            say(f"interrupted; Slurm jobs {jobs} go on (scancel {jobs} stops them)")
        raise
    return results


def has_ended(job: submitit.Job) -> bool:
    """Whether ``job`` runs no more. A local job: once its result file is written (submitit's
    ``done``). A Slurm job: once the queue says so (``ENDED``), whatever result file an attempt
    left: one that the cluster requeues can end in an error (preempted, its DataLoader workers
    terminated, the process raises) and write it, and the job then runs again from its run's
    last checkpoint."""
    if isinstance(job, submitit.SlurmJob):
        return job.state in ENDED
    return job.done()


def _submit(
    executor: submitit.AutoExecutor,
    job: TrainJob,
    task: _Task,
    slot: str | None,
    watcher: InfoWatcher | None,
    say: Callable[[str], None],
) -> _Submitted | RunResult:
    """Submit ``job``; a submission the cluster refuses (sbatch's message) fails its run."""
    executor.update_parameters(name=task.run_dir.name)
    try:
        submitted = executor.submit(job)
    except Exception as error:
        result = RunResult(task.run_dir, "failed", 0.0, True, f"not submitted: {error}")
        say(describe(task, result))
        return result
    if watcher is not None:
        submitted.watcher = watcher
    return _Submitted(task, submitted, slot, time.monotonic(), read_status(task.run_dir))


def _watch(item: _Submitted, say: Callable[[str], None]) -> None:
    """Say when a job starts, when a started one is back in the queue (requeued: at its time
    limit, or preempted), and when it runs again."""
    state, task, job = item.job.state, item.task, item.job.job_id
    if state == "RUNNING" and not item.started:
        _started(item, say)
    elif state == "RUNNING" and not item.running:
        item.running = True
        say(f"[{task.number}/{task.total}] resumed  {task.run_dir.name} (job {job})")
    elif state in ("PENDING", "REQUEUED") and item.running:
        item.running = False
        say(f"[{task.number}/{task.total}] requeued {task.run_dir.name} (job {job})")


def _started(item: _Submitted, say: Callable[[str], None]) -> None:
    item.started = item.running = True
    item.since, task = time.monotonic(), item.task
    where = f" on GPU {item.slot}" if item.slot is not None else ""
    how = "started "
    if item.resumes is not None:
        position = item.resumes["position"]
        how = f"resumed at epoch {position['epoch'] + 1} step {position['global_step']}:"
    say(f"[{task.number}/{task.total}] {how} {task.run_dir.name} (job {item.job.job_id}{where})")


def _ended(item: _Submitted, say: Callable[[str], None]) -> RunResult:
    """The run's result once its job has ended: its state read from the run directory."""
    task, job = item.task, item.job
    if not item.started:  # ended between two looks, before it was seen running
        since = item.since
        _started(item, say)
        item.since = since
    minutes = (time.monotonic() - item.since) / 60
    error = job.exception()
    if error is not None:
        state, error = "failed", error_line(error)
    elif is_finished(task.run_dir):
        state = "finished"
    elif stopped_at(task.run_dir, task.config.max_steps):
        state = "partial"
    else:
        state, error = "failed", "the job ended before the run did"
    log = job.paths.stderr if state == "failed" else None
    result = RunResult(task.run_dir, state, minutes, True, error, job.job_id, log)
    say(describe(task, result))
    return result


def _run_inline(todo: list[_Task], say: Callable[[str], None]) -> dict[int, RunResult]:
    """The tasks one after the other in this process, on its threads and devices."""
    results = {}
    for task in todo:
        status, how = read_status(task.run_dir), "started "
        if status is not None:
            position = status["position"]
            how = f"resumed at epoch {position['epoch'] + 1} step {position['global_step']}:"
        say(f"[{task.number}/{task.total}] {how} {task.run_dir.name} (in this process)")
        start = time.monotonic()
        job = TrainJob(task.config, str(task.run_dir.parent), task.variant, torch.get_num_threads())
        try:
            job()
            state = "finished" if is_finished(task.run_dir) else "partial"
            result = RunResult(task.run_dir, state, (time.monotonic() - start) / 60, True)
        except Exception as error:
            minutes = (time.monotonic() - start) / 60
            message = f"{type(error).__name__}: {error}"
            result = RunResult(task.run_dir, "failed", minutes, True, message)
        say(describe(task, result))
        results[task.number] = result
    return results


def error_line(error: BaseException) -> str:
    """The line of a job's error that names it (``ValueError: ...``, the last of the trace
    submitit reports); for a job that ended without a result (killed, or out of requeues),
    submitit's first two lines, which say so."""
    text = str(error)
    rule = "\n----------------------\n"  # submitit's frame around the job's trace
    if text.count(rule) >= 2:
        lines = [line for line in text.split(rule)[1].splitlines() if line.strip()]
        if lines:
            return lines[-1]
    return " ".join(text.strip().splitlines()[:2]) or type(error).__name__


def describe(task: _Task, result: RunResult) -> str:
    """A run's end: ``[2/3] finished unet-synthetic-smoke-seed0 in 1.2 min``."""
    head = f"[{task.number}/{task.total}] {result.state:8s} {task.run_dir.name}"
    if result.state != "failed":
        return f"{head} in {result.minutes:.1f} min"
    log = f" (log: {result.log})" if result.log else ""
    return f"{head} after {result.minutes:.1f} min: {result.error}{log}"


def totals(results: list[RunResult], minutes: float) -> str:
    """The last line: how many runs ended in each state, and how long it all took."""
    trained = [r for r in results if r.trained]
    counts = {s: sum(r.state == s for r in trained) for s in ("finished", "partial", "failed")}
    before = len(results) - len(trained)
    return (
        f"{len(trained)} run(s) trained in {minutes:.1f} min: {counts['finished']} finished, "
        f"{counts['partial']} partial (stopped at max_steps), {counts['failed']} failed; "
        f"{before} done before"
    )


def train_in_process_group(run_json: str) -> None:
    """The body of every torchrun process of a job with several processes: the run (JSON
    of ``config``, ``runs_dir`` and ``variant``) through ``load_or_train``."""
    run = json.loads(run_json)
    engine.load_or_train(config_from_dict(run["config"]), run["runs_dir"], run["variant"])
    distributed.finish()


if __name__ == "__main__":
    train_in_process_group(sys.argv[1])
