"""The report's claims, one module per section, each turning run directories into tables and
tables into verdicts:

- ``semantic``: Sec. 2.2-2.3 at the profile's scale (Table 1, the skip connection, per-class
  IoU); ``semantic_scale``: Sec. 2 at the report's scale and step budget;
- ``scaling``: Sec. 2.4's scaling argument, measured; ``efficient``: its efficient
  Transformers;
- ``instance``: Sec. 3 (scattered MNIST, Sec. 3.5's masks);
- ``panoptic``: Sec. 4 (the Hungarian U-Net, its ablation, Sec. 4.1's and Sec. 5's proposals).

``TABLES`` is the one registry of the tables in ``reports/tables/``: the notebooks write them
under these names, and ``python -m seqseg_lib summarize`` gives each its title, figures and
verdicts from here.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from seqseg_lib.claims import efficient, instance, panoptic, scaling, semantic, semantic_scale


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
        "At the report's scale: the skip connection with the report's encoder (Sec. 2.2)",
        semantic_scale.skip_claim,
        figures=[("curves and depth", "figure_skip_depth")],
    ),
    "table_depth": Table(
        "Beyond the report: where the skip connection starts to matter (width 256, batch 8: "
        "not the report's sizes)",
        semantic_scale.depth_claim,
        study=True,
        figures=[("curves and depth", "figure_skip_depth")],
    ),
    "table_gap": Table(
        "Beyond the report: what Seq2Seg's distance to U-Net depends on (the cpu profile's "
        "models, one change at a time)",
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
        "Beyond the report: its transformer with object queries on street scenes, beside EoMT "
        "and the Hungarian U-Net, for the same training time (Sec. 3.5 and 4)",
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
