"""``benchmarks/probe.py``: its rows in ``benchmarks.csv``, its section of ``benchmarks.md``
replaced when rerun (the others kept), a failing part reported while the next runs, and the
CUDA branch of its step measurement (peak memory) with ``torch.cuda`` stood in for."""

import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import probe  # noqa: E402

from seqseg_lib import measured  # noqa: E402
from seqseg_lib.experiments import EXPERIMENTS, build_config  # noqa: E402


def run_probe(out, *parts):
    return subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "probe.py"), "--profile", "smoke"]
        + ["--device", "cpu", "--steps", "2", "--warm", "1", "--out", str(out), "--parts"]
        + list(parts),
        env=os.environ | {"PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_rows_and_a_section_replaced_when_rerun(tmp_path):
    (tmp_path / "benchmarks.md").write_text("# Benchmarks\n\n## cpu profile, cpu\n\nkept\n")
    first = run_probe(tmp_path, "eval")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "== probe budget: 1 warm-up + 2 timed steps" in first.stdout
    rows = measured.read(tmp_path / "benchmarks.csv")
    assert [r["experiment"] for r in rows] == list(EXPERIMENTS)
    assert {r["quantity"] for r in rows} == {"eval_ms_per_image"} and all(
        r["value"] > 0 and r["profile"] == "smoke" for r in rows
    )
    again = run_probe(tmp_path, "eval")
    assert again.returncode == 0, again.stdout + again.stderr
    text = (tmp_path / "benchmarks.md").read_text()
    assert text.count("## probe, smoke profile, cpu") == 1 and "kept" in text
    assert text.count("### eval") == 1
    # appended: the first run's rows stay (``measured.latest`` reads the later ones)
    assert len(measured.read(tmp_path / "benchmarks.csv")) == 2 * len(EXPERIMENTS)


def test_a_failing_part_is_reported_and_the_next_one_runs(tmp_path, monkeypatch, capsys):
    def broken(args, device, rows, lines):
        raise RuntimeError("no such kernel")

    def fine(args, device, rows, lines):
        rows.add(build_config("unet", "smoke"), "step_s", 0.5, 2)
        lines.append("fine")

    monkeypatch.setitem(probe.PART_FUNCTIONS, "steps", broken)
    monkeypatch.setitem(probe.PART_FUNCTIONS, "eval", fine)
    argv = ["probe.py", "--profile", "smoke", "--device", "cpu", "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv + ["--parts", "steps", "eval"])
    assert probe.main() == 1
    text = (tmp_path / "benchmarks.md").read_text()
    assert "**Failed**: RuntimeError: no such kernel" in text and "fine" in text
    assert [r["quantity"] for r in measured.read(tmp_path / "benchmarks.csv")] == ["step_s"]
    assert "failed parts: steps" in capsys.readouterr().out


def test_the_cuda_peak_is_the_allocators_over_the_timed_steps(monkeypatch):
    calls = []

    class Step:
        def __init__(self, config, batch_size, device):
            pass

        def __call__(self):
            calls.append("warm")

        def seconds(self):
            calls.append("timed")
            return 0.25

    monkeypatch.setattr(probe, "TrainingStep", Step)
    monkeypatch.setattr(probe, "synchronize", lambda device: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda d: calls.append("reset"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d: 3 * 2**20)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    config = build_config("unet", "smoke")
    seconds, peak = probe.dummy_steps(config, torch.device("cuda"), steps=3, warm=2)
    assert (seconds, peak) == (0.25, 3.0)
    assert calls == ["warm", "warm", "reset", "timed", "timed", "timed"]
    assert probe.dummy_steps(config, torch.device("cpu"), steps=1, warm=1)[1] is None
