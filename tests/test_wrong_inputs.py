"""Every wrong input a user can give ends in one line that names the file or the option, what
was expected and what to do, with a non-zero exit status, no traceback, and nothing lost."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

from seqseg_lib import engine, launch, runs
from seqseg_lib.__main__ import main
from seqseg_lib.experiments import build_config


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Two finished smoke runs (U-Net, Seq2Seg), trained once for the module: copy them."""
    folder = tmp_path_factory.mktemp("finished")
    for name in ("unet", "seq2seg"):
        engine.load_or_train(build_config(name, "smoke"), folder)
    return folder


def copied(finished, tmp_path, name="unet"):
    run = f"{name}-synthetic-smoke-seed0"
    shutil.copytree(finished / run, tmp_path / "runs" / run)
    return tmp_path / "runs" / run


def status_and_error(args, capsys):
    try:
        status = main(args)
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.err


def one_line(error: str) -> str:
    lines = [line for line in error.splitlines() if line.strip()]
    assert len(lines) == 1, error
    assert "Traceback" not in error
    return lines[0]


def test_a_torn_last_record_of_a_finished_run_is_restored_not_dropped(finished, tmp_path, capsys):
    run = copied(finished, tmp_path)
    whole = (run / runs.METRICS).read_text()
    records = [json.loads(line) for line in whole.splitlines()]
    torn = whole[: whole.rindex("\n", 0, len(whole) - 1) + 1] + whole.splitlines()[-1][:40]
    (run / runs.METRICS).write_text(torn)
    assert not runs.is_finished(run)  # so that load_or_train trains it (and repairs it)
    assert [row["state"] for row in runs.run_states(run.parent)] == ["unrecorded"]
    args = ["train", "unet", "--profile", "smoke", "--out", str(run)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "repaired" in captured.err and "epoch 2" in captured.err
    assert runs.read_metrics(run) == records  # the record as written, not a new one
    printed = json.loads(captured.out)  # (NaN printed as null)
    assert (printed["epoch"], printed["train"]["loss"]) == (1, records[-1]["train"]["loss"])
    assert [row["state"] for row in runs.run_states(run.parent)] == ["finished"]


def test_a_config_of_another_experiment_names_its_file(finished, tmp_path, capsys):
    run = copied(finished, tmp_path)
    seq2seg = json.loads((finished / "seq2seg-synthetic-smoke-seed0" / runs.CONFIG).read_text())
    values = json.loads((run / runs.CONFIG).read_text())
    (run / runs.CONFIG).write_text(json.dumps(values | {"model": seq2seg["model"]}))
    status, error = status_and_error(
        ["train", "unet", "--profile", "smoke", "--out", str(run)], capsys
    )
    line = one_line(error)
    assert status == 2 and str(run / runs.CONFIG) in line and "restore it" in line


def test_a_config_that_is_not_json_names_its_file_and_the_listing_goes_on(
    finished, tmp_path, capsys
):
    broken, fine = copied(finished, tmp_path), copied(finished, tmp_path, "seq2seg")
    (broken / runs.CONFIG).write_text("{\n")
    status, error = status_and_error(
        ["train", "unet", "--profile", "smoke", "--out", str(broken)], capsys
    )
    line = one_line(error)
    assert status == 2 and str(broken / runs.CONFIG) in line and "expected a JSON object" in line
    assert main(["runs", str(tmp_path / "runs")]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].startswith(f"finished epoch   2/2   step      4  {fine.name}")
    assert listed[1].startswith(f"unreadable {broken.name}: ") and "config.json" in listed[1]


def test_a_config_and_a_checkpoint_that_disagree_are_refused_everywhere(finished, tmp_path, capsys):
    """Seq2Seg's config.json beside U-Net's checkpoint: train and evaluate refuse, naming both
    files and the differing fields."""
    run = copied(finished, tmp_path)
    seq2seg = finished / "seq2seg-synthetic-smoke-seed0"
    shutil.copy(seq2seg / runs.CONFIG, run / runs.CONFIG)
    files = {path.name: path.read_bytes() for path in run.iterdir()}
    for args in (
        ["train", "seq2seg", "--profile", "smoke", "--out", str(run)],
        ["evaluate", str(run)],
    ):
        status, error = status_and_error(args, capsys)
        line = one_line(error)
        assert status == 2 and "disagree" in line and "experiment: 'unet' != 'seq2seg'" in line
        assert str(run / runs.CHECKPOINT) in line and str(run / runs.CONFIG) in line
    assert {path.name: path.read_bytes() for path in run.iterdir()} == files  # nothing lost


def test_a_damaged_checkpoint_says_what_to_do(finished, tmp_path, capsys):
    run = copied(finished, tmp_path)
    data = (run / runs.CHECKPOINT).read_bytes()
    (run / runs.CHECKPOINT).write_bytes(data[: len(data) // 2])
    for args in (
        ["train", "unet", "--profile", "smoke", "--out", str(run)],
        ["evaluate", str(run)],
    ):
        status, error = status_and_error(args, capsys)
        line = one_line(error)
        assert status == 2 and str(run / runs.CHECKPOINT) in line
        assert line.endswith(
            "restore it from a copy, or delete it to train the run again from the start"
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "unet", "--device", "tpu", "--out", "{tmp}/run"], "expected auto, cpu, cuda"),
        (["evaluate", "{tmp}/nowhere", "--device", "tpu"], "expected auto, cpu, cuda"),
        (
            ["train", "unet", "--profile", "smoke", "--out", "{tmp}/file"],
            "--out '{tmp}/file' is a file",
        ),
        (["summarize", "{tmp}/nowhere"], "is not a folder: name the folder the notebooks wrote"),
        (["summarize", "{tmp}/empty"], "holds no table of the report: run the notebooks first"),
        (["runs", "{tmp}/nowhere"], "is not a folder: name the folder of run directories"),
        (["runs", "train", "01", "--jobs", "0"], "./run_all.sh --jobs 0 means: no training"),
    ],
)
def test_wrong_arguments_end_in_one_line_and_status_2(args, message, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    (tmp_path / "empty").mkdir()
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    status, error = status_and_error(args, capsys)
    # (argparse's errors come after its usage line)
    last = error.splitlines()[-1] if "usage:" in error else one_line(error)
    assert status == 2 and message.replace("{tmp}", str(tmp_path)) in last
    assert "Traceback" not in error
    assert not (tmp_path / "empty" / "README.md").exists()
    assert not (tmp_path / "run").exists()


def test_the_device_is_checked_before_anything_is_written(tmp_path, capsys):
    status, error = status_and_error(
        ["train", "unet", "--profile", "smoke", "--device", "tpu", "--out", str(tmp_path / "r")],
        capsys,
    )
    assert status == 2 and "device 'tpu'" in one_line(error) and not (tmp_path / "r").exists()


def test_more_jobs_than_runs_or_cores_are_said_to_be_capped(monkeypatch):
    monkeypatch.setattr(launch, "visible_gpus", list)  # a machine without GPUs
    assert launch.jobs_note("local", 999, 34, 34, 2) == (
        "--jobs 999: 34 run(s) to train, so 34 job(s) at a time; 34 jobs on 2 cores: one "
        "thread each, sharing the cores (no faster than --jobs 2)"
    )
    assert (
        launch.jobs_note("local", 999, 3, 3, 64)
        == "--jobs 999: 3 run(s) to train, so 3 job(s) at a time"
    )
    assert (
        launch.jobs_note("local", 2, 2, 34, 2) is None
        and launch.jobs_note("local", None, 2, 34, 2) is None
    )


OPTIONS = ["--profile", "--dataset", "--data-root", "--mnist-root", "--runs-dir"]
OPTIONS += ["--reports-dir", "--max-steps", "--seeds", "--jobs"]


@pytest.mark.parametrize("option", OPTIONS)
def test_run_all_options_without_a_value_are_a_usage_error(option):
    for args in ([option], [option, "--dry-run"]):
        done = subprocess.run(
            ["bash", str(REPO / "run_all.sh"), *args],
            env=os.environ | {"SEQSEG_PYTHON": sys.executable},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert (
            done.stderr.startswith(f"run_all.sh: {option} needs ") and "unbound" not in done.stderr
        )
        assert len(done.stderr.splitlines()) == 1 and not done.stdout


def test_a_data_skip_names_the_variable_that_points_at_the_data(tmp_path):
    (tmp_path / "test_uses_mnist.py").write_text("def test_it(mnist_root):\n    pass\n")
    shutil.copy(REPO / "tests" / "conftest.py", tmp_path / "conftest.py")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", "-rs", "-q"],
        cwd=tmp_path,
        env=os.environ | {"MNIST_ROOT": str(tmp_path / "nowhere")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "1 skipped" in done.stdout, done.stdout + done.stderr
    assert "set MNIST_ROOT to their folder" in done.stdout
