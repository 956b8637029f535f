"""Sec. 2.4's efficient Transformers, measured (notebook 10).

"I tried to use a Reformer and a Performer, but they did not yield satisfactory results": the
report proposes the Longformer, the Reformer and the Performer for longer sequences and
reports no number. Here each takes the place of Seq2Seg's BERT encoder at the profile's
sizes (``models.encoders``, ``models.performer``), beside BERT with SDPA and with eager
attention:

- ``costs.cost_table`` (measured there, declared here by ``cost_study``): seconds, FLOPs and
  peak memory of a training step as the number of tokens grows (the image side doubled at a
  fixed patch), on dummy batches; ``crossovers``: the fewest tokens at which each is cheaper
  than BERT with SDPA on this device, measured.
- ``study_configs`` (trained by ``variants.train_efficient_study``): BERT (SDPA) and each
  efficient Transformer trained for the same number of steps on crops of 2,048 tokens at
  ``cpu`` and ``paper`` (notebook 05 finds attention starting to dominate above about 1,536),
  the profile's other settings unchanged; ``study_table`` and ``study_claim``: validation
  accuracy and mIoU, training minutes, the verdict under the noise rule of
  ``seqseg_lib.verdicts``.
"""

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from seqseg_lib.config import Config
from seqseg_lib.experiments import build_config, build_model, dry_run_images, load_config
from seqseg_lib.models import count_parameters
from seqseg_lib.runs import final_metrics, read_metrics, training_minutes
from seqseg_lib.verdicts import (
    BEYOND_THE_REPORT,
    COST_MARGIN,
    lower_cost,
    percent,
    seed_spread,
    verdict,
)

BASELINE = "BERT (SDPA)"
VARIANTS = {  # label -> Seq2Seg's model settings
    BASELINE: {},
    "BERT (eager attention)": {"attention": "eager"},
    "Performer (BERT, FAVOR+)": {"attention": "performer"},
    "Longformer": {"encoder": "longformer"},
    "BigBird": {"encoder": "bigbird"},
    "Reformer": {"encoder": "reformer"},
}
# Per profile: the cost study's patch, smallest crop, number of side doublings, batch and timing
# rounds; the training study's geometry (resize, crop, patch: its tokens), batch, scenes and
# epochs (equal steps for every variant).
STUDY = {
    "smoke": {
        "patch": 8,
        "smallest": (32, 64),
        "sizes": 2,
        "batch_size": 1,
        "repeats": 1,
        "train": {"resize": (36, 72), "crop": (32, 64), "patch": 8},
        "budget": {"batch_size": 2, "num_train": 4, "num_val": 2, "epochs": 1},
    },
    "cpu": {
        "patch": 8,
        "smallest": (64, 128),
        "sizes": 3,  # 128, 512 and 2,048 tokens
        "batch_size": 2,
        "repeats": 3,
        "train": {"resize": (140, 280), "crop": (128, 256), "patch": 4},  # 2,048 tokens
        "budget": {"batch_size": 4, "num_train": 200, "num_val": 50, "epochs": 4},  # 200 steps
    },
    "paper": {
        "patch": 16,
        "smallest": (128, 256),
        "sizes": 4,  # 128 to 8,192 tokens
        "batch_size": 8,
        "repeats": 5,
        "train": {"resize": (280, 560), "crop": (256, 512), "patch": 8},  # 2,048 tokens
        "budget": {"batch_size": 24, "epochs": 45},
    },
}
# The efficient Transformers (eager attention computes what SDPA does: a check of the cost only,
# so the training study leaves it out: its run would repeat BERT (SDPA)'s numbers more slowly)
EFFICIENT = ("Performer (BERT, FAVOR+)", "Longformer", "BigBird", "Reformer")
TRAINED = (BASELINE, *EFFICIENT)
TRIED_BY_THE_REPORT = ("Performer (BERT, FAVOR+)", "Reformer")
NAMED_BY_THE_REPORT = ("Longformer",)  # Sec. 2.4 names it beside them, untried; not BigBird
# "did not yield satisfactory results": more than this many points of validation accuracy
# behind BERT (SDPA) at equal steps (ours: the report gives no number)
BEHIND_MARGIN = 2.0


def reformer_window(tokens: int, largest: int = 64) -> int:
    """The Reformer's chunk length: the largest power of two up to ``largest`` that divides
    the number of tokens."""
    window = 1
    while window * 2 <= largest and tokens % (window * 2) == 0:
        window *= 2
    return window


def model_settings(label: str, tokens: int) -> dict[str, Any]:
    """``VARIANTS[label]`` for a sequence of ``tokens``: the Reformer trains on exactly
    ``max_positions`` tokens, in chunks dividing them."""
    settings = dict(VARIANTS[label])
    if settings.get("encoder") == "reformer":
        settings |= {"max_positions": tokens, "window": reformer_window(tokens)}
    return settings


def cost_study(profile: str) -> dict:
    """``STUDY[profile]``; under a dry run (``experiments.dry_run_images``) its smallest size
    only, one timing round (``paper``'s 8,192 tokens would take the CPU hours)."""
    settings = dict(STUDY[profile])
    if dry_run_images() is not None:
        settings |= {"sizes": 1, "repeats": 1}
    return settings


def crossovers(table: pd.DataFrame, key: str = "seconds") -> dict[str, int | None]:
    """Per variant: the fewest tokens at which its ``key`` is below BERT (SDPA)'s by more than
    ``COST_MARGIN`` (BERT's over more than ``1 + COST_MARGIN`` times its) and stays so at
    every larger size measured; None if it never gets there."""
    base = table[table["model"] == BASELINE].set_index("tokens")[key]
    found = {}
    for label, group in table[table["model"] != BASELINE].groupby("model", sort=False):
        lower = lower_cost(group.set_index("tokens")[key], base)
        cheaper = lower.reindex(base.index, fill_value=False)
        tokens = list(cheaper.index)
        found[label] = next((int(t) for i, t in enumerate(tokens) if cheaper.iloc[i:].all()), None)
    return found


def cost_claim(table: pd.DataFrame) -> str:
    """Where each encoder becomes cheaper than BERT with SDPA, in time and in memory."""
    largest = int(table["tokens"].max())
    lines = []
    time, memory = crossovers(table, "seconds"), crossovers(table, "memory_mib")
    for label in time:
        said = []
        for what, found in (("faster", time[label]), ("lighter in memory", memory[label])):
            said.append(
                f"{what} from {found:,} tokens on"
                if found is not None
                else f"not {what} up to {largest:,} tokens"
            )
        lines.append(
            f"{label}: {' and '.join(said)} than BERT with SDPA (judged: BERT's cost over its "
            f"own by more than a factor {1 + COST_MARGIN:g}, at that size and every larger one "
            "measured)."
        )
    return "\n".join(lines)


def figure_costs(table: pd.DataFrame) -> plt.Figure:
    """Seconds and peak memory of a training step against the number of tokens, log-log."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for axis, (key, label) in zip(
        axes, {"seconds": "seconds per step", "memory_mib": "MiB"}.items()
    ):
        for name, group in table.groupby("model", sort=False):
            group = group.dropna(subset=[key]).sort_values("tokens")
            axis.plot(group["tokens"], group[key], marker="o", label=name)
        axis.set(xscale="log", yscale="log", xlabel="tokens", ylabel=label)
        axis.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    return figure


def study_config(label: str, profile: str, dataset: str | None, seed: int, **run) -> Config:
    """Seq2Seg with ``label``'s encoder on the study's crops and budget (equal steps)."""
    study = STUDY[profile]
    geometry = study["train"]
    crop, patch = geometry["crop"], geometry["patch"]
    tokens = (crop[0] // patch) * (crop[1] // patch)
    settings = {"patch_size": patch, "max_positions": max(512, tokens)}
    settings |= model_settings(label, tokens)
    return build_config(
        "seq2seg",
        profile,
        dataset,
        seed=seed,
        resize=geometry["resize"],
        crop=crop,
        lr_milestones=(),
        model=settings,
        **(study["budget"] | run),
    )


def study_configs(
    profile: str, dataset: str | None, seed: int = 0, **run
) -> dict[str, tuple[Config, str]]:
    """``{label: (config, run-name suffix)}`` of one seed's training study: ``TRAINED``, each
    named after its place in ``VARIANTS``."""
    return {
        label: (study_config(label, profile, dataset, seed, **run), f"efficient-{index}")
        for index, label in enumerate(VARIANTS)
        if label in TRAINED
    }


def study_table(run_dirs: dict[tuple[str, int], Path]) -> pd.DataFrame:
    """One row per variant and seed: tokens, parameters, steps, validation accuracy and mIoU,
    and the run's training minutes by the wall clock (beside whatever else the machine ran:
    the speed of a step is ``cost_table``'s measurement, not this)."""
    rows = {}
    for (label, seed), run_dir in run_dirs.items():
        records = read_metrics(run_dir)
        final = final_metrics(run_dir, records)
        config = load_config(run_dir)
        crop, patch = config.crop, config.model.patch_size
        rows[f"{label}, seed {seed}"] = {
            "model": label,
            "seed": seed,
            "tokens": (crop[0] // patch) * (crop[1] // patch),
            "parameters (M)": round(count_parameters(build_model(config)) / 1e6, 2),
            "steps": final["steps"],
            "val accuracy (%)": percent(final["val_accuracy"]),
            "val mIoU (%)": percent(final["val_miou"]),
            "training (min, wall clock)": training_minutes(records),
        }
    return pd.DataFrame(rows).T


def study_claim(table: pd.DataFrame) -> str:
    """Sec. 2.4: the efficient Transformers "did not yield satisfactory results", judged per
    variant against BERT (SDPA) at equal steps, every seed (``BEHIND_MARGIN``: ours)."""
    accuracy = table.pivot_table(index="seed", columns="model", values="val accuracy (%)")
    lines = []
    for label in [name for name in EFFICIENT if name in accuracy.columns]:
        behind = [float(b - a) for a, b in zip(accuracy[label], accuracy[BASELINE])]
        judged = verdict(
            behind,
            holds=lambda gap: gap > BEHIND_MARGIN,
            margin=lambda gap: abs(gap - BEHIND_MARGIN),
        )
        spread = seed_spread(behind)
        noise = "" if spread is None else f"; seed spread {spread:.2f} points"
        listing = ", ".join(f"{gap:+.2f}" for gap in behind)
        if label in TRIED_BY_THE_REPORT:
            prefix, role = "", "tried by the report"
        elif label in NAMED_BY_THE_REPORT:
            prefix, role = BEYOND_THE_REPORT, "named by the report, untried"
        else:
            prefix, role = BEYOND_THE_REPORT, "not in the report"
        every = ", every seed" if len(behind) > 1 else ""
        lines.append(
            f"{prefix}{label} ({role}) falls short of BERT (SDPA) at equal steps (judged: more "
            f"than {BEHIND_MARGIN:g} points of validation accuracy behind{every}; our "
            f"threshold): {judged} (behind by {listing} points{noise})."
        )
    return "\n".join(lines)
