"""The command line, in subprocesses: train, resume, evaluate, and refusals."""

import argparse
import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

from seqseg_lib.__main__ import main
from seqseg_lib.data.labels import CITYSCAPES


def cli(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "seqseg_lib", *args],
        cwd=REPO,
        env=os.environ | {"SEQSEG_PROGRESS": "none"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def strict_json(text):
    """Parse JSON, refusing NaN and Infinity, which are not JSON."""

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.slow
def test_train_resume_and_evaluate(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "unet", "--profile", "smoke", "--out", out, "--max-steps", "2"]) == 0
    capsys.readouterr()
    assert main(["train", "unet", "--profile", "smoke", "--out", out]) == 0
    assert strict_json(capsys.readouterr().out)["epoch"] == 1
    files = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    assert main(["evaluate", out]) == 0
    result = strict_json(capsys.readouterr().out)
    assert 0 <= result["accuracy"] <= 1
    assert list(result["iou"]) == list(CITYSCAPES.eval_names)
    assert None in result["iou"].values(), "classes absent from 4 smoke images: null, not NaN"
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == files


def test_names_lists_the_valid_names(capsys):
    assert main(["names", "profiles"]) == 0
    assert capsys.readouterr().out.split() == ["smoke", "cpu", "paper"]
    assert main(["names", "datasets", "--experiment", "hungarian-unet"]) == 0
    assert capsys.readouterr().out.split() == ["synthetic", "cityscapes"]
    assert main(["names", "experiments"]) == 0
    assert "mnist-hard" in capsys.readouterr().out.split()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "segformer", "--out", "x"], "invalid choice: 'segformer' (choose from"),
        (["train", "unet", "--profile", "gpu", "--out", "x"], "choose from 'smoke', 'cpu'"),
        (["train", "unet", "--dataset", "ade", "--out", "x"], "invalid choice: 'ade'"),
        (["train", "unet", "--dataset", "mnist", "--out", "x"], "valid: synthetic, cityscapes"),
        (["train", "unet", "--device", "tpu", "--out", "x"], "expected auto, cpu, cuda"),
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


def test_train_says_its_size_and_where_it_stopped(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SEQSEG_PROGRESS", "log")
    assert (
        main(["train", "unet", "--profile", "smoke", "--out", str(tmp_path), "--max-steps", "1"])
        == 0
    )
    captured = capsys.readouterr()
    assert captured.out.startswith("[unet] 122,258 parameters, cpu (")
    assert "stopped at step 1, epoch 1 of 2 at step 1 of 2 (--max-steps 1" in captured.err
    assert f"checkpoint {tmp_path / 'checkpoint.pt'}" in captured.err
    assert json.loads(captured.out[captured.out.index("{") :])["partial"] is True


def test_help_and_argument_errors_need_no_torch():
    """The command line imports torch only for a command that needs it: ``--help`` and a
    mistyped argument answer at once, and list the registry's experiments."""
    from seqseg_lib.config import DATASET_NAMES, EXPERIMENT_NAMES
    from seqseg_lib.data import DATASETS
    from seqseg_lib.experiments import EXPERIMENTS

    assert EXPERIMENT_NAMES == tuple(EXPERIMENTS)
    assert DATASET_NAMES == tuple(DATASETS)
    probe = (
        "import sys\nfrom seqseg_lib import __main__ as cli\n"
        "try:\n    cli.main(['train', 'unet', '--profile', 'gpu', '--out', 'x'])\n"
        "except SystemExit as stop:\n    print(stop.code, 'torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.split() == ["2", "False"], result.stdout + result.stderr
    assert "invalid choice: 'gpu'" in result.stderr


def command_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser by its command line: the top level, its commands, and the
    commands of ``runs`` (``plan``, ``train``), which have a parser of their own."""
    from seqseg_lib.__main__ import build_parser, build_runs_parser

    parsers = {"": build_parser()}
    for prefix, parser in (("", parsers[""]), ("runs ", build_runs_parser())):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers |= {prefix + name: sub for name, sub in action.choices.items()}
    return parsers


def test_every_option_of_every_command_has_help_and_each_command_an_example():
    parsers = command_parsers()
    assert {"train", "evaluate", "runs", "runs plan", "runs train", "summarize", "names"} <= set(
        parsers
    )
    for command, parser in parsers.items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, (command, action.dest)
        text = parser.format_help()
        shown = command or "train"  # the top level's example trains
        _, example, examples = text.partition("example:\n")
        assert example and examples.startswith(f"  python -m seqseg_lib {shown}"), (command, text)
        assert "`" not in text, f"reStructuredText in {command!r}'s help"
    top = parsers[""].format_help()
    for command in ("runs plan", "runs train", "evaluate DIR", "summarize", "names"):
        assert f"\n  {command}" in top


def test_train_help_shows_defaults_and_choices():
    text = " ".join(command_parsers()["train"].format_help().split())
    assert "--profile {smoke,cpu,paper}" in text and "default: cpu" in text
    assert "--device {auto,cpu,cuda,cuda:N}" in text
    assert "--dataset {synthetic,cityscapes,camvid,mnist}" in text
    assert "(default 0)" in text  # --seed


def test_device_accepts_one_gpu_of_several():
    from seqseg_lib.__main__ import parse_args

    args = parse_args(["train", "unet", "--device", "cuda:1", "--out", "x"])
    assert args.device == "cuda:1"


def test_runs_lists_each_run_s_state_without_loading_checkpoints(tmp_path, monkeypatch, capsys):
    """``python -m seqseg_lib runs``: finished, partial (stopped by --max-steps) and missing
    (a config, no checkpoint yet), read from status.json (no checkpoint is loaded)."""
    from seqseg_lib import runs

    common = ["--profile", "smoke", "--device", "cpu"]
    assert main(["train", "unet", *common, "--out", str(tmp_path / "done")]) == 0
    assert (
        main(["train", "unet", *common, "--out", str(tmp_path / "half"), "--max-steps", "1"]) == 0
    )
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text((tmp_path / "done" / "config.json").read_text())
    capsys.readouterr()

    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint was loaded")

    monkeypatch.setattr(runs, "load_checkpoint", refuse)
    assert main(["runs", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["finished", "missing", "partial"]
    assert lines[2].endswith("half") and "step      1" in lines[2]
