"""Sec. 2.4's costs, measured: seconds, FLOPs and peak memory of one training step on a dummy
batch (``seqseg_lib.speed``), as the image grows (``scaling_table``, notebook 05), per patch
size at one image size (``patch_table``), and per efficient Transformer as the tokens grow
(``cost_table``, notebook 10). The studies are declared, and judged, in ``claims.scaling``
and ``claims.efficient``.
"""

import statistics
from typing import Any

import numpy as np
import pandas as pd

from seqseg_lib.claims import efficient, scaling
from seqseg_lib.config import Config
from seqseg_lib.experiments import build_model, scaled_config, side_doublings
from seqseg_lib.memory import why_it_cannot_fit
from seqseg_lib.models import count_parameters
from seqseg_lib.speed import TrainingStep, peak_step_memory, time_interleaved, training_flops


def measure(config: Config, batch_size: int, device: str, repeats: int) -> dict[str, Any]:
    """Seconds (median), GFLOPs and peak memory (MiB) of one training step; a step estimated
    not to fit in the device's memory (``memory.why_it_cannot_fit``) is not run: its row says
    why under ``skipped``, and the line is printed."""
    parameters = count_parameters(build_model(config))
    reason = why_it_cannot_fit(config, batch_size, device, parameters)
    if reason is not None:
        reason = f"skipped: {reason}"
        print(f"{config.experiment} ({getattr(config.model, 'attention', '')}): {reason}")
        return {"seconds": np.nan, "gflops": np.nan, "memory_mib": np.nan, "skipped": reason}
    step = TrainingStep(config, batch_size, device)
    seconds = statistics.median(time_interleaved({"step": step.seconds}, repeats)["step"])
    del step
    try:
        gflops = round(training_flops(config, batch_size, device) / 1e9, 4)
    except AssertionError:  # the Reformer's reversible layers: FlopCounterMode cannot follow
        print(f"{config.experiment} ({getattr(config.model, 'encoder', '')}): FLOPs not counted")
        gflops = np.nan
    return {
        "seconds": round(seconds, 4),
        "gflops": gflops,
        "memory_mib": round(peak_step_memory(config, batch_size, device) / 2**20, 1),
    }


def scaling_table(
    profile: str,
    crops: list[tuple[int, int]],
    batch_size: int,
    device: str = "cpu",
    repeats: int = 3,
) -> pd.DataFrame:
    """One row per (variant, crop): tokens, seconds, GFLOPs and MiB of a training step."""
    rows = []
    for crop in crops:
        for name, (experiment, model) in scaling.VARIANTS.items():
            config = scaled_config(experiment, profile, crop, **model)
            tokens = (crop[0] // 16) * (crop[1] // 16) if experiment != "unet" else None
            row = {"model": name, "height": crop[0], "width": crop[1], "tokens": tokens}
            rows.append(row | measure(config, batch_size, device, repeats))
    return pd.DataFrame(rows)


def patch_table(profile: str, crop: tuple[int, int], patches, batch_size, device, repeats):
    """Cost of Seq2Seg (SDPA) at one crop for each patch size: tokens, seconds, GFLOPs, MiB."""
    rows = {}
    for patch in patches:
        config = scaled_config("seq2seg", profile, crop, patch_size=patch)
        tokens = (crop[0] // patch) * (crop[1] // patch)
        rows[f"patch {patch}"] = {"tokens": tokens} | measure(config, batch_size, device, repeats)
    return pd.DataFrame(rows).T


def cost_table(profile: str, device: str = "cpu") -> pd.DataFrame:
    """One row per (variant, crop): tokens, seconds, GFLOPs and MiB of a training step of
    Seq2Seg with that encoder, at the study's patch (``measure``; a step estimated not
    to fit is skipped with its reason)."""
    study = efficient.cost_study(profile)
    rows = []
    for crop in side_doublings(study["smallest"], study["sizes"]):
        tokens = (crop[0] // study["patch"]) * (crop[1] // study["patch"])
        for label in efficient.VARIANTS:
            settings = efficient.model_settings(label, tokens)
            config = scaled_config("seq2seg", profile, crop, study["patch"], **settings)
            row = {"model": label, "height": crop[0], "width": crop[1], "tokens": tokens}
            rows.append(row | measure(config, study["batch_size"], device, study["repeats"]))
    return pd.DataFrame(rows)
