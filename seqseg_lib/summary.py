"""``reports/README.md``: every table of ``reports/tables/`` with its provenance, the figures
discussed with it, and the verdict on each claim, computed from the tables themselves."""

import json
from pathlib import Path
from typing import Any

import pandas as pd

from seqseg_lib import efficient, fidelity, studies
from seqseg_lib.plotting import to_markdown
from seqseg_lib.reports import (
    cars_claim,
    compare_mnist,
    compare_skip,
    compare_table1,
    redundancy_claim,
    redundancy_from,
    skip_spread,
)
from seqseg_lib.scaling import compare_patches, compare_scaling, fitted_slopes, patch_spread
from seqseg_lib.verdicts import OUR_CHECK

_DATASET_ORDER = {"camvid": 0, "cityscapes": 1, "synthetic": 2, "mnist": 3}
TITLES = {
    "table1": "Table 1: Seq2Seg versus U-Net (Sec. 2.3)",
    "table_report_budget": "Table 1 at the report's step budget: Seq2Seg 5,535 steps, U-Net "
    "3,690 (Sec. 2.2-2.3)",
    "table_skip_ablation": "The skip connection (Sec. 2.2-2.3, Table 1's third column)",
    "table_mnist": "Instance segmentation on scattered MNIST (Sec. 3.4)",
    "table_panoptic": "Hungarian U-Net on the synthetic scenes only: panoptic quality, and "
    "semantic metrics beside U-Net and Seq2Seg (Sec. 4; the report has no numbers)",
    "table_redundancy": "Hungarian U-Net on the synthetic scenes only: redundant detections, "
    "counted (Sec. 4.1)",
    "table_scaling": "Scaling it up: one training step as the image grows, on dummy batches "
    "(Sec. 2.4)",
    "table_patches": "Scaling it up: larger patches at equal image size (Sec. 2.4)",
    "table_ablation": "Beyond the report: what keeps the Hungarian U-Net from separating cars",
    "table_mask_heads": "Beyond the report: instance masks from every patch's hidden state "
    "(Sec. 3.5's proposal)",
    "table_class_loss": "Beyond the report: the class loss against redundant detections "
    "(Sec. 4.1's proposal)",
    "table_bottleneck": "Beyond the report: BERT layers in the Hungarian U-Net's bottleneck "
    "(Sec. 5's proposal)",
    "table_per_class_iou": "Beyond the report: what pixel accuracy hides, per-class IoU",
    "table_skip_depth": "At the report's scale: the skip connection with the report's encoder "
    "(Sec. 2.2)",
    "table_depth": "Beyond the report: where the skip connection starts to matter (width 256, "
    "batch 8: not the report's sizes)",
    "table_gap": "Beyond the report: what Seq2Seg's distance to U-Net depends on (the cpu "
    "profile's models, one change at a time)",
    "table_efficient_cost": "Beyond the report: the efficient Transformers of Sec. 2.4, the "
    "cost of a step against tokens (dummy batches)",
    "table_efficient": "Beyond the report: the efficient Transformers of Sec. 2.4 trained at "
    "equal steps",
    "table_mnist_targets": "Beyond the report: MNIST digit accuracy and Dice loss at the "
    "profile's budget and at the report's steps (half the report's width; Sec. 3.4)",
}
# Tables of our own studies: their verdicts answer our questions, not claims of the report.
STUDIES = {
    "table_ablation",
    "table_mask_heads",
    "table_class_loss",
    "table_bottleneck",
    "table_per_class_iou",
    "table_depth",
    "table_gap",
    "table_mnist_targets",
    "table_efficient_cost",
}
# The figures each table is discussed with: (label, file name prefix).
FIGURES = {
    "table1": [("Figure 1: segmentation maps", "figure1"), ("Figure 2: curves", "figure2")],
    "table_report_budget": [("accuracy and gap against steps", "figure_report_budget")],
    "table_skip_ablation": [("learning curves", "figure_skip_ablation")],
    "table_mnist": [("Figure 4: hard mode", "figure4"), ("Figure 5: easy mode", "figure5")],
    "table_panoptic": [("Figure 6: panoptic segments", "figure6")]
    + [(f"Figure {n}: every query on one image", f"figure{n}") for n in (7, 8, 9)],
    "table_scaling": [("time and memory against the image size", "figure_scaling")],
    "table_mask_heads": [("dot-product masks on easy images", "figure_mask_heads")],
    "table_per_class_iou": [("per-class IoU", "figure_per_class_iou")],
    "table_skip_depth": [("curves and depth", "figure_skip_depth")],
    "table_depth": [("curves and depth", "figure_skip_depth")],
    "table_efficient_cost": [("time and memory against tokens", "figure_efficient_cost")],
    "table_efficient": [("learning curves", "figure_efficient")],
}
CLAIMS = {
    "table1": compare_table1,
    "table_report_budget": fidelity.budget_claim,
    "table_skip_ablation": lambda table: compare_skip(table, _baseline_from(table)),
    "table_mnist": compare_mnist,
    "table_redundancy": lambda table: redundancy_claim(redundancy_from(table)),
    "table_panoptic": cars_claim,
    "table_scaling": lambda table: compare_scaling(
        fitted_slopes(table.reset_index()), table.reset_index()
    ),
    "table_patches": compare_patches,
    "table_ablation": studies.ablation_claim,
    "table_mask_heads": studies.mask_head_claim,
    "table_class_loss": studies.class_loss_claim,
    "table_bottleneck": studies.bottleneck_claim,
    "table_per_class_iou": studies.per_class_iou_claim,
    "table_skip_depth": fidelity.skip_claim,
    "table_depth": fidelity.depth_claim,
    "table_gap": fidelity.gap_claim,
    "table_mnist_targets": fidelity.mnist_claim,
    "table_efficient_cost": lambda table: efficient.cost_claim(table.reset_index()),
    "table_efficient": efficient.study_claim,
}


# Seed spreads that tables of several seeds measure, by kind of table, and the kind of
# measured spread each one-seed verdict is judged against (the noise rule of
# ``seqseg_lib.verdicts``): Table 1's gap against the gap's spread at the report's budget.
_SPREADS = {
    "table_report_budget": fidelity.budget_spread,
    "table_skip_ablation": skip_spread,
    "table_patches": patch_spread,
}
_SPREAD_OF = {
    "table1": "table_report_budget",
    "table_skip_ablation": "table_skip_ablation",
    "table_patches": "table_patches",
}
_WITH_SPREAD = {
    "table1": compare_table1,
    "table_skip_ablation": lambda table, spread: compare_skip(table, _baseline_from(table), spread),
    "table_patches": compare_patches,
}


# In a verdict's place under the ``smoke`` profile.
SMOKE_NOTE = (
    "Smoke run (a few steps on a few images): it checks that the code runs; its numbers are "
    "not results, and no claim is judged on them."
)


def measured_spreads(tables: list[tuple[str, dict, pd.DataFrame]]) -> dict[str, tuple[float, str]]:
    """``{kind: (spread, where)}``: the largest seed spread each kind of table measures over
    several seeds, and the dataset, profile and seeds it was measured on."""
    spreads = {}
    for kind, meta, table in tables:
        spread = _SPREADS[kind](table) if kind in _SPREADS else None
        if spread is not None and spread >= spreads.get(kind, (0.0, ""))[0]:
            where = f"{meta['dataset']}, {meta['profile']} profile, seeds {meta['seed']}"
            spreads[kind] = (spread, where)
    return spreads


def _baseline_from(table: pd.DataFrame) -> dict[str, Any]:
    row = table.loc[[i for i in table.index if str(i).startswith("majority")][0]]
    return {"accuracy": float(row["val accuracy (%)"]) / 100}


def _load_tables(reports_dir: Path) -> list[tuple[str, dict, pd.DataFrame]]:
    found = []
    for meta_path in sorted((reports_dir / "tables").glob("*.json")):
        meta = json.loads(meta_path.read_text())
        kind = meta_path.stem.removesuffix(f"_{meta['dataset']}_{meta['profile']}")
        if kind in TITLES:
            table = pd.read_csv(meta_path.with_suffix(".csv"), index_col=0)
            found.append((kind, meta, table))
    order = list(TITLES)
    found.sort(key=lambda t: (_DATASET_ORDER.get(t[1]["dataset"], 9), order.index(t[0])))
    return found


def summarize(reports_dir: str | Path) -> Path:
    """Write ``reports_dir/README.md``: every table found (the report's numbers beside ours,
    with profile, dataset, device, seed and date), and the verdict on each claim, computed
    from the tables themselves."""
    reports_dir = Path(reports_dir)
    lines = [
        "# Results",
        "",
        "Written by `python -m seqseg_lib summarize` from the tables in `tables/`, which the",
        "notebooks wrote (executed copies in `notebooks/`, figures in `figures/`). Every table",
        "states the profile, dataset, device, seed and date of the runs that produced it.",
        "Real road scenes come first: **read Table 1 on CamVid first**; the synthetic street",
        "scenes are the embedded default, useful to check the code, not to judge the models.",
        "",
        "Verdicts on trained runs know about noise (`seqseg_lib.verdicts`): they are",
        "`reproduced`, `not reproduced` or `inconclusive`. Over several seeds a verdict is",
        "decided only when every seed is on the same side of its threshold, else",
        "`inconclusive (the seeds disagree)`; one seed's verdict says `(one seed)`, and is",
        "`inconclusive (one seed)` where its margin to the threshold is smaller than the seed",
        "spread measured for that kind of run (listed below where one was measured). Verdicts",
        "on measured costs (step times, FLOPs, memory) rest on the measurement they name.",
        "",
    ]
    tables = _load_tables(reports_dir)
    spreads = measured_spreads(tables)
    if spreads:
        lines += ["Seed spreads measured here, used by the one-seed verdicts of that kind:", ""]
        lines += [
            f"- {TITLES[kind]}: {spread:.2f} points ({where})."
            for kind, (spread, where) in spreads.items()
        ] + [""]
    for kind, meta, table in tables:
        provenance_line = ", ".join(f"{k}: {v}" for k, v in meta.items())
        lines += [f"## {TITLES[kind]} — {meta['dataset']}, {meta['profile']} profile", ""]
        lines += [f"_{provenance_line}_", "", to_markdown(table), ""]
        tag = f"{meta['dataset']}_{meta['profile']}"
        figures = [
            f"[{label}](figures/{name}_{tag}.png)"
            for label, name in FIGURES.get(kind, [])
            if (reports_dir / "figures" / f"{name}_{tag}.png").exists()
        ]
        if figures:
            lines += ["Figures: " + ", ".join(figures) + ".", ""]
        if kind in CLAIMS and meta["profile"] == "smoke":
            lines += [SMOKE_NOTE, ""]
        elif kind in CLAIMS:
            try:
                if kind in _WITH_SPREAD:
                    spread = spreads.get(_SPREAD_OF[kind], (None, ""))[0]
                    claims = _WITH_SPREAD[kind](table, spread)
                else:
                    claims = CLAIMS[kind](table)
            except (KeyError, IndexError, ValueError) as error:
                claims = f"(claims not evaluated: {error})"
            heading = "What we measured:" if kind in STUDIES else "Claims of the report:"
            ours = [c for c in claims.splitlines() if c.startswith(OUR_CHECK)]
            theirs = [c for c in claims.splitlines() if not c.startswith(OUR_CHECK)]
            lines += [heading, ""] + [f"- {claim}" for claim in theirs] + [""]
            if ours:  # checks of ours, listed apart from the report's claims
                lines += ["Our checks (not claims of the report):", ""]
                checks = [claim.removeprefix(OUR_CHECK) for claim in ours]
                lines += [f"- {claim[0].upper()}{claim[1:]}" for claim in checks] + [""]
    lines += _NOT_TESTABLE
    path = reports_dir / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path


_NOT_TESTABLE = [
    "## Claims that are not numbers",
    "",
    '- *"The segmentation maps produced by U-Net look much more natural than those of '
    'Seq2Seg"* (Sec. 2.3): a judgement on images, not testable by a number; see Figure 1 '
    "(`figures/figure1_*.png`): Seq2Seg's maps are built from 16x16 (8x8 in the `cpu` profile) "
    "blocks, one transposed-convolution kernel per patch.",
    "- Training-step durations: the report's 0.2 s / 0.3 s were measured on its GPU with the "
    "paper-size models; ours are measured on the stated device with the profile's models. Only "
    "the ratio Seq2Seg / U-Net is comparable, and only loosely across devices.",
    "",
]
