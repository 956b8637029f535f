"""Sec. 3's claims: instance segmentation on scattered MNIST (notebook 03, Figures 4-5), the
report's numbers at the profile's budget (notebook 07), and Sec. 3.5's higher-resolution masks
(notebook 06).
"""

import dataclasses
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from seqseg_lib import paper
from seqseg_lib.config import Config
from seqseg_lib.experiments import Variant, build_config, build_model, load_config
from seqseg_lib.experiments.instance import PRESETS
from seqseg_lib.models import count_parameters
from seqseg_lib.plotting import (
    add_probability_bar,
    draw_query,
    query_title,
    show_image,
    show_segments,
)
from seqseg_lib.queries import predict_queries
from seqseg_lib.runs import final_metrics, read_metrics, training_minutes
from seqseg_lib.verdicts import (
    one_seed,
    percent,
)

# Validation metrics -> column: rates in percent, the Dice loss as the report gives it (0 to 1).
MNIST_COLUMNS = {
    "accuracy": "accuracy (%)",
    "dice_loss": "Dice loss",
    "dice": "Dice (%)",
    "ap": "mask AP (%)",
    "ap50": "AP50 (%)",
    "ap75": "AP75 (%)",
    "precision": "precision (%)",
    "recall": "recall (%)",
    "miss_rate": "digits missed (%)",
    "duplicate_rate": "digits found twice (%)",
}


def report_mnist_columns(mode: str) -> dict[str, float]:
    """The report's digit accuracy (%) and Dice loss for ``mode`` ("easy" or "hard"), Sec. 3.4."""
    report = paper.MNIST_RESULTS[mode]
    return {
        "report accuracy (%)": 100 * report["accuracy"],
        "report Dice loss": report["dice_loss"],
    }


def mnist_values(final: dict[str, Any], columns: dict[str, str]) -> dict[str, float]:
    """A run's validation metrics (``final_metrics``) under their ``columns`` names: rates in
    percent, the Dice loss as the report gives it (0 to 1)."""
    return {
        column: round(final[f"val_{key}"], 4)
        if key == "dice_loss"
        else percent(final[f"val_{key}"])
        for key, column in columns.items()
        if f"val_{key}" in final
    }


def mnist_configs(
    profile: str, dataset: str = "mnist", bce_modes=("easy",), **run: Any
) -> dict[str, tuple[Config, str]]:
    """``{label: (config, run-name suffix)}`` of notebook 03's runs: both modes as the report
    trains them, and the ``bce_modes`` again with binary cross-entropy masks."""
    configs = {
        f"Seq2SegInstance {mode}": (build_config(f"mnist-{mode}", profile, dataset, **run), "")
        for mode in ("easy", "hard")
    }
    for mode in bce_modes:
        config = configs[f"Seq2SegInstance {mode}"][0]
        bce = dataclasses.replace(config, loss=dataclasses.replace(config.loss, mask_loss="bce"))
        configs[f"Seq2SegInstance {mode} (BCE masks)"] = (bce, "bce")
    return configs


def mnist_mode(run_dir: str | Path) -> str:
    """``"easy"`` or ``"hard"``: the scattered-MNIST mode a run trained on, from its own
    ``config.json`` (never from the label a table gives it)."""
    return load_config(run_dir).experiment.removeprefix("mnist-")


def mnist_table(run_dirs: dict[str, Path]) -> pd.DataFrame:
    """Validation metrics of each run (rows), with the report's two numbers per mode where the
    run is the report's (Dice-trained masks)."""
    rows = {}
    for name, run_dir in run_dirs.items():
        final = final_metrics(run_dir)
        row = mnist_values(final, MNIST_COLUMNS)
        if load_config(run_dir).loss.mask_loss == "dice":
            report = paper.MNIST_RESULTS[mnist_mode(run_dir)]
            row |= {"report accuracy (%)": 100 * report["accuracy"]}
            row |= {"report Dice loss": report["dice_loss"]}
        rows[name] = row | {"epochs": final["epochs"]}
    return pd.DataFrame(rows).T


def compare_mnist(table: pd.DataFrame) -> str:
    """Sec. 3.3-3.4's claims, with our numbers."""
    lines = []
    for mode in ("easy", "hard"):
        name = f"Seq2SegInstance {mode}"
        if name not in table.index:
            continue
        row, report = _mnist_row(table.loc[name]), paper.MNIST_RESULTS[mode]
        lines.append(
            f"{mode}: digit accuracy {100 * row['accuracy']:.1f}% "
            f"(report {100 * report['accuracy']:.0f}%), Dice loss {row['dice_loss']:.3f} "
            f"(report's 'mask dice score' {report['dice_loss']}), "
            f"mask AP {100 * row.get('ap', float('nan')):.1f}, missed "
            f"{100 * row['miss_rate']:.1f}% of digits, found twice "
            f"{100 * row['duplicate_rate']:.1f}% (not judged here: notebook 07 judges these "
            "against targets of ours at this budget)."
        )
    if "Seq2SegInstance easy" in table.index and "Seq2SegInstance hard" in table.index:
        easy = _mnist_row(table.loc["Seq2SegInstance easy"])
        hard = _mnist_row(table.loc["Seq2SegInstance hard"])
        holds = easy["accuracy"] > hard["accuracy"] and easy["dice_loss"] < hard["dice_loss"]
        lines.append(
            "Hard (overlapping) digits are harder than easy ones (judged: lower digit accuracy "
            f"and higher Dice loss on hard images): {one_seed(holds)} (accuracy "
            f"{100 * hard['accuracy']:.1f}% against {100 * easy['accuracy']:.1f}%, Dice loss "
            f"{hard['dice_loss']:.3f} against {easy['dice_loss']:.3f})."
        )
    for mode in ("easy", "hard"):
        dice, bce = f"Seq2SegInstance {mode}", f"Seq2SegInstance {mode} (BCE masks)"
        if dice in table.index and bce in table.index:
            # "a big improvement": at least a fifth less Dice loss than the BCE-trained model
            with_dice, with_bce = _mnist_row(table.loc[dice]), _mnist_row(table.loc[bce])
            holds = with_dice["dice_loss"] < 0.8 * with_bce["dice_loss"]
            lines.append(
                f"Dice loss over BCE for masks is a big improvement ({mode}; judged: at least a "
                f"fifth less Dice loss): {one_seed(holds)} "
                f"(Dice loss {with_dice['dice_loss']:.3f} with Dice training, "
                f"{with_bce['dice_loss']:.3f} with BCE; accuracy "
                f"{100 * with_dice['accuracy']:.1f}% vs {100 * with_bce['accuracy']:.1f}%)."
            )
    return "\n".join(lines)


def _mnist_row(row: pd.Series) -> dict[str, float]:
    """A row of the MNIST table as the evaluator's keys, rates as fractions (tables written
    before the columns were in percent have the keys themselves)."""
    values = {}
    for key, column in MNIST_COLUMNS.items():
        if column in row.index:
            values[key] = row[column] if key == "dice_loss" else row[column] / 100
        elif key in row.index:
            values[key] = row[key]
    return values


@torch.no_grad()
def figure_query_rows(model, dataset, indices: list[int], matcher) -> plt.Figure:
    """Figures 4-5: per image, the input, its ground-truth masks (one colour per digit) and
    each query's mask as ``plotting.draw_query`` draws it; matched queries say the digit they
    were matched to."""
    device = next(model.parameters()).device
    num_queries = model(dataset[0]["image"][None].to(device))["pred_masks"].shape[1]
    figure, axes = plt.subplots(
        len(indices),
        num_queries + 2,
        figsize=(1.5 * (num_queries + 2), 1.9 * len(indices) + 0.5),
        layout="constrained",
    )
    axes = np.atleast_2d(axes)
    for row, index in enumerate(indices):
        item = dataset[index]
        outputs = model(item["image"][None].to(device))
        outputs = {key: outputs[key].cpu() for key in ("pred_logits", "pred_masks")}
        target = {"labels": item["labels"], "masks": item["masks"]}
        (src, tgt), *_ = matcher(outputs, [target])
        names = dataset.class_names
        matched = {int(q): names[int(target["labels"][t])] for q, t in zip(src, tgt)}
        show_image(axes[row, 0], item["image"], "input")
        digits = " ".join(names[int(d)] for d in item["labels"])
        show_segments(axes[row, 1], item["masks"], f"GT {digits}", fontsize=7)
        prediction = predict_queries(outputs["pred_logits"][0])
        confident = prediction.confident()
        for query in range(num_queries):
            title = query_title(prediction, query, names, matched.get(query))
            probabilities = outputs["pred_masks"][0, query].sigmoid()
            draw_query(axes[row, query + 2], probabilities, title, bool(confident[query]))
    add_probability_bar(figure, axes.ravel(), location="top")
    return figure


# -- the report's numbers at the profile's budget (notebook 07) ---------------------------


# The heads of the instance model, one change at a time from the report's (Sec. 3.2).
MNIST_HEADS = (
    ("the report's heads (notebook 03)", {}, {}),
    ("dot-product mask head (Sec. 3.5)", {"mask_head": "dot"}, {}),
    ("dot-product mask head, masked class head", {"mask_head": "dot", "class_head": "masked"}, {}),
    (
        "dot-product mask head, masked class head, class weight 1",
        {"mask_head": "dot", "class_head": "masked"},
        {"class_weight": 1.0},
    ),
)


# Our targets at the profile's budget (smaller model, batch and training set than the report's),
# one rule for both modes: Sec. 3.4's digit accuracy less MNIST_ACCURACY_SLACK points, and its
# Dice loss plus MNIST_DICE_SLACK.
MNIST_ACCURACY_SLACK = 2.0
MNIST_DICE_SLACK = 0.07


def mnist_target(mode: str) -> tuple[float, float]:
    """The least digit accuracy (%) and the largest Dice loss of our target for ``mode``:
    easy 95% / 0.10, hard 60% / 0.27."""
    report = paper.MNIST_RESULTS[mode]
    accuracy = round(100 * report["accuracy"] - MNIST_ACCURACY_SLACK, 2)
    return accuracy, round(report["dice_loss"] + MNIST_DICE_SLACK, 3)


TARGET_COLUMNS = {"accuracy": "accuracy (%)", "dice_loss": "Dice loss", "ap": "mask AP (%)"}


# Below ``paper``, the report's heads and the dot-product mask head with the masked class
# head also train on easy images for MNIST_LONGER times the profile's epochs, learning-rate
# milestones included: at ``cpu``, 11,268 steps of 32 images against the report's 11,256 of 64.
MNIST_LONGER = 3


MNIST_LONGER_HEADS = (0, 2)  # positions in MNIST_HEADS


def mnist_study(profile: str) -> list[Variant]:
    """``MNIST_HEADS`` in both modes, at the profile's budget; below ``paper``, the
    ``MNIST_LONGER_HEADS`` on easy images at ``MNIST_LONGER`` times the budget as well (after
    the easy rows)."""
    variants = [
        Variant(f"{mode}, {label}", f"mnist-{mode}", model, loss, short=False)
        for mode in ("easy", "hard")
        for label, model, loss in MNIST_HEADS
    ]
    if profile == "paper":  # ``paper`` already trains the report's 11,256 steps
        return variants
    preset = PRESETS["mnist-easy"][profile]
    training = {
        "epochs": MNIST_LONGER * preset.epochs,
        "lr_milestones": tuple((MNIST_LONGER * e, lr) for e, lr in preset.lr_milestones),
    }
    longer = []
    for index in MNIST_LONGER_HEADS:
        label, model, loss = MNIST_HEADS[index]
        label = f"easy, {label.split(' (')[0]}, {MNIST_LONGER}x the epochs"
        longer.append(Variant(label, "mnist-easy", model, loss, short=False, training=training))
    return variants[: len(MNIST_HEADS)] + longer + variants[len(MNIST_HEADS) :]


def targets_table(run_dirs: dict[str, Path]) -> pd.DataFrame:
    """Per run: validation digit accuracy, Dice loss and mask AP, the target of its mode
    (``mnist_target``), the report's numbers, steps and training minutes."""
    rows = {}
    for label, run_dir in run_dirs.items():
        mode, records = mnist_mode(run_dir), read_metrics(run_dir)
        accuracy, dice_loss = mnist_target(mode)
        targets = {"target accuracy (%)": accuracy, "target Dice loss": dice_loss}
        final = final_metrics(run_dir, records)
        rows[label] = (
            mnist_values(final, TARGET_COLUMNS)
            | targets
            | report_mnist_columns(mode)
            | {"steps": final["steps"], "training (min)": training_minutes(records)}
        )
    return pd.DataFrame(rows).T


def targets_claim(table: pd.DataFrame) -> str:
    """Per run, whether it reaches the target of its row (its mode's ``mnist_target``: ours,
    not the report's), after a line on where our setting differs from the report's."""
    report = paper.MNIST_RESULTS
    lines = [
        "Our setting, not the report's: the profile's MNIST model (width 256 against 512, batch "
        "32 against 64, 4,000 training digits against 60,000); the targets are ours, one rule "
        f"for both modes: the report's accuracy less {MNIST_ACCURACY_SLACK:g} points and its "
        f"Dice loss plus {MNIST_DICE_SLACK:g} (report: easy {100 * report['easy']['accuracy']:g}% "
        f"/ {report['easy']['dice_loss']:g}, hard {100 * report['hard']['accuracy']:g}% / "
        f"{report['hard']['dice_loss']:g})."
    ]
    for label, row in table.iterrows():
        accuracy, dice_loss = row["target accuracy (%)"], row["target Dice loss"]
        reached = row["accuracy (%)"] >= accuracy
        target = f"accuracy at least {accuracy:g}%"
        if pd.notna(dice_loss):
            reached = reached and row["Dice loss"] <= dice_loss
            target += f" and Dice loss at most {dice_loss:g}"
        lines.append(
            f"{label}: accuracy {row['accuracy (%)']:.1f}%, Dice loss {row['Dice loss']:.3f} "
            f"({int(row['steps']):,} steps, {row['training (min)']:g} min): "
            f"{'reaches' if reached else 'does not reach'} "
            f"our target ({target}; one seed)."
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
        row["parameters (M)"] = round(count_parameters(model) / 1e6, 2)
        row |= report_mnist_columns(mnist_mode(run_dir))
        row["epochs"] = final["epochs"]
        rows[label] = row
    return pd.DataFrame(rows).T


def mask_head_claim(table: pd.DataFrame) -> str:
    """Sec. 3.5: masks computed against every patch's hidden state have a higher resolution.
    Better masks: a lower Dice loss and a higher AP75 (the strict-overlap AP) than the linear
    head's; the digit accuracy beside them, judged apart."""
    lines = []
    for mode in ("easy", "hard"):
        linear = table.loc[f"{mode}, linear mask head (Sec. 3.2)"]
        dot = table.loc[f"{mode}, dot-product mask head (Sec. 3.5)"]
        better = dot["Dice loss"] < linear["Dice loss"] and dot["AP75 (%)"] > linear["AP75 (%)"]
        lower = dot["accuracy (%)"] < linear["accuracy (%)"]
        lines.append(
            f"{mode} (judged: better masks where the Dice loss is lower and AP75 higher; one "
            f"seed): Dice loss {dot['Dice loss']:.3f} with the dot-product head against "
            f"{linear['Dice loss']:.3f} with the linear one, AP75 {dot['AP75 (%)']:.1f} against "
            f"{linear['AP75 (%)']:.1f}: {'better masks' if better else 'no better masks'}; "
            f"digit accuracy {dot['accuracy (%)']:.1f}% against {linear['accuracy (%)']:.1f}%: "
            f"{'lower' if lower else 'not lower'}."
        )
    return "\n".join(lines)
