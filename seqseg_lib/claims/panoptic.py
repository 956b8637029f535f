"""Sec. 4's claims: the Hungarian U-Net's panoptic quality, cars and redundant detections
(notebook 04, Figures 6-9), what keeps it from separating cars (notebook 04's ablation), and
the remedies Sec. 4.1 and Sec. 5 propose (notebook 06).
"""

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import torch

from seqseg_lib import paper
from seqseg_lib.data.labels import CITYSCAPES, LabelSpace
from seqseg_lib.data.targets import gt_segments, panoptic_targets
from seqseg_lib.experiments import Variant, build_config, build_model, load_config
from seqseg_lib.experiments.panoptic import square_crops, third_decays
from seqseg_lib.matcher import resize_masks
from seqseg_lib.models import count_parameters
from seqseg_lib.panoptic import panoptic_inference
from seqseg_lib.plotting import (
    add_class_legend,
    colorize_segments,
    plot_query_grid,
    show_image,
)
from seqseg_lib.runs import final_metrics, read_metrics, training_minutes
from seqseg_lib.verdicts import one_seed, percent, seed_rows, seed_values, verdict

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
        f"judged by our threshold: RQ of cars at least {CAR_RQ_THRESHOLD:g} and PQ of things at "
        f"least {THINGS_PQ_THRESHOLD:g}): {one_seed(holds)} (cars: PQ {pq:.1f}, SQ {sq:.1f}, "
        f"RQ {rq:.1f}; things: PQ {pq_things:.1f}; see Figure 6)."
    )


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


# "Lots of redundant detections" (Sec. 4.1): at least this many duplicates per image (ours).
LOTS_OF_DUPLICATES = 1.0


def redundancy_claim(result: dict[str, Any]) -> str:
    """Sec. 4.1's "lots of redundant detections", as a verdict with our numbers. "Lots": at
    least ``LOTS_OF_DUPLICATES`` per image, a duplicate being a second confident query on a
    segment already found."""
    duplicates = result.get("duplicates_per_image", float("nan"))
    confident = result.get("confident_per_image", float("nan"))
    found = result.get("matched_gt_per_image", float("nan"))
    return (
        f"Lots of redundant detections (judged: at least {LOTS_OF_DUPLICATES:g} duplicate per "
        "image, a second confident query on a segment already found; our threshold): "
        f"{one_seed(duplicates >= LOTS_OF_DUPLICATES)} "
        f"({result.get('redundancy', float('nan')):.2f} confident queries per segment found, "
        f"{duplicates:.2f} duplicates per image; but {confident:.1f} confident queries per image "
        f"for {found:.1f} segments found: the others match no segment at IoU > 0.5)."
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


@torch.no_grad()
def figure_instances(model, dataset, indices: list[int]) -> plt.Figure:
    """Figure 6: input, ground-truth segments and predicted segments, things (cars) coloured
    per instance, stuff dimmed in the Cityscapes palette; masks of a lower resolution than
    the image are upsampled to it first, as the evaluator does."""
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
        masks = resize_masks(outputs["pred_masks"][0].cpu(), tuple(item["image"].shape[-2:]))
        pred_map, segments = panoptic_inference(outputs["pred_logits"][0].cpu(), masks, things)
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
    outputs = model(item["image"][None].to(device))
    outputs = {key: outputs[key].cpu() for key in ("pred_logits", "pred_masks")}
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


# -- what keeps it from separating cars (notebook 04) -----------------------------------------


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
    run_dirs: dict[str, Path] | dict[str, dict[int, Path]],
    step_seconds: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Validation panoptic metrics of each run (rows, in %; counts per image as they are),
    with its epochs, training scenes and training minutes from its records; ``step_seconds``
    (``{label: seconds}``) adds a column of measured training steps.

    ``run_dirs``: ``{label: run directory}`` (one seed: a row per variant), or ``{label: {seed:
    run directory}}`` (``train_seeds``; ``seed_rows``: a row per variant and seed, then the
    variant's mean)."""
    seconds = {
        label: {"training step (s)": round(step_seconds[label], 3)}
        for label in run_dirs
        if step_seconds and label in step_seconds
    }
    return pd.DataFrame(seed_rows(run_dirs, _panoptic_row, shared=seconds, decimals=3)).T


def _panoptic_row(run_dir: Path) -> dict[str, float]:
    car = CITYSCAPES.eval_names.index("car")
    records = read_metrics(run_dir)
    val = records[-1]["val"]
    row = {}
    for key, column in PANOPTIC_COLUMNS.items():
        value = (
            val[f"{key.removesuffix('_car')}_per_class"][car] if key.endswith("_car") else val[key]
        )
        row[column] = round(value, 3) if "per image" in column else percent(value)
    row["epochs"] = final_metrics(run_dir, records)["epochs"]
    row["training scenes"] = load_config(run_dir).num_train
    # by the wall clock: the runs share the cores with each other (and are paused at times)
    row["training (min, wall clock)"] = training_minutes(records)
    return row


def variant_rows(table: pd.DataFrame) -> dict[str, pd.Series]:
    """``{variant: its row}`` of a ``panoptic_study_table``: the row itself with one seed, the
    mean over the seeds with several."""
    if "variant" not in table.columns:
        return dict(table.iterrows())
    return {row["variant"]: row for _, row in table.iterrows() if str(row["seed"]) == "mean"}


def ablation_claim(table: pd.DataFrame) -> str:
    """Which variant separates cars best, judged as ``cars_claim`` judges the profile's
    run (RQ of cars and PQ of things), one line per row."""
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


# -- Sec. 4.1: redundant detections against the class loss (notebook 06) ----------------------


# The studies whose rows decide "helps / does not help" (the class loss, the bottleneck) train
# this many seeds each, from the notebook's ``seed``: at the short budget a seed moves PQ by
# about as much as the margins they are judged by.
VERDICT_SEEDS = 3


def verdict_seeds(seed: int) -> range:
    """The seeds of the class-loss and bottleneck studies: ``VERDICT_SEEDS`` from ``seed``."""
    return range(seed, seed + VERDICT_SEEDS)


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


# "Fewer redundant detections": duplicates per image under this fraction of the report's
# setting's (cross-entropy, class weight 0.1), seed for seed.
FEWER_DUPLICATES = 0.9


def _listed(values: dict[Any, float], digits: int = 2) -> str:
    """A ``seed_values`` entry's values in seed order: ``"0.77, 0.81, 0.69"``."""
    return ", ".join(f"{value:.{digits}f}" for value in values.values())


def class_loss_claim(table: pd.DataFrame) -> str:
    """Sec. 4.1: a larger class weight or focal loss could reduce redundant detections. Judged
    on duplicates, against the report's setting of the same seed (fewer: under
    ``FEWER_DUPLICATES`` of its duplicates per image; the rule of ``seqseg_lib.verdicts`` over
    the seeds); then things (PQ things, RQ car) and the overall PQ beside the report's
    setting's, seed for seed, in words: fewer duplicates that come from finding fewer things
    are no remedy."""
    duplicates = seed_values(table, "duplicates per image")
    base = CLASS_LOSS_STUDY[0].label
    seeds = list(duplicates[base])
    over = "" if len(seeds) == 1 else f"; {len(seeds)} seeds"
    lines = []
    for variant in CLASS_LOSS_STUDY[1:]:
        mine = duplicates[variant.label]
        ratios = [_ratio(mine[seed], duplicates[base][seed]) for seed in seeds]
        fewer = verdict(
            ratios,
            holds=lambda ratio: ratio < FEWER_DUPLICATES,
            margin=lambda ratio: abs(ratio - FEWER_DUPLICATES),
        )
        beside = {
            column: _beside(seed_values(table, column), variant.label, base, digits)
            for column, digits in (("PQ things", 2), ("RQ car", 2), ("PQ", 1))
        }
        lines.append(
            f"{variant.label} reduces redundant detections (judged: duplicates per image under "
            f"{FEWER_DUPLICATES:.0%} of the report's setting's, seed for seed): {fewer} "
            f"(duplicates per image {_listed(mine)} against "
            f"{_listed(duplicates[base])}{over}); beside the report's setting: PQ things "
            f"{beside['PQ things']}, RQ car {beside['RQ car']}; PQ {beside['PQ']}."
        )
    return "\n".join(lines)


def _beside(values: dict[str, dict[Any, float]], label: str, base: str, digits: int) -> str:
    """``label``'s values against ``base``'s, then whether they are lower, seed for seed:
    ``"0.03, 0.19 against 0.33, 0.35 (lower with every seed)"``."""
    lower = [values[label][seed] < values[base][seed] for seed in values[base]]
    if all(lower):
        words = "lower" if len(lower) == 1 else "lower with every seed"
    elif not any(lower):
        words = "not lower" if len(lower) == 1 else "not lower with any seed"
    else:
        words = f"lower with {sum(lower)} of {len(lower)} seeds"
    return f"{_listed(values[label], digits)} against {_listed(values[base], digits)} ({words})"


def _ratio(value: float, reference: float) -> float:
    """``value / reference``, 1 when both are 0 (as many duplicates as none)."""
    if reference == 0:
        return 1.0 if value == 0 else float("inf")
    return value / reference


# -- Sec. 5: BERT layers in the Hungarian U-Net's bottleneck (notebook 06) --------------------


BOTTLENECK_STUDY = [
    Variant("plain bottleneck", "hungarian-unet"),
    Variant("2 BERT layers in the bottleneck", "hungarian-unet", {"bottleneck_layers": 2}),
]


# "Improves performance" (Sec. 5): PQ up by more than this many points, seed for seed.
IMPROVES_MARGIN = 0.5


def bottleneck_claim(table: pd.DataFrame) -> str:
    """Sec. 5: "adding a few BERT layers between the encoder and the decoder could improve
    performance". Judged: PQ higher than the plain bottleneck's of the same seed by more than
    ``IMPROVES_MARGIN`` points, under the rule of ``seqseg_lib.verdicts``."""
    plain, bert = (variant.label for variant in BOTTLENECK_STUDY)
    pq, things = seed_values(table, "PQ"), seed_values(table, "PQ things")
    gains = [pq[bert][seed] - pq[plain][seed] for seed in pq[plain]]
    rows = variant_rows(table)
    cost = rows[bert]["training step (s)"] / rows[plain]["training step (s)"]
    over = "" if len(gains) == 1 else f"; {len(gains)} seeds"
    improves = verdict(
        gains,
        holds=lambda gain: gain > IMPROVES_MARGIN,
        margin=lambda gain: abs(gain - IMPROVES_MARGIN),
    )
    return (
        f"{bert} improve the panoptic quality (judged: PQ up by more than {IMPROVES_MARGIN:g} "
        f"points on the plain bottleneck's, seed for seed): {improves} (PQ "
        f"{_listed(pq[bert], 1)} against {_listed(pq[plain], 1)}: "
        f"{', '.join(f'{gain:+.1f}' for gain in gains)} points; PQ things "
        f"{_listed(things[bert], 1)} against "
        f"{_listed(things[plain], 1)}{over}), at {cost:.2f}x the step time."
    )


# -- the transformer with object queries on Sec. 4's task, beside EoMT (notebook 08) ----------
# Epochs of each model at ``cpu``: the Hungarian U-Net's 30 (its ``cpu`` budget), the others as
# many as fit in the same training time on this project's 2-core machine, from step times
# measured at batch 16 on one thread beside four other processes (U-Net 1.24 s, ours 1.97 s,
# EoMT 5.52 s on 128x128 crops); notebook 08 measures them again on quiet cores.
TRANSFORMER_EPOCHS = {
    "smoke": {"hungarian-unet": 2, "seq2seg-panoptic": 2, "eomt": 2},
    "cpu": {"hungarian-unet": 30, "seq2seg-panoptic": 19, "eomt": 7},
    "paper": {"hungarian-unet": 30, "seq2seg-panoptic": 30, "eomt": 30},
}
TRANSFORMER_LABELS = {
    "hungarian-unet": "Hungarian U-Net (Sec. 4's model, on these crops)",
    "seq2seg-panoptic": "ours: Seq2Seg with object queries, dot-product masks",
    "eomt": "EoMT (transformers' EomtForUniversalSegmentation)",
}


def transformer_study(profile: str) -> list[Variant]:
    """The three models on the same square crops and data (``experiments.panoptic.
    square_crops``), each for its ``TRANSFORMER_EPOCHS`` at its preset's learning rate, decayed
    after a third and two thirds of them; the Hungarian U-Net keeps its model and loss and
    matches, as ours, at a quarter of the crop's side."""
    square = square_crops(profile)
    variants = []
    for experiment, label in TRANSFORMER_LABELS.items():
        epochs = TRANSFORMER_EPOCHS[profile][experiment]
        lr = build_config(experiment, profile).lr
        training = {"resize": square.resize, "crop": square.crop, "epochs": epochs}
        training["lr_milestones"] = third_decays(epochs, lr)
        loss = {} if experiment == "eomt" else {"match_size": square.loss.match_size}
        variants.append(Variant(label, experiment, loss=loss, short=False, training=training))
    return variants


def transformer_table(
    run_dirs: dict[str, Path], step_seconds: dict[str, float], flops: dict[str, float]
) -> pd.DataFrame:
    """``panoptic_study_table`` of the three runs, with each run's experiment (the key the
    claim reads), parameters, GFLOPs and measured seconds of a training step."""
    table = panoptic_study_table(run_dirs, step_seconds)
    for label, run_dir in run_dirs.items():
        config = load_config(run_dir)
        table.loc[label, "experiment"] = config.experiment
        table.loc[label, "parameters (M)"] = round(count_parameters(build_model(config)) / 1e6, 2)
        table.loc[label, "GFLOP/step"] = round(flops[label] / 1e9, 2)
    return table


def transformer_claim(table: pd.DataFrame) -> str:
    """Does a transformer with object queries separate cars where the Hungarian U-Net does not
    (our threshold of ``cars_claim``: RQ of cars and PQ of things), and at what cost (its
    training step and FLOPs against the U-Net's, in the same training time)."""
    rows = {row["experiment"]: row for _, row in table.iterrows()}
    unet = rows["hungarian-unet"]

    def separates(row) -> bool:
        return row["RQ car"] >= CAR_RQ_THRESHOLD and row["PQ things"] >= THINGS_PQ_THRESHOLD

    def budget(row) -> float:  # epochs x seconds a step: the training time, up to a factor
        return row["epochs"] * row["training step (s)"]

    wall = ", ".join(f"{r['training (min, wall clock)']:g}" for r in rows.values())
    relative = ", ".join(f"{budget(r) / budget(unet):.2f}" for r in rows.values())
    lines = [
        f"Judged by our threshold (RQ car at least {CAR_RQ_THRESHOLD:g} and PQ things at least "
        f"{THINGS_PQ_THRESHOLD:g}), one seed each, all three on the same square crops (the "
        "Hungarian U-Net's row is not notebook 04's run). Each model trained for its epochs of "
        f"`claims.panoptic.TRANSFORMER_EPOCHS`, in the table's order {wall} minutes of wall "
        "clock (one thread beside other runs); by the step times measured here on quiet cores, "
        f"epochs times step time gives them {relative} times the Hungarian U-Net's training time."
    ]
    for experiment, row in rows.items():
        cost = ""
        if experiment != "hungarian-unet":
            cost = (
                f"; a training step {row['training step (s)'] / unet['training step (s)']:.1f}x "
                f"the U-Net's time and {row['GFLOP/step'] / unet['GFLOP/step']:.1f}x its FLOPs, "
                f"{row['epochs']:g} epochs against its {unet['epochs']:g}"
            )
        lines.append(
            f"{row.name}: RQ car {row['RQ car']:.1f}, PQ things {row['PQ things']:.1f}, PQ "
            f"{row['PQ']:.1f}, {row['segments found per image']:.2f} segments found and "
            f"{row['duplicates per image']:.2f} duplicates per image: "
            f"{'separates cars' if separates(row) else 'does not separate cars'}{cost}."
        )
    better = [r.name for e, r in rows.items() if e != "hungarian-unet" and separates(r)]
    if separates(unet):
        answer = "no: the U-Net separates them too"
    else:
        answer = f"yes: {', '.join(better)}" if better else "no: none of them does"
    lines.append(
        "A transformer with object queries separates cars where the Hungarian U-Net does not: "
        f"{answer} (one seed)."
    )
    return "\n".join(lines)
