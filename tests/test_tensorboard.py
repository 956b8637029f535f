"""TensorBoard events of a run (``seqseg_lib.tensorboard``), read back with TensorBoard's own
event reader: the records of ``metrics.jsonl`` at their steps, the training loss and learning
rate between them, validation predictions of the semantic experiments, and a resumed run
showing each step once."""

import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from seqseg_lib import engine
from seqseg_lib.experiments import build_config
from seqseg_lib.tensorboard import PREVIEW_IMAGES, semantic_previews


def events(run_dir) -> EventAccumulator:
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def scalars(accumulator: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def records(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / engine.METRICS).read_text().splitlines()]


def smoke(experiment: str, **overrides):
    return build_config(experiment, "smoke", device="cpu", progress=False, **overrides)


def assert_events_hold_the_records(run_dir) -> EventAccumulator:
    """Every record's scalars at its global step, once; the step losses at every step (a CPU
    checks every step), the last of each epoch at its record."""
    accumulator, written = events(run_dir), records(run_dir)
    steps = [record["global_step"] for record in written]
    for split, key in [("train", "loss"), ("val", "loss"), ("val", "accuracy")]:
        assert scalars(accumulator, f"{split}/{key}") == [
            (record["global_step"], pytest.approx(record[split][key], rel=1e-6))
            for record in written
        ]
    step_losses = scalars(accumulator, "train_step/loss")
    assert [step for step, _ in step_losses] == list(range(1, steps[-1] + 1))
    assert [step for step, _ in scalars(accumulator, "lr")] == list(range(1, steps[-1] + 1))
    assert scalars(accumulator, "lr")[-1][1] == pytest.approx(written[-1]["lr"])
    return accumulator


def test_a_smoke_run_writes_its_records_losses_and_predictions(tmp_path):
    config = smoke("seq2seg")  # 2 epochs of 2 steps, validated after each
    engine.train(config, tmp_path)
    accumulator = assert_events_hold_the_records(tmp_path)
    assert {"train/loss", "train/accuracy", "val/miou", "train_step/loss", "lr"} <= set(
        accumulator.Tags()["scalars"]
    )
    step_losses = dict(scalars(accumulator, "train_step/loss"))
    epoch_losses = dict(scalars(accumulator, "train/loss"))
    for end in epoch_losses:  # the epoch's mean is the mean of its two step losses
        mean = (step_losses[end - 1] + step_losses[end]) / 2
        assert epoch_losses[end] == pytest.approx(mean, rel=1e-5)
    images = accumulator.Images("val/predictions")
    height, width = config.crop
    assert [image.step for image in images] == [2, 4]
    assert (images[0].height, images[0].width) == (PREVIEW_IMAGES * height, 3 * width)


def test_a_resumed_run_shows_each_step_once(tmp_path):
    """Stopped mid-epoch (a partial record at step 3), then resumed: the events are those of
    the records that ``metrics.jsonl`` keeps, the partial one replaced."""
    engine.train(smoke("unet", max_steps=3), tmp_path)
    assert records(tmp_path)[-1]["partial"] is True
    engine.train(smoke("unet"), tmp_path)
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 2  # one per start
    assert [record["global_step"] for record in records(tmp_path)] == [2, 4]
    accumulator = events(tmp_path)
    assert [step for step, _ in scalars(accumulator, "train/loss")] == [2, 4]
    # the step the first process stopped at goes with its partial record: 1, 2, then 4
    assert [step for step, _ in scalars(accumulator, "train_step/loss")] == [1, 2, 4]


def test_a_run_resumed_at_an_epoch_s_end_keeps_that_epoch(tmp_path):
    engine.train(smoke("unet", max_steps=2), tmp_path)  # the first epoch, whole
    engine.train(smoke("unet"), tmp_path)
    assert_events_hold_the_records(tmp_path)


def test_set_prediction_runs_write_scalars_and_no_images(tmp_path):
    engine.train(smoke("mnist-easy", max_steps=1), tmp_path)
    accumulator = events(tmp_path)
    assert "val/loss" in accumulator.Tags()["scalars"]
    assert accumulator.Tags()["images"] == []


def test_previews_are_the_image_its_labels_and_the_prediction_in_the_palette():
    config = smoke("unet")
    experiment = engine.get_experiment("unet")
    _, val_set = experiment.build_datasets(config)
    model = experiment.build_model(config).eval()
    grid = semantic_previews(model, val_set, config, torch.device("cpu"))
    height, width = config.crop
    assert grid.shape == (PREVIEW_IMAGES * height, 3 * width, 3) and grid.dtype == "uint8"
    item = val_set[0]
    image = (item["image"].permute(1, 2, 0) * 255).to(torch.uint8).numpy()
    assert (grid[:height, :width] == image).all()
    from seqseg_lib.plotting import colorize

    labels = colorize(val_set.label_space.to_eval(item["labels"].long()), val_set.label_space)
    assert (grid[:height, width : 2 * width] == labels).all()
