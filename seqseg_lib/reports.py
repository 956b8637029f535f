"""What the report states, and helpers that turn run directories into table rows.

The report's numbers are kept here once, with their section, so every notebook puts the
same reference beside its own measurements.
"""

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from seqseg_lib import paper
from seqseg_lib.data import build_dataset
from seqseg_lib.data.labels import CITYSCAPES, LabelSpace
from seqseg_lib.data.targets import gt_segments, panoptic_targets
from seqseg_lib.engine import prepare, read_metrics
from seqseg_lib.metrics import confusion_matrix, scores
from seqseg_lib.panoptic import panoptic_inference
from seqseg_lib.plotting import (
    MASK_CMAP,
    add_class_legend,
    colorize_segments,
    plot_query_grid,
    plot_segmentations,
    show_image,
)
from seqseg_lib.queries import predict_queries
from seqseg_lib.speed import measure_step_time
from seqseg_lib.verdicts import OUR_CHECK, one_seed, seed_spread, verdict


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def final_metrics(
    run_dir: str | Path, records: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The last epoch's record of a run, flattened: ``train_accuracy``, ``val_miou``, ...;
    ``epochs`` counts a partial last epoch (a run stopped by ``max_steps``) by its fraction,
    ``steps`` the optimiser steps taken. ``records``: the run's ``metrics.jsonl``, where the
    caller has read it already."""
    records = read_metrics(run_dir) if records is None else records
    if not records:
        raise ValueError(f"{str(run_dir)!r} has no epoch record in metrics.jsonl")
    last = records[-1]
    flat = {
        "epochs": round(last["epoch"] + last.get("epoch_fraction", 1), 2),
        "steps": last["global_step"],
    }
    for split in ("train", "val"):
        for key, value in last.get(split, {}).items():
            if isinstance(value, float | int):
                flat[f"{split}_{key}"] = value
    return flat


@torch.no_grad()
def majority_class_scores(train_set, val_set, label_space: LabelSpace) -> dict[str, Any]:
    """Scores of the constant predictor that outputs the most frequent training class."""
    for dataset in (train_set, val_set):
        prepare(dataset)  # render or decode every item at once, on every core
    counts = torch.zeros(256, dtype=torch.long)
    for item in train_set:
        counts += torch.bincount(label_space.to_eval(item["labels"]).flatten(), minlength=256)
    majority = int(counts[: label_space.num_eval_classes].argmax())
    k = label_space.num_eval_classes
    matrix = torch.zeros(k, k + 1, dtype=torch.long)
    for item in val_set:
        target = label_space.to_eval(item["labels"])
        matrix += confusion_matrix(torch.full_like(target, majority), target, k)
    return scores(matrix) | {"class": label_space.eval_names[majority]}


def percent(value: float) -> float:
    return round(100 * value, 2)


def table1(configs, run_dirs, models, names, baseline, device="auto") -> pd.DataFrame:
    """Table 1: ours next to the report's, per model, plus the majority-class baseline."""
    columns = {}
    steps = {}
    for key, name in names.items():
        final = final_metrics(run_dirs[key])
        steps[key] = measure_step_time(configs[key], batch_size=24, device=device)
        report = paper.TABLE1[key]
        columns[f"{name} (ours)"] = {
            "parameters (M)": round(count_parameters(models[key]) / 1e6, 2),
            "training step, batch 24 (s)": round(steps[key], 3),
            "train accuracy (%)": percent(final["train_accuracy"]),
            "val accuracy (%)": percent(final["val_accuracy"]),
            "val mIoU (%)": percent(final["val_miou"]),
            "epochs": final["epochs"],
            "training steps": final["steps"],
        }
        columns[f"{name} (report)"] = {
            "parameters (M)": report["parameters"] / 1e6,
            "training step, batch 24 (s)": report["step_s"],
            "train accuracy (%)": report["train_accuracy"],
            "val accuracy (%)": report["val_accuracy"],
            "val mIoU (%)": None,
            "epochs": paper.EPOCHS[key],
            "training steps": paper.EPOCHS[key] * paper.STEPS_PER_EPOCH,
        }
    columns[f"majority class '{baseline['class']}'"] = {
        "val accuracy (%)": percent(baseline["accuracy"]),
        "val mIoU (%)": percent(baseline["miou"]),
    }
    table = pd.DataFrame(columns)
    if "seq2seg" in steps and "unet" in steps:
        ratio = pd.Series(
            {f"{names['seq2seg']} (ours)": round(steps["seq2seg"] / steps["unet"], 3)},
            name="step ratio Seq2Seg / U-Net",
        )
        ratio[f"{names['seq2seg']} (report)"] = round(paper.STEP_RATIO, 3)
        table = pd.concat([table, ratio.to_frame().T])
    return table


def spread_indices(size: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(size)`` (consecutive CamVid frames are
    near duplicates)."""
    return sorted({round(i * (size - 1) / max(count - 1, 1)) for i in range(count)})


# CamVid's validation split is one drive (the 101 frames of sequence 0016E5): Figure 1 takes
# its scenes from the test split (sequences 0001TP and Seq05VD), on which no model trained.
FIGURE_SPLITS = {"camvid": "test"}


def figure_scenes(config, val_set) -> tuple[Any, str]:
    """The dataset Figure 1 draws its scenes from, and its split: ``val_set``, or the split of
    ``FIGURE_SPLITS`` (all its images, centre crops like validation)."""
    split = FIGURE_SPLITS.get(config.dataset, "val")
    if split == "val":
        return val_set, split
    common = {"resize": config.resize, "crop": config.crop, "seed": config.seed}
    return build_dataset(config.dataset, config.data_root, split, **common), split


def diverse_indices(dataset, count: int) -> list[int]:
    """``count`` items that differ most in what they show: greedy farthest points, from item
    0, under the L1 distance between the images' class frequencies. Consecutive frames of a
    video (CamVid's splits) would otherwise show the same street."""
    label_space = dataset.label_space
    classes = label_space.num_eval_classes + 1  # void last
    frequencies = []
    for index in range(len(dataset)):
        ids = label_space.to_eval(dataset[index]["labels"]).flatten().clamp(max=classes - 1)
        frequencies.append(torch.bincount(ids, minlength=classes).double() / ids.numel())
    frequencies = torch.stack(frequencies)
    chosen, distance = [], torch.full((len(dataset),), float("inf"), dtype=torch.double)
    while len(chosen) < min(count, len(dataset)):
        chosen.append(int(distance.argmax()) if chosen else 0)
        distance = torch.minimum(distance, (frequencies - frequencies[chosen[-1]]).abs().sum(1))
        distance[chosen] = -1  # never twice
    return chosen


def figure_segmentations(val_set, models, names, indices):
    """Figure 1: ground truth, then Seq2Seg and U-Net (the report's order), in evaluation
    ids."""
    label_space = val_set.label_space
    items = [val_set[i] for i in indices]
    images = torch.stack([item["image"] for item in items])
    columns = {"ground truth": label_space.to_eval(torch.stack([i["labels"] for i in items]))}
    with torch.no_grad():
        for key in sorted(models, key=lambda k: k != "seq2seg"):  # Figure 1's order
            model = models[key]
            device = next(model.parameters()).device
            logits = model(images.to(device)).cpu()
            columns[names[key]] = label_space.to_eval(logits.argmax(1))
    return plot_segmentations(images, columns, label_space)


def verdict_word(holds: bool) -> str:
    return "reproduced" if holds else "not reproduced"


# "Seq2Seg obtains only 3 percent less in accuracy than U-Net" (Sec. 2.3): U-Net ahead by
# more than 0 and at most this many points of validation accuracy reproduces it.
TABLE1_GAP_TOLERANCE = 5.0
# "The skip connection helps" (Table 1: with skip ahead of without): ahead by more than this.
SKIP_MARGIN = 0.5
# "Fails to train" (Sec. 2.2, no skip at 1e-4): validation accuracy at most FAILS_MARGIN
# points above the majority class, or more than FAILS_BEHIND points behind a run that trains.
FAILS_MARGIN = 1.0
FAILS_BEHIND = 5.0


def fails_to_train(accuracy: float, majority: float, trained: float) -> bool:
    """Whether a run with this validation accuracy (%) "fails to train", against the
    majority class's and that of a run that trains (``trained``), both in %."""
    return accuracy <= majority + FAILS_MARGIN or accuracy < trained - FAILS_BEHIND


def size_note(table: pd.DataFrame, columns: dict[str, str]) -> str:
    """'; our Seq2Seg has 3.6M parameters against the report's 50.8M, ...' where a model of
    ours is more than twice smaller or larger than the report's, or trained for less than half
    the report's steps (where the table counts them), else ''."""
    notes = []
    for name, column in columns.items():
        ours = table.loc["parameters (M)", f"{column} (ours)"]
        report = table.loc["parameters (M)", f"{column} (report)"]
        if not 0.5 <= ours / report <= 2:
            notes.append(f"our {name} has {ours:.1f}M parameters against the report's {report:g}M")
        if "training steps" in table.index:
            ours = table.loc["training steps", f"{column} (ours)"]
            report = table.loc["training steps", f"{column} (report)"]
            if ours < report / 2:
                notes.append(
                    f"our {name} trained {ours:.0f} steps against the report's {report:.0f}"
                )
    if not notes:
        return ""
    return "; " + ", ".join(notes) + ": the verdict is on these runs"


def within_gap_tolerance() -> dict:
    """Table 1's rule as ``verdict``'s ``holds`` and ``margin``: U-Net ahead by more than 0 and
    at most ``TABLE1_GAP_TOLERANCE`` points."""
    return {
        "holds": lambda gap: 0 < gap <= TABLE1_GAP_TOLERANCE,
        "margin": lambda gap: min(abs(gap), abs(gap - TABLE1_GAP_TOLERANCE)),
    }


def compare_table1(table: pd.DataFrame, spread: float | None = None) -> str:
    """One line per claim of Sec. 2.3 about Table 1, in the report's terms, with the tolerance
    it is judged by and our numbers; ``spread``: the seed spread of the gap measured for such
    runs (the noise rule of ``seqseg_lib.verdicts``)."""
    ours_unet, ours_s2s = table["U-Net (ours)"], table["Seq2Seg (ours)"]
    baseline = table.filter(like="majority").iloc[:, 0]["val accuracy (%)"]
    worst = min(ours_unet["val accuracy (%)"], ours_s2s["val accuracy (%)"])
    gap = ours_unet["val accuracy (%)"] - ours_s2s["val accuracy (%)"]
    ratio = table.loc["step ratio Seq2Seg / U-Net", "Seq2Seg (ours)"]
    sizes = size_note(table, {"Seq2Seg": "Seq2Seg", "U-Net": "U-Net"})
    judged = verdict([gap], **within_gap_tolerance(), spread=spread)
    report = {key: paper.TABLE1[key]["val_accuracy"] for key in ("seq2seg", "unet")}
    lines = [
        "Seq2Seg obtains only about 3 points less validation accuracy than U-Net (report "
        f"{report['seq2seg']:.2f} vs {report['unet']:.2f}, {paper.GAP:.2f} points; judged: U-Net "
        "ahead by more than 0 and at most "
        f"{TABLE1_GAP_TOLERANCE:g} points): {judged} "
        f"(ours {ours_s2s['val accuracy (%)']:.2f} vs {ours_unet['val accuracy (%)']:.2f}, "
        f"U-Net ahead by {gap:.2f} points{sizes}).",
        "A Seq2Seg training step is faster than a U-Net step (report "
        f"{paper.TABLE1['seq2seg']['step_s']:g} s vs {paper.TABLE1['unet']['step_s']:g} s, ratio "
        f"{paper.STEP_RATIO:.2f}, on its GPU; judged: ratio below 1): {verdict_word(ratio < 1)} "
        f"(ratio {ratio:.2f}, "
        "measured on the device stated above with these models).",
        f"{OUR_CHECK}both beat the majority-class baseline "
        f"({baseline:.2f}%; judged: both validation "
        f"accuracies above it): {one_seed(worst > baseline)}.",
        "U-Net maps look more natural: judge Figure 1 (not a number).",
    ]
    return "\n".join(lines)


def skip_table(
    runs: dict[str, Path] | dict[str, dict[int, Path]], baseline: dict[str, Any]
) -> pd.DataFrame:
    """Train / validation accuracy and mIoU of each Seq2Seg variant, with the report's.

    ``runs``: ``{label: run directory}`` (one seed: a row per variant), or ``{label: {seed:
    run directory}}`` (a row per variant and seed, ``"label, seed 1"``, then the variant's
    mean, ``"label, mean"``; the columns ``variant`` and ``seed`` say which row is which).
    The variants come in ``compare_skip``'s order: with skip, without skip at its own rate,
    without skip at the rate of the run with skip."""
    report = {"Seq2Seg": paper.TABLE1["seq2seg"]}
    rows = {}
    for position, (name, seeds) in enumerate(runs.items()):
        reference = paper.TABLE1["seq2seg-noskip"] if position > 0 else report["Seq2Seg"]
        # Sec. 2.2: without the skip connection, Seq2Seg "fails to train with a learning rate
        # of 1e-4", the rate that trains it with the skip connection
        fails = position == 2
        reported = {
            "report train accuracy (%)": "fails to train" if fails else reference["train_accuracy"],
            "report val accuracy (%)": "fails to train" if fails else reference["val_accuracy"],
        }
        by_seed = seeds if isinstance(seeds, dict) else {None: seeds}
        measured = {}
        for seed, run_dir in by_seed.items():
            final = final_metrics(run_dir)
            measured[seed] = {
                "train accuracy (%)": percent(final["train_accuracy"]),
                "val accuracy (%)": percent(final["val_accuracy"]),
                "val mIoU (%)": percent(final["val_miou"]),
            }
            label = name if seed is None else f"{name}, seed {seed}"
            tags = {} if seed is None else {"variant": name, "seed": seed}
            rows[label] = measured[seed] | reported | {"epochs": final["epochs"]} | tags
        if None not in by_seed:
            mean = pd.DataFrame(measured.values()).mean().round(2).to_dict()
            rows[f"{name}, mean"] = mean | reported | {"epochs": final["epochs"]}
            rows[f"{name}, mean"] |= {"variant": name, "seed": "mean"}
    rows[f"majority class '{baseline['class']}'"] = {
        "val accuracy (%)": percent(baseline["accuracy"]),
        "val mIoU (%)": percent(baseline["miou"]),
    }
    return pd.DataFrame(rows).T


def skip_values(table: pd.DataFrame) -> dict[str, list[float]]:
    """``{variant: [validation accuracy of each seed]}`` of a ``skip_table``, in its order."""
    val = table["val accuracy (%)"]
    if "variant" not in table.columns:  # one seed: a row per variant, then the majority class
        return {name: [float(val[name])] for name in table.index[:3]}
    values: dict[str, list[float]] = {}
    for name, row in table.iterrows():
        if isinstance(row["variant"], str) and str(row["seed"]) != "mean":
            values.setdefault(row["variant"], []).append(float(val[name]))
    return values


def skip_spread(table: pd.DataFrame) -> float | None:
    """The larger seed spread of the skip connection's two leads (at the same rate, at the
    rates of Sec. 2.2) in a ``skip_table`` of several seeds; None for one seed."""
    skip, own, same = skip_values(table).values()
    spreads = [seed_spread([a - b for a, b in zip(skip, other)]) for other in (same, own)]
    return None if spreads[0] is None else max(spreads)


def rate(value: float) -> str:
    """A learning rate as the report writes it: ``1e-4``, ``5e-5``."""
    return f"{value:.0e}".replace("e-0", "e-")


def compare_skip(table: pd.DataFrame, baseline: dict[str, Any], spread: float | None = None) -> str:
    """The skip-connection claims of Sec. 2.2-2.3, with our numbers, under the noise rule of
    ``seqseg_lib.verdicts`` (every seed on one side of the threshold; one seed against
    ``spread``, the seed spread measured for such runs)."""
    values = skip_values(table)
    skip, no_skip, no_skip_fast = list(values)
    base = 100 * baseline["accuracy"]
    ahead = {"holds": lambda gap: gap > SKIP_MARGIN, "margin": lambda gap: abs(gap - SKIP_MARGIN)}
    same_rate = [a - b for a, b in zip(values[skip], values[no_skip_fast])]
    own_rates = [a - b for a, b in zip(values[skip], values[no_skip])]
    fails = [
        fails_to_train(fast, base, own) for fast, own in zip(values[no_skip_fast], values[no_skip])
    ]
    seeds = len(values[skip])

    def listed(numbers: list[float], signed: bool = False) -> str:
        return ", ".join(f"{n:+.2f}" if signed else f"{n:.2f}" for n in numbers)

    def noise(gaps: list[float]) -> str:
        return "" if seeds == 1 else f"; seed spread {seed_spread(gaps):.2f} points"

    over = "" if seeds == 1 else f" over {seeds} seeds"
    decided = {True: "reproduced", False: "not reproduced"}
    fails_verdict = (
        decided[fails[0]] if len(set(fails)) == 1 else "inconclusive (the seeds disagree)"
    )
    lines = [
        "The skip connection helps, both at the same learning rate (judged: with skip ahead by "
        f"more than {SKIP_MARGIN:g} points of validation accuracy, '{skip}' against "
        f"'{no_skip_fast}'{', every seed' if seeds > 1 else ''}): "
        f"{verdict(same_rate, **ahead, spread=spread)} (val accuracy {listed(values[skip])} with, "
        f"{listed(values[no_skip_fast])} without: {listed(same_rate, True)} points{over}"
        f"{noise(same_rate)}).",
        "As the report compares them, each at its own learning rate (report "
        f"{paper.TABLE1['seq2seg']['val_accuracy']:.2f} with skip at {rate(paper.SEQ2SEG_LR)}, "
        f"{paper.TABLE1['seq2seg-noskip']['val_accuracy']:.2f} without at "
        f"{rate(paper.NOSKIP_LR)}; "
        f"judged as above, '{skip}' against '{no_skip}'): "
        f"{verdict(own_rates, **ahead, spread=spread)} (val accuracy {listed(values[skip])} with, "
        f"{listed(values[no_skip])} without: {listed(own_rates, True)} points{over}"
        f"{noise(own_rates)}; the rates differ, so this does not isolate the skip connection).",
        "Without skip, Seq2Seg fails to train at the learning rate that trains it with skip "
        f"(1e-4 in the report; judged: within {FAILS_MARGIN:g} point of the majority class, "
        f"or more than {FAILS_BEHIND:g} points behind the run without skip at its own rate"
        f"{', every seed' if seeds > 1 else ''}): {fails_verdict} "
        f"(val accuracy {listed(values[no_skip_fast])} for '{no_skip_fast}' vs "
        f"{listed(values[no_skip])} for '{no_skip}'; majority class {base:.2f}).",
    ]
    return "\n".join(lines)


# -- Section 4 -----------------------------------------------------------------------------
PANOPTIC_KEYS = {
    "pq": "PQ",
    "sq": "SQ",
    "rq": "RQ",
    "pq_things": "PQ things",
    "pq_stuff": "PQ stuff",
    "accuracy": "pixel accuracy",
    "miou": "mIoU",
}


def panoptic_table(result: dict[str, Any], semantic_runs: dict[str, Path]) -> pd.DataFrame:
    """The Hungarian U-Net's validation metrics (in %) beside the semantic models' accuracy
    and mIoU over the same 19 trainIds. The report gives no number here (Sec. 4)."""
    rows = {"Hungarian U-Net": {PANOPTIC_KEYS[k]: percent(result[k]) for k in PANOPTIC_KEYS}}
    if "pq_per_class" in result:  # keyed by class name (``engine.evaluate``) or a list
        names = result["pq_per_class"]
        car = "car" if isinstance(names, dict) else CITYSCAPES.eval_names.index("car")
        for key in ("pq", "sq", "rq"):
            rows["Hungarian U-Net"][f"{key.upper()} car"] = percent(result[f"{key}_per_class"][car])
    for name, run_dir in semantic_runs.items():
        final = final_metrics(run_dir)
        rows[name] = {
            "pixel accuracy": percent(final["val_accuracy"]),
            "mIoU": percent(final["val_miou"]),
        }
    return pd.DataFrame(rows).T


# The rows of the redundancy table: ``PanopticEvaluator``'s keys, in words. "Confident": a
# query predicting an object with a class score of at least 0.5; "found": matched by a
# confident query at IoU > 0.5 (PQ's rule).
REDUNDANCY_ROWS = {
    "gt_segments_per_image": "ground-truth segments per image",
    "confident_per_image": "confident queries per image",
    "matches_per_image": "confident queries on a ground-truth segment (IoU > 0.5), per image",
    "matched_gt_per_image": "segments found per image",
    "duplicates_per_image": "duplicates per image (confident queries on a segment already found)",
    "redundancy": "confident queries per segment found (1: no duplicate)",
    "segments_per_image": "segments per image after post-processing",
}


def redundancy_table(result: dict[str, Any]) -> pd.DataFrame:
    """Sec. 4.1's "lots of redundant detections", measured on the validation set; rows named
    by ``REDUNDANCY_ROWS``."""
    rows = {name: round(float(result[key]), 3) for key, name in REDUNDANCY_ROWS.items()}
    return pd.DataFrame({"value": rows})


def redundancy_from(table: pd.DataFrame) -> dict[str, float]:
    """The evaluator's keys back from a redundancy table (rows in words, or older tables'
    raw keys)."""
    keys = {name: key for key, name in REDUNDANCY_ROWS.items()}
    return {keys.get(row, row): value for row, value in table["value"].items()}


@torch.no_grad()
def figure_instances(model, dataset, indices: list[int]) -> plt.Figure:
    """Figure 6: input, ground-truth segments and predicted segments, things (cars) coloured
    per instance, stuff dimmed in the Cityscapes palette."""
    label_space = dataset.label_space
    things = label_space.thing_eval_ids
    figure, axes = plt.subplots(len(indices), 3, figsize=(11, 2.1 * len(indices)), squeeze=False)
    device = next(model.parameters()).device
    stuff = []  # the stuff classes shown, for the legend
    for row, index in enumerate(indices):
        item = dataset[index]
        outputs = model(item["image"][None].to(device))
        gt_map, categories, _ = gt_segments(
            label_space.to_eval(item["labels"]), item["instances"], things
        )
        thing = [c in things for c in categories.tolist()]
        gt = colorize_segments(gt_map, categories.tolist(), thing, label_space)
        pred_map, segments = panoptic_inference(
            outputs["pred_logits"][0].cpu(), outputs["pred_masks"][0].cpu(), things
        )
        pred = colorize_segments(
            pred_map,
            [s["category_id"] for s in segments],
            [s["isthing"] for s in segments],
            label_space,
        )
        show_image(axes[row, 0], item["image"], "input" if row == 0 else "")
        for col, (title, rgb) in enumerate([("ground truth", gt), ("prediction", pred)], 1):
            axes[row, col].imshow(rgb)
            axes[row, col].set_title(title if row == 0 else "", fontsize=8)
            axes[row, col].set_axis_off()
        stuff += [c for c, t in zip(categories.tolist(), thing) if not t]
        stuff += [s["category_id"] for s in segments if not s["isthing"]]
    figure.tight_layout()
    instances = (("things: one colour per instance", "tab:orange"),)
    add_class_legend(figure, stuff, label_space, dim=0.45, extra=instances)
    return figure


@torch.no_grad()
def figure_all_queries(model, dataset, index: int, matcher) -> plt.Figure:
    """Figures 7-9: the output of every query on one validation image, as a grid, with its
    predicted class and confidence; queries matched to a ground-truth segment say which."""
    label_space = dataset.label_space
    item = dataset[index]
    device = next(model.parameters()).device
    outputs = {k: v.cpu() for k, v in model(item["image"][None].to(device)).items()}
    target = panoptic_targets(item["labels"], item["instances"], label_space)
    (src, tgt), *_ = matcher(outputs, [target])
    names = label_space.eval_names
    matched = {int(q): names[int(target["labels"][t])] for q, t in zip(src, tgt)}
    return plot_query_grid(
        item["image"],
        outputs["pred_logits"][0],
        outputs["pred_masks"][0],
        names,
        columns=10,
        matched=matched,
    )


def panoptic_target_fn(label_space: LabelSpace):
    """``QueryInspector``'s ground truth for Cityscapes-style items: their panoptic segments."""
    return lambda item: panoptic_targets(item["labels"], item["instances"], label_space)


def redundancy_claim(result: dict[str, Any]) -> str:
    """Sec. 4.1's "lots of redundant detections", as a verdict with our numbers. "Lots": at
    least one duplicate per image, a second confident query on a segment already found."""
    duplicates = result.get("duplicates_per_image", float("nan"))
    confident = result.get("confident_per_image", float("nan"))
    found = result.get("matched_gt_per_image", float("nan"))
    return (
        f"Lots of redundant detections: {one_seed(duplicates >= 1)} "
        f"({result.get('redundancy', float('nan')):.2f} confident queries per segment found, "
        f"{duplicates:.2f} duplicates per image; but {confident:.1f} confident queries per image "
        f"for {found:.1f} segments found: the others match no segment at IoU > 0.5)."
    )


# "U-Net is able to separate different instances of cars" (Sec. 4.1, shown by Figure 6 only):
# judged by the recognition quality of cars and the panoptic quality of things, in %.
CAR_RQ_THRESHOLD, THINGS_PQ_THRESHOLD = 30.0, 15.0


def cars_claim(table: pd.DataFrame) -> str:
    """Sec. 4.1's claim on cars, judged from the panoptic table's car and things columns."""
    row = table.loc["Hungarian U-Net"]
    pq, sq, rq = (row.get(f"{key} car", float("nan")) for key in ("PQ", "SQ", "RQ"))
    pq_things = row["PQ things"]
    holds = rq >= CAR_RQ_THRESHOLD and pq_things >= THINGS_PQ_THRESHOLD
    return (
        "U-Net is able to separate different instances of cars (report: Figure 6, no number; "
        f"judged by our threshold: RQ of cars at least {CAR_RQ_THRESHOLD:g}% and PQ of things at "
        f"least {THINGS_PQ_THRESHOLD:g}): {one_seed(holds)} (cars: PQ {pq:.1f}, SQ {sq:.1f}, "
        f"RQ {rq:.1f}; things: PQ {pq_things:.1f}; see Figure 6)."
    )


def compare_panoptic(result: dict[str, Any]) -> str:
    """The claims of Sec. 4.1, with our numbers."""
    lines = [
        cars_claim(panoptic_table(result, {})),
        redundancy_claim(result),
        f"Panoptic quality (not in the report): PQ {100 * result['pq']:.1f}, "
        f"SQ {100 * result['sq']:.1f}, RQ {100 * result['rq']:.1f}.",
    ]
    return "\n".join(lines)


# -- Section 3 -----------------------------------------------------------------------------
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


def mnist_table(run_dirs: dict[str, Path]) -> pd.DataFrame:
    """Validation metrics of each run (rows), with the report's two numbers per mode."""
    rows = {}
    for name, run_dir in run_dirs.items():
        final = final_metrics(run_dir)
        row = mnist_values(final, MNIST_COLUMNS)
        mode = "hard" if "hard" in name else "easy"
        if "BCE" not in name:
            report = paper.MNIST_RESULTS[mode]
            row |= {"report accuracy (%)": 100 * report["accuracy"]}
            row |= {"report Dice loss": report["dice_loss"]}
        rows[name] = row | {"epochs": final["epochs"]}
    return pd.DataFrame(rows).T


@torch.no_grad()
def figure_query_rows(model, dataset, indices: list[int], matcher) -> plt.Figure:
    """Figures 4-5: per image, the input, its ground-truth masks (one colour per digit) and
    each query's mask with its predicted class and confidence; matched queries say the digit
    they were matched to."""
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
        outputs = {k: v.cpu() for k, v in model(item["image"][None].to(device)).items()}
        target = {"labels": item["labels"], "masks": item["masks"]}
        (src, tgt), *_ = matcher(outputs, [target])
        matched = {int(q): int(target["labels"][t]) for q, t in zip(src, tgt)}
        show_image(axes[row, 0], item["image"], "input")
        overlay = np.zeros((*item["masks"].shape[-2:], 3))
        colours = plt.get_cmap("tab10")
        for k, mask in enumerate(item["masks"]):
            overlay[mask.numpy()] = colours(k % 10)[:3]
        axes[row, 1].imshow(overlay)
        axes[row, 1].set_title("GT " + " ".join(str(int(d)) for d in item["labels"]), fontsize=7)
        prediction = predict_queries(outputs["pred_logits"][0])
        for query in range(num_queries):
            axis = axes[row, query + 2]
            axis.imshow(
                outputs["pred_masks"][0, query].sigmoid().numpy(), vmin=0, vmax=1, cmap=MASK_CMAP
            )
            title = prediction.describe(query, dataset.class_names)
            if query in matched:
                title += f"\nmatched {matched[query]}"
            faded = not prediction.predicts_object[query]
            axis.set_title(title, fontsize=8, color="0.55" if faded else "black")
        for axis in axes[row]:
            axis.set_axis_off()
    colour_bar = figure.colorbar(
        ScalarMappable(Normalize(0, 1), MASK_CMAP),
        ax=axes,
        location="top",
        shrink=0.3,
        aspect=40,
        pad=0.02,
    )
    colour_bar.set_label("mask probability (grey titles: no object)", fontsize=8)
    colour_bar.ax.tick_params(labelsize=7)
    return figure


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
            f"{100 * row['duplicate_rate']:.1f}%."
        )
    if "Seq2SegInstance easy" in table.index and "Seq2SegInstance hard" in table.index:
        easy = _mnist_row(table.loc["Seq2SegInstance easy"])
        hard = _mnist_row(table.loc["Seq2SegInstance hard"])
        holds = easy["accuracy"] > hard["accuracy"] and easy["dice_loss"] < hard["dice_loss"]
        lines.append(f"Hard (overlapping) digits are harder than easy ones: {one_seed(holds)}.")
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
