"""The experiments, one module per family, and the one registry of their names.

- ``semantic``: ``seq2seg``, ``seq2seg-noskip``, ``unet`` (Sec. 2);
- ``instance``: ``mnist-easy``, ``mnist-hard`` (Sec. 3);
- ``panoptic``: ``hungarian-unet`` (Sec. 4), and beside it ``seq2seg-panoptic`` (Sec. 3's
  transformer on Sec. 4's task) and ``eomt`` (the field's EoMT).

``EXPERIMENTS`` below is the registry, written out; ``build_config`` makes a run's ``Config``
from an experiment's preset, ``config_from_dict`` and ``load_config`` read one back from a run
directory's ``config.json``; a ``Variant`` is a study's row, an experiment with some settings
changed (``variant_config``), its run directory named after them (``variant_name``);
``scaled_config`` puts a model on another image size (Sec. 2.4's cost studies).
"""

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from seqseg_lib.config import (
    PROFILES,
    RUN_CONTROL_FIELDS,
    Config,
    check_choice,
    check_positive_int,
    replace_settings,
)
from seqseg_lib.devices import fast_bfloat16
from seqseg_lib.experiments import instance, panoptic, semantic
from seqseg_lib.experiments.base import Experiment
from seqseg_lib.runs import CHECKPOINT, CONFIG, read_config_json

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


def sized_for_gpu(profile: str) -> bool:
    """Whether ``profile``'s presets are made for a GPU: they leave bfloat16 autocast to the
    device (``amp=None``, ``paper``'s), where the others train in float32 everywhere."""
    check_choice("profile", profile, PROFILES)
    return all(spec.presets[profile].amp is None for spec in EXPERIMENTS.values())


def build_config(
    experiment: str,
    profile: str = "cpu",
    dataset: str | None = None,
    **overrides: Any,
) -> Config:
    """The preset of ``experiment`` and ``profile`` (``Experiment.presets``) on ``dataset``
    (``Experiment.on_dataset``), then ``overrides``.

    ``dataset`` None takes the experiment's embedded default. ``model`` and ``loss`` overrides
    are dicts of settings to change. A preset's ``amp=None`` (``paper``'s) autocasts to
    bfloat16 where the run's device has fast bfloat16 (``devices.fast_bfloat16``; the saved
    config says which); ``amp``, ``deterministic``, ``validate_every``, ``checkpoint_epochs``
    and ``num_workers`` given as None (the command line's "not given") keep the preset's.
    Unknown names, fields and settings are refused with a ``ValueError`` that lists the valid
    ones. Under a dry run
    (``dry_run_images``), one step on a batch of at most ``DRY_RUN_BATCH`` and a few
    validation images.
    """
    spec = get_experiment(experiment)
    check_choice("profile", profile, PROFILES)
    dataset = dataset or spec.datasets[0]
    check_choice(f"dataset for {experiment}", dataset, spec.datasets)
    preset = spec.on_dataset(spec.presets[profile], dataset)
    model = replace_settings(preset.model, overrides.pop("model", None) or {}, "model")
    loss = replace_settings(preset.loss, overrides.pop("loss", None) or {}, "loss")
    valid = [f.name for f in dataclasses.fields(Config)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"unknown config field(s) {unknown}; valid config fields: {valid}")
    for name in ("validate_every", "checkpoint_epochs", "num_workers", "deterministic"):
        if name in overrides and overrides[name] is None:
            del overrides[name]  # the preset's
    for name in ("max_steps", "validate_every", "checkpoint_epochs"):
        if overrides.get(name) is not None:
            check_positive_int(name, overrides[name])
    if overrides.get("amp") is None:
        amp = preset.amp
        overrides["amp"] = fast_bfloat16(overrides.get("device") or "auto") if amp is None else amp
    if overrides.get("data_root") is not None:  # where the data is, wherever the run goes on
        overrides["data_root"] = str(Path(overrides["data_root"]).resolve())
    images = dry_run_images()
    if images is not None:  # one step on a batch of (at most) DRY_RUN_BATCH images
        batch = min(overrides.get("batch_size", preset.batch_size), DRY_RUN_BATCH)
        overrides |= {"batch_size": batch, "num_train": batch, "num_val": images, "max_steps": 1}
    return dataclasses.replace(preset, model=model, loss=loss, **overrides)


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


# -- the config of a run directory ------------------------------------------------------------


def prepare_run_dir(config: Config, run_dir: Path) -> None:
    """Create ``run_dir`` and save ``config``; refuse a directory made with another config."""
    check_run_config(config, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG).write_text(json.dumps(config.to_dict(), indent=2) + "\n")


def check_run_config(config: Config, run_dir: Path) -> None:
    """Raise ``ValueError`` listing the differing fields if ``run_dir`` holds another config."""
    saved_path = Path(run_dir) / CONFIG
    if saved_path.exists():
        saved = load_config(run_dir)
        differences = saved.differences(config)
        if differences:
            hint = ""
            if saved.amp != config.amp:  # ``paper``'s default follows the device
                hint = f" (its precision: say amp={saved.amp}, --amp / --no-amp on the CLI)"
            raise ValueError(
                f"run directory {str(run_dir)!r} was made with another config; refusing to "
                f"resume. Differing fields (saved != requested): {'; '.join(differences)}{hint}"
            )


def check_checkpoint_config(state: dict[str, Any], config: Config, run_dir: Path) -> None:
    """Refuse a checkpoint (``state``, loaded) made with another config than ``config``, the
    run directory's: a ``ValueError`` naming both files and the differing fields, before any
    weights are loaded into a model they do not fit."""
    path = Path(run_dir) / CHECKPOINT
    try:
        saved = config_from_dict(state["config"])
    except (KeyError, TypeError, ValueError) as error:
        saved, reason = None, f"its config does not read: {error}"
    if saved is not None:
        differences = saved.differences(config)
        reason = "; ".join(differences) if differences else None
    if reason:
        raise ValueError(
            f"checkpoint {str(path)!r} and {str(Path(run_dir) / CONFIG)!r} disagree "
            f"(checkpoint != config.json): {reason}; restore the config.json the checkpoint "
            "was trained with, or delete the checkpoint to train the run again"
        )


def load_config(run_dir: str | os.PathLike) -> Config:
    """The ``Config`` saved in a run directory's ``config.json``."""
    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise ValueError(f"{str(run_dir)!r} is not a run directory: no {CONFIG}")
    values = read_config_json(run_dir)
    try:
        return config_from_dict(values)
    except (ValueError, TypeError) as error:  # another experiment's settings, a field's type
        raise ValueError(
            f"{str(path)!r} is not a config seqseg can run ({error}); restore it, or delete "
            "its run directory to train the run again"
        ) from None


# -- studies as variants of the experiments ---------------------------------------------------
# A ``Variant`` is a row of a study's table: an experiment and the ``model`` / ``loss`` /
# training settings it changes. Its run directory is named after what differs from the
# profile's preset (``runs.run_name(config, variant_name(config))``), so two studies asking for
# the same settings share one run, and a preset that changes makes ``check_run_config`` refuse
# a stale run rather than reuse it. Hungarian U-Net studies run at ``SHORT_BUDGET``, a quarter
# of the profile's training, so that several variants fit in the ``cpu`` profile's time; the
# profile's own run (the full budget) is a row of its own. ``seqseg_lib.variants`` trains them.


# A quarter of the Hungarian U-Net's training: half the scenes for half the epochs, with the
# schedule's two decays at the same fractions of training (Sec. 4: after 1/3 and 2/3).
SHORT_BUDGET = {
    "smoke": {},
    "cpu": {"epochs": 15, "lr_milestones": ((5, 5e-4), (10, 1e-4)), "num_train": 300},
    "paper": {"epochs": 15, "lr_milestones": ((5, 5e-4), (10, 1e-4))},
}


@dataclass(frozen=True)
class Variant:
    """One row of a study: ``label`` in the table, ``experiment``, the ``model`` and ``loss``
    settings it changes (dicts, as ``build_config`` takes them) and the ``training`` fields of
    ``Config`` it changes (``lr``, ``epochs``, ...), at the ``short`` budget or the profile's
    own."""

    label: str
    experiment: str
    model: dict[str, Any] = field(default_factory=dict)
    loss: dict[str, Any] = field(default_factory=dict)
    short: bool = True
    training: dict[str, Any] = field(default_factory=dict)


def variant_config(variant: Variant, profile: str, dataset: str | None, **run: Any) -> Config:
    """The variant's ``Config``: the profile's preset, its budget, its settings, ``run``."""
    budget = SHORT_BUDGET[profile] if variant.short else {}
    return build_config(
        variant.experiment,
        profile,
        dataset,
        model=variant.model,
        loss=variant.loss,
        **(budget | variant.training | run),
    )


# Config fields a run directory is already named after (``runs.run_name``), or that do not
# change what a run computes.
_NAMED_FIELDS = {"experiment", "profile", "dataset", "data_root", "seed", "model", "loss"}


def variant_name(config: Config) -> str:
    """What a config changes from its profile's preset, as a run-directory suffix:
    ``"short-class_head=masked-match_size=64x128"``, ``"lr=0.0001-num_layers=12"``; ``""``
    for the preset itself. ``short`` stands for ``SHORT_BUDGET``'s epochs, scenes and
    schedule."""
    preset = build_config(config.experiment, config.profile, config.dataset)
    budget = SHORT_BUDGET[config.profile]
    short = bool(budget) and all(getattr(config, key) == value for key, value in budget.items())
    parts = ["short"] if short else []
    for item in dataclasses.fields(config):
        name = item.name
        if name in _NAMED_FIELDS or name in RUN_CONTROL_FIELDS or (short and name in budget):
            continue
        value = getattr(config, name)
        if value != getattr(preset, name):
            parts.append(f"{name}={_slug(value)}")
    for name in ("model", "loss"):
        mine, theirs = getattr(config, name), getattr(preset, name)
        for item in dataclasses.fields(mine):
            value = getattr(mine, item.name)
            if value != getattr(theirs, item.name):
                parts.append(f"{item.name}={_slug(value)}")
    return "-".join(parts)


def _slug(value: Any) -> str:
    """``(32, 64)`` -> ``32x64``; ``((5, 5e-4), (10, 1e-4))`` -> ``5x0.0005+10x0.0001``."""
    if value == ():
        return "none"
    if isinstance(value, tuple):
        return ("+" if value and isinstance(value[0], tuple) else "x").join(_slug(v) for v in value)
    return str(value).lower()


# -- a model at another image size (Sec. 2.4's cost studies) -------------------------------


def scaled_config(
    experiment: str, profile: str, crop: tuple[int, int], patch_size: int = 16, **model
) -> Config:
    """The profile's model of ``experiment`` on ``crop`` (H, W); Seq2Seg with ``patch_size``,
    no dropout, and as many position embeddings as the crop has patches (at least BERT's 512,
    unless ``max_positions`` is given)."""
    config = build_config(experiment, profile)
    if experiment != "unet":
        tokens = (crop[0] // patch_size) * (crop[1] // patch_size)
        model = {"patch_size": patch_size, "dropout": 0.0} | model
        model.setdefault("max_positions", max(512, tokens))
    settings = replace_settings(config.model, model, "model")
    return dataclasses.replace(config, crop=crop, resize=None, model=settings)


def side_doublings(smallest: tuple[int, int], count: int) -> list[tuple[int, int]]:
    """``count`` crops starting at ``smallest`` (H, W), each side doubled from one to the next."""
    return [(smallest[0] * 2**k, smallest[1] * 2**k) for k in range(count)]


__all__ = [
    "DRY_RUN_ENV",
    "EXPERIMENTS",
    "SHORT_BUDGET",
    "Experiment",
    "Variant",
    "build_config",
    "build_criterion",
    "build_datasets",
    "build_model",
    "check_run_config",
    "config_from_dict",
    "dry_run_images",
    "get_experiment",
    "load_config",
    "prepare_run_dir",
    "scaled_config",
    "side_doublings",
    "variant_config",
    "variant_name",
]
