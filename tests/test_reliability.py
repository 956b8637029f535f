"""Faults, through the command line in subprocesses: a run killed with SIGKILL resumes to
bit-identical weights; a crash while a checkpoint is written leaves the previous one."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import REPO, untimed

from seqseg_lib import engine
from seqseg_lib.experiments import EXPERIMENTS

# Runs the real command line, but SIGKILLs itself in the middle of training step KILL_AT
# (after the forward pass, before the optimizer step) or while checkpoint number FAIL_SAVE
# is being written (half the bytes on disk).
HARNESS = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    from seqseg_lib import cli, engine

    kill_at = int(os.environ.get("KILL_AT", "0"))
    fail_save = int(os.environ.get("FAIL_SAVE", "0"))
    step, saves = engine.Trainer._train_step, [0]

    def train_step(self, images, targets):
        if self.position["global_step"] + 1 == kill_at:
            self.model(images.to(self.device) if hasattr(images, "to") else images)
            os.kill(os.getpid(), signal.SIGKILL)
        return step(self, images, targets)

    def save(state, handle):
        saves[0] += 1
        if saves[0] == fail_save:
            handle.write(b"PK\\x03\\x04" + bytes(1000))
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return torch.serialization.save(state, handle)

    engine.Trainer._train_step = train_step
    engine.torch.save = save
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


def final_weights(run_dir):
    return engine.load_checkpoint(run_dir / engine.CHECKPOINT)["model"]


def assert_identical(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resuming"


@pytest.mark.slow
@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_sigkill_and_resume_is_bit_identical(experiment, tmp_path):
    common = [experiment, "--profile", "smoke"]
    straight = run([*common, "--out", str(tmp_path / "straight")])
    assert straight.returncode == 0, straight.stderr
    killed_dir = tmp_path / "killed"
    killed = run([*common, "--out", str(killed_dir), "--checkpoint-every", "3"], KILL_AT=4)
    assert killed.returncode == -9, killed.stderr  # really killed, not finished
    position = engine.load_checkpoint(killed_dir / engine.CHECKPOINT)["position"]
    assert position["global_step"] == 3  # mid-epoch for every smoke preset
    resumed = run([*common, "--out", str(killed_dir), "--checkpoint-every", "3"])
    assert resumed.returncode == 0, resumed.stderr
    assert_identical(final_weights(tmp_path / "straight"), final_weights(killed_dir))
    assert untimed(engine.read_metrics(killed_dir)) == untimed(
        engine.read_metrics(tmp_path / "straight")
    )


@pytest.mark.slow
def test_crash_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path):
    args = ["unet", "--profile", "smoke", "--out", str(tmp_path), "--checkpoint-every", "1"]
    crashed = run(args, FAIL_SAVE=3)
    assert crashed.returncode == -9
    state = engine.load_checkpoint(tmp_path / engine.CHECKPOINT)
    assert state["position"]["global_step"] == 2
    assert (tmp_path / "checkpoint.pt.tmp").exists()  # the half-written file, never renamed
    resumed = run(args)
    assert resumed.returncode == 0, resumed.stderr
    assert engine.is_finished(tmp_path)
