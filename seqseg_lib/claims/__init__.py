"""The report's claims, one module per section, each turning run directories into tables and
tables into verdicts:

- ``semantic``: Sec. 2.2-2.3 at the profile's scale (Table 1, the skip connection, per-class
  IoU); ``semantic_scale``: Sec. 2 at the report's scale and step budget;
- ``scaling``: Sec. 2.4's scaling argument, measured; ``efficient``: its efficient
  Transformers;
- ``instance``: Sec. 3 (scattered MNIST, Sec. 3.5's masks);
- ``panoptic``: Sec. 4 (the Hungarian U-Net, its ablation, Sec. 4.1's and Sec. 5's proposals).

``TABLES`` is the one registry of the tables in ``reports/tables/``: the notebooks write them
under these names, and ``summarize`` (``python -m seqseg_lib summarize``) writes
``reports/README.md`` from it: every table with its provenance, the figures discussed with it,
and the verdict on each claim, computed from the tables themselves.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from seqseg_lib.claims import efficient, instance, panoptic, scaling, semantic, semantic_scale
from seqseg_lib.plotting import RECORDED, to_markdown
from seqseg_lib.verdicts import BEYOND_THE_REPORT, COST_MARGIN, OUR_CHECK


@dataclass(frozen=True)
class Table:
    """One table of ``reports/tables/``: its ``title``; ``claim(table) -> str``, one verdict
    per line (None: no verdict); whether it answers a question of ours (``study``) rather than
    a claim of the report; the ``figures`` discussed with it, as (label, file-name prefix);
    ``spread(table)``, the seed spread it measures over several seeds (None: none); and the
    kind of table whose measured spread its one-seed verdicts are judged against
    (``judged_by``), with ``claim(table, spread)`` taking it."""

    title: str
    claim: Callable[..., str] | None = None
    study: bool = False
    figures: list[tuple[str, str]] = field(default_factory=list)
    spread: Callable[[pd.DataFrame], float | None] | None = None
    judged_by: str | None = None


def majority_baseline(table: pd.DataFrame) -> dict[str, float]:
    """The majority-class row of a semantic table, as ``majority_class_scores`` gives it."""
    row = table.loc[[i for i in table.index if str(i).startswith("majority")][0]]
    return {"accuracy": float(row["val accuracy (%)"]) / 100}


TABLES = {
    "table1": Table(
        "Table 1: Seq2Seg versus U-Net (Sec. 2.3)",
        semantic.compare_table1,
        figures=[("Figure 1: segmentation maps", "figure1"), ("Figure 2: curves", "figure2")],
        judged_by="table_report_budget",
    ),
    "table_report_budget": Table(
        "Table 1 at the report's step budget: Seq2Seg 5,535 steps, U-Net 3,690 (Sec. 2.2-2.3)",
        semantic_scale.budget_claim,
        figures=[("accuracy and gap against steps", "figure_report_budget")],
        spread=semantic_scale.budget_spread,
    ),
    "table_skip_ablation": Table(
        "The skip connection (Sec. 2.2-2.3, Table 1's third column)",
        lambda table, spread=None: semantic.compare_skip(table, majority_baseline(table), spread),
        figures=[("learning curves", "figure_skip_ablation")],
        spread=semantic.skip_spread,
        judged_by="table_skip_ablation",
    ),
    "table_mnist": Table(
        "Instance segmentation on scattered MNIST (Sec. 3.4)",
        instance.compare_mnist,
        figures=[("Figure 4: hard mode", "figure4"), ("Figure 5: easy mode", "figure5")],
    ),
    "table_panoptic": Table(
        "Hungarian U-Net on the synthetic scenes only: panoptic quality, and semantic metrics "
        "beside U-Net and Seq2Seg (Sec. 4; the report has no numbers)",
        panoptic.cars_claim,
        figures=[("Figure 6: panoptic segments", "figure6")]
        + [(f"Figure {n}: every query on one image", f"figure{n}") for n in (7, 8, 9)],
    ),
    "table_redundancy": Table(
        "Hungarian U-Net on the synthetic scenes only: redundant detections, counted (Sec. 4.1)",
        lambda table: panoptic.redundancy_claim(panoptic.redundancy_from(table)),
    ),
    "table_scaling": Table(
        "Scaling it up: one training step as the image grows, on dummy batches (Sec. 2.4)",
        lambda table: scaling.compare_scaling(
            scaling.fitted_slopes(table.reset_index()), table.reset_index()
        ),
        figures=[("time and memory against the image size", "figure_scaling")],
    ),
    "table_patches": Table(
        "Scaling it up: larger patches at equal image size (Sec. 2.4)",
        scaling.compare_patches,
        spread=scaling.patch_spread,
        judged_by="table_patches",
    ),
    "table_ablation": Table(
        "Beyond the report: what keeps the Hungarian U-Net from separating cars",
        panoptic.ablation_claim,
        study=True,
    ),
    "table_mask_heads": Table(
        "Beyond the report: instance masks from every patch's hidden state (Sec. 3.5's proposal)",
        instance.mask_head_claim,
        study=True,
        figures=[("dot-product masks on easy images", "figure_mask_heads")],
    ),
    "table_class_loss": Table(
        "Beyond the report: the class loss against redundant detections (Sec. 4.1's proposal)",
        panoptic.class_loss_claim,
        study=True,
    ),
    "table_bottleneck": Table(
        "Beyond the report: BERT layers in the Hungarian U-Net's bottleneck (Sec. 5's proposal)",
        panoptic.bottleneck_claim,
        study=True,
    ),
    "table_per_class_iou": Table(
        "Beyond the report: what pixel accuracy hides, per-class IoU",
        semantic.per_class_iou_claim,
        study=True,
        figures=[("per-class IoU", "figure_per_class_iou")],
    ),
    "table_skip_depth": Table(
        "The skip connection with the report's encoder (6 layers, 768 wide), not its training: "
        "a fixed budget of steps at the profile's crops (Sec. 2.2)",
        semantic_scale.skip_claim,
        figures=[("curves and depth", "figure_skip_depth")],
    ),
    "table_depth": Table(
        "Beyond the report: the skip connection's effect against depth (width 256, batch 8: "
        "not the report's sizes)",
        semantic_scale.depth_claim,
        study=True,
        figures=[("curves and depth", "figure_skip_depth")],
    ),
    "table_gap": Table(
        "Beyond the report: what Seq2Seg's distance to U-Net depends on (one change at a time "
        "from notebook 01's Seq2Seg; the report's encoder and rate count as one)",
        semantic_scale.gap_claim,
        study=True,
    ),
    "table_efficient_cost": Table(
        "Beyond the report: the efficient Transformers of Sec. 2.4, the cost of a step against "
        "tokens (dummy batches)",
        lambda table: efficient.cost_claim(table.reset_index()),
        study=True,
        figures=[("time and memory against tokens", "figure_efficient_cost")],
    ),
    "table_efficient": Table(
        "Beyond the report: the efficient Transformers of Sec. 2.4 trained at equal steps",
        efficient.study_claim,
        figures=[("learning curves", "figure_efficient")],
    ),
    "table_transformers": Table(
        "Beyond the report: a transformer with object queries (Sec. 3's, with Sec. 3.5's "
        "dot-product masks) on street scenes, beside EoMT and the Hungarian U-Net, on the same "
        "square crops for about the same wall-clock time (Sec. 3.5 and 4)",
        panoptic.transformer_claim,
        study=True,
        figures=[
            (f"Figure 6 for {name}", f"figure_transformers_{experiment}")
            for experiment, name in (
                ("hungarian-unet", "the Hungarian U-Net"),
                ("seq2seg-panoptic", "ours"),
                ("eomt", "EoMT"),
            )
        ],
    ),
    "table_mnist_targets": Table(
        "Beyond the report: MNIST digit accuracy and Dice loss at the profile's budget and at "
        "the report's steps (half the report's width; Sec. 3.4)",
        instance.targets_claim,
        study=True,
    ),
}


# -- reports/README.md from the tables ---------------------------------------------------------

_DATASET_ORDER = {"camvid": 0, "cityscapes": 1, "synthetic": 2, "mnist": 3}


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
        measure = TABLES[kind].spread
        spread = measure(table) if measure is not None else None
        if spread is not None and spread >= spreads.get(kind, (0.0, ""))[0]:
            where = f"{meta['dataset']}, {meta['profile']} profile, seeds {meta['seed']}"
            spreads[kind] = (spread, where)
    return spreads


def _load_tables(reports_dir: Path) -> list[tuple[str, dict, pd.DataFrame]]:
    found = []
    for meta_path in sorted((reports_dir / "tables").glob("*.json")):
        meta = json.loads(meta_path.read_text())
        kind = meta_path.stem.removesuffix(f"_{meta['dataset']}_{meta['profile']}")
        if kind in TABLES:
            table = pd.read_csv(meta_path.with_suffix(".csv"), index_col=0)
            found.append((kind, meta, table))
    order = list(TABLES)
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
        "spread measured for that kind of table (listed below where one was measured: the",
        "largest spread of its gaps, on the dataset and profile named, stands for the others).",
        "Without a measured spread a one-seed verdict is decided and says `(one seed)`.",
        "Verdicts on measured costs (step times, FLOPs, memory) rest on the measurement they",
        f"name, with a margin of {COST_MARGIN:.0%} where they compare two costs.",
        "",
    ]
    if not reports_dir.is_dir():
        raise ValueError(
            f"reports directory {str(reports_dir)!r} is not a folder: name the folder the "
            "notebooks wrote (default: reports)"
        )
    tables = _load_tables(reports_dir)
    if not tables:  # a README without a table would read as results
        raise ValueError(
            f"{str(reports_dir / 'tables')!r} holds no table of the report: run the notebooks "
            "first (./run_all.sh), or name the folder they wrote"
        )
    spreads = measured_spreads(tables)
    if spreads:
        lines += ["Seed spreads measured here, used by the one-seed verdicts of that kind:", ""]
        lines += [
            f"- {TABLES[kind].title}: {spread:.2f} points ({where})."
            for kind, (spread, where) in spreads.items()
        ] + [""]
    for kind, meta, table in tables:
        provenance_line = ", ".join(f"{k}: {v}" for k, v in meta.items())
        unrecorded = [key for key in RECORDED if key not in meta]
        if unrecorded:
            provenance_line += (
                f"; {', '.join(unrecorded)}: not recorded (the table was written before these were "
                "recorded)"
            )
        spec = TABLES[kind]
        lines += [f"## {spec.title} — {meta['dataset']}, {meta['profile']} profile", ""]
        lines += [f"_{provenance_line}_", "", to_markdown(table), ""]
        tag = f"{meta['dataset']}_{meta['profile']}"
        figures = [
            f"[{label}](figures/{name}_{tag}.png)"
            for label, name in spec.figures
            if (reports_dir / "figures" / f"{name}_{tag}.png").exists()
        ]
        if figures:
            lines += ["Figures: " + ", ".join(figures) + ".", ""]
        if spec.claim is not None and meta["profile"] == "smoke":
            lines += [SMOKE_NOTE, ""]
        elif spec.claim is not None:
            try:
                if spec.judged_by is not None:
                    claims = spec.claim(table, spreads.get(spec.judged_by, (None, ""))[0])
                else:
                    claims = spec.claim(table)
            except (KeyError, IndexError, ValueError) as error:
                claims = f"(claims not evaluated: {error})"
            lines += claim_lists(claims.splitlines(), spec.study)
    lines += _NOT_TESTABLE
    path = reports_dir / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def claim_lists(claims: list[str], study: bool) -> list[str]:
    """A table's verdict lines as Markdown lists: the report's claims (or, for a study of ours,
    what we measured), then lines measured beyond them (``BEYOND_THE_REPORT``), then our
    checks (``OUR_CHECK``), each list under its heading, without its prefix."""
    groups = {OUR_CHECK: [], BEYOND_THE_REPORT: [], "": []}
    for claim in claims:
        prefix = next(p for p in groups if claim.startswith(p))
        rest = claim.removeprefix(prefix)
        groups[prefix].append(f"- {rest[0].upper()}{rest[1:]}" if prefix else f"- {claim}")
    headings = {
        "": "What we measured:" if study else "Claims of the report:",
        BEYOND_THE_REPORT: "Beyond the report's claims:",
        OUR_CHECK: "Our checks (not claims of the report):",
    }
    lines = []
    for prefix in ("", BEYOND_THE_REPORT, OUR_CHECK):
        if groups[prefix]:
            lines += [headings[prefix], "", *groups[prefix], ""]
    return lines


_NOT_TESTABLE = [
    "## Claims that are not numbers",
    "",
    '- *"The segmentation maps produced by U-Net look much more natural than those of '
    'Seq2Seg"* (Sec. 2.3): a judgement on images, not testable by a number; see Figure 1 '
    "(`figures/figure1_*.png`): Seq2Seg's maps are built from 16x16 (8x8 in the `cpu` profile) "
    "blocks, one transposed-convolution kernel per patch.",
    "- Training-step durations: the report's 0.2 s / 0.3 s were measured on its hardware (not "
    "named) with the paper-size models; ours are measured on the stated device with the "
    "profile's models. Only the ratio Seq2Seg / U-Net is comparable, and only loosely across "
    "devices.",
    "",
]
