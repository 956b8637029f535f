"""Studies beyond the report (``seqseg_lib.variants`` and the claims modules): variants, their
run names and tables, and the verdicts computed from the tables."""

import pandas as pd
import pytest

from seqseg_lib import engine
from seqseg_lib.claims import instance, panoptic, semantic
from seqseg_lib.experiments import build_config
from seqseg_lib.runlock import LOCKS
from seqseg_lib.variants import Variant, train_variants, variant_config, variant_name


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
    runs = train_variants(variants, "smoke", None, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != LOCKS) == [
        "hungarian-unet-bottleneck_layers=2-synthetic-smoke-seed0",
        "hungarian-unet-synthetic-smoke-seed0",
    ]
    table = panoptic.panoptic_study_table(runs, {v.label: 0.5 for v in variants})
    record = engine.read_metrics(runs["plain bottleneck"])[-1]
    assert table.loc["plain bottleneck", "PQ"] == round(100 * record["val"]["pq"], 2)
    assert table.loc["plain bottleneck", "training scenes"] == 8
    assert list(table["training step (s)"]) == [0.5, 0.5]


def test_class_loss_verdicts_judge_duplicates_and_things_apart():
    """The synthetic ``cpu`` table: class weight 1 has fewer duplicates (0.07 against 0.77)
    because it finds no things at all; focal loss with weight 0.1 has more."""
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
    assert "duplicates per image 0.07 against 0.77: fewer" in weight_1
    assert "it finds no things" in weight_1 and "PQ 6.6 against 7.7" in weight_1
    assert "0.91 against 0.77: not fewer" in focal and "it finds things" in focal
    assert ": fewer" in focal_1 and "it finds no things" in focal_1


def test_bottleneck_and_mask_head_verdicts():
    table = pd.DataFrame(
        {"PQ": [20.0, 21.0], "PQ things": [2.0, 3.0], "training step (s)": [1.0, 1.5]},
        index=["plain", "bert"],
    )
    assert "+1.0 points" in panoptic.bottleneck_claim(table)
    assert "at 1.50x the step time: improves" in panoptic.bottleneck_claim(table)
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
    lines = instance.mask_head_claim(pd.DataFrame(rows).T).splitlines()
    assert lines[0].endswith(": better masks.") and lines[1].endswith(": no better masks.")


def test_per_class_iou_names_the_ignored_classes():
    table = pd.DataFrame(
        {"U-Net": [90.0, 2.0, float("nan"), 80.0, 40.0]},
        index=["road", "pole", "train", "pixel accuracy", "mIoU"],
    )
    claim = semantic.per_class_iou_claim(table)
    assert claim == ("U-Net: pixel accuracy 80.0%, mIoU 40.0%; 1 of 2 classes below 5% IoU (pole).")
    figure = semantic.figure_per_class_iou(table)
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["road", "pole", "train"]
