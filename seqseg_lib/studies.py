"""Studies beyond the report, as variants of its experiments: the Hungarian U-Net's ablation
(notebook 04) and the extensions the report proposes but never ran (notebook 06).

A ``Variant`` is a row of a study's table: an experiment and the ``model`` / ``loss`` settings
it changes. Its run directory is named after what differs from the profile's preset (``engine.
run_name(config, variant_name(config))``), so two studies asking for the same settings share
one run, and a preset that changes makes ``runs.check_run_config`` refuse a stale run rather
than reuse it. Hungarian U-Net studies run at ``SHORT_BUDGET``, a quarter of the profile's
training, so that several variants fit in the ``cpu`` profile's time; the profile's own run
(the full budget) is a row of its own.
"""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from seqseg_lib import paper
from seqseg_lib.config import RUN_CONTROL_FIELDS, Config
from seqseg_lib.data.labels import CITYSCAPES
from seqseg_lib.engine import load_config, load_or_train, read_metrics
from seqseg_lib.experiments import build_config, build_model
from seqseg_lib.reports import final_metrics, mnist_values, percent, report_mnist_columns
from seqseg_lib.speed import measure_step_time

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


# -- the Hungarian U-Net: what keeps it from separating cars (notebook 04) ---------------------
_REPORT_HEAD = {"class_head": "pooled"}
_MASKED_HEAD = {"class_head": "masked"}
_COORDINATES = {"coordinates": True}
_REPORT_MATCH = {"match_size": paper.PANOPTIC_MATCH_SIZE}
_CROP_MATCH = {"match_size": None}  # the targets' resolution: the crop's

HUNGARIAN_ABLATION = [
    Variant(
        "report's class head, matching at 32x64", "hungarian-unet", _REPORT_HEAD, _REPORT_MATCH
    ),
    Variant("masked class head", "hungarian-unet", _MASKED_HEAD, _REPORT_MATCH),
    Variant("matching at the crop's resolution", "hungarian-unet", _REPORT_HEAD, _CROP_MATCH),
    Variant(
        "masked class head, matching at the crop's", "hungarian-unet", _MASKED_HEAD, _CROP_MATCH
    ),
    Variant(
        "class weight 1 (loss and matching)",
        "hungarian-unet",
        _REPORT_HEAD,
        _REPORT_MATCH | {"class_weight": 1.0},
    ),
    Variant("coordinate channels", "hungarian-unet", _REPORT_HEAD | _COORDINATES, _REPORT_MATCH),
    Variant(
        "masked class head, coordinate channels, matching at the crop's",
        "hungarian-unet",
        _MASKED_HEAD | _COORDINATES,
        _CROP_MATCH,
    ),
    Variant(
        "crops of 128x256 (the report's), matching at 32x64",
        "hungarian-unet",
        _REPORT_HEAD,
        _REPORT_MATCH,
        training={"resize": (140, 280), "crop": (128, 256)},
    ),
    # the two best of the quarter budget, at the profile's full budget
    Variant(
        "coordinate channels, full budget",
        "hungarian-unet",
        _REPORT_HEAD | _COORDINATES,
        _REPORT_MATCH,
        short=False,
    ),
    Variant(
        "masked class head, coordinate channels, matching at the crop's, full budget",
        "hungarian-unet",
        _MASKED_HEAD | _COORDINATES,
        _CROP_MATCH,
        short=False,
    ),
]

# Validation metrics of a Hungarian U-Net run -> column (in %, except counts per image).
PANOPTIC_COLUMNS = {
    "pq": "PQ",
    "pq_things": "PQ things",
    "pq_stuff": "PQ stuff",
    "rq_car": "RQ car",
    "pq_car": "PQ car",
    "miou": "mIoU",
    "matched_gt_per_image": "segments found per image",
    "duplicates_per_image": "duplicates per image",
}


def panoptic_study_table(
    run_dirs: dict[str, Path], step_seconds: dict[str, float] | None = None
) -> pd.DataFrame:
    """Validation panoptic metrics of each run (rows, in %; counts per image as they are),
    with its epochs, training scenes and training minutes from its records; ``step_seconds``
    adds a column of measured training steps."""
    car = CITYSCAPES.eval_names.index("car")
    rows = {}
    for label, run_dir in run_dirs.items():
        records = read_metrics(run_dir)
        val = records[-1]["val"]
        row = {}
        for key, column in PANOPTIC_COLUMNS.items():
            value = (
                val[f"{key.removesuffix('_car')}_per_class"][car]
                if key.endswith("_car")
                else val[key]
            )
            row[column] = round(value, 3) if "per image" in column else percent(value)
        row["epochs"] = final_metrics(run_dir, records)["epochs"]
        row["training scenes"] = load_config(run_dir).num_train
        row["training (min)"] = training_minutes(records)
        if step_seconds and label in step_seconds:
            row["training step (s)"] = round(step_seconds[label], 3)
        rows[label] = row
    return pd.DataFrame(rows).T


def ablation_claim(table: pd.DataFrame) -> str:
    """Which variant separates cars best, judged as ``reports.cars_claim`` judges the profile's
    run (RQ of cars and PQ of things), one line per row."""
    from seqseg_lib.reports import CAR_RQ_THRESHOLD, THINGS_PQ_THRESHOLD

    lines = []
    for label, row in table.iterrows():
        holds = row["RQ car"] >= CAR_RQ_THRESHOLD and row["PQ things"] >= THINGS_PQ_THRESHOLD
        lines.append(
            f"{label} ({row['epochs']:g} epochs, {row['training scenes']:g} scenes): "
            f"RQ car {row['RQ car']:.1f}, PQ things {row['PQ things']:.1f}, PQ {row['PQ']:.1f}: "
            f"{'separates cars' if holds else 'does not separate cars'} (one seed; judged: RQ "
            f"car at least {CAR_RQ_THRESHOLD:g} and PQ things at least {THINGS_PQ_THRESHOLD:g})."
        )
    return "\n".join(lines)


# -- Sec. 3.5: higher-resolution instance masks (notebook 06) ---------------------------------
MASK_HEAD_STUDY = [
    Variant(f"{mode}, {name}", f"mnist-{mode}", model, short=False)
    for mode in ("easy", "hard")
    for name, model in (
        ("linear mask head (Sec. 3.2)", {}),
        ("dot-product mask head (Sec. 3.5)", {"mask_head": "dot"}),
    )
]
MASK_COLUMNS = {
    "accuracy": "accuracy (%)",
    "dice_loss": "Dice loss",
    "ap": "mask AP (%)",
    "ap50": "AP50 (%)",
    "ap75": "AP75 (%)",
}


def mask_head_table(run_dirs: dict[str, Path]) -> pd.DataFrame:
    """Validation digit accuracy, Dice loss (0-1, the report's scale) and mask AP per run, with
    the report's numbers and the model's size."""
    rows = {}
    for label, run_dir in run_dirs.items():
        final = final_metrics(run_dir)
        row = mnist_values(final, MASK_COLUMNS)
        model = build_model(load_config(run_dir))
        row["parameters (M)"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
        row |= report_mnist_columns(label.split(",")[0])
        row["epochs"] = final["epochs"]
        rows[label] = row
    return pd.DataFrame(rows).T


def mask_head_claim(table: pd.DataFrame) -> str:
    """Sec. 3.5: masks computed against every patch's hidden state have a higher resolution,
    judged by the Dice loss (lower in both modes) and AP75, the strict-overlap AP."""
    lines = []
    for mode in ("easy", "hard"):
        linear = table.loc[f"{mode}, linear mask head (Sec. 3.2)"]
        dot = table.loc[f"{mode}, dot-product mask head (Sec. 3.5)"]
        lines.append(
            f"{mode}: Dice loss {dot['Dice loss']:.3f} with the dot-product head against "
            f"{linear['Dice loss']:.3f} with the linear one, AP75 {dot['AP75 (%)']:.1f} against "
            f"{linear['AP75 (%)']:.1f}, accuracy {dot['accuracy (%)']:.1f}% against "
            f"{linear['accuracy (%)']:.1f}%: "
            f"{'better masks' if dot['Dice loss'] < linear['Dice loss'] else 'no better masks'}."
        )
    return "\n".join(lines)


# -- Sec. 4.1: redundant detections against the class loss (notebook 06) ----------------------
CLASS_LOSS_STUDY = [
    Variant("cross-entropy, class weight 0.1 (Sec. 3.3)", "hungarian-unet"),
    Variant("cross-entropy, class weight 1", "hungarian-unet", loss={"class_weight": 1.0}),
    Variant("focal loss, class weight 0.1", "hungarian-unet", loss={"class_loss": "focal"}),
    Variant(
        "focal loss, class weight 1",
        "hungarian-unet",
        loss={"class_loss": "focal", "class_weight": 1.0},
    ),
]


def class_loss_claim(table: pd.DataFrame) -> str:
    """Sec. 4.1: a larger class weight or focal loss could reduce redundant detections. Two
    things judged apart, against the report's setting: duplicates (fewer: under 90% of its
    duplicates per image), and things (PQ things and RQ car; none found when both are 0), with
    the overall PQ beside them: fewer duplicates that come from finding no things are no
    remedy."""
    base_label = CLASS_LOSS_STUDY[0].label
    base = table.loc[base_label]
    lines = []
    for label, row in table.drop(index=base_label).iterrows():
        fewer = row["duplicates per image"] < 0.9 * base["duplicates per image"]
        things = (
            f"PQ things {row['PQ things']:.2f} against {base['PQ things']:.2f}, RQ car "
            f"{row['RQ car']:.2f} against {base['RQ car']:.2f}"
        )
        found = (
            "it finds no things"
            if row["PQ things"] == 0 and row["RQ car"] == 0
            else ("it finds things")
        )
        lines.append(
            f"{label}: duplicates per image {row['duplicates per image']:.2f} against "
            f"{base['duplicates per image']:.2f}: {'fewer' if fewer else 'not fewer'} "
            f"(judged: under 90% of the report's setting's); {things}: {found}; PQ "
            f"{row['PQ']:.1f} against {base['PQ']:.1f}."
        )
    return "\n".join(lines)


# -- Sec. 5: BERT layers in the Hungarian U-Net's bottleneck (notebook 06) --------------------
BOTTLENECK_STUDY = [
    Variant("plain bottleneck", "hungarian-unet"),
    Variant("2 BERT layers in the bottleneck", "hungarian-unet", {"bottleneck_layers": 2}),
]


def step_seconds(variants: list[Variant], profile: str, dataset: str | None, device: str):
    """Median seconds of one training step of each variant, at its profile's batch size,
    measured one after the other in this process."""
    seconds = {}
    for variant in variants:
        config = variant_config(variant, profile, dataset)
        seconds[variant.label] = measure_step_time(config, config.batch_size, device=device)
    return seconds


def bottleneck_claim(table: pd.DataFrame) -> str:
    """Sec. 5: "adding a few BERT layers between the encoder and the decoder could improve
    performance". Judged: PQ higher by more than 0.5 points."""
    plain, bert = table.iloc[0], table.iloc[1]
    gain = bert["PQ"] - plain["PQ"]
    cost = bert["training step (s)"] / plain["training step (s)"]
    return (
        f"{table.index[1]}: PQ {bert['PQ']:.1f} against {plain['PQ']:.1f} "
        f"({gain:+.1f} points), PQ things {bert['PQ things']:.1f} against "
        f"{plain['PQ things']:.1f}, at {cost:.2f}x the step time: "
        f"{'improves' if gain > 0.5 else 'does not improve'} (one seed; judged: PQ up by more "
        "than 0.5)."
    )


# -- what pixel accuracy hides (notebook 06) --------------------------------------------------
IGNORED_IOU = 5.0  # %: a class the model has as good as given up


def per_class_iou_table(run_dirs: dict[str, Path], class_names: list[str]) -> pd.DataFrame:
    """Validation IoU (%) of every class (rows) per model (columns), then pixel accuracy and
    mIoU as the last rows."""
    columns = {}
    for label, run_dir in run_dirs.items():
        val = read_metrics(run_dir)[-1]["val"]
        column = {name: percent(value) for name, value in zip(class_names, val["iou"])}
        column["pixel accuracy"] = percent(val["accuracy"])
        column["mIoU"] = percent(val["miou"])
        columns[label] = column
    return pd.DataFrame(columns)


def per_class_iou_claim(table: pd.DataFrame) -> str:
    """Per model: the classes it ignores (IoU below ``IGNORED_IOU``) behind its accuracy."""
    classes = table.drop(index=["pixel accuracy", "mIoU"])
    lines = []
    for model in table.columns:
        defined = classes[model].dropna()  # classes absent from targets and predictions: nan
        ignored = defined.index[defined < IGNORED_IOU].tolist()
        lines.append(
            f"{model}: pixel accuracy {table.loc['pixel accuracy', model]:.1f}%, mIoU "
            f"{table.loc['mIoU', model]:.1f}%; {len(ignored)} of {len(defined)} classes below "
            f"{IGNORED_IOU:g}% IoU" + (f" ({', '.join(ignored)})." if ignored else ".")
        )
    return "\n".join(lines)


def figure_per_class_iou(table: pd.DataFrame) -> plt.Figure:
    """Per-class IoU bars, one colour per model, classes in the table's order."""
    classes = table.drop(index=["pixel accuracy", "mIoU"])
    figure, axis = plt.subplots(figsize=(max(6, 0.45 * len(classes)), 3.4), layout="constrained")
    width = 0.8 / len(classes.columns)
    positions = np.arange(len(classes))
    for k, model in enumerate(classes.columns):
        label = f"{model} (accuracy {table.loc['pixel accuracy', model]:.1f}%)"
        axis.bar(positions + k * width, classes[model].fillna(0), width, label=label)
    axis.set_xticks(positions + width * (len(classes.columns) - 1) / 2)
    axis.set_xticklabels(classes.index, rotation=60, ha="right", fontsize=8)
    axis.set_ylabel("validation IoU (%)")
    axis.axhline(IGNORED_IOU, color="0.5", linewidth=0.8, linestyle="--")
    axis.legend(fontsize=8)
    return figure
