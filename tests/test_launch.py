"""Many runs at once (``seqseg_lib.launch``, ``runs train``): jobs on this machine train the
same runs as training them one by one here, a failing run is reported while the others
finish, and a job of several processes trains under torchrun."""

import os
import re
import signal
import subprocess
import sys

import pytest
import torch
from conftest import REPO

from seqseg_lib import engine
from seqseg_lib.__main__ import build_runs_parser, main, planned_runs, print_plan
from seqseg_lib.experiments import build_config
from seqseg_lib.launch import (
    JobOptions,
    QueueWatcher,
    available_cores,
    plan,
    train_runs,
)
from seqseg_lib.runlock import run_lock
from seqseg_lib.runs import load_checkpoint

SMOKE = ["unet", "seq2seg"]


def run_files(runs_dir) -> dict[str, dict[str, bytes]]:
    """Every run directory's files (the launcher's .jobs and .locks aside), by name, but its
    TensorBoard events (named and stamped by the time and process that wrote them)."""
    return {
        run.name: {
            path.name: path.read_bytes()
            for path in sorted(run.iterdir())
            if not path.name.startswith("events.out.tfevents.")
        }
        for run in sorted(runs_dir.iterdir())
        if not run.name.startswith(".")
    }


def untimed(metrics: bytes) -> str:
    """``metrics.jsonl`` without its epoch times, which no two runs share."""
    return re.sub(r'"train_seconds": [-+.0-9e]+, ', "", metrics.decode())


@pytest.mark.slow
def test_two_jobs_at_once_train_what_one_by_one_here_trains(tmp_path, capsys):
    """``runs train --jobs 2``: the same run directories, the same records byte for byte (epoch
    times aside) and the same weights as ``load_or_train`` run after run in this process on
    as many threads as each job."""
    assert (
        main(
            ["runs", "train", "--profile", "smoke", "--runs-dir", str(tmp_path / "jobs")]
            + [arg for name in SMOKE for arg in ("--experiment", name)]
            + ["--jobs", "2", "--poll-seconds", "0.2"]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    threads = max(1, available_cores() // 2)
    assert lines[0].startswith("plan: 2 runs (0 finished, 0 partial, 2 not started), ")
    assert lines[1].endswith(f"2 at a time as local jobs of {threads} thread(s)")
    for number, name in enumerate(SMOKE, start=1):
        run = f"{name}-synthetic-smoke-seed0"
        assert any(line.startswith(f"[{number}/2] started  {run} (job ") for line in lines)
        ended = rf"\[{number}/2\] finished {run} in \d+\.\d min"
        assert any(re.fullmatch(ended, line) for line in lines)
    assert lines[-1].startswith("2 run(s) trained in ")
    assert lines[-1].endswith(
        "2 finished, 0 partial (stopped at max_steps), 0 failed; 0 done before"
    )

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for name in SMOKE:
            engine.load_or_train(build_config(name, "smoke"), tmp_path / "here")
    finally:
        torch.set_num_threads(previous)
    jobs, here = run_files(tmp_path / "jobs"), run_files(tmp_path / "here")
    assert {run: sorted(files) for run, files in jobs.items()} == {
        run: sorted(files) for run, files in here.items()
    }
    assert len(jobs) == 2
    for run, files in jobs.items():
        assert files["config.json"] == here[run]["config.json"]
        assert files["status.json"] == here[run]["status.json"]
        assert untimed(files["metrics.jsonl"]) == untimed(here[run]["metrics.jsonl"])
        weights = load_checkpoint(tmp_path / "jobs" / run / "checkpoint.pt")["model"]
        expected = load_checkpoint(tmp_path / "here" / run / "checkpoint.pt")["model"]
        assert weights.keys() == expected.keys()
        assert all(torch.equal(weights[key], expected[key]) for key in expected), run


@pytest.mark.slow
def test_a_failing_run_is_reported_and_the_others_finish(tmp_path, capsys):
    good = build_config("unet", "smoke", progress=False)
    bad = build_config("unet", "smoke", "cityscapes", data_root=str(tmp_path / "nowhere"))
    runs = [(good, None), (bad, None), (build_config("seq2seg", "smoke"), None)]
    results = train_runs(runs, tmp_path / "runs", jobs=2, poll_seconds=0.2)
    out = capsys.readouterr().out
    assert [result.state for result in results] == ["finished", "failed", "finished"]
    failed = results[1]
    assert failed.error == (
        f"ValueError: Cityscapes root '{tmp_path / 'nowhere'}' does not exist or is not a folder"
    )
    assert failed.log.exists() and "Traceback" in failed.log.read_text()
    assert "[2/3] failed   unet-cityscapes-smoke-seed0 after " in out
    assert f"{failed.error} (log: {failed.log})" in out
    assert out.splitlines()[-1].endswith(
        "2 finished, 0 partial (stopped at max_steps), 1 failed; 0 done before"
    )

    # asked again: the finished runs are not submitted, the failing one fails again; the
    # command says so by its exit status
    again = train_runs(runs, tmp_path / "runs", jobs=2, poll_seconds=0.2)
    assert [(r.state, r.trained) for r in again] == [
        ("finished", False),
        ("failed", True),
        ("finished", False),
    ]
    capsys.readouterr()
    status = main(
        ["runs", "train", "--experiment", "unet", "--profile", "smoke", "--dataset", "cityscapes"]
        + ["--data-root", str(tmp_path / "nowhere"), "--runs-dir", str(tmp_path / "runs")]
        + ["--poll-seconds", "0.2"]
    )
    assert status == 1
    assert "[1/1] failed   unet-cityscapes-smoke-seed0 after" in capsys.readouterr().out


@pytest.mark.slow
def test_a_job_of_two_processes_trains_under_torchrun(tmp_path, capsys):
    """``processes=2`` (what ``--gpus-per-job 2`` asks on GPUs): the job's run is trained by
    two torchrun processes, each on its share of the batch."""
    config = build_config("unet", "smoke", max_steps=2)
    options = JobOptions(processes=2)
    results = train_runs([(config, "pair")], tmp_path, jobs=1, options=options, poll_seconds=0.2)
    assert [(r.state, r.run_dir.name) for r in results] == [
        ("partial", "unet-pair-synthetic-smoke-seed0")
    ]
    records = engine.read_metrics(results[0].run_dir)
    assert records[-1]["global_step"] == 2 and records[-1]["environment"]["processes"] == 2


POOL_IN_A_JOB = """
import multiprocessing, signal, time
import torch
from seqseg_lib.launch import plain_signals_in_forks
signal.signal(signal.SIGTERM, lambda *args: print("ignored", flush=True))  # submitit's handler
plain_signals_in_forks()
def work(index):
    time.sleep(0.01)
    return index
# as the synthetic scenes are rendered: a pool's workers are terminated once it is read
with multiprocessing.get_context("fork").Pool(2, torch.set_num_threads, (1,)) as pool:
    print(sum(pool.imap(work, range(200), chunksize=8)), flush=True)
"""


def test_a_pool_forked_by_a_job_ends(tmp_path):
    """submitit's handler ignores SIGTERM in the job's process; a process the job forks takes
    SIGTERM's default back, or ``Pool.terminate`` would wait for its workers forever."""
    process = subprocess.Popen(
        [sys.executable, "-c", POOL_IN_A_JOB],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        start_new_session=True,  # its workers too are ended if it hangs
    )
    try:
        out, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise AssertionError("the pool's terminated workers never ended") from None
    assert process.returncode == 0 and out.split() == ["19900"]


def test_inline_trains_here_and_stops_at_max_steps(tmp_path, capsys):
    config = build_config("unet", "smoke", max_steps=1, progress=False)
    results = train_runs([(config, None), (config, None)], tmp_path, executor="inline")
    assert [(r.state, r.trained) for r in results] == [("partial", True)]
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "[1/1] started  unet-synthetic-smoke-seed0 (in this process)"
    assert re.fullmatch(r"\[1/1\] partial  unet-synthetic-smoke-seed0 in \d+\.\d min", lines[-2])
    results = train_runs([(config, None)], tmp_path, executor="inline")
    assert [(r.state, r.trained) for r in results] == [("partial", False)]


def test_a_run_asked_twice_with_two_configs_is_refused(tmp_path):
    config = build_config("unet", "smoke")
    assert len(plan([(config, None), (config, ""), (config, "b")], tmp_path)) == 2
    other = build_config("unet", "smoke", lr=0.5)
    with pytest.raises(ValueError, match=r"asked twice with different configs: lr: 0\.01 != 0\.5"):
        plan([(config, None), (other, None)], tmp_path)
    with pytest.raises(ValueError, match="unknown executor 'pbs'; valid: local, slurm, inline"):
        train_runs([(config, None)], tmp_path, executor="pbs")


def test_the_queue_watcher_reads_squeue_and_a_job_gone_from_it_has_ended():
    """A job absent from two looks in a row has ended; one look without it (a busy
    controller, a job being requeued) decides nothing."""
    watcher = QueueWatcher()
    for job_id in ("7", "8", "9"):
        watcher.register_job(job_id)

    def look(output: bytes) -> list[str]:
        watcher._info_dict.update(watcher.read_info(output))
        return [watcher.get_state(job, mode="cache") for job in ("7", "8", "9")]

    assert look(b"7|RUNNING\n8|PENDING\n9|RUNNING\n") == ["RUNNING", "PENDING", "RUNNING"]
    assert look(b"7|RUNNING\n8|PENDING\n") == ["RUNNING", "PENDING", "RUNNING"]
    assert look(b"7|RUNNING\n9|PENDING\n") == ["RUNNING", "PENDING", "PENDING"]  # back
    assert look(b"7|COMPLETED\n") == ["COMPLETED", "GONE", "PENDING"]  # 8: twice in a row
    assert [watcher.is_done(job, mode="cache") for job in ("7", "8", "9")] == [True, True, False]
    assert look(b"") == ["COMPLETED", "GONE", "GONE"]


@pytest.mark.slow
def test_a_notebook_s_plan_is_trained_by_runs_train_and_then_listed_as_finished(tmp_path, capsys):
    """``runs plan 01`` lists notebook 01's two runs as missing; ``runs train 01 --jobs 2``
    trains them; the plan then lists them as finished, under the directories the notebook's
    ``load_or_train`` looks for."""
    runs = str(tmp_path / "runs")
    assert main(["runs", "plan", "01", "--profile", "smoke", "--runs-dir", runs]) == 0
    before = capsys.readouterr().out.splitlines()
    runs_listed = [line for line in before if line.startswith("01 ")]
    assert len(runs_listed) == 2 and all(" missing " in line for line in runs_listed)
    assert before[-1].startswith("2 runs: 0 finished, 0 partial, 2 missing")
    command = ["runs", "train", "01", "--profile", "smoke", "--runs-dir", runs, "--jobs", "2"]
    assert main(command + ["--poll-seconds", "0.2"]) == 0
    capsys.readouterr()
    assert main(["runs", "plan", "01", "--profile", "smoke", "--runs-dir", runs]) == 0
    after = capsys.readouterr().out.splitlines()
    assert after[-1].startswith("2 runs: 2 finished, 0 partial, 0 missing")
    for key in ("unet", "seq2seg"):
        assert engine.is_finished(tmp_path / "runs" / f"{key}-synthetic-smoke-seed0")


def test_the_requeue_survives_the_sigterm_of_the_job_it_ends(tmp_path, monkeypatch):
    """``scontrol requeue`` ends the job that runs it, and Slurm's SIGTERM to the job's
    processes can reach it first (seen on this project's test cluster under load: the job then
    failed instead of resuming). A fake ``scontrol`` that receives that SIGTERM mid-way:
    submitit's own requeue fails, ours completes and puts the job's handler back."""
    from submitit.slurm.slurm import SlurmJobEnvironment

    from seqseg_lib.launch import requeue_outlives_its_teardown

    scontrol = tmp_path / "scontrol"
    scontrol.write_text('#!/bin/bash\nkill -TERM $$\nsleep 0.2\necho requeued "$@" >> log\n')
    scontrol.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setattr(SlurmJobEnvironment, "_requeue", SlurmJobEnvironment._requeue)
    handler = signal.signal(signal.SIGTERM, lambda *args: None)  # as submitit's, in a job
    try:
        if not getattr(SlurmJobEnvironment._requeue, "outlives_teardown", False):
            with pytest.raises(subprocess.CalledProcessError, match="SIGTERM"):
                SlurmJobEnvironment()._requeue(3)
        requeue_outlives_its_teardown()
        ours = signal.getsignal(signal.SIGTERM)
        SlurmJobEnvironment()._requeue(3)
        assert signal.getsignal(signal.SIGTERM) is ours
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert (tmp_path / "log").read_text() == "requeued requeue 7\n"


def test_runs_train_first_says_the_plan_s_minutes_as_runs_plan_does(tmp_path, capsys):
    """The first line of ``runs train`` (here of the default notebooks at ``cpu``) gives the
    minutes ``runs plan`` estimates, on this machine's cores."""
    notebooks = ["01", "02", "03", "04", "05", "06"]
    common = [*notebooks, "--profile", "cpu", "--runs-dir", str(tmp_path)]
    assert main(["runs", "plan", *common]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    left, unknown = re.search(r"([0-9.]+) left, and (\d+) runs of unknown length", last).groups()
    args = build_runs_parser().parse_args(["train", *common])
    print_plan(args, [(p.config, p.name) for p in planned_runs(args)])
    line = capsys.readouterr().out
    assert line.startswith("plan: 34 runs (0 finished, 0 partial, 34 not started), ")
    assert (
        f"about {left} min of training left, one run at a time on {available_cores()} CPU "
        f"cores, by benchmarks.csv ({unknown} runs not measured)"
    ) in line
    assert line.rstrip().endswith(f"; runs go to {tmp_path}")


def test_runs_plan_and_runs_list_a_run_being_trained_as_training(tmp_path, capsys):
    run = tmp_path / "unet-synthetic-smoke-seed0"
    with run_lock(run):  # as a process training it holds it
        assert main(["runs", "plan", "01", "--profile", "smoke", "--runs-dir", str(tmp_path)]) == 0
        held = capsys.readouterr().out
    assert main(["runs", "plan", "01", "--profile", "smoke", "--runs-dir", str(tmp_path)]) == 0
    released = capsys.readouterr().out
    assert "01  training " in held
    assert "1 missing, 1 training;" in held.splitlines()[-1]
    assert " training " not in released and "2 missing;" in released.splitlines()[-1]
