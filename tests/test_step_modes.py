"""The training step's modes against the eager step: the captured step (``Config.graphs``) and
``torch.compile`` give its losses and weights; a non-finite loss stops the run at the next
check of the device-side flag, before any checkpoint of the weights it touched."""

import dataclasses
import types

import pytest
import torch

from seqseg_lib import engine, graphs, measured
from seqseg_lib.experiments import EXPERIMENTS, build_config, get_experiment

STEPS = 20
CAPTURABLE = [name for name in EXPERIMENTS if get_experiment(name).graphs is not None]


def trained(tmp_path, config) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """Every step's total loss and the final weights of ``config`` trained for ``STEPS``."""
    trainer = engine.Trainer(config, tmp_path)
    totals = []
    flag = trainer._flag_non_finite

    def record(total):
        totals.append(total.detach().clone())
        flag(total)

    trainer._flag_non_finite = record
    trainer.fit()
    return totals, {k: v.clone() for k, v in trainer.model.state_dict().items()}


def twenty_steps(experiment: str, **overrides):
    """A smoke run of ``STEPS`` steps whose last batch of each epoch is smaller (for the
    semantic experiments): it runs outside the static buffers, as the eager step."""
    config = build_config(experiment, "smoke", device="cpu", progress=False)
    extra = {"num_train": config.num_train + 2} if config.num_train is not None else {}
    return dataclasses.replace(
        config, epochs=STEPS, max_steps=STEPS, drop_last=False, **extra, **overrides
    )


@pytest.mark.parametrize("experiment", CAPTURABLE)
def test_the_captured_step_trains_as_the_eager_step(tmp_path, experiment):
    """On a CPU the captured path runs uncaptured: static input buffers, the device-side
    non-finite flag read every 7 steps, the fallback for another batch shape. Tolerance: none,
    bit for bit (on a GPU the replay runs the same kernels; dropout draws other numbers)."""
    eager_losses, eager_weights = trained(tmp_path / "eager", twenty_steps(experiment))
    config = twenty_steps(experiment, graphs=True, check_every=7)
    losses, weights = trained(tmp_path / "graphs", config)
    assert len(losses) == len(eager_losses) == STEPS
    assert all(torch.equal(a, b) for a, b in zip(losses, eager_losses)), (losses, eager_losses)
    assert all(torch.equal(weights[k], eager_weights[k]) for k in weights)


def test_a_step_that_cannot_be_captured_is_refused(tmp_path):
    config = build_config("eomt", "smoke", device="cpu", progress=False, graphs=True)
    with pytest.raises(ValueError, match="eomt's training step cannot be captured"):
        engine.Trainer(config, tmp_path)
    config = build_config("unet", "smoke", device="cpu", graphs=True, compile=True)
    with pytest.raises(ValueError, match="--graphs takes one process and no --compile"):
        engine.Trainer(config, tmp_path / "unet")


@pytest.mark.slow
def test_the_compiled_step_trains_as_the_eager_step(tmp_path):
    """``torch.compile`` (inductor; on a CPU its C++ kernels, about a minute to compile here)
    fuses and reorders float32 arithmetic, and 20 steps at smoke's learning rate (1e-2) let
    the differences grow: the first loss within 1e-5 relative, every loss within 1e-2, every
    weight within 1e-2 absolute (measured: 2.2e-3 at most)."""
    torch._dynamo.reset()
    eager_losses, eager_weights = trained(tmp_path / "eager", twenty_steps("unet"))
    losses, weights = trained(tmp_path / "compiled", twenty_steps("unet", compile=True))
    torch.testing.assert_close(losses[0], eager_losses[0], rtol=1e-5, atol=0)
    torch.testing.assert_close(torch.stack(losses), torch.stack(eager_losses), rtol=1e-2, atol=0)
    for key in weights:
        torch.testing.assert_close(weights[key], eager_weights[key], rtol=0, atol=1e-2)


# -- a non-finite loss ---------------------------------------------------------------------------
def poisoned_at(monkeypatch, step: int) -> list:
    """The total loss of optimiser step ``step`` (1-based) becomes NaN; returns a list that
    grows by one item per step trained."""
    forward, calls = engine.forward, []

    def poisoned(model, criterion, images, targets, config, timer=None):
        outputs, losses, total = forward(model, criterion, images, targets, config, timer)
        calls.append(1)
        return outputs, losses, total * float("nan") if len(calls) == step else total

    monkeypatch.setattr(engine, "forward", poisoned)
    return calls


@pytest.mark.parametrize(
    ("check_every", "checkpoint_every", "stops_at", "checkpoint_at"),
    [
        (4, 10, 8, None),  # the next check, step 8; no checkpoint was due
        (4, 3, 6, 3),  # the checkpoint due at step 6 checks first: the one of step 3 stays
        (1, 2, 5, 4),  # every step checked: at once
        (30, 30, 20, None),  # the epoch's end, step 20
    ],
)
def test_a_non_finite_loss_stops_at_the_next_check_before_any_checkpoint(
    tmp_path, monkeypatch, check_every, checkpoint_every, stops_at, checkpoint_at
):
    steps = poisoned_at(monkeypatch, 5)
    config = build_config("unet", "smoke", device="cpu", progress=False)
    config = dataclasses.replace(  # one epoch of 20 steps: its end checks too
        config, epochs=1, num_train=20 * config.batch_size, check_every=check_every
    )
    config = dataclasses.replace(config, checkpoint_every=checkpoint_every)
    trainer = engine.Trainer(config, tmp_path)
    with pytest.raises(FloatingPointError, match=r"non-finite loss at step 5 \(epoch "):
        trainer.fit()
    assert len(steps) == stops_at
    path = tmp_path / engine.CHECKPOINT
    if checkpoint_at is None:
        assert not path.exists()
    else:
        assert engine.load_checkpoint(path)["position"]["global_step"] == checkpoint_at


# -- learning rates that a graph reads -------------------------------------------------------
def test_tensor_learning_rates_follow_the_schedule_exactly():
    """A captured Adam reads its learning rate from a tensor that the schedules fill in place:
    the same rates as with floats (a float64 tensor here: float32 on a GPU rounds 1e-4 by
    5e-8 relative)."""
    config = build_config("seq2seg", "paper", "synthetic", device="cpu")
    rates = {}
    for kind in ("float", "tensor"):
        optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=config.lr)
        epoch_scheduler, _ = engine.build_schedulers(optimizer, config)
        if kind == "tensor":
            optimizer.param_groups[0]["lr"] = torch.tensor(config.lr, dtype=torch.float64)
            held = optimizer.param_groups[0]["lr"]
        rates[kind] = []
        for _ in range(config.epochs):
            rates[kind].append(graphs.learning_rate(optimizer))
            optimizer.step()
            epoch_scheduler.step()
        if kind == "tensor":
            assert optimizer.param_groups[0]["lr"] is held  # filled in place, never replaced
    assert rates["tensor"] == rates["float"]
    assert sorted(set(rates["float"]), reverse=True) == [1e-4, 5e-5, 1e-5]  # Sec. 2.2


def test_a_resumed_run_gets_the_learning_rates_its_optimizer_takes(tmp_path):
    """A checkpoint of a captured run holds tensor learning rates; an eager run resuming it
    gets floats back (foreach Adam takes no tensor)."""
    config = build_config("unet", "smoke", device="cpu", progress=False, max_steps=1)
    engine.train(config, tmp_path)
    state = engine.load_checkpoint(tmp_path / engine.CHECKPOINT)
    state["optimizer"]["param_groups"][0]["lr"] = torch.tensor(0.01)
    torch.save(state, tmp_path / engine.CHECKPOINT)
    trainer = engine.Trainer(dataclasses.replace(config, max_steps=2), tmp_path)
    assert isinstance(trainer.optimizer.param_groups[0]["lr"], float)
    trainer.fit()


# -- the default: what the measurements favour -------------------------------------------------
def test_graphs_by_default_only_where_measured_faster_on_a_gpu(tmp_path, monkeypatch):
    rows = []
    for mode, seconds in (("eager", 0.025), ("graphs", 0.012)):
        rows.append(
            dict.fromkeys(measured.COLUMNS, "")
            | {"device_type": "cuda", "profile": "paper", "experiment": "seq2seg"}
            | {"precision": "bfloat16", "mode": mode, "concurrent": 1}
            | {"quantity": "train_step_s", "value": seconds, "rounds": 3}
        )
    assert measured.fastest_mode(rows, "seq2seg", "paper", "cuda", "bfloat16") == "graphs"
    assert measured.fastest_mode(rows, "unet", "paper", "cuda", "bfloat16") is None
    assert measured.fastest_mode(rows[:1], "seq2seg", "paper", "cuda", "bfloat16") is None
    # a CPU never captures, whatever was measured
    monkeypatch.setattr(measured, "read", lambda path: rows)
    trainer = engine.Trainer(build_config("seq2seg", "smoke", device="cpu"), tmp_path)
    assert trainer.config.graphs is False


def test_paper_on_a_gpu_takes_the_mode_measured_fastest(monkeypatch):
    """``Trainer._step_mode`` as on a GPU (a stand-in trainer: no CUDA here)."""
    rows = [
        dict.fromkeys(measured.COLUMNS, "")
        | {"device_type": "cuda", "profile": "paper", "experiment": experiment}
        | {"precision": "bfloat16", "mode": mode, "concurrent": 1}
        | {"quantity": "train_step_s", "value": seconds, "rounds": 3}
        for experiment, mode, seconds in (
            ("seq2seg", "eager", 0.025),
            ("seq2seg", "graphs", 0.012),
            ("unet", "eager", 0.015),
            ("unet", "compile:reduce-overhead", 0.011),
            ("eomt", "eager", 0.05),
            ("eomt", "graphs", 0.01),  # (cannot be: its step is never captured)
        )
    ]
    monkeypatch.setattr(measured, "read", lambda path: rows)

    def mode(experiment, world=1, **overrides):
        gpu = types.SimpleNamespace(
            device=torch.device("cuda"), world=world, experiment=get_experiment(experiment)
        )
        config = build_config(experiment, "paper", device="cpu", amp=True, **overrides)
        return engine.Trainer._step_mode(gpu, config)

    assert mode("seq2seg") == {"graphs": True}
    assert mode("unet") == {"graphs": False, "compile": "reduce-overhead"}
    assert mode("eomt") == {"graphs": False}
    assert mode("seq2seg", world=2) == {"graphs": False}  # torchrun: eager
    assert mode("seq2seg", graphs=False) == {"graphs": False}  # asked: as asked
    assert mode("seq2seg-noskip") == {"graphs": False}  # not measured: eager


@pytest.mark.parametrize("experiment", CAPTURABLE)
def test_only_a_whole_step_experiment_captures_its_whole_step(tmp_path, experiment):
    """Set prediction matches on the host between its model's graphs: its step is never
    recorded whole (a capture would fail at the matcher's copy)."""
    config = build_config(experiment, "smoke", device="cpu", progress=False, graphs=True)
    trainer = engine.Trainer(config, tmp_path)
    whole = get_experiment(experiment).graphs == "whole"
    assert isinstance(trainer.step, graphs.WholeStep) == whole
