"""Faults, through the command line in subprocesses: a run killed with SIGKILL resumes to
bit-identical weights; a crash while a checkpoint or ``metrics.jsonl`` is written leaves the
previous file; a signal that arrives while a checkpoint is written is handled once it is."""

import io
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import REPO, untimed
from test_tensorboard import events, scalars

from seqseg_lib import __main__ as cli
from seqseg_lib import engine, runs
from seqseg_lib.experiments import EXPERIMENTS

# Runs the real command line, but SIGKILLs itself at the optimizer update of training step
# KILL_AT (after its forward and backward passes), while checkpoint number FAIL_SAVE is being
# written (half the bytes on disk), or when a temporary copy of metrics.jsonl is about to be
# flushed to disk (FAIL_METRICS=1). Only public functions of torch and os are wrapped.
HARNESS = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    from seqseg_lib import __main__ as cli

    kill_at = int(os.environ.get("KILL_AT", "0"))
    fail_save = int(os.environ.get("FAIL_SAVE", "0"))
    fail_metrics = os.environ.get("FAIL_METRICS") == "1"
    adam_step, torch_save, fsync = torch.optim.Adam.step, torch.save, os.fsync
    steps, saves = [0], [0]

    def step(self, *args, **kwargs):
        steps[0] += 1
        if steps[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return adam_step(self, *args, **kwargs)

    def save(state, handle):
        saves[0] += 1
        if saves[0] == fail_save:
            handle.write(b"PK\\x03\\x04" + bytes(1000))
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return torch_save(state, handle)

    def sync(fd):
        if fail_metrics and os.readlink(f"/proc/self/fd/{fd}").endswith("metrics.jsonl.tmp"):
            os.kill(os.getpid(), signal.SIGKILL)
        return fsync(fd)

    torch.optim.Adam.step, torch.save, os.fsync = step, save, sync
    sys.exit(cli.main(sys.argv[1:]))
    """
)


def run(args, **env):
    return subprocess.run(
        [sys.executable, "-c", HARNESS, "train", *args],
        cwd=REPO,
        env=os.environ | {"SEQSEG_PROGRESS": "none"} | {k: str(v) for k, v in env.items()},
        capture_output=True,
        text=True,
        timeout=600,
    )


def train_here(*args):
    """The command line in this process (no interpreter start-up): its exit status."""
    return cli.main(["train", *args])


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """``straight(experiment)``: the run directory of an uninterrupted smoke run."""
    done = {}

    def run_dir(experiment):
        if experiment not in done:
            done[experiment] = tmp_path_factory.mktemp(experiment)
            assert train_here(experiment, "--profile", "smoke", "--out", str(done[experiment])) == 0
        return done[experiment]

    return run_dir


def final_weights(run_dir):
    return engine.load_checkpoint(run_dir / engine.CHECKPOINT)["model"]


def assert_identical(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resuming"


def assert_same_run(run_dir, reference):
    assert_identical(final_weights(reference), final_weights(run_dir))
    assert untimed(engine.read_metrics(run_dir)) == untimed(engine.read_metrics(reference))


@pytest.mark.slow
@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_sigkill_and_resume_is_bit_identical(experiment, tmp_path, straight):
    args = [experiment, "--profile", "smoke", "--out", str(tmp_path), "--checkpoint-every", "3"]
    killed = run(args, KILL_AT=4)
    assert killed.returncode == -9, killed.stderr  # really killed, not finished
    position = engine.load_checkpoint(tmp_path / engine.CHECKPOINT)["position"]
    assert position["global_step"] == 3  # mid-epoch for every smoke preset
    assert train_here(*args) == 0
    assert_same_run(tmp_path, straight(experiment))
    # TensorBoard: the records' events those of the straight run, each step once
    resumed, whole = events(tmp_path), events(straight(experiment))
    assert scalars(resumed, "val/loss") == scalars(whole, "val/loss")
    steps = [step for step, _ in scalars(resumed, "train_step/loss")]
    assert steps == sorted(set(steps))
    assert steps[-1] == engine.read_metrics(tmp_path)[-1]["global_step"]


@pytest.mark.slow
def test_crash_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path):
    args = ["unet", "--profile", "smoke", "--out", str(tmp_path), "--checkpoint-every", "1"]
    crashed = run(args, FAIL_SAVE=3)
    assert crashed.returncode == -9
    state = engine.load_checkpoint(tmp_path / engine.CHECKPOINT)
    assert state["position"]["global_step"] == 2
    assert (tmp_path / "checkpoint.pt.tmp").exists()  # the half-written file, never renamed
    assert train_here(*args) == 0
    assert engine.is_finished(tmp_path)


@pytest.mark.slow
def test_a_kill_while_metrics_are_rewritten_loses_no_history(tmp_path, straight):
    args = ["unet", "--profile", "smoke", "--out", str(tmp_path)]  # 2 epochs of 2 steps
    assert train_here(*args, "--max-steps", "3") == 0
    # the partial record of epoch 1 (stopped at step 3): resuming must drop it, which rewrites
    # metrics.jsonl; a kill during that rewrite must lose nothing
    metrics = tmp_path / engine.METRICS
    assert [r.get("partial", False) for r in engine.read_metrics(tmp_path)] == [False, True]
    history = metrics.read_bytes()
    killed = run(args, FAIL_METRICS=1)
    assert killed.returncode == -9, "not killed while rewriting: " + killed.stderr
    assert metrics.read_bytes() == history, "the history was lost or changed"
    assert train_here(*args) == 0
    assert_same_run(tmp_path, straight("unet"))


def exit_as_submitit_requeues(signum, frame):
    sys.exit(-1)  # submitit's handler of the time-limit signal, once the job is requeued


def a_dataloader_worker_died(signum, frame):
    raise RuntimeError("DataLoader worker is killed by signal")  # the DataLoader's SIGCHLD


@pytest.mark.parametrize(
    ("signum", "handler", "raised"),
    [
        (signal.SIGUSR2, exit_as_submitit_requeues, SystemExit),
        (signal.SIGINT, signal.default_int_handler, KeyboardInterrupt),  # Ctrl-C
        (signal.SIGCHLD, a_dataloader_worker_died, RuntimeError),
    ],
)
def test_a_signal_during_a_checkpoint_is_handled_once_it_is_written(
    tmp_path, monkeypatch, signum, handler, raised
):
    """The signal arrives with half the checkpoint's bytes written: its handler's exception
    comes after the rename, the checkpoint whole, the handler back in place."""
    save = torch.save

    def save_signalled_halfway(state, handle):
        data = io.BytesIO()
        save(state, data)
        handle.write(data.getvalue()[: len(data.getvalue()) // 2])
        os.kill(os.getpid(), signum)
        handle.write(data.getvalue()[len(data.getvalue()) // 2 :])

    monkeypatch.setattr(torch, "save", save_signalled_halfway)
    previous = signal.signal(signum, handler)
    try:
        state = {"model": {"weight": torch.arange(6.0)}, "position": {"global_step": 3}}
        with pytest.raises(raised):
            runs.save_checkpoint(tmp_path / engine.CHECKPOINT, state)
        assert signal.getsignal(signum) is handler
    finally:
        signal.signal(signum, previous)
    loaded = engine.load_checkpoint(tmp_path / engine.CHECKPOINT)
    assert torch.equal(loaded["model"]["weight"], state["model"]["weight"])
    assert loaded["position"] == state["position"]
    assert not (tmp_path / "checkpoint.pt.tmp").exists()
