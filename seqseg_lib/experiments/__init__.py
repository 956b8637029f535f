"""The experiments, one module per family, and the one registry of their names.

- ``semantic``: ``seq2seg``, ``seq2seg-noskip``, ``unet`` (Sec. 2);
- ``instance``: ``mnist-easy``, ``mnist-hard`` (Sec. 3);
- ``panoptic``: ``hungarian-unet`` (Sec. 4), and beside it ``seq2seg-panoptic`` (Sec. 3's
  transformer on Sec. 4's task) and ``eomt`` (the field's EoMT).

``EXPERIMENTS`` below is the registry, written out; ``build_config`` makes a run's ``Config``
from an experiment's preset, and ``config_from_dict`` reads one back from ``config.json``.
"""

import dataclasses
import os
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from seqseg_lib.config import (
    PROFILES,
    Config,
    check_choice,
    check_positive_int,
    replace_settings,
)
from seqseg_lib.devices import fast_bfloat16
from seqseg_lib.experiments import instance, panoptic, semantic
from seqseg_lib.experiments.base import Experiment

PAPER_WORKERS = 4
# ``paper`` writes a checkpoint every this many epochs (and after the last): the report's
# Seq2Seg with Adam's moments is 0.6 GB, written in about as long as a GPU takes for one of its
# epochs (123 steps). A killed run then repeats at most this many epochs, to the same weights.
PAPER_CHECKPOINT_EPOCHS = 5
# A dry run (``./run_all.sh --dry-run``): every run trains one step on one batch of at most
# DRY_RUN_BATCH training images and validates on DRY_RUN_ENV's number of images, so that a
# profile's whole code path (``paper``'s included) executes on any machine, in its memory, in
# minutes. Its results are no results.
DRY_RUN_ENV = "SEQSEG_DRY_RUN"
DRY_RUN_BATCH = 2


def dry_run_images() -> int | None:
    """Validation images per run under a dry run (``DRY_RUN_ENV`` set), else None."""
    value = os.environ.get(DRY_RUN_ENV, "")
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{DRY_RUN_ENV} must be a positive number of images, got {value!r}")
    return int(value)


EXPERIMENTS: dict[str, Experiment] = {
    "seq2seg": semantic.SEQ2SEG,
    "seq2seg-noskip": semantic.SEQ2SEG_NOSKIP,
    "unet": semantic.UNET,
    "mnist-easy": instance.MNIST_EASY,
    "mnist-hard": instance.MNIST_HARD,
    "hungarian-unet": panoptic.HUNGARIAN_UNET,
    "seq2seg-panoptic": panoptic.SEQ2SEG_PANOPTIC,
    "eomt": panoptic.EOMT,
}


def get_experiment(name: str) -> Experiment:
    return EXPERIMENTS[check_choice("experiment", name, list(EXPERIMENTS))]


def build_config(
    experiment: str,
    profile: str = "cpu",
    dataset: str | None = None,
    **overrides: Any,
) -> Config:
    """The named preset for ``experiment`` on ``dataset`` under ``profile``, then overrides.

    ``dataset`` None takes the experiment's embedded default. ``model`` and ``loss`` overrides
    are dicts of settings to change. Unless ``amp`` is given, the ``paper`` profile autocasts
    to bfloat16 where the run's device has fast bfloat16 (``devices.fast_bfloat16``; the
    saved config says which), the other profiles train in float32. Unknown names, fields and
    settings are refused with a ``ValueError`` that lists the valid ones. ``paper`` loads its
    data with ``PAPER_WORKERS`` DataLoader workers unless ``num_workers`` is given, and
    checkpoints every ``PAPER_CHECKPOINT_EPOCHS`` epochs unless ``checkpoint_epochs`` is.
    Under a dry run (``dry_run_images``), one step on a batch of at most ``DRY_RUN_BATCH``
    and a few validation images.
    """
    spec = get_experiment(experiment)
    check_choice("profile", profile, PROFILES)
    dataset = dataset or spec.datasets[0]
    check_choice(f"dataset for {experiment}", dataset, spec.datasets)
    values = spec.preset(profile, dataset)
    values["model"] = replace_settings(values["model"], overrides.pop("model", {}), "model")
    values["loss"] = replace_settings(values["loss"], overrides.pop("loss", {}), "loss")
    valid = [f.name for f in dataclasses.fields(Config)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"unknown config field(s) {unknown}; valid config fields: {valid}")
    for name in ("max_steps", "validate_every", "checkpoint_epochs"):
        if overrides.get(name) is not None:
            check_positive_int(name, overrides[name])
    if overrides.get("amp") is None:
        overrides["amp"] = profile == "paper" and fast_bfloat16(overrides.get("device", "auto"))
    if overrides.get("data_root") is not None:  # where the data is, wherever the run goes on
        overrides["data_root"] = str(Path(overrides["data_root"]).resolve())
    if profile == "paper":  # a GPU's input pipeline (run control: results do not change)
        overrides.setdefault("num_workers", PAPER_WORKERS)
        overrides.setdefault("checkpoint_epochs", PAPER_CHECKPOINT_EPOCHS)
    images = dry_run_images()
    if images is not None:  # one step on a batch of (at most) DRY_RUN_BATCH images
        batch = overrides.get("batch_size", values.get("batch_size", Config.batch_size))
        batch = min(batch, DRY_RUN_BATCH)
        overrides |= {"batch_size": batch, "num_train": batch, "num_val": images, "max_steps": 1}
    return Config(experiment, profile, dataset, **(values | overrides))


def config_from_dict(values: dict[str, Any]) -> Config:
    """The ``Config`` of a ``config.json`` (or a checkpoint's ``config``)."""
    spec = get_experiment(values.get("experiment", "?"))
    return Config.from_dict(values, spec.model_config, spec.loss_config)


def build_model(config: Config) -> nn.Module:
    return get_experiment(config.experiment).build_model(config)


def build_datasets(config: Config) -> tuple[Dataset, Dataset]:
    """The (train, validation) datasets of a config."""
    return get_experiment(config.experiment).build_datasets(config)


def build_criterion(config: Config) -> nn.Module:
    """The criterion of a config (with its ``matcher``, for set prediction)."""
    return get_experiment(config.experiment).build_criterion(config)


__all__ = [
    "DRY_RUN_ENV",
    "EXPERIMENTS",
    "Experiment",
    "build_config",
    "build_criterion",
    "build_datasets",
    "build_model",
    "config_from_dict",
    "dry_run_images",
    "get_experiment",
]
