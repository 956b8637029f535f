"""Several runs per GPU (``seqseg_lib.packing``, ``launch.train_runs``), without a GPU: fake
GPUs (``torch.cuda.device_count``), a fake submitit executor whose jobs end after as many
looks as their run has epochs, and a fake ``nvidia-cuda-mps-control`` on PATH."""

import json
import os
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from seqseg_lib import launch, measured, packing, plan
from seqseg_lib.experiments import build_config
from seqseg_lib.launch import JobOptions, train_runs

EPOCHS = {"r1": 2, "r2": 6, "r3": 1, "r4": 5, "r5": 3, "r6": 4}  # steps: 2 per epoch
LONGEST_FIRST = ["r2", "r4", "r6", "r5", "r1", "r3"]


class Machine(SimpleNamespace):
    """The fake machine's state: ``events`` in order (submissions, ends, cancels); ``bin``,
    first on PATH; ``executor``, the jobs' ``FakeExecutor``; ``mps_log``, where a fake MPS
    command writes (each event then notes its lines so far)."""

    def note(self, event: str) -> None:
        if self.mps_log is not None:
            lines = len(self.mps_log.read_text().splitlines()) if self.mps_log.exists() else 0
            event += f" (mps: {lines} line{'' if lines == 1 else 's'})"
        self.events.append(event)


class FakeJob:
    """A local job that has ended after as many calls of ``done`` as its run has epochs."""

    def __init__(self, job: launch.TrainJob, number: int, machine: Machine) -> None:
        self.train_job, self.job_id, self.machine = job, str(number), machine
        self.looks = job.config.epochs
        self.state = "RUNNING"
        self.paths = SimpleNamespace(stderr=Path("fake.err"))

    def done(self) -> bool:
        self.looks -= 1
        if self.looks == 0:
            self.machine.note(f"ended {self.train_job.variant}")
        return self.looks <= 0

    def exception(self) -> None:
        return None

    def cancel(self, check: bool = True) -> None:
        self.machine.note(f"cancelled {self.train_job.variant}")


class FakeExecutor:
    """``submitit.AutoExecutor``'s part that ``train_runs`` uses; ``interrupt_at``: the
    submission that raises KeyboardInterrupt (Ctrl-C)."""

    cluster = "local"

    def __init__(self, machine: Machine, interrupt_at: int | None = None) -> None:
        self.machine, self.interrupt_at = machine, interrupt_at
        self.jobs: list[FakeJob] = []

    def update_parameters(self, **parameters) -> None:
        pass

    def submit(self, job: launch.TrainJob) -> FakeJob:
        if len(self.jobs) + 1 == self.interrupt_at:
            raise KeyboardInterrupt
        on_gpu = [j for j in self.jobs if j.looks > 0 and j.train_job.devices == job.devices]
        self.machine.note(f"submit {job.variant} on {job.devices} beside {len(on_gpu)}")
        self.jobs.append(FakeJob(job, len(self.jobs) + 1, self.machine))
        return self.jobs[-1]


@pytest.fixture
def machine(monkeypatch, tmp_path) -> Machine:
    """Two fake GPUs and 10 cores, no MPS command on PATH, jobs through a ``FakeExecutor``."""
    state = Machine(events=[], bin=tmp_path / "bin", executor=None, mps_log=None)
    state.bin.mkdir()
    monkeypatch.setenv("PATH", f"{state.bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(launch, "available_cores", lambda: 10)

    def executor(cluster, folder, options):
        state.executor = state.executor or FakeExecutor(state)
        return state.executor

    monkeypatch.setattr(launch, "submitit_executor", executor)
    return state


def steps_alone(config) -> tuple[int | None, None]:
    """A run's steps, its seconds per step unknown: steps alone decide the order."""
    return plan.planned_steps(config), None


def six_runs(**overrides) -> list:
    return [
        (build_config("unet", "smoke", epochs=epochs, num_workers=4, **overrides), name)
        for name, epochs in EPOCHS.items()
    ]


def fake_mps(bin_folder: Path, log: Path, start_status: int = 0) -> None:
    """A ``nvidia-cuda-mps-control`` that writes its arguments and its input to ``log``."""
    script = bin_folder / packing.MPS_CONTROL
    script.write_text(
        f'#!/bin/sh\necho "mps $* pipe=$CUDA_MPS_PIPE_DIRECTORY" >> "{log}"\n'
        f'[ "$1" = -d ] && exit {start_status}\nsed "s/^/mps stdin: /" >> "{log}"\n'
    )
    script.chmod(0o755)


def test_six_runs_at_four_jobs_share_two_gpus_two_each_longest_first(machine, tmp_path):
    """Each GPU holds two runs at once; the runs go longest first; a run that ends frees its
    place on its GPU for the next run; each job sees its one GPU and its share of the cores;
    without the MPS command, plain processes."""
    said = []
    train_runs(
        six_runs(), tmp_path / "runs", jobs=4, poll_seconds=0, length=steps_alone, say=said.append
    )
    jobs = [job.train_job for job in machine.executor.jobs]
    assert [job.variant for job in jobs] == LONGEST_FIRST
    assert [job.devices for job in jobs] == ["0", "1", "0", "1", "1", "0"]
    submits = [e for e in machine.events if e.startswith("submit")]
    assert all(not e.endswith("beside 2") for e in submits)  # never a third run on a GPU
    # r5 (3 epochs, GPU 1) ends first: r1 takes its place on GPU 1; then r6 ends on GPU 0
    assert machine.events[4:8] == ["ended r5", "submit r1 on 1 beside 1", "ended r6"] + [
        "submit r3 on 0 beside 1"
    ]
    assert {(job.threads, job.config.num_workers, job.environment) for job in jobs} == {
        (2, 1, ())  # 10 cores, 4 jobs: (10 - 4) // 4 workers, 10 // 4 threads
    }
    assert not any("MPS" in line for line in said)


def test_longest_first_by_steps_times_seconds_where_every_run_s_seconds_are_known(tmp_path):
    """Seconds per step decide with steps where every run has them; with one unknown, steps
    alone; a run of unknown steps (a whole dataset) first; a run's steps done count off."""
    runs = [
        (build_config("unet", "smoke", epochs=6), "long"),  # 12 steps
        (build_config("seq2seg", "smoke", epochs=4), "slow"),  # 8 steps
        (build_config("unet", "smoke", epochs=1), "short"),  # 2 steps
    ]
    tasks = launch.plan(runs, tmp_path)

    def order(seconds: dict[str, float], tasks=tasks) -> list[str]:
        def length(config):
            return plan.planned_steps(config), seconds.get(config.experiment)

        return [task.variant for task in launch.longest_first(tasks, length)]

    assert order({"unet": 1.0, "seq2seg": 2.0}) == ["slow", "long", "short"]  # 16 > 12 > 2
    assert order({"unet": 1.0}) == ["long", "slow", "short"]
    whole = launch.plan([*runs, (build_config("unet", "smoke", num_train=None), "all")], tmp_path)
    assert order({}, whole)[0] == "all"
    long_run = tasks[0].run_dir  # 10 of its 12 steps done: 2 left, as many as "short"
    long_run.mkdir()
    (long_run / "checkpoint.pt").write_bytes(b"")
    position = {"global_step": 10, "epoch": 5}
    (long_run / "status.json").write_text(json.dumps({"position": position, "epochs": 6}))
    assert order({}) == ["slow", "long", "short"]


def test_data_workers_split_the_cores_among_the_jobs():
    assert packing.data_workers(4, cores=16, jobs=2) == 4  # as asked: (16 - 2) // 2 = 7
    assert packing.data_workers(4, cores=16, jobs=4) == 3
    assert packing.data_workers(4, cores=16, jobs=16) == 1  # at least one
    assert packing.data_workers(0, cores=16, jobs=1) == 0  # none asked (cpu, smoke)


def test_mps_runs_around_the_jobs_where_runs_share_a_gpu(machine, tmp_path, monkeypatch):
    """Started before the first job, asked to quit after the last one ended; the jobs get its
    pipe and log folders, a new folder under the runs' ``.jobs``."""
    log = tmp_path / "mps.log"
    fake_mps(machine.bin, log)
    monkeypatch.setattr(packing, "MPS_PIPE_CHARS", 4096)  # (pytest's folders are long)
    machine.mps_log = log  # each submission and end notes the log's lines so far
    said = []
    train_runs(
        six_runs(), tmp_path / "runs", jobs=4, poll_seconds=0, length=steps_alone, say=said.append
    )
    assert len(machine.events) == 12
    assert all(event.endswith("(mps: 1 line)") for event in machine.events)  # started, not quit
    environments = {job.train_job.environment for job in machine.executor.jobs}
    assert len(environments) == 1
    environment = dict(environments.pop())
    pipe = Path(environment["CUDA_MPS_PIPE_DIRECTORY"])
    assert pipe.parent.parent == (tmp_path / "runs" / launch.JOBS_FOLDER).resolve()
    assert Path(environment["CUDA_MPS_LOG_DIRECTORY"]) == pipe.parent / "log"
    assert log.read_text().splitlines() == [f"mps -d pipe={pipe}", f"mps  pipe={pipe}"] + [
        "mps stdin: quit"
    ]
    assert not pipe.exists()  # its sockets go with it; its logs stay beside the jobs'
    assert sum("CUDA MPS started" in line for line in said) == 1


def test_a_folder_too_long_for_mps_sockets_goes_to_the_system_temp_folder(tmp_path):
    deep = tmp_path / ("x" * 100) / ".jobs"
    folder = packing.mps_folder(deep)
    assert folder.parent == Path(tempfile.gettempdir())
    assert list(deep.iterdir()) == []  # the one tried there is removed
    assert len(str(folder / "pipe")) <= packing.MPS_PIPE_CHARS
    folder.rmdir()


def test_mps_stops_on_ctrl_c_and_is_not_started_for_one_run_per_gpu(machine, tmp_path):
    log = tmp_path / "mps.log"
    fake_mps(machine.bin, log)
    machine.executor = FakeExecutor(machine, interrupt_at=3)
    with pytest.raises(KeyboardInterrupt):
        train_runs(
            six_runs(),
            tmp_path / "runs",
            jobs=4,
            poll_seconds=0,
            length=steps_alone,
            say=lambda line: None,
        )
    assert machine.events[-2:] == ["cancelled r2", "cancelled r4"]
    assert log.read_text().splitlines()[-1] == "mps stdin: quit"

    log.unlink()
    machine.executor = FakeExecutor(machine)
    train_runs(
        six_runs(),
        tmp_path / "two",
        jobs=2,
        poll_seconds=0,
        length=steps_alone,
        say=lambda line: None,
    )
    assert not log.exists()
    assert {j.train_job.environment for j in machine.executor.jobs} == {()}


def test_an_mps_that_fails_to_start_is_said_once_and_the_runs_train_without_it(machine, tmp_path):
    log = tmp_path / "mps.log"
    fake_mps(machine.bin, log, start_status=3)
    said = []
    train_runs(
        six_runs(), tmp_path / "runs", jobs=4, poll_seconds=0, length=steps_alone, say=said.append
    )
    mps = [line for line in said if "MPS" in line]
    assert len(mps) == 1 and mps[0].startswith("CUDA MPS did not start (exit status 3")
    assert {j.train_job.environment for j in machine.executor.jobs} == {()}
    assert len(log.read_text().splitlines()) == 1  # started once, never asked to quit


def test_a_job_s_gpu_is_named_as_the_launcher_sees_it(monkeypatch):
    """Without MPS a job's ``CUDA_VISIBLE_DEVICES`` names the machine's devices (the launcher's
    own entries); under MPS the server's, which are the launcher's, renumbered from 0."""
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert launch.job_devices("1", mps=False) == "3"
    assert launch.job_devices("1", mps=True) == "1"
    assert launch.job_devices("0,1", mps=False) == "2,3"


def measured_rows(path: Path, seconds: dict[int, float], **row) -> None:
    """``train_step_s`` rows of Seq2Seg under ``paper`` on a GPU: ``{concurrent: seconds}``."""
    base = {c: "" for c in measured.COLUMNS} | {
        "device_type": "cuda",
        "device": "cuda (NVIDIA H200)",
        "profile": "paper",
        "experiment": "seq2seg",
        "precision": "bfloat16",
        "mode": "eager",
        "quantity": "train_step_s",
        "rounds": 3,
    }
    rows = [base | row | {"concurrent": c, "value": s} for c, s in seconds.items()]
    measured.append(path, rows)


def test_runs_per_gpu_is_the_concurrency_measured_fastest(tmp_path):
    csv = tmp_path / "benchmarks.csv"
    # per-run step times: throughput 41.7, 66.7, 57.1 runs' steps per second
    measured_rows(csv, {1: 0.024, 2: 0.030, 4: 0.070})
    measured_rows(csv, {8: 0.001}, profile="cpu")  # other profiles, quantities: not these
    measured_rows(csv, {8: 0.001}, quantity="step_s")
    rows = measured.read(csv)
    assert packing.runs_per_gpu(rows) == 2
    assert packing.runs_per_gpu(rows, {"seq2seg", "unet"}) == 2
    assert packing.runs_per_gpu(rows, {"unet"}) is None
    measured_rows(csv, {4: 0.040})  # measured again, later: that one counts
    assert packing.runs_per_gpu(measured.read(csv)) == 4
    # two experiments: U-Net best alone, by far; Seq2Seg at 4 (41.7, 66.7, 100)
    measured_rows(csv, {1: 0.014, 2: 0.056, 4: 0.280}, experiment="unet")
    assert packing.runs_per_gpu(measured.read(csv)) == 1  # sums 1.42, 1.17, 1.20


def test_paper_on_gpus_packs_measured_runs_per_gpu_or_the_stated_default(machine, tmp_path):
    paper = [build_config("seq2seg", "paper", device="cuda", amp=True)]
    said = []
    csv = tmp_path / "benchmarks.csv"
    assert launch.packed_jobs("local", JobOptions(), paper, said.append, csv) == 4  # 2 x 2
    assert said == [
        "2 runs per GPU on 2 GPU(s) (assumed: benchmarks.csv has no measurement of runs "
        "sharing a GPU)"
    ]
    assert packing.ASSUMED_RUNS_PER_GPU == 2
    measured_rows(csv, {1: 0.024, 2: 0.030, 4: 0.040})
    assert launch.packed_jobs("local", JobOptions(), paper, said.append, csv) == 8
    assert said[-1] == "4 runs per GPU on 2 GPU(s) (the fastest in benchmarks.csv)"
    # not for other profiles, Slurm, jobs of several GPUs, or a machine without GPUs
    cpu = [build_config("seq2seg", "cpu")]
    assert launch.packed_jobs("local", JobOptions(), cpu, said.append, csv) is None
    assert launch.packed_jobs("slurm", JobOptions(), paper, said.append, csv) is None
    assert launch.packed_jobs("local", JobOptions(gpus=2), paper, said.append, csv) is None
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.cuda, "device_count", lambda: 0)
        assert launch.packed_jobs("local", JobOptions(), paper, said.append, csv) is None


def test_a_free_place_on_the_least_loaded_gpu_goes_first():
    """Places freed in one look, GPU 0's first: the next run goes to GPU 1, now idle, not
    beside GPU 0's run still training."""
    assert launch.least_loaded(["0", "1", "1"], running=["0"]) == 1
    assert launch.least_loaded(["0", "1"], running=["1", "0", "1"]) == 0
    assert launch.least_loaded(["0,1", "2,3"], running=["0,1"]) == 1
    assert launch.least_loaded([None, None], running=[None]) == 0
