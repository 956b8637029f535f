"""The command line, in subprocesses: train, resume, evaluate, and refusals."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

from seqseg_lib.cli import main


def cli(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "seqseg_lib", *args],
        cwd=REPO,
        env=os.environ | {"SEQSEG_PROGRESS": "none"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_train_resume_and_evaluate(tmp_path):
    out = str(tmp_path / "run")
    first = cli("train", "unet", "--profile", "smoke", "--out", out, "--max-steps", "2")
    assert first.returncode == 0, first.stderr
    second = cli("train", "unet", "--profile", "smoke", "--out", out)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["epoch"] == 1
    evaluated = cli("evaluate", out)
    assert evaluated.returncode == 0, evaluated.stderr
    assert 0 <= json.loads(evaluated.stdout)["accuracy"] <= 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "segformer", "--out", "x"], "invalid choice: 'segformer' (choose from"),
        (["train", "unet", "--profile", "gpu", "--out", "x"], "choose from 'smoke', 'cpu'"),
        (["train", "unet", "--dataset", "ade", "--out", "x"], "valid: synthetic, cityscapes"),
        (["train", "unet", "--max-steps", "-3", "--out", "x"], "expected a positive integer"),
        (["train", "unet", "--max-steps", "ten", "--out", "x"], "expected a positive integer"),
        (["evaluate", "nowhere"], "is not a run directory"),
    ],
)
def test_bad_arguments_are_refused_with_a_clear_message(args, message, capsys):
    try:
        status = main(args)
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    assert status == 2
    assert message in capsys.readouterr().err


def test_the_module_entry_point_reports_errors_with_status_2():
    result = cli("train", "unet", "--max-steps", "0", "--out", "x")
    assert result.returncode == 2 and "expected a positive integer" in result.stderr
