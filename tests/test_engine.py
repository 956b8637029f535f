"""Training engine: learning, checkpoints, resume, determinism, refusals."""

import dataclasses
import json
import pickle
import re
import warnings

import pytest
import torch
from conftest import untimed

from seqseg_lib import engine, runs
from seqseg_lib.data.labels import CITYSCAPES
from seqseg_lib.experiments import EXPERIMENTS, build_config, config_from_dict
from seqseg_lib.models import Seq2SegConfig

SEMANTIC = ["seq2seg", "seq2seg-noskip", "unet"]


def smoke(experiment="unet", **overrides):
    return build_config(experiment, "smoke", **overrides)


def weights(run_dir):
    return engine.load_checkpoint(run_dir / engine.CHECKPOINT)["model"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("experiment", SEMANTIC)
def test_smoke_training_lowers_the_loss(tmp_path, experiment):
    config = smoke(experiment, epochs=4)
    records = engine.train(config, tmp_path)
    assert [r["epoch"] for r in records] == [0, 1, 2, 3]
    assert records[-1]["train"]["loss"] < records[0]["train"]["loss"]
    assert {"loss", "loss_bce", "accuracy", "miou", "iou"} <= records[-1]["val"].keys()
    saved = json.loads((tmp_path / engine.CONFIG).read_text())
    assert saved == config.to_dict()


def test_learning_rate_schedule_follows_the_milestones(tmp_path):
    config = smoke(epochs=4, lr=1e-3, lr_milestones=((1, 5e-4), (3, 1e-4)))
    records = engine.train(config, tmp_path)
    assert [r["lr"] for r in records] == pytest.approx([1e-3, 5e-4, 5e-4, 1e-4])


def test_paper_schedules_are_the_reports():
    unet = build_config("unet", "paper")
    assert (unet.epochs, unet.lr, unet.lr_milestones) == (30, 1e-3, ((10, 5e-4), (20, 1e-4)))
    s2s = build_config("seq2seg", "paper", "cityscapes")
    assert (s2s.epochs, s2s.lr, s2s.lr_milestones) == (45, 1e-4, ((15, 5e-5), (30, 1e-5)))
    noskip = build_config("seq2seg-noskip", "paper")
    assert (noskip.lr, noskip.lr_milestones) == (5e-5, ((15, 1e-5), (30, 5e-6)))
    assert s2s.batch_size == 24 and s2s.drop_last and s2s.crop == (128, 256)
    assert s2s.resize == (140, 280) and s2s.model == Seq2SegConfig(num_classes=34, skip=True)
    assert 2975 // s2s.batch_size == 123  # minibatches per epoch on Cityscapes (Sec. 2.2)
    synthetic = build_config("seq2seg", "paper", "synthetic")
    assert (synthetic.num_train, synthetic.num_val) == (2975, 500), "Cityscapes fine's sizes"
    assert build_config("hungarian-unet", "paper").num_train == 2975
    assert build_config("unet", "cpu").num_train == 600


def test_resume_after_max_steps_is_bit_identical(tmp_path):
    config = smoke("seq2seg", epochs=2)  # dropout on: the RNG state must be restored
    engine.train(config, tmp_path / "straight")
    engine.train(dataclasses.replace(config, max_steps=3), tmp_path / "split")
    assert engine.load_checkpoint(tmp_path / "split" / engine.CHECKPOINT)["position"] == {
        "epoch": 1,
        "step_in_epoch": 1,
        "global_step": 3,
    }
    with open(tmp_path / "split" / engine.METRICS, "a") as handle:
        handle.write('{"epoch": 1, "global_')  # a record cut short by a kill
    records = engine.train(config, tmp_path / "split")
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "split"))
    straight = engine.read_metrics(tmp_path / "straight")
    assert untimed(records) == untimed(straight)


def test_same_seed_same_metrics_and_other_seed_differs(tmp_path):
    a = untimed(engine.train(smoke(), tmp_path / "a"))
    b = untimed(engine.train(smoke(), tmp_path / "b"))
    c = untimed(engine.train(smoke(seed=1), tmp_path / "c"))
    assert a == b and a != c


def test_finished_run_is_not_trained_again(tmp_path):
    engine.train(smoke(), tmp_path)
    before = (tmp_path / engine.CHECKPOINT).stat().st_mtime_ns
    assert engine.is_finished(tmp_path)
    engine.load_or_train(smoke(), tmp_path.parent, variant="")  # other dir name: trains
    engine.train(smoke(), tmp_path)
    assert (tmp_path / engine.CHECKPOINT).stat().st_mtime_ns == before


def test_a_run_directory_with_another_config_is_refused(tmp_path):
    engine.train(smoke(max_steps=1), tmp_path)
    engine.train(smoke(max_steps=2, checkpoint_every=1), tmp_path)  # run control may change
    with pytest.raises(ValueError, match=r"lr: 0\.01 != 0\.5.*batch_size|batch_size.*lr"):
        engine.train(smoke(lr=0.5, batch_size=2), tmp_path)
    # ``paper`` autocasts where the device has bfloat16: a run keeps the precision it began in
    with pytest.raises(ValueError, match=r"amp: False != True \(its precision: say amp=False"):
        engine.train(smoke(amp=True), tmp_path)


def test_non_finite_loss_names_the_step_and_keeps_the_checkpoint(tmp_path):
    # an infinite learning rate: step 1 is finite, then its update makes every weight
    # infinite or NaN, so the loss of step 2 is not finite
    config = smoke(lr=float("inf"), checkpoint_every=1)
    engine.train(dataclasses.replace(config, max_steps=1), tmp_path)
    before = (tmp_path / engine.CHECKPOINT).read_bytes()
    with pytest.raises(FloatingPointError, match="non-finite loss at step 2 "):
        engine.train(config, tmp_path)
    assert (tmp_path / engine.CHECKPOINT).read_bytes() == before


class _Payload:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


def test_checkpoints_with_arbitrary_objects_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"model": _Payload()}, handle)
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        engine.load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()
    torch.save({"position": object.__new__(_Payload)}, tmp_path / "evil2.pt")
    with pytest.raises(ValueError, match="evil2.pt"):
        engine.load_checkpoint(tmp_path / "evil2.pt")


def snapshot(folder):
    return {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in folder.iterdir()}


def test_evaluate_reports_the_checkpoint_metrics_and_writes_nothing(tmp_path):
    records = engine.train(smoke(), tmp_path)
    before = snapshot(tmp_path)
    result = engine.evaluate(tmp_path)
    assert result["accuracy"] == pytest.approx(records[-1]["val"]["accuracy"])
    assert result["loss"] == pytest.approx(records[-1]["val"]["loss"])
    assert list(result["iou"]) == list(CITYSCAPES.eval_names), "per-class values by name"
    assert snapshot(tmp_path) == before
    with pytest.raises(ValueError, match="not a run directory"):
        engine.evaluate(tmp_path / "nothing")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"experiment": "segformer"}, "unknown experiment 'segformer'; valid: seq2seg"),
        ({"profile": "gpu"}, "unknown profile 'gpu'; valid: smoke, cpu, paper"),
        ({"dataset": "ade20k"}, "valid: synthetic, cityscapes, camvid"),
        ({"max_steps": 0}, "max_steps must be a positive integer"),
        ({"max_steps": 2.5}, "max_steps must be a positive integer"),
        ({"learning_rate": 1}, "valid config fields"),
        ({"model": {"base_widht": 8}}, "['base_widht'] for UNetConfig; valid: num_classes, base_"),
        ({"loss": {"weight": 2}}, "['weight'] for SemanticLossConfig; valid: (none)"),
    ],
)
def test_bad_names_are_refused_with_the_valid_ones(kwargs, message):
    args = {"experiment": "unet", "profile": "smoke"} | kwargs
    with pytest.raises(ValueError, match=re.escape(message)):
        build_config(args.pop("experiment"), args.pop("profile"), **args)


@pytest.mark.parametrize("experiment", ["seq2seg", "unet"])
def test_autocast_path_runs_on_cpu(tmp_path, experiment):
    records = engine.train(smoke(experiment, amp=True, epochs=1), tmp_path)
    assert torch.isfinite(torch.tensor(records[-1]["train"]["loss"]))


def test_load_or_train_refuses_a_finished_run_of_another_config(tmp_path):
    run_dir = engine.load_or_train(smoke(), tmp_path)
    assert engine.load_or_train(smoke(), tmp_path) == run_dir  # finished: loaded
    config = json.loads((run_dir / engine.CONFIG).read_text())
    (run_dir / engine.CONFIG).write_text(json.dumps(config | {"lr": 0.5}))
    with pytest.raises(ValueError, match=r"lr: 0\.5 != 0\.01"):
        engine.load_or_train(smoke(), tmp_path)


def test_settings_round_trip_through_json_and_old_partial_settings_load():
    for name in EXPERIMENTS:
        config = build_config(name, "cpu")
        assert config_from_dict(json.loads(json.dumps(config.to_dict()))) == config
    # a config.json that names only the settings differing from the defaults
    saved = build_config("seq2seg", "paper", "cityscapes").to_dict()
    saved["model"], saved["loss"] = {"num_classes": 34, "skip": True}, {}
    assert config_from_dict(saved) == build_config("seq2seg", "paper", "cityscapes")
    saved["model"]["hidden_size"] = 768
    with pytest.raises(ValueError, match="hidden_size.*valid: num_classes, skip, patch_size"):
        config_from_dict(saved)


def test_a_run_stopped_within_an_epoch_records_the_partial_epoch(tmp_path):
    config = smoke(epochs=2)  # 8 training images, batch 4: two steps per epoch
    records = engine.train(dataclasses.replace(config, max_steps=3), tmp_path)
    assert [(r["epoch"], r.get("partial", False)) for r in records] == [(0, False), (1, True)]
    assert records[-1]["epoch_fraction"] == 0.5
    assert {"loss", "accuracy", "miou"} <= records[-1]["val"].keys()
    assert runs.final_metrics(tmp_path)["epochs"] == 1.5
    assert runs.final_metrics(tmp_path)["steps"] == 3
    # stopped at an epoch's end: nothing partial to record
    assert engine.train(dataclasses.replace(config, max_steps=2), tmp_path / "b")[-1]["epoch"] == 0
    assert "partial" not in engine.read_metrics(tmp_path / "b")[-1]
    # resumed to the end, the partial record is replaced by the whole epoch's
    records = engine.train(config, tmp_path)
    assert [(r["epoch"], r.get("partial", False)) for r in records] == [(0, False), (1, False)]
    assert runs.final_metrics(tmp_path)["epochs"] == 2


def test_records_say_what_the_numbers_were_computed_with(tmp_path):
    record = engine.train(smoke(max_steps=2), tmp_path)[-1]
    environment = record["environment"]
    assert environment["device"].startswith("cpu (") and environment["precision"] == "float32"
    assert environment["threads"] == torch.get_num_threads() and not environment["tf32"]


@pytest.mark.parametrize("experiment", ["unet", "hungarian-unet"])
def test_channels_last_training_matches_the_default_layout(tmp_path, monkeypatch, experiment):
    """The CUDA layout of the convolutional experiments, exercised on CPU: the same step."""
    assert EXPERIMENTS[experiment].channels_last
    default = engine.train(smoke(experiment, max_steps=1), tmp_path / "default")
    monkeypatch.setattr(engine, "memory_format", lambda experiment, device: torch.channels_last)
    trainer = engine.Trainer(smoke(experiment, max_steps=1), tmp_path / "nhwc")
    assert any(p.dim() == 4 and not p.is_contiguous() for p in trainer.model.parameters())
    records = trainer.fit()
    assert records[-1]["train"]["loss"] == pytest.approx(default[-1]["train"]["loss"], rel=1e-4)
    assert records[-1]["val"]["loss"] == pytest.approx(default[-1]["val"]["loss"], rel=1e-4)
    # after one Adam step (lr 1e-2) the weights agree but for rare near-zero gradients
    default_weights = weights(tmp_path / "default")
    for key, value in weights(tmp_path / "nhwc").items():
        assert (value - default_weights[key]).abs().float().mean() < 1e-4, key


@pytest.mark.parametrize("experiment", ["unet", "mnist-easy"])
def test_dataloader_workers_train_the_same_run(tmp_path, experiment):
    """Workers (forked once, after the data is prepared, and kept between epochs) change
    where items are made, not which: the second epoch's items are its own."""
    config = smoke(experiment, epochs=2)
    alone = engine.train(config, tmp_path / "alone")
    workers = engine.train(dataclasses.replace(config, num_workers=2), tmp_path / "workers")
    assert untimed(alone) == untimed(workers)
    assert_same_weights(weights(tmp_path / "alone"), weights(tmp_path / "workers"))


def test_load_or_train_reuses_a_run_stopped_at_max_steps(tmp_path):
    config = smoke(epochs=2, max_steps=3)
    run_dir = engine.load_or_train(config, tmp_path)
    before = (run_dir / engine.METRICS).read_text()
    assert engine.stopped_at(run_dir, 3) and not engine.stopped_at(run_dir, 4)
    mtime = (run_dir / engine.CHECKPOINT).stat().st_mtime_ns
    engine.load_or_train(config, tmp_path)  # nothing to do: no step, no validation
    assert (run_dir / engine.CHECKPOINT).stat().st_mtime_ns == mtime
    assert (run_dir / engine.METRICS).read_text() == before
    engine.load_or_train(dataclasses.replace(config, max_steps=None), tmp_path)
    assert engine.is_finished(run_dir)
    assert [r.get("partial", False) for r in engine.read_metrics(run_dir)] == [False, False]


def test_validate_every_skips_validations_but_not_the_last_or_the_weights(tmp_path):
    every = engine.train(smoke(epochs=5), tmp_path / "every")
    sparse = engine.train(smoke(epochs=5, validate_every=2), tmp_path / "sparse")
    assert ["val" in r for r in sparse] == [False, True, False, True, True]
    assert sparse[-1]["val"] == every[-1]["val"]  # validation changes nothing of training
    assert_same_weights(weights(tmp_path / "every"), weights(tmp_path / "sparse"))
    assert runs.final_metrics(tmp_path / "sparse")["val_accuracy"] == every[-1]["val"]["accuracy"]
    with pytest.raises(ValueError, match="validate_every must be a positive integer, got 0"):
        smoke(validate_every=0)


def test_a_run_stopped_at_an_epoch_end_between_validations_still_ends_validated(tmp_path):
    """``max_steps`` reached at the end of an epoch that ``validate_every`` skips: that
    epoch's record validates, so a stopped run's tables always have a validation (a ``paper``
    dry run of notebook 09 found none)."""
    steps = len(engine.Trainer(smoke(), tmp_path / "probe").loader(0))  # steps per epoch
    records = engine.train(smoke(epochs=5, validate_every=3, max_steps=steps), tmp_path / "r")
    assert len(records) == 1 and "val" in records[-1] and not records[-1].get("partial")
    assert runs.final_metrics(tmp_path / "r")["val_accuracy"] >= 0


def test_resuming_at_an_epoch_end_warns_nothing(tmp_path):
    """A checkpoint at the last step of an epoch: the resumed process steps the epoch's
    schedule before any optimizer step, without PyTorch's warning about that order, and the
    run ends as an uninterrupted one."""
    config = smoke("unet", checkpoint_every=1)  # 2 steps per epoch
    killed = engine.Trainer(config, tmp_path / "resumed")

    def killed_at_the_epoch_end():  # after the checkpoint of the epoch's last step
        raise KeyboardInterrupt

    killed._end_epoch = killed_at_the_epoch_end
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = engine.train(config, tmp_path / "resumed")
    assert not [w for w in caught if "lr_scheduler" in str(w.message)], caught
    straight = engine.train(config, tmp_path / "straight")
    assert untimed(resumed) == untimed(straight)
