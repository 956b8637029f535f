"""Every training run a notebook needs, listed without training anything.

``notebook_runs(notebook, profile, dataset, ...)`` returns the ``PlannedRun``s of one notebook
(``"01"`` ... ``"10"``, or its file name) from the declarations the notebook itself trains from:
the studies' ``experiments.Variant`` lists of ``seqseg_lib.claims`` and the configs of
``claims.semantic.table1_configs``, ``skip_configs``, ``claims.instance.mnist_configs`` and
``claims.scaling.patch_configs``. A run is found by ``engine.load_or_train`` under the same
directory name, so a run trained from the plan (``python -m seqseg_lib runs train NOTEBOOK``)
is a run the notebook loads.

``describe(plan, runs_dir, speeds)``: each run's directory, experiment, steps (the engine's:
``planned_steps``), an estimate of its minutes and its state (``runs.run_state``: missing,
training, partial, finished). The estimate is steps x seconds per step, plus the rest of a run
where that was measured, from the measurements of ``reports/benchmarks.csv``
(``measured_speeds``, ``seqseg_lib.measured``), for runs at their experiment's preset sizes.
"""

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqseg_lib import measured
from seqseg_lib.claims import efficient, instance, panoptic, scaling, semantic, semantic_scale
from seqseg_lib.config import Config
from seqseg_lib.data import build_dataset
from seqseg_lib.data.scattered_mnist import DEFAULT_SIZES
from seqseg_lib.data.synthetic import DEFAULT_NUM_IMAGES
from seqseg_lib.devices import fast_bfloat16
from seqseg_lib.experiments import (
    Variant,
    build_config,
    sized_for_gpu,
    variant_config,
    variant_name,
)
from seqseg_lib.loading import epoch_steps
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
    """The plan without repeats: notebooks share runs (01's in 04 and 06, say). A shared run
    validates at the most frequent cadence its notebooks ask (``validate_every``; every run
    validates its last epoch, which the tables read): under ``paper``, notebook 09's curves
    read notebook 01's two runs every 2 epochs, where 01 alone would validate every 5."""
    kept: dict[Path, PlannedRun] = {}
    for planned in plan:
        first = kept.setdefault(planned.run_dir(runs_dir), planned)
        every = min(first.config.validate_every, planned.config.validate_every)
        if every != first.config.validate_every:
            config = dataclasses.replace(first.config, validate_every=every)
            kept[planned.run_dir(runs_dir)] = dataclasses.replace(first, config=config)
    return list(kept.values())


# The training split of a generated dataset when ``num_train`` is None: its default size.
GENERATED_TRAIN_IMAGES = {"synthetic": DEFAULT_NUM_IMAGES["train"], "mnist": DEFAULT_SIZES["train"]}


def train_images(config: Config) -> int | None:
    """Training items of a run, none of them made: a generated dataset has ``num_train`` (or
    its default size); a real one the first ``num_train`` files of its split (all of them for
    None), counted in its folder, and is unknown (None) where that folder is not there."""
    if config.dataset in GENERATED_TRAIN_IMAGES:
        default = GENERATED_TRAIN_IMAGES[config.dataset]
        return default if config.num_train is None else config.num_train
    try:  # listing the files decodes none (no resize: no cache either)
        split = build_dataset(
            config.dataset,
            config.data_root,
            "train",
            num_images=config.num_train,
            resize=None,
            crop=None,
        )
    except ValueError:  # no such folder here: the plan is made on another machine
        return None
    return len(split)


def planned_steps(config: Config, processes: int = 1) -> int | None:
    """Optimiser steps the engine takes in a run of ``config`` on ``processes`` processes: its
    epochs' batches (``loading.epoch_steps``: a last partial batch kept unless ``drop_last``),
    at most ``max_steps``; None where the training split's size is unknown (``train_images``).
    """
    images = train_images(config)
    if images is None:
        return None
    steps = config.epochs * epoch_steps(images, config.batch_size, config.drop_last, processes)
    return steps if config.max_steps is None else min(steps, config.max_steps)


@dataclass(frozen=True)
class Speed:
    """What a run's minutes are estimated from: seconds per training step (``step_s``) and of
    the rest of a run (``overhead_s``: start, data, validation, a capture; 0 where unmeasured),
    and the measurement they come from (``source``)."""

    step_s: float
    overhead_s: float
    source: str


def profile_precision(profile: str, device_type: str) -> str:
    """What ``profile`` trains in on ``device_type``, as ``build_config`` decides: ``paper``
    autocasts to bfloat16 on a GPU (and on this machine's CPU where it has fast bfloat16), the
    other profiles stay in float32."""
    if not sized_for_gpu(profile):
        return "float32"
    return "bfloat16" if device_type == "cuda" or fast_bfloat16("cpu") else "float32"


def measured_speeds(path: str | Path, profile: str, device_type: str) -> dict[str, Speed]:
    """``{experiment: Speed}`` from the benchmark rows of ``path`` (``reports/benchmarks.csv``,
    the latest of each measurement: ``measured.latest``) of ``profile`` on ``device_type``, in
    the profile's precision (``profile_precision``), one run alone on the device. Per
    experiment: the engine's real step (``train_step_s``) where measured, else the step on
    dummy batches (``step_s``), on the device measured last, in its fastest mode; plus that
    mode's ``run_overhead_s`` (else eager's) and, for a compiled or captured step, its
    ``capture_s``."""
    return speeds_of(measured.read(path), profile, device_type)


def speeds_of(rows: list[dict[str, Any]], profile: str, device_type: str) -> dict[str, Speed]:
    """``measured_speeds`` of benchmark rows already read."""
    precision = profile_precision(profile, device_type)
    rows = measured.latest(
        rows,
        device_type=device_type,
        profile=profile,
        precision=precision,
        concurrent=1,
    )
    speeds = {}
    for experiment in dict.fromkeys(row["experiment"] for row in rows):
        own = [row for row in rows if row["experiment"] == experiment]
        steps = [r for r in own if r["quantity"] == "train_step_s"]
        steps = steps or [r for r in own if r["quantity"] == "step_s"]
        if not steps:
            continue
        device = steps[-1]["device"]
        step = min((r for r in steps if r["device"] == device), key=lambda r: r["value"])
        on_device = {(r["quantity"], r["mode"]): r["value"] for r in own if r["device"] == device}
        overhead = on_device.get(("run_overhead_s", step["mode"]))
        if overhead is None:
            overhead = on_device.get(("run_overhead_s", "eager"), 0.0)
        if step["mode"] != "eager":
            overhead += on_device.get(("capture_s", step["mode"]), 0.0)
        # the first epoch's warm-up beyond its steps, where the probe measured it: its steps
        # are at the later rate (a whole run's mean step, ``rounds`` 1, already holds it)
        if step["quantity"] == "train_step_s" and step["rounds"] != 1:
            overhead += on_device.get(("first_epoch_extra_s", step["mode"]), 0.0)
        source = f"{step['quantity']}, {precision}, {step['mode']}, {device}, {step['date']}"
        speeds[experiment] = Speed(step["value"], overhead, source)
    return speeds


def describe(
    plan: list[PlannedRun], runs_dir: str | Path, speeds: dict[str, Speed]
) -> list[dict[str, Any]]:
    """One row per run: notebook, label, directory, experiment, steps, estimated minutes (of
    the whole run, and left: none for a finished run, the steps not taken yet for a partial
    one) and state. Minutes come from ``speeds`` (``measured_speeds``) for runs at their
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
        speed = speeds.get(config.experiment) if same_sizes else None
        run_dir = planned.run_dir(runs_dir)
        status = read_status(run_dir)
        state = run_state(status, run_dir)
        minutes = left = None
        if steps is not None and speed is not None:
            minutes = (steps * speed.step_s + speed.overhead_s) / 60
            done = 0 if status is None else min(status["position"]["global_step"], steps)
            left = 0.0 if state == "finished" else minutes - done * speed.step_s / 60
        rows.append(
            {
                "notebook": planned.notebook,
                "label": planned.label,
                "run directory": run_dir.name,
                "experiment": config.experiment,
                "steps": steps,
                "minutes (est.)": minutes,
                "minutes left (est.)": left,
                "state": state,
            }
        )
    return rows
