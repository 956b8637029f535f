"""Training the studies the claims declare: each ``experiments.Variant`` of a study, for one
seed or several, into run directories named after what the variant changes
(``experiments.variant_name``), and the step time of each.
"""

from pathlib import Path
from typing import Any

from seqseg_lib.claims import efficient, semantic_scale
from seqseg_lib.engine import load_or_train
from seqseg_lib.experiments import Variant, variant_config, variant_name
from seqseg_lib.speed import measure_step_times


def train_variants(
    variants: list[Variant], profile: str, dataset: str | None, runs_dir: str | Path, **run: Any
) -> dict[str, Path]:
    """Train (or load) every variant; ``{label: run directory}``."""
    run_dirs = {}
    for variant in variants:
        config = variant_config(variant, profile, dataset, **run)
        run_dirs[variant.label] = load_or_train(config, runs_dir, variant_name(config))
    return run_dirs


def train_seeds(
    variants: list[Variant],
    seeds: range,
    profile: str,
    dataset: str | None,
    runs_dir: str | Path,
    **run: Any,
) -> dict[str, dict[int, Path]]:
    """Train (or load) every variant with each of ``seeds``: ``{label: {seed: run directory}}``,
    in the variants' order."""
    run_dirs: dict[str, dict[int, Path]] = {variant.label: {} for variant in variants}
    for seed in seeds:
        trained = train_variants(variants, profile, dataset, runs_dir, **(run | {"seed": seed}))
        for label, run_dir in trained.items():
            run_dirs[label][seed] = run_dir
    return run_dirs


def every_run(run_dirs: dict[str, dict[int, Path]]) -> list[Path]:
    """The run directories of ``train_seeds``, variant by variant, seed by seed."""
    return [run_dir for by_seed in run_dirs.values() for run_dir in by_seed.values()]


def step_seconds(
    variants: list[Variant], profile: str, dataset: str | None, device: str, repeats: int = 7
) -> dict[str, float]:
    """``{label: median seconds of one training step}`` of each variant at its profile's batch
    size, on dummy batches, measured in turns (``speed.measure_step_times``)."""
    configs = {v.label: variant_config(v, profile, dataset) for v in variants}
    return measure_step_times(configs, repeats=repeats, device=device)


# -- the studies of the report's scale (notebooks 07 and 09) --------------------------------


def train_depth_study(
    profile: str, dataset: str | None, runs_dir: str | Path, **run: Any
) -> dict[semantic_scale.DepthRun, Path]:
    """Train (or load) ``semantic_scale.depth_study`` with its ``DEPTH_SEEDS`` seeds from
    ``run["seed"]``: ``{DepthRun(layers, skip, seed): run directory}``."""
    variants = semantic_scale.depth_study(profile)
    seeds = semantic_scale.depth_seeds(run["seed"])
    trained = train_seeds(variants, seeds, profile, dataset, runs_dir, **run)
    return {
        semantic_scale.DepthRun(v.model["num_layers"], v.experiment == "seq2seg", seed): run_dir
        for v in variants
        for seed, run_dir in trained[v.label].items()
    }


def train_budget_study(
    profile: str, dataset: str | None, runs_dir: str | Path, seeds: range, **run: Any
) -> dict[tuple[str, int], Path]:
    """``semantic_scale.report_budget_study``'s runs for every seed of ``seeds``: ``{(label,
    seed): run directory}``, labels ``"Seq2Seg"`` and ``"U-Net"``."""
    variants = semantic_scale.report_budget_study(profile, dataset, run.get("data_root"))
    trained = train_seeds(variants, seeds, profile, dataset, runs_dir, **run)
    return {
        (label, seed): path for label, by_seed in trained.items() for seed, path in by_seed.items()
    }


def train_efficient_study(
    profile: str, dataset: str | None, runs_dir: str | Path, seeds, **run
) -> dict[tuple[str, int], Path]:
    """``claims.efficient.study_configs`` trained (or loaded) for every seed: ``{(label, seed): run
    directory}``."""
    return {
        (label, seed): load_or_train(config, runs_dir, name)
        for seed in seeds
        for label, (config, name) in efficient.study_configs(profile, dataset, seed, **run).items()
    }
