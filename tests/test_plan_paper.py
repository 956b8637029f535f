"""The plan's steps and minutes: ``plan.planned_steps`` against the engine's own loader and
steps, the minutes of ``runs plan`` from a ``benchmarks.csv`` (``plan.measured_speeds``), and
the validation cadence of ``paper`` runs."""

import importlib
import math

import pytest
from conftest import REPO
from torch.utils.data import DataLoader

from seqseg_lib import distributed, measured, paper, plan
from seqseg_lib.__main__ import main
from seqseg_lib.claims import semantic_scale
from seqseg_lib.engine import Trainer, train
from seqseg_lib.experiments import EXPERIMENTS, build_config, variant_config
from seqseg_lib.loading import EpochSampler, epoch_steps


@pytest.mark.parametrize("experiment", list(EXPERIMENTS))
def test_planned_steps_are_the_engine_s_batches_for_every_experiment(experiment, tmp_path):
    """At smoke, with a last partial batch kept or dropped, and cut by ``max_steps``."""
    preset = build_config(experiment, "smoke", device="cpu", progress=False)
    num_train = 2 * preset.batch_size + 1  # two whole batches and one item
    for drop_last in (True, False):
        config = build_config(
            experiment,
            "smoke",
            device="cpu",
            progress=False,
            num_train=num_train,
            drop_last=drop_last,
        )
        trainer = Trainer(config, tmp_path / f"{experiment}-{drop_last}")
        assert len(trainer.loader(0)) == 2 + (not drop_last)
        assert plan.planned_steps(config) == config.epochs * len(trainer.loader(0))
    limited = build_config(experiment, "smoke", num_train=num_train, drop_last=False, max_steps=4)
    assert plan.planned_steps(limited) == min(4, limited.epochs * 3)


def test_a_run_takes_the_planned_steps(tmp_path):
    """Trained, not counted: a last partial batch of 2 kept over 2 epochs, then cut."""
    common = {"device": "cpu", "progress": False, "num_train": 6, "drop_last": False}
    config = build_config("unet", "smoke", **common)
    assert config.batch_size == 4 and config.epochs == 2
    assert train(config, tmp_path / "whole")[-1]["global_step"] == plan.planned_steps(config) == 4
    cut = build_config("unet", "smoke", **common, max_steps=3)
    assert train(cut, tmp_path / "cut")[-1]["global_step"] == plan.planned_steps(cut) == 3


def test_the_mnist_paper_preset_is_the_report_s_steps():
    """Sec. 3.3's 11,256 steps: 12 MNIST epochs of ceil(60,000 / 64) = 938 steps, the last
    partial batch kept (``drop_last=False``); dropping it would give 12 x 937 = 11,244."""
    for experiment in ("mnist-easy", "mnist-hard"):
        config = build_config(experiment, "paper", "mnist")
        assert (config.epochs, config.batch_size, config.num_train) == (12, 64, 60_000)
        assert not config.drop_last
        assert config.epochs * math.ceil(config.num_train / config.batch_size) == 11_256
        assert plan.planned_steps(config) == paper.MNIST_STEPS == 11_256
        dropped = build_config(experiment, "paper", "mnist", drop_last=True)
        assert plan.planned_steps(dropped) == 11_244
    # the street scenes: Sec. 2.2's 123 whole minibatches of 24 per epoch
    assert plan.planned_steps(build_config("seq2seg", "paper", "synthetic")) == 45 * 123


@pytest.mark.parametrize("world", [2, 3, 4])
def test_epoch_steps_under_several_processes_are_each_process_s_batches(world, monkeypatch):
    """Every process's share of an epoch (``distributed.shard_batches``) in batches of its
    share of the batch: as many as ``epoch_steps`` says, the same on every process."""
    batch = 12
    monkeypatch.setattr(distributed, "world_size", lambda: world)
    for size in range(1, 40):
        for drop_last in (True, False):
            counts = set()
            for rank in range(world):
                monkeypatch.setattr(distributed, "rank", lambda rank=rank: rank)
                share = EpochSampler(size, 0, 0, 0, batch, drop_last)
                counts.add(len(DataLoader(list(share), batch_size=batch // world)))
            assert counts == {epoch_steps(size, batch, drop_last, world)}, (size, drop_last)
    # 2 whole batches and 1 item: kept by one process, dropped by two (one item for two)
    assert [epoch_steps(25, 12, False, n) for n in (1, 2)] == [3, 2]
    assert [epoch_steps(26, 12, False, n) for n in (2, 3)] == [3, 2]
    assert epoch_steps(26, 12, True, 1) == 2


def _rows(experiment, quantity, value, **columns):
    row = {
        "device_type": "cuda",
        "device": "cuda (NVIDIA H200)",
        "profile": "paper",
        "experiment": experiment,
        "precision": "bfloat16",
        "mode": "eager",
        "concurrent": 1,
        "quantity": quantity,
        "value": value,
        "rounds": 1,
        "date": "2026-12-01",
        "torch": "2.11.0",
        "commit": "abc1234",
    }
    return row | columns


def test_speeds_prefer_the_real_step_the_precision_the_fastest_mode_and_the_latest(tmp_path):
    path = tmp_path / "benchmarks.csv"
    measured.append(
        path,
        [
            _rows("unet", "step_s", 0.01),
            _rows("unet", "train_step_s", 0.030),
            _rows("unet", "train_step_s", 0.020),  # measured again: replaces 0.030
            _rows("unet", "train_step_s", 0.001, precision="float32"),  # not paper's on a GPU
            _rows("unet", "train_step_s", 0.001, concurrent=2),  # shared: not one run's
            _rows("unet", "run_overhead_s", 30.0),
            _rows("seq2seg", "step_s", 0.040),  # no real step measured: the dummy one
            _rows("seq2seg", "step_s", 0.025, mode="graphs"),
            _rows("seq2seg", "capture_s", 5.0, mode="graphs"),
            _rows("seq2seg", "run_overhead_s", 40.0),  # eager's, for the graphs mode too
            _rows("mnist-easy", "peak_mib", 100.0),  # memory is no speed
            _rows(
                "unet", "train_step_s", 0.5, device_type="cpu", profile="cpu", precision="float32"
            ),
        ],
    )
    speeds = plan.measured_speeds(path, "paper", "cuda")
    assert set(speeds) == {"unet", "seq2seg"}
    assert (speeds["unet"].step_s, speeds["unet"].overhead_s) == (0.020, 30.0)
    assert speeds["unet"].source.startswith("train_step_s, bfloat16, eager, cuda (NVIDIA H200)")
    assert (speeds["seq2seg"].step_s, speeds["seq2seg"].overhead_s) == (0.025, 45.0)
    assert plan.measured_speeds(path, "cpu", "cpu")["unet"].step_s == 0.5
    assert plan.measured_speeds(path, "smoke", "cpu") == {}
    assert plan.measured_speeds(tmp_path / "none.csv", "paper", "cuda") == {}


def test_runs_plan_at_paper_gives_minutes_from_the_csv(tmp_path, capsys):
    """Minutes per run and notebook for the measured experiments, ``?`` for the others, and
    which experiments have no measurement."""
    path = tmp_path / "benchmarks.csv"
    measured.append(
        path,
        [
            _rows("seq2seg", "train_step_s", 0.03),
            _rows("seq2seg", "run_overhead_s", 60.0),
            _rows("unet", "train_step_s", 0.02),
        ],
    )
    runs = str(tmp_path / "runs")
    command = ["runs", "plan", "01", "03", "--profile", "paper", "--runs-dir", runs]
    assert main([*command, "--benchmarks", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    by_directory = {line.split()[-1]: line for line in lines if line.startswith(("01 ", "03 "))}
    seq2seg = (5535 * 0.03 + 60) / 60  # 3.8 min
    assert f" 5535 steps {seq2seg:6.1f} min" in by_directory["seq2seg-synthetic-paper-seed0"]
    assert f" 3690 steps {3690 * 0.02 / 60:6.1f} min" in by_directory["unet-synthetic-paper-seed0"]
    assert " 11256 steps      ? min" in by_directory["mnist-easy-mnist-paper-seed0"]
    total = seq2seg + 3690 * 0.02 / 60
    assert f"notebook 01: 2 runs, about {total:.1f} min in all, {total:.1f} left" in lines
    assert any(line.startswith("notebook 03: 3 runs, about 0.0 min") for line in lines)
    missing = [line for line in lines if line.startswith("no measurement in")]
    assert len(missing) == 1 and " of mnist-easy, mnist-hard at paper on cuda " in missing[0]
    assert lines[-1].startswith("5 runs: 0 finished, 0 partial, 5 missing; about")
    assert lines[-1].endswith("and 3 runs of unknown length, on cuda")


def test_paper_validates_every_five_epochs_and_notebook_09_at_its_own_steps():
    seq2seg = build_config("seq2seg", "paper", "synthetic")
    assert seq2seg.validate_every == seq2seg.checkpoint_epochs == 5
    assert build_config("seq2seg", "paper", validate_every=1).validate_every == 1
    assert build_config("seq2seg", "cpu").validate_every == 1
    budget = semantic_scale.report_budget_study("paper", "synthetic")
    configs = [variant_config(v, "paper", "synthetic") for v in budget]
    per_epoch = semantic_scale.steps_per_epoch(configs[0])
    expected = round(semantic_scale.BUDGET_VALIDATE_STEPS / per_epoch)
    assert [c.validate_every for c in configs] == [expected, expected] == [2, 2]
    # notebook 09's runs are notebook 01's: trained once, at 09's cadence, in either order
    for notebooks in (("01", "09"), ("09", "01")):
        planned = [p for key in notebooks for p in plan.notebook_runs(key, "paper")]
        runs = plan.unique(planned, "runs")
        assert len(planned) == 4 and len(runs) == 2
        assert [p.config.validate_every for p in runs] == [2, 2]
        assert [p.notebook for p in runs] == [notebooks[0]] * 2


def test_run_py_rows_are_what_the_plan_reads(tmp_path, monkeypatch):
    """``benchmarks/run.py``'s rows for one experiment: both precisions' dummy step and
    memory, the real step in the profile's precision; appended, they give the plan's speed."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    run = importlib.import_module("run")
    config = build_config("unet", "smoke", device="cpu")
    times = {"float32": [0.3, 0.1, 0.2], "bfloat16": [0.05]}
    rows = run.csv_rows(config, times, 0.25, {"fp32": 100.0, "bf16": 60.0})
    values = {(r["quantity"], r["precision"]): (r["value"], r["rounds"]) for r in rows}
    assert values == {
        ("step_s", "float32"): (0.2, 3),
        ("step_s", "bfloat16"): (0.05, 1),
        ("peak_mib", "float32"): (100.0, 1),
        ("peak_mib", "bfloat16"): (60.0, 1),
        ("train_step_s", "float32"): (0.25, run.REAL_STEPS),
    }
    assert {(r["device_type"], r["profile"], r["mode"], r["concurrent"]) for r in rows} == {
        ("cpu", "smoke", "eager", 1)
    }
    measured.append(tmp_path / "benchmarks.csv", rows)
    speed = plan.measured_speeds(tmp_path / "benchmarks.csv", "smoke", "cpu")["unet"]
    assert (speed.step_s, speed.overhead_s) == (0.25, 0.0)
    # a real step on another dataset than the experiment's own is not written
    other = run.csv_rows(config, times, None, {"fp32": 100.0, "bf16": 60.0})
    assert "train_step_s" not in {r["quantity"] for r in other}
