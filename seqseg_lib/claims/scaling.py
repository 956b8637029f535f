"""Section 2.4's scaling argument, measured (notebook 05).

"In Seq2Seg, if the patch size remains fixed, the number of patches grows quadratically with
the image size, and so the resources needed are quartic in the image size" (Sec. 2.4): with
N = HW / P^2 tokens, an encoder layer costs about 24 N D^2 FLOPs in its linear layers
(quadratic in the image side) and 4 N^2 D in attention (quartic), so attention dominates once
N > 6 D. U-Net's cost is proportional to the number of pixels (quadratic in the side). The
report's own example, "doubling the image size multiplies the computational cost by 8", is a
cubic law; quartic would be 16: we give the measured factor of each doubling.

Every variant is measured on one training step of a dummy batch (``seqseg_lib.speed``):
seconds, FLOPs and the peak memory of the step. Seq2Seg runs here without dropout, so that
SDPA can use PyTorch's fused (flash) attention kernel on CPU, which does not hold the
N x N attention matrix; with dropout, the CPU falls back to the written-out attention.
"""

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from seqseg_lib.config import Config
from seqseg_lib.experiments import build_config, dry_run_images, scaled_config
from seqseg_lib.runs import read_metrics
from seqseg_lib.verdicts import (
    COST_MARGIN,
    OUR_CHECK,
    lower_cost,
    seed_spread,
    verdict,
    verdict_word,
)

# What the study measures under each profile: the image sizes (the side doubled from one to
# the next), the batch, the timing rounds, and the patch sizes compared at the profile's crop.
STUDY = {
    "smoke": {"smallest": (32, 64), "sizes": 2, "batch_size": 1, "repeats": 1, "patches": (8, 16)},
    "cpu": {
        "smallest": (64, 128),
        "sizes": 4,
        "batch_size": 2,
        "repeats": 3,
        "patches": (4, 8, 16),
    },
    "paper": {
        "smallest": (128, 256),
        "sizes": 4,
        "batch_size": 8,
        "repeats": 5,
        "patches": (8, 16, 32),
    },
}


def study(profile: str) -> dict:
    """``STUDY[profile]``; under a dry run (``experiments.dry_run_images``) its two smallest
    sizes, one timing round."""
    settings = dict(STUDY[profile])
    if dry_run_images() is not None:
        settings |= {"sizes": 2, "repeats": 1}
    return settings


VARIANTS = {  # name -> (experiment, model settings)
    "Seq2Seg (SDPA)": ("seq2seg", {"attention": "sdpa"}),
    "Seq2Seg (eager attention)": ("seq2seg", {"attention": "eager"}),
    "U-Net": ("unet", {}),
}


def fitted_slopes(table: pd.DataFrame, keys=("seconds", "gflops", "memory_mib")) -> pd.DataFrame:
    """Per model: the least-squares slope of log(value) against log(image side) over all
    sizes, and the factor of the last doubling of the side."""
    rows = {}
    for name, group in table.groupby("model", sort=False):
        group = group.dropna(subset=list(keys)).sort_values("height")  # skipped rows: none
        side = np.log(group["height"].to_numpy(dtype=float))
        row = {}
        for key in keys:
            values = group[key].to_numpy(dtype=float)
            row[f"{key} slope"] = round(float(np.polyfit(side, np.log(values), 1)[0]), 2)
            row[f"{key} x last doubling"] = round(float(values[-1] / values[-2]), 2)
        rows[name] = row
    return pd.DataFrame(rows).T


def figure_scaling(
    table: pd.DataFrame, profile: str, batch_size: int, device: str = "cpu"
) -> plt.Figure:
    """Time, FLOPs and memory of a training step against the image height, log-log, with the
    slopes 2 (pixels) and 4 (attention) drawn through the first U-Net and Seq2Seg points; the
    title states the batch, Seq2Seg's patch, width and depth, and what the memory is."""
    memory = (
        "the allocator's peak on the GPU"
        if str(device).startswith("cuda")
        else "the growth of a fresh process's peak resident set (CPU)"
    )
    keys = {"seconds": "seconds per step", "gflops": "GFLOPs per step", "memory_mib": "MiB"}
    encoder = scaled_config("seq2seg", profile, STUDY[profile]["smallest"]).model
    figure, axes = plt.subplots(1, 3, figsize=(14, 4.4))
    figure.suptitle(
        f"{profile} profile, batch {batch_size}; Seq2Seg: {encoder.patch_size}x"
        f"{encoder.patch_size} patches, width {encoder.hidden_dim}, {encoder.num_layers} layers; "
        f"memory: {memory}",
        fontsize=9,
    )
    for axis, (key, label) in zip(axes, keys.items()):
        for name, group in table.groupby("model", sort=False):
            group = group.sort_values("height")
            axis.plot(group["height"], group[key], marker="o", label=name)
        first = table.sort_values("height").groupby("model", sort=False).first()
        sides = np.array(sorted(table["height"].unique()), dtype=float)
        for slope, style in ((2, ":"), (4, "--")):
            start = first[key].min()
            axis.plot(sides, start * (sides / sides[0]) ** slope, "k" + style, lw=0.8)
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xlabel("image height (width = 2 x height)")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8, title="dotted: slope 2, dashed: slope 4", title_fontsize=8)
    figure.tight_layout()
    return figure


def patch_configs(profile: str, dataset: str | None, **run: Any) -> dict[str, tuple[Config, str]]:
    """``{label: (config, run-name suffix)}`` of notebook 05's trained patch sizes for one
    seed: the profile's Seq2Seg, and the same with 16x16 patches (the report's) where its own
    are smaller."""
    config = build_config("seq2seg", profile, dataset, **run)
    configs = {f"patch {config.model.patch_size}": (config, "")}
    if config.model.patch_size != 16:
        larger = build_config("seq2seg", profile, dataset, **run, model={"patch_size": 16})
        configs["patch 16"] = (larger, "patch16")
    return configs


QUARTIC_EXAMPLE = 8  # Sec. 2.4: "doubling the image size multiplies the computational cost by 8"


def compare_scaling(slopes: pd.DataFrame, table: pd.DataFrame) -> str:
    """Sec. 2.4's claims, with our numbers."""
    s2s, unet, eager = "Seq2Seg (SDPA)", "U-Net", "Seq2Seg (eager attention)"
    measured = table.dropna(subset=["memory_mib"])
    both = measured[measured["model"].isin([s2s, eager])].groupby("height")["model"].nunique()
    largest = table[table["height"] == both[both == 2].index.max()].set_index("model")
    tokens = int(largest.loc[s2s, "tokens"])
    saving = largest.loc[eager, "memory_mib"] / largest.loc[s2s, "memory_mib"]
    factor = slopes.loc[s2s, "gflops x last doubling"] / slopes.loc[unet, "gflops x last doubling"]
    doubled = slopes.loc[s2s, "gflops x last doubling"]
    lines = [
        "Seq2Seg's cost grows faster with the image size than U-Net's (judged: over the last "
        f"doubling of the side measured, its FLOPs multiplied by more than {1 + COST_MARGIN:g} "
        f"times U-Net's factor): {verdict_word(lower_cost(1, factor))} (FLOPs x"
        f"{doubled:.1f} for Seq2Seg, x{slopes.loc[unet, 'gflops x last doubling']:.1f} for "
        f"U-Net, {factor:.2f} times; time x{slopes.loc[s2s, 'seconds x last doubling']:.1f} "
        f"and x{slopes.loc[unet, 'seconds x last doubling']:.1f}).",
        'Quartic in the image size, "doubling the image size multiplies the computational cost '
        f'by 8" (quartic would be x16; judged: FLOPs at least x{QUARTIC_EXAMPLE:g} over the '
        f"last doubling measured, the report's number): {verdict_word(doubled >= QUARTIC_EXAMPLE)}"
        f" (x{doubled:.1f} up to {tokens:,} tokens; FLOP slope "
        f"{slopes.loc[s2s, 'gflops slope']:.2f} over all sizes: attention overtakes the linear "
        "layers beyond about 6 x hidden size tokens).",
        f"{OUR_CHECK}memory-efficient attention (SDPA) saves memory (judged: eager attention's "
        f"peak more than {1 + COST_MARGIN:g} times SDPA's): "
        f"{verdict_word(lower_cost(1, saving))} (at the largest size, "
        f"{largest.loc[s2s, 'memory_mib']:.0f} MiB with SDPA against "
        f"{largest.loc[eager, 'memory_mib']:.0f} MiB eager "
        f"(x{saving:.1f}); time "
        f"{largest.loc[s2s, 'seconds']:.2f} s against {largest.loc[eager, 'seconds']:.2f} s).",
    ]
    if "skipped" in table:
        for _, row in table.dropna(subset=["skipped"]).iterrows():
            lines.append(f"{row['model']} at {row['height']}x{row['width']}: {row['skipped']}.")
    return "\n".join(lines)


PATCH_LOSS = 1.0  # points of validation accuracy: "a big loss of information" (Sec. 2.4), ours


def add_patch_accuracy(patches: pd.DataFrame, trained: dict[int, dict[int, Path]]) -> pd.DataFrame:
    """``patch_table`` with the validation accuracy and mIoU (%) of each trained patch size
    (``{patch: {seed: run directory}}``): their mean over seeds, and with several seeds each
    seed's accuracy in a column of its own, ``"val accuracy, seed 1 (%)"``."""
    patches = patches.copy()
    for patch, runs in trained.items():
        finals = {seed: read_metrics(run_dir)[-1]["val"] for seed, run_dir in runs.items()}
        row = f"patch {patch}"
        accuracy = [100 * final["accuracy"] for final in finals.values()]
        miou = [100 * final["miou"] for final in finals.values()]
        patches.loc[row, "val accuracy (%)"] = round(sum(accuracy) / len(accuracy), 2)
        patches.loc[row, "val mIoU (%)"] = round(sum(miou) / len(miou), 2)
        if len(finals) > 1:
            for seed, value in zip(finals, accuracy):
                patches.loc[row, f"{_SEED_COLUMN}{seed} (%)"] = round(value, 2)
    return patches


_SEED_COLUMN = "val accuracy, seed "


def patch_losses(table: pd.DataFrame) -> list[float]:
    """The accuracy the largest trained patch loses against the smallest, one value per seed
    (a ``patch_table`` with ``add_patch_accuracy``'s columns); [] with fewer than two trained."""
    if "val accuracy (%)" not in table:
        return []
    trained = table.dropna(subset=["val accuracy (%)"]).sort_values("tokens", ascending=False)
    if len(trained) < 2:
        return []
    small, large = trained.iloc[0], trained.iloc[-1]
    seeds = [column for column in table.columns if str(column).startswith(_SEED_COLUMN)]
    return [float(small[column] - large[column]) for column in seeds or ["val accuracy (%)"]]


def patch_spread(table: pd.DataFrame) -> float | None:
    """The seed spread of ``patch_losses`` (None for one seed)."""
    return seed_spread(patch_losses(table))


def compare_patches(table: pd.DataFrame, spread: float | None = None) -> str:
    """Sec. 2.4's "big loss of information" of larger patches, with our numbers: the verdict
    holds when the larger patch loses more than ``PATCH_LOSS`` points of validation accuracy,
    every seed (``seqseg_lib.verdicts``; one seed against ``spread``, measured for such
    runs)."""
    claim = (
        f"Larger patches lose information (more than {PATCH_LOSS:g} point of validation accuracy"
    )
    if "val accuracy (%)" not in table:
        return f"{claim}): no patch size trained."
    trained = table.dropna(subset=["val accuracy (%)"]).sort_values("tokens", ascending=False)
    if len(trained) < 2:
        return f"{claim}): only one patch size trained."
    small, large = trained.iloc[0], trained.iloc[-1]
    seeds = [column for column in table.columns if str(column).startswith(_SEED_COLUMN)]
    losses = patch_losses(table)
    judged = verdict(
        losses,
        holds=lambda loss: loss > PATCH_LOSS,
        margin=lambda loss: abs(loss - PATCH_LOSS),
        spread=spread,
    )
    each = ", ".join(f"{loss:+.2f}" for loss in losses)
    over = ""
    if seeds:
        over = f" over {len(seeds)} seeds, seed spread {seed_spread(losses):.2f} points"
    return (
        f"{claim}{', every seed' if seeds else ''}): {judged} ({large.name}: "
        f"{large['val accuracy (%)']:.2f}%{' (mean)' if seeds else ''} with "
        f"{small['gflops'] / large['gflops']:.1f}x fewer FLOPs and "
        f"{small['seconds'] / large['seconds']:.1f}x shorter steps; {small.name}: "
        f"{small['val accuracy (%)']:.2f}%; accuracy lost: {each} points{over})."
    )


def attention_share(tokens: int, hidden_dim: int) -> float:
    """The attention's share of an encoder layer's FLOPs: 4 N^2 D / (4 N^2 D + 24 N D^2)."""
    return 4 * tokens**2 * hidden_dim / (4 * tokens**2 * hidden_dim + 24 * tokens * hidden_dim**2)
