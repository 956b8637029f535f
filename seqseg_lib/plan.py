"""Every training run a notebook needs, listed without training anything.

``notebook_runs(notebook, profile, dataset, ...)`` returns the ``PlannedRun``s of one notebook
(``"01"`` ... ``"10"``, or its file name) from the declarations the notebook itself trains from:
the studies' ``experiments.Variant`` lists of ``seqseg_lib.claims`` and the configs of
``claims.semantic.table1_configs``, ``skip_configs``, ``claims.instance.mnist_configs`` and
``claims.scaling.patch_configs``. A run is found by ``engine.load_or_train`` under the same
directory name, so a run trained from the plan (``python -m seqseg_lib runs train NOTEBOOK``)
is a run the notebook loads.

``describe(plan, runs_dir)``: each run's directory, experiment, steps, an estimate of its
minutes (from the step times in ``reports/benchmarks.md`` where the run has its experiment's
preset sizes) and its state (missing, partial, finished).
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqseg_lib.claims import efficient, instance, panoptic, scaling, semantic, semantic_scale
from seqseg_lib.config import Config
from seqseg_lib.experiments import Variant, build_config, variant_config, variant_name
from seqseg_lib.runs import read_status, run_name, run_state


@dataclass(frozen=True)
class PlannedRun:
    """One training run of a notebook: its ``label`` there, its ``config`` and the suffix
    ``name`` its directory carries (``runs.run_name(config, name)``)."""

    notebook: str
    label: str
    config: Config
    name: str = ""

    def run_dir(self, runs_dir: str | Path) -> Path:
        return Path(runs_dir) / run_name(self.config, self.name)


def from_variants(
    notebook: str, variants: list[Variant], profile: str, dataset: str | None, **run: Any
) -> list[PlannedRun]:
    """Runs of a study, as ``variants.train_variants`` trains them."""
    planned = []
    for variant in variants:
        config = variant_config(variant, profile, dataset, **run)
        planned.append(PlannedRun(notebook, variant.label, config, variant_name(config)))
    return planned


def from_configs(notebook: str, configs: dict[str, Any]) -> list[PlannedRun]:
    """``{label: config or (config, name)}`` as runs."""
    planned = []
    for label, value in configs.items():
        config, name = value if isinstance(value, tuple) else (value, "")
        planned.append(PlannedRun(notebook, label, config, name))
    return planned


def seeded(make: Callable[..., list[PlannedRun]], seeds: int, run: dict) -> list[PlannedRun]:
    """``make(**run)`` for seeds ``run["seed"]``, ``+ 1``, ...: ``seeds`` of them."""
    first = run.get("seed", 0)
    return [p for s in range(first, first + seeds) for p in make(**(run | {"seed": s}))]


def notebook_runs(
    notebook: str,
    profile: str,
    dataset: str = "synthetic",
    *,
    seeds: int = 1,
    data_root: str | None = None,
    mnist_root: str | None = None,
    **run: Any,
) -> list[PlannedRun]:
    """The runs ``notebook`` trains at these parameters (those of ``run_all.sh``), in its
    order; run control (``seed``, ``device``, ``max_steps``, ...) goes in ``run``."""
    key = notebook_key(notebook)
    street = run | {"data_root": data_root}
    digits = run | {"data_root": mnist_root}
    has_instances = dataset != "camvid"

    def table1(**kw) -> list[PlannedRun]:
        return from_configs(key, semantic.table1_configs(profile, dataset, **kw))

    def per_seed(configs: Callable[..., dict]) -> list[PlannedRun]:
        """``configs(profile, dataset, seed=s, ...)``'s runs for each seed."""
        return seeded(
            lambda **kw: from_configs(key, configs(profile, dataset, **kw)), seeds, street
        )

    if key == "01":
        return table1(**street)
    if key == "02":
        return per_seed(semantic.skip_configs)
    if key == "03":
        return from_configs(  # run_all.sh gives it the MNIST folder as its data_root
            key, instance.mnist_configs(profile, "mnist", **digits)
        )
    if key == "04":
        if not has_instances:
            return []
        own = from_configs(
            key, {"Hungarian U-Net": build_config("hungarian-unet", profile, dataset, **street)}
        )
        ablation = from_variants(key, panoptic.HUNGARIAN_ABLATION, profile, dataset, **street)
        return own + table1(**street) + ablation
    if key == "05":
        return per_seed(scaling.patch_configs)
    if key == "06":
        planned = from_variants(key, instance.MASK_HEAD_STUDY, profile, "mnist", **digits)
        if has_instances:
            for study in (panoptic.CLASS_LOSS_STUDY, panoptic.BOTTLENECK_STUDY):
                for seed in panoptic.verdict_seeds(street.get("seed", 0)):
                    planned += from_variants(
                        key, study, profile, dataset, **(street | {"seed": seed})
                    )
        return planned + table1(**street)
    if key == "07":
        planned = from_variants(key, semantic_scale.skip_study(profile), profile, dataset, **street)
        depth = semantic_scale.depth_study(profile)
        for seed in semantic_scale.depth_seeds(street.get("seed", 0)):
            planned += from_variants(key, depth, profile, dataset, **(street | {"seed": seed}))
        gap = semantic_scale.gap_study(profile, dataset)
        planned += from_variants(key, gap, profile, dataset, **street)
        return planned + from_variants(
            key, instance.mnist_study(profile), profile, "mnist", **digits
        )
    if key == "08":
        if not has_instances:
            return []
        return from_variants(key, panoptic.transformer_study(profile), profile, dataset, **street)
    if key == "09":
        budget = semantic_scale.report_budget_study(profile, dataset, data_root)
        return seeded(
            lambda **kw: from_variants(key, budget, profile, dataset, **kw), seeds, street
        )
    if key == "10":
        return per_seed(efficient.study_configs)
    raise ValueError(f"no notebook {notebook!r}; valid: {', '.join(NOTEBOOKS)}")


NOTEBOOKS = ("01", "02", "03", "04", "05", "06", "07", "08", "09", "10")


def notebook_key(notebook: str) -> str:
    """``"04"`` from ``"04"``, ``"4"``, ``"04_hungarian_unet"`` or its path."""
    match = re.match(r"(\d+)", Path(notebook).name)
    if match is None or f"{int(match.group(1)):02d}" not in NOTEBOOKS:
        raise ValueError(f"no notebook {notebook!r}; valid: {', '.join(NOTEBOOKS)}")
    return f"{int(match.group(1)):02d}"


def unique(plan: list[PlannedRun], runs_dir: str | Path) -> list[PlannedRun]:
    """The plan without repeats: notebooks share runs (01's in 04 and 06, say)."""
    seen, kept = set(), []
    for planned in plan:
        where = planned.run_dir(runs_dir)
        if where not in seen:
            seen.add(where)
            kept.append(planned)
    return kept


def planned_steps(config: Config) -> int | None:
    """Optimiser steps of a run: epochs x whole minibatches of its training scenes (None when
    the dataset's size is not in the config)."""
    if config.num_train is None:
        return None
    per_epoch = config.num_train // config.batch_size
    steps = config.epochs * per_epoch
    return steps if config.max_steps is None else min(steps, config.max_steps)


def benchmark_seconds(path: str | Path, profile: str) -> dict[str, float]:
    """``{experiment: seconds per training step}`` of ``path``'s (``reports/benchmarks.md``)
    section of ``profile`` on the CPU, float32 medians; empty when there is none."""
    path = Path(path)
    if not path.is_file():
        return {}
    section = path.read_text().split(f"## {profile} profile, cpu\n")
    if len(section) < 2:
        return {}
    seconds = {}
    for line in section[1].split("\n## ")[0].splitlines():
        match = re.match(r"\| (\S+)\s*\|\s*\d+\s*\| ([\d.]+) \[", line)
        if match:
            seconds[match.group(1)] = float(match.group(2))
    return seconds


def describe(
    plan: list[PlannedRun], runs_dir: str | Path, step_seconds: dict[str, float]
) -> list[dict[str, Any]]:
    """One row per run: notebook, label, directory, experiment, steps, estimated minutes and
    state. Minutes come from ``step_seconds`` (``benchmark_seconds``) for runs at their
    experiment's preset sizes (crop, batch, model), else are unknown (None)."""
    rows = []
    for planned in plan:
        config = planned.config
        steps = planned_steps(config)
        preset = build_config(config.experiment, config.profile, config.dataset)
        same_sizes = (config.crop, config.batch_size, config.model) == (
            preset.crop,
            preset.batch_size,
            preset.model,
        )
        seconds = step_seconds.get(config.experiment) if same_sizes else None
        minutes = None if steps is None or seconds is None else round(steps * seconds / 60, 1)
        run_dir = planned.run_dir(runs_dir)
        rows.append(
            {
                "notebook": planned.notebook,
                "label": planned.label,
                "run directory": run_dir.name,
                "experiment": config.experiment,
                "steps": steps,
                "minutes (est.)": minutes,
                "state": run_state(read_status(run_dir)),
            }
        )
    return rows
