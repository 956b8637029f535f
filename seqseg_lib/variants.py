"""Studies as variants of the experiments: a ``Variant`` is a row of a study's table, an
experiment and the ``model`` / ``loss`` / training settings it changes.

Its run directory is named after what differs from the profile's preset (``runs.run_name(config,
variant_name(config))``), so two studies asking for the same settings share one run, and a
preset that changes makes ``runs.check_run_config`` refuse a stale run rather than reuse it.
Hungarian U-Net studies run at ``SHORT_BUDGET``, a quarter of the profile's training, so that
several variants fit in the ``cpu`` profile's time; the profile's own run (the full budget) is
a row of its own.
"""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqseg_lib.config import RUN_CONTROL_FIELDS, Config
from seqseg_lib.engine import load_or_train
from seqseg_lib.experiments import build_config

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


# Config fields a run directory is already named after (``engine.run_name``), or that do not
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


def train_variants(
    variants: list[Variant], profile: str, dataset: str | None, runs_dir: str | Path, **run: Any
) -> dict[str, Path]:
    """Train (or load) every variant; ``{label: run directory}``."""
    run_dirs = {}
    for variant in variants:
        config = variant_config(variant, profile, dataset, **run)
        run_dirs[variant.label] = load_or_train(config, runs_dir, variant_name(config))
    return run_dirs


def training_minutes(records: list[dict[str, Any]]) -> float:
    """Minutes of training in a run's ``metrics.jsonl`` records (validation excluded)."""
    return round(sum(record["train_seconds"] for record in records) / 60, 1)
