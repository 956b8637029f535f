"""Studies beyond the report (``seqseg_lib.variants`` and the claims modules): variants, their
run names and tables, and the verdicts computed from the tables."""

import pandas as pd
import pytest

from seqseg_lib import engine
from seqseg_lib.claims import instance, panoptic, semantic
from seqseg_lib.experiments import Variant, build_config, variant_config, variant_name
from seqseg_lib.runlock import LOCKS
from seqseg_lib.variants import train_seeds


def test_variant_names_say_what_differs_from_the_preset():
    def name(variant, profile="cpu"):
        return variant_name(variant_config(variant, profile, None))

    assert name(Variant("report", "hungarian-unet", short=False)) == ""
    assert name(Variant("short", "hungarian-unet")) == "short"
    masked = Variant("m", "hungarian-unet", {"class_head": "masked"}, {"match_size": None})
    assert name(masked) == "short-class_head=masked-match_size=none"
    assert name(Variant("d", "mnist-easy", {"mask_head": "dot"}, short=False)) == "mask_head=dot"
    # a setting equal to the preset's is no difference: two studies share the run
    same = Variant("same", "hungarian-unet", loss={"class_weight": 0.1})
    assert name(same) == name(Variant("short", "hungarian-unet"))


def test_short_budget_is_a_quarter_of_the_cpu_profile():
    full = build_config("hungarian-unet", "cpu")
    short = variant_config(Variant("s", "hungarian-unet"), "cpu", None)
    assert short.epochs * short.num_train * 4 == full.epochs * full.num_train
    fractions = [epoch / short.epochs for epoch, _ in short.lr_milestones]
    assert fractions == [
        epoch / full.epochs for epoch, _ in full.lr_milestones
    ]  # Sec. 4's 1/3, 2/3


def test_studies_ask_for_distinct_runs():
    for study in (panoptic.HUNGARIAN_ABLATION, panoptic.CLASS_LOSS_STUDY, instance.MASK_HEAD_STUDY):
        configs = [variant_config(v, "cpu", None) for v in study]
        names = [(c.experiment, variant_name(c)) for c in configs]
        assert len(set(names)) == len(names)


@pytest.mark.slow
def test_panoptic_study_table_from_smoke_runs(tmp_path):
    variants = panoptic.BOTTLENECK_STUDY
    runs = train_seeds(variants, range(2), "smoke", None, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != LOCKS) == [
        "hungarian-unet-bottleneck_layers=2-synthetic-smoke-seed0",
        "hungarian-unet-bottleneck_layers=2-synthetic-smoke-seed1",
        "hungarian-unet-synthetic-smoke-seed0",
        "hungarian-unet-synthetic-smoke-seed1",
    ]
    one_seed = {label: by_seed[0] for label, by_seed in runs.items()}
    table = panoptic.panoptic_study_table(one_seed, {v.label: 0.5 for v in variants})
    record = engine.read_metrics(runs["plain bottleneck"][1])[-1]
    assert table.loc["plain bottleneck", "training scenes"] == 8
    assert list(table["training step (s)"]) == [0.5, 0.5]
    seeded = panoptic.panoptic_study_table(runs, {v.label: 0.5 for v in variants})
    assert seeded.loc["plain bottleneck, seed 1", "PQ"] == round(100 * record["val"]["pq"], 2)
    pq = panoptic.seed_values(seeded, "PQ")["plain bottleneck"]
    assert seeded.loc["plain bottleneck, mean", "PQ"] == pytest.approx(
        sum(pq.values()) / 2, abs=1e-3
    )
    assert list(seeded["seed"]) == [0, 1, "mean", 0, 1, "mean"]
    assert variants[1].label in panoptic.bottleneck_claim(seeded)


def test_class_loss_verdicts_judge_duplicates_and_things_apart():
    """The synthetic ``cpu`` table of one seed: class weight 1 has fewer duplicates (0.07
    against 0.77) and finds no things at all; focal loss with weight 0.1 has more."""
    labels = [v.label for v in panoptic.CLASS_LOSS_STUDY]
    table = pd.DataFrame(
        {
            "duplicates per image": [0.767, 0.067, 0.913, 0.22],
            "PQ": [7.69, 6.63, 12.64, 8.29],
            "PQ things": [0.24, 0.0, 0.19, 0.0],
            "RQ car": [2.27, 0.0, 1.82, 0.0],
        },
        index=labels,
    )
    weight_1, focal, focal_1 = panoptic.class_loss_claim(table).splitlines()
    assert weight_1.startswith("cross-entropy, class weight 1 reduces redundant detections")
    assert ": reproduced (one seed) (duplicates per image 0.07 against 0.77)" in weight_1
    assert "PQ things 0.00 against 0.24 (lower)" in weight_1
    assert "PQ 6.6 against 7.7 (lower)" in weight_1
    assert ": not reproduced (one seed) (duplicates per image 0.91 against 0.77" in focal
    assert "PQ things 0.19 against 0.24 (lower), RQ car 1.82 against 2.27 (lower)" in focal
    assert "PQ 12.6 against 7.7 (not lower)" in focal
    assert ": reproduced (one seed)" in focal_1 and "RQ car 0.00 against 2.27 (lower)" in focal_1


def seeded_table(columns: dict[str, dict[str, list[float]]], labels: list[str]) -> pd.DataFrame:
    """A ``panoptic_study_table`` of several seeds, by hand: ``{column: {label: [value of
    seed 0, 1, ...]}}``, with its mean rows."""
    rows = {}
    for label in labels:
        seeds = range(len(next(iter(columns.values()))[label]))
        for seed in seeds:
            values = {column: by_label[label][seed] for column, by_label in columns.items()}
            rows[f"{label}, seed {seed}"] = values | {"variant": label, "seed": seed}
        mean = {column: sum(by[label]) / len(seeds) for column, by in columns.items()}
        rows[f"{label}, mean"] = mean | {"variant": label, "seed": "mean"}
    return pd.DataFrame(rows).T


def test_class_loss_verdicts_over_seeds_need_every_seed():
    base, weight_1, focal, focal_1 = (v.label for v in panoptic.CLASS_LOSS_STUDY)
    table = seeded_table(
        {
            "duplicates per image": {
                base: [0.8, 0.6, 0.7],
                weight_1: [0.1, 0.2, 0.0],  # fewer with every seed
                focal: [0.5, 0.7, 0.6],  # fewer with seeds 0 and 2 only
                focal_1: [0.8, 0.6, 0.7],  # as many
            },
            "PQ": {label: [5.0, 6.0, 7.0] for label in (base, weight_1, focal, focal_1)},
            "PQ things": {base: [1, 1, 1], weight_1: [0, 0, 0], focal: [0, 1, 0], focal_1: [1] * 3},
            "RQ car": {label: [0.0, 0.0, 0.0] for label in (base, weight_1, focal, focal_1)},
        },
        [base, weight_1, focal, focal_1],
    )
    # the display labels play no part: the rows are read by their variant and seed
    table.index = [f"row {k}" for k in range(len(table))]
    lines = panoptic.class_loss_claim(table).splitlines()
    assert (
        ": reproduced (duplicates per image 0.10, 0.20, 0.00 against 0.80, 0.60, 0.70" in lines[0]
    )
    every = "PQ things 0.00, 0.00, 0.00 against 1.00, 1.00, 1.00 (lower with every seed)"
    assert "3 seeds" in lines[0] and every in lines[0]
    assert ": inconclusive (the seeds disagree)" in lines[1]
    assert (
        "PQ things 0.00, 1.00, 0.00 against 1.00, 1.00, 1.00 (lower with 2 of 3 seeds)" in lines[1]
    )
    assert "PQ 5.0, 6.0, 7.0 against 5.0, 6.0, 7.0 (not lower with any seed)" in lines[1]
    assert ": not reproduced (" in lines[2] and "(not lower with any seed), RQ car" in lines[2]


def test_bottleneck_verdict_one_seed_and_several():
    plain, bert = (v.label for v in panoptic.BOTTLENECK_STUDY)
    table = pd.DataFrame(
        {"PQ": [20.0, 21.0], "PQ things": [2.0, 3.0], "training step (s)": [1.0, 1.5]},
        index=[plain, bert],
    )
    claim = panoptic.bottleneck_claim(table)
    assert "+1.0 points" in claim and ": reproduced (one seed)" in claim
    assert claim.endswith("at 1.50x the step time.")
    table = seeded_table(
        {
            "PQ": {plain: [20.0, 20.0, 20.0], bert: [21.0, 20.2, 22.0]},
            "PQ things": {plain: [1.0] * 3, bert: [1.0] * 3},
            "training step (s)": {plain: [1.0] * 3, bert: [2.0] * 3},
        },
        [plain, bert],
    )
    claim = panoptic.bottleneck_claim(table)
    assert (
        ": inconclusive (the seeds disagree) (PQ 21.0, 20.2, 22.0 against 20.0, 20.0, 20.0" in claim
    )
    assert "+1.0, +0.2, +2.0 points" in claim and "at 2.00x the step time" in claim


def test_transformer_claim_states_each_budget_and_the_threshold():
    """Notebook 08's table by hand: the epochs times step time of each model against the
    Hungarian U-Net's, and cars separated only at both thresholds."""
    columns = ["experiment", "epochs", "training step (s)", "training (min, wall clock)"]
    columns += ["RQ car", "PQ things", "PQ", "segments found per image", "duplicates per image"]
    columns += ["GFLOP/step"]
    table = pd.DataFrame(
        [
            ["hungarian-unet", 30, 0.5, 47.0, 18.7, 2.2, 16.0, 5.41, 0.64, 75.0],
            ["seq2seg-panoptic", 19, 1.0, 46.8, 31.0, 15.0, 20.0, 6.0, 0.3, 120.0],
            ["eomt", 7, 2.8, 43.8, 40.0, 14.9, 10.5, 2.6, 0.02, 540.0],
        ],
        columns=columns,
        index=["U-Net", "ours", "EoMT"],
    )
    budget, unet, ours, eomt, answer = panoptic.transformer_claim(table).splitlines()
    assert "order 47, 46.8, 43.8 minutes of wall clock" in budget
    assert "gives them 1.00, 1.27, 1.31 times the Hungarian U-Net's" in budget
    assert unet.endswith("does not separate cars.") and "5.41 segments found" in unet
    assert "separates cars; a training step 2.0x the U-Net's time and 1.6x its FLOPs" in ours
    assert "PQ things 14.9" in eomt and "does not separate cars" in eomt  # PQ things below 15
    assert answer.endswith("yes: ours (one seed).")


def test_mask_head_verdicts():
    rows = {}
    for mode in ("easy", "hard"):
        rows[f"{mode}, linear mask head (Sec. 3.2)"] = {
            "Dice loss": 0.2,
            "AP75 (%)": 10.0,
            "accuracy (%)": 90.0,
        }
        rows[f"{mode}, dot-product mask head (Sec. 3.5)"] = {
            "Dice loss": 0.1 if mode == "easy" else 0.3,
            "AP75 (%)": 20.0,
            "accuracy (%)": 91.0,
        }
    table = pd.DataFrame(rows).T
    lines = instance.mask_head_claim(table).splitlines()
    assert ": better masks; digit accuracy 91.0% against 90.0%: not lower." in lines[0]
    assert lines[1].startswith("hard (judged: better masks where the Dice loss is lower and AP75")
    assert ": no better masks;" in lines[1]  # a higher Dice loss
    table.loc["easy, dot-product mask head (Sec. 3.5)", ["AP75 (%)", "accuracy (%)"]] = [9.0, 80.0]
    easy = instance.mask_head_claim(table).splitlines()[0]
    assert easy.endswith(": no better masks; digit accuracy 80.0% against 90.0%: lower.")


def test_per_class_iou_names_the_ignored_classes():
    table = pd.DataFrame(
        {"U-Net": [90.0, 2.0, float("nan"), 80.0, 40.0]},
        index=["road", "pole", "train", "pixel accuracy", "mIoU"],
    )
    claim = semantic.per_class_iou_claim(table)
    assert claim == ("U-Net: pixel accuracy 80.0%, mIoU 40.0%; 1 of 2 classes below 5% IoU (pole).")
    figure = semantic.figure_per_class_iou(table)
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["road", "pole", "train"]
