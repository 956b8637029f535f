"""``runs train --executor slurm`` on a real Slurm: a one-node cluster (Debian's ``slurm-wlm``
and ``munge``) started in a temporary folder and torn down after the test. The runs of a smoke
plan finish; a run signalled mid-training, as Slurm signals a job near its time limit or when
preempting it, is requeued and resumes from its last checkpoint to the weights of an
uninterrupted run; a job that the cluster requeues itself runs again and is reported finished.

The test installs nothing: where Slurm or munge is missing it is skipped, naming the command
that installs them (``./run_all.sh --setup`` as root), and ``SEQSEG_REQUIRE_SLURM=1`` (CI) makes
that a failure.
There is no accounting daemon (slurmdbd): ``sacct`` answers nothing, and the launcher reads
job states from ``squeue`` (``launch.QueueWatcher``).
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, free_port, untimed

from seqseg_lib import engine
from seqseg_lib.experiments import build_config
from seqseg_lib.launch import JobOptions, train_runs
from seqseg_lib.runs import load_checkpoint, read_status

COMMANDS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol")
SLURM_CONF = """\
ClusterName=seqseg-test
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={folder}/munge.socket
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
KillWait=5
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
NodeName=localhost CPUs={cpus} State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def unavailable(reason: str) -> None:
    if os.environ.get("SEQSEG_REQUIRE_SLURM") == "1":
        pytest.fail(f"{reason} (SEQSEG_REQUIRE_SLURM=1: Slurm is required)")
    pytest.skip(reason)


def require_slurm() -> None:
    """Skip (or under ``SEQSEG_REQUIRE_SLURM=1`` fail) where a command of Slurm or munge is
    missing, saying how to install them."""
    missing = [command for command in COMMANDS if shutil.which(command) is None]
    if missing:
        unavailable(
            f"Slurm and munge are not installed (no {', '.join(missing)}): "
            "`./run_all.sh --setup` as root installs them (Debian's slurm-wlm and munge)"
        )


def wait_for(condition, seconds: float, what: str):
    """``condition()``'s first true value, looking every 0.2 s for at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"waited {seconds:.0f} s for {what}")


def slurm(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=30).stdout


@pytest.fixture
def cluster(monkeypatch):
    """munged, slurmctld and slurmd of a one-node cluster in a temporary folder (its path short:
    a socket's path has at most 107 characters); ``SLURM_CONF`` names its configuration for
    this process and the ones it starts. Every job is cancelled and every daemon stopped
    after the test, however it ends."""
    require_slurm()
    if os.geteuid() != 0:
        unavailable("the test cluster's daemons run as root (SlurmUser=root)")
    folder = Path(tempfile.mkdtemp(prefix="slurm-"))
    daemons: list[subprocess.Popen] = []
    try:
        (folder / "state").mkdir()
        (folder / "spool").mkdir()
        conf = folder / "slurm.conf"
        conf.write_text(
            SLURM_CONF.format(
                folder=folder,
                ctld_port=free_port(),
                slurmd_port=free_port(),
                cpus=os.cpu_count(),
            )
        )
        monkeypatch.setenv("SLURM_CONF", str(conf))
        subprocess.run(["mungekey", "--create", f"--keyfile={folder}/munge.key"], check=True)
        munge = [f"--key-file={folder}/munge.key", f"--socket={folder}/munge.socket"]
        munge += [f"--pid-file={folder}/munged.pid", f"--seed-file={folder}/munged.seed"]
        munge += [f"--log-file={folder}/munged.log"]
        commands = [
            ["munged", "--foreground", "--force", *munge],
            ["slurmctld", "-D"],
            ["slurmd", "-D", "-N", "localhost"],
        ]
        for command in commands:
            log = open(folder / f"{command[0]}.log", "ab")  # noqa: SIM115 (closed with the folder)
            daemons.append(subprocess.Popen(command, stdout=log, stderr=log))
            if command[0] == "munged":
                wait_for((folder / "munge.socket").exists, 10, "munged's socket")
        node_up = lambda: slurm("sinfo", "--noheader", "--format=%T").strip() == "idle"  # noqa: E731
        wait_for(lambda: all(d.poll() is None for d in daemons) and node_up(), 30, "an idle node")
        yield folder
    finally:
        if daemons and daemons[1].poll() is None:  # slurmctld answers: end the jobs first
            subprocess.run(["scancel", f"--user={os.getuid()}"], capture_output=True, timeout=30)
            queue = lambda: slurm("squeue", "--noheader", "--format=%i").strip()  # noqa: E731
            try:
                wait_for(lambda: not queue(), 30, "an empty queue")
            except (AssertionError, subprocess.SubprocessError):
                pass
        for daemon in reversed(daemons):
            daemon.send_signal(signal.SIGTERM)
        for daemon in reversed(daemons):
            try:
                daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        shutil.rmtree(folder, ignore_errors=True)


def runs_train(*args: str) -> list[str]:
    """``python -m seqseg_lib runs train ... --executor slurm``, with its poll brief."""
    return [sys.executable, "-m", "seqseg_lib", "runs", "train", *args, "--executor", "slurm"]


@pytest.mark.slow
def test_slurm_jobs_train_a_plan_and_a_requeued_job_resumes_its_run(tmp_path, cluster):
    runs = tmp_path / "runs"
    common = ["--runs-dir", str(runs), "--cpus-per-job", "1", "--time-minutes", "10"]
    common += ["--poll-seconds", "0.5"]
    env = os.environ | {"SEQSEG_PROGRESS": "log"}

    # a smoke plan: two runs, one job each, both at once on the node's CPUs
    smoke = ["--experiment", "unet", "--experiment", "seq2seg", "--profile", "smoke"]
    done = subprocess.run(
        runs_train(*smoke, *common), cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for number, name in enumerate(("unet", "seq2seg"), start=1):
        run = f"{name}-synthetic-smoke-seed0"
        assert any(line.startswith(f"[{number}/2] started  {run} (job ") for line in lines)
        assert any(line.startswith(f"[{number}/2] finished {run} in ") for line in lines)
        assert read_status(runs / run)["position"]["epoch"] == 2
    assert lines[-1].endswith(
        "2 finished, 0 partial (stopped at max_steps), 0 failed; 0 done before"
    )

    # a longer run through ``train_runs`` (the command's path, in a thread here), signalled
    # once it has written a checkpoint: requeued, its job resumes the run from there
    config = build_config("seq2seg", "smoke", epochs=100, checkpoint_every=4, progress=False)
    run_dir = runs / "seq2seg-long-synthetic-smoke-seed0"
    said, results = [], []
    options = JobOptions(cpus=1, time_minutes=10)
    launcher = threading.Thread(
        target=lambda: results.extend(
            train_runs([(config, "long")], runs, None, "slurm", options, 0.5, said.append)
        )
    )
    launcher.start()
    try:
        step = wait_for(lambda: checkpointed_step(run_dir), 240, "a first checkpoint")
        job = slurm("squeue", "--noheader", f"--name={run_dir.name}", "--format=%i").strip()
        slurm("scancel", "--signal=USR2", job)  # what Slurm sends before the time limit
        requeued = f"[1/1] requeued {run_dir.name} (job {job})"
        wait_for(lambda: requeued in said, 240, "the launcher to see the job requeued")
        # Slurm holds a requeued job back for two minutes (BeginTime): release it now
        slurm("scontrol", "update", f"JobId={job}", "StartTime=now")
        # meanwhile, the same run uninterrupted, here (one thread, as the job's one CPU)
        alone = engine.load_or_train(config, tmp_path / "alone", "long")
    finally:
        launcher.join(timeout=600)
    assert [(r.state, r.job_id) for r in results] == [("finished", job)], job_logs(said, runs, job)
    assert f"[1/1] resumed  {run_dir.name} (job {job})" in said
    assert step < 200, "the run ended before it could be signalled: make it longer"
    log = (runs / ".jobs" / f"{job}_0_log.out").read_text()
    starts = [line for line in log.splitlines() if line.startswith(f"training {run_dir.name}")]
    assert starts[0] == f"training {run_dir.name} from the start on 1 thread(s)"
    assert len(starts) == 2 and starts[1].startswith(f"training {run_dir.name} from step ")
    assert int(starts[1].split()[4]) >= step  # from its last checkpoint, not from the start

    weights = load_checkpoint(run_dir / "checkpoint.pt")["model"]
    expected = load_checkpoint(alone / "checkpoint.pt")["model"]
    assert all(torch.equal(weights[key], expected[key]) for key in expected)
    assert untimed(engine.read_metrics(run_dir)) == untimed(engine.read_metrics(alone))


def job_logs(said: list[str], runs: Path, job: str) -> str:
    """What the launcher said, then the job's own logs: why a job failed, in the failure."""
    parts = ["\n".join(said)]
    for log in sorted((runs / ".jobs").glob(f"{job}_*_log.*")):
        parts.append(f"--- {log.name} ---\n{log.read_text()[-4000:]}")
    return "\n".join(parts)


def checkpointed_step(run_dir: Path) -> int | None:
    """The step of the run's last checkpoint, once it has one past step 0."""
    status = read_status(run_dir) if (run_dir / "status.json").exists() else None
    step = status["position"]["global_step"] if status else 0
    return step or None


@pytest.mark.slow
def test_a_preempted_job_runs_again_and_a_failing_one_is_reported(tmp_path, cluster):
    """Requeued by the cluster (``scontrol requeue``, as at a preemption), a job's processes
    get SIGTERM: its DataLoader worker ends, the run's process raises and its attempt leaves an
    error result. The launcher follows the queue, not that result: the job runs again from the
    run's last checkpoint and is reported finished. A run that fails is reported failed."""
    runs = tmp_path / "runs"
    preempted = build_config(
        "seq2seg", "smoke", epochs=100, checkpoint_every=4, num_workers=1, progress=False
    )
    failing = build_config("unet", "smoke", "cityscapes", data_root=str(tmp_path / "nowhere"))
    run_dir = runs / "seq2seg-preempted-synthetic-smoke-seed0"
    said, results = [], []
    options = JobOptions(cpus=1, time_minutes=10)
    plan = [(preempted, "preempted"), (failing, None)]
    launcher = threading.Thread(
        target=lambda: results.extend(
            train_runs(plan, runs, None, "slurm", options, 0.5, said.append)
        )
    )
    launcher.start()
    try:
        wait_for(lambda: checkpointed_step(run_dir), 240, "a first checkpoint")
        job = slurm("squeue", "--noheader", f"--name={run_dir.name}", "--format=%i").strip()
        slurm("scontrol", "requeue", job)
        requeued = f"[1/2] requeued {run_dir.name} (job {job})"
        wait_for(lambda: requeued in said or results, 240, "the launcher to see the job requeued")
        slurm("scontrol", "update", f"JobId={job}", "StartTime=now")  # held two minutes else
    finally:
        launcher.join(timeout=600)
    assert [r.state for r in results] == ["finished", "failed"], job_logs(said, runs, job)
    assert f"[1/2] resumed  {run_dir.name} (job {job})" in said
    log = (runs / ".jobs" / f"{job}_0_log.err").read_text()
    assert "DataLoader worker" in log  # the first attempt's error, which did not end the job
    assert results[1].error == (
        f"ValueError: Cityscapes root '{tmp_path / 'nowhere'}' does not exist or is not a folder"
    )
    assert engine.is_finished(run_dir)
