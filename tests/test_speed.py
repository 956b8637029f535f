"""Speed and memory measurements (``seqseg_lib.speed``) and the engine's step timer. Nothing
here asserts a duration: only what the measurements are made of."""

import dataclasses
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from seqseg_lib import speed
from seqseg_lib.engine import Trainer, forward
from seqseg_lib.experiments import EXPERIMENTS, build_config


@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_a_training_step_is_timed_for_every_experiment(experiment):
    config = build_config(experiment, "smoke")
    seconds = speed.measure_step_time(config, batch_size=2, repeats=1, device="cpu")
    assert math.isfinite(seconds) and seconds > 0


def test_interleaved_timing_alternates_and_drops_the_warmup():
    calls = []

    def variant(name):
        return lambda: calls.append(name) or float(len(calls))

    times = speed.time_interleaved({"a": variant("a"), "b": variant("b")}, repeats=2, warmup=1)
    assert calls == ["a", "b"] * 3
    assert times == {"a": [3.0, 5.0], "b": [4.0, 6.0]}


def test_a_study_s_step_times_are_measured_in_turns(monkeypatch):
    """``variants.step_seconds`` times each variant's step once per round, the variants in
    turn, and gives each one's median: a load that changes mid-measurement hits them alike."""
    from seqseg_lib import variants
    from seqseg_lib.claims.panoptic import BOTTLENECK_STUDY

    calls = []

    def seconds(step):
        calls.append(step.config.model.bottleneck_layers)
        return 0.1 * len(calls)

    monkeypatch.setattr(speed.TrainingStep, "seconds", seconds)
    measured = variants.step_seconds(BOTTLENECK_STUDY, "smoke", "synthetic", "cpu", repeats=3)
    layers = [variant.model.get("bottleneck_layers", 0) for variant in BOTTLENECK_STUDY]
    assert calls == layers * 4  # a warm-up round, then 3
    assert list(measured) == [variant.label for variant in BOTTLENECK_STUDY]
    # the plain bottleneck's calls are the 1st, 3rd, 5th and 7th: 0.3, 0.5, 0.7 after warm-up
    assert measured[BOTTLENECK_STUDY[0].label] == pytest.approx(0.5)


def test_flops_grow_with_the_batch_and_count_attention_on_cpu():
    # 2 layers, 2 heads, 32 wide, 8x8 patches; without dropout, attention runs in one fused
    # CPU kernel (with dropout, in matrix products that are counted anyway)
    config = build_config("seq2seg", "smoke", model={"dropout": 0.0})
    flops = speed.training_flops(config, batch_size=1)
    assert speed.training_flops(config, batch_size=2) == 2 * flops
    step = speed.TrainingStep(config, 1)
    with FlopCounterMode(display=False) as without_attention:
        forward(step.model, step.criterion, step.images, step.targets, config)[2].backward()
    tokens = (config.crop[0] // 8) * (config.crop[1] // 8)
    shape = (1, 2, tokens, 16)  # (B, heads, N, D / heads)
    attention = sdpa_flop_count(shape, shape, shape) + sdpa_backward_flop_count(*[shape] * 4)
    assert flops - without_attention.get_total_flops() == 2 * attention  # one per layer


@pytest.mark.slow
def test_peak_step_memory_grows_with_the_batch():
    config = dataclasses.replace(build_config("unet", "smoke"), crop=(128, 256))
    small, large = (speed.peak_step_memory(config, batch) for batch in (1, 8))
    assert 0 < small < large
    # 8 images of activations at 128x256, each level of a 4-wide U-Net: at least 32 MiB
    assert large - small > 32 * 2**20


def test_the_step_timer_sees_every_phase(tmp_path):
    config = build_config("mnist-easy", "smoke")
    trainer = Trainer(config, tmp_path, timed=True)
    trainer.fit()
    steps = config.epochs * math.ceil(config.num_train / config.batch_size)
    assert len(trainer.timer.steps) == steps
    phases = {"data", "forward", "loss", "backward", "optimizer", "metrics"}
    assert all(set(step) == phases and min(step.values()) > 0 for step in trainer.timer.steps)
    untimed = Trainer(config, tmp_path / "untimed")
    untimed.fit()
    assert untimed.timer.steps == []
    assert torch.equal(
        untimed.model.state_dict()["class_head.weight"],
        trainer.model.state_dict()["class_head.weight"],
    ), "timing changes nothing in training"
