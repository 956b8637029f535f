"""How long each stage of ``device_check.sh`` takes on one H200, said before it runs.

    python benchmarks/device_plan.py [--stage main|skip|second|STAGE] [--limit-minutes 9]
                                     [--max-steps N] [--repeats N] [--data-root PATH]
                                     [--benchmarks reports/benchmarks.csv]

The stages of the queue (``benchmarks/device_queue.md``) are estimated by ``queue_seconds``:
the probe from its own budget (``probe.budget``), the dry runs from their runs' count at an
assumed ``DRY_RUN_S_PER_RUN``, the training stages from each run's steps at the H200's
measured step times (``MEASURED``) or, for the experiments without one, at what
``--benchmarks`` holds for CUDA at ``paper`` (the probe's rows), else at an assumed
``UNMEASURED_STEP_S``, said as such; runs that share the GPU at the slowdown the probe measured
for that many runs at once, else ``shared_slowdown``'s assumption.

Every training run of a stage is at the ``paper`` profile on the synthetic scenes (the report's
2,975 scenes, 123 steps per epoch, 45 and 30 epochs); its steps come from its config and its
seconds from what one H200 measured (2026-11-30, torch 2.11, bfloat16 autocast, one run at a
time, ``MEASURED``): seconds per training step (the epochs' ``train_seconds`` over their steps)
times the steps, plus the rest of a run (process start, rendering the scenes, validation,
checkpoints: its wall clock less its training). A stage that trains its runs ``jobs`` at a time
on the one GPU is taken as ``SHARED_SLOWDOWN`` times its longest run, at most the sum of its
runs: an assumption until measured (one Seq2Seg step uses 7% of the GPU's bfloat16 matrix
rate, ``reports/benchmarks.md``). The second stage's benchmarks are taken at the rate of their
one H200 call, per experiment and round (an upper bound: that call's start is in it), and
``optimizations.py`` at an assumed ``OPTIMIZATIONS_S`` per experiment (unmeasured). Prints one
line per run, the stage's total against ``--limit-minutes``, and exits 1 when the stage is
estimated over it.
"""

import argparse
import dataclasses
import os
import sys

from seqseg_lib.experiments import EXPERIMENTS, build_config
from seqseg_lib.plan import planned_steps

# (seconds per training step, seconds of the rest of the run), measured on one H200: Seq2Seg
# 162.0 s for 5,535 steps in 3.5 minutes, U-Net 68.3 s for 3,690 in 1.8, no skip 139.2 s for
# 5,289 (cut by the call's limit, so the rest of its run is taken as Seq2Seg's)
MEASURED = {
    "seq2seg": (162.0 / 5535, 210 - 162.0),
    "seq2seg-noskip": (139.2 / 5289, 210 - 162.0),
    "unet": (68.3 / 3690, 108 - 68.3),
}
SHARED_SLOWDOWN = 1.5  # each of several runs sharing the GPU, against alone (assumed)

# What each training stage trains: (notebook, experiment, the experiment whose learning-rate
# schedule it takes, None for its own), and how many runs at a time. Notebook 02 trains Seq2Seg
# again (a fresh machine has no notebook 01 run), and no skip at its own schedule and at
# Seq2Seg's. The second stage trains nothing (``second_stage_seconds``).
STAGES = {
    "main": ([("01", "seq2seg", None), ("01", "unet", None)], 1),
    "skip": (
        [
            ("02", "seq2seg", None),
            ("02", "seq2seg-noskip", None),
            ("02", "seq2seg-noskip", "seq2seg"),
        ],
        3,
    ),
}
NOTEBOOK_S = 45  # a notebook's own work (kernel start, baseline, step timing, figures): 34 s for 01
# benchmarks/run.py at paper on one H200: 62 s for the call with two experiments at 2 rounds
RUN_PY_S_PER_EXPERIMENT_ROUND = 62 / (2 * 2)
OPTIMIZATIONS_EXPERIMENTS = 4  # device_check.sh: seq2seg unet mnist-easy hungarian-unet
OPTIMIZATIONS_S = 45  # per experiment: eager, fused Adam and a torch.compile (assumed)


def stage_seconds(runs, jobs: int, max_steps: int | None) -> float:
    """Seconds of a stage's training runs and notebooks, one line printed per run."""
    seconds = []
    for notebook, experiment, schedule_of in runs:
        config = build_config(experiment, "paper", "synthetic", max_steps=max_steps)
        if schedule_of is not None:
            config = dataclasses.replace(
                config, lr=build_config(schedule_of, "paper", "synthetic").lr
            )
        steps = planned_steps(config)
        per_step, rest = MEASURED[experiment]
        seconds.append(steps * per_step + rest)
        print(
            f"   notebook {notebook}, {experiment} (lr {config.lr:g}): {steps:,} steps of "
            f"{per_step * 1e3:.1f} ms and {rest:.0f} s besides: {seconds[-1]:.0f} s"
        )
    training = sum(seconds)
    if jobs > 1:
        training = min(training, SHARED_SLOWDOWN * max(seconds))
        print(
            f"   {jobs} at a time on the GPU: {training:.0f} s if sharing slows each by "
            f"{SHARED_SLOWDOWN:g}x (assumed; one at a time: {sum(seconds):.0f} s)"
        )
    notebooks = len({notebook for notebook, _, _ in runs})
    print(f"   notebooks' own work: {NOTEBOOK_S * notebooks} s")
    return training + NOTEBOOK_S * notebooks


def second_stage_seconds(repeats: int) -> float:
    """Seconds of the second stage: run.py over every experiment, then optimizations.py."""
    benchmarks = RUN_PY_S_PER_EXPERIMENT_ROUND * len(EXPERIMENTS) * repeats
    print(
        f"   run.py: {len(EXPERIMENTS)} experiments x {repeats} rounds x "
        f"{RUN_PY_S_PER_EXPERIMENT_ROUND:.1f} s (measured rate, call's start included): "
        f"{benchmarks:.0f} s"
    )
    optimizations = OPTIMIZATIONS_S * OPTIMIZATIONS_EXPERIMENTS
    print(
        f"   optimizations.py: {OPTIMIZATIONS_EXPERIMENTS} experiments x {OPTIMIZATIONS_S} s "
        f"(assumed, not measured): {optimizations} s"
    )
    return benchmarks + optimizations


# -- the queue's stages (benchmarks/device_queue.md) -----------------------------------------

DRY_RUN_S_PER_RUN = 10  # a dry run's run: process start, CUDA, one step, 8 images (assumed)
# a paper step of an experiment nothing measured on a GPU yet: taken at Seq2Seg's (assumed;
# the slowest of the H200 runs' steps)
UNMEASURED_STEP_S = MEASURED["seq2seg"][0]
DRY_RUN_NOTEBOOKS = {
    "dry-run-02-04": ("02", "03", "04"),
    "dry-run-05-06": ("05", "06"),
    "dry-run-07": ("07",),
    "dry-run-08-10": ("08", "09", "10"),
}
PROBE_PARTS = {
    "probe": ("steps", "concurrent", "profile", "first-epoch", "eval"),
    "probe-modes": ("modes",),
}
CAMVID_PACKED = "data/camvid-packed"
MNIST_COPY = "data/mnist"


def shared_slowdown(jobs: int, rows: list[dict]) -> tuple[float, str]:
    """How much longer each of ``jobs`` runs at once takes than alone: the probe's Seq2Seg
    measurement for that many runs (``concurrent`` rows of ``train_step_s``) where there is
    one, else ``SHARED_SLOWDOWN`` for up to 3 runs and ``jobs / 2`` beyond (assumed)."""
    from seqseg_lib.measured import latest

    def median(count):
        values = [
            r["value"]
            for r in latest(rows, device_type="cuda", profile="paper", experiment="seq2seg")
            if r["quantity"] == "train_step_s" and r["mode"] == "eager" and r["concurrent"] == count
        ]
        return sorted(values)[len(values) // 2] if values else None

    measured = [n for n in range(jobs, 0, -1) if median(n) is not None and n > 1]
    if median(1) and measured:
        n = measured[0]  # the most runs at once measured, up to jobs
        return median(n) / median(1) * jobs / n, f"measured by the probe for {n} at once"
    return max(SHARED_SLOWDOWN, jobs / 2), "assumed"


def step_seconds(config, rows: list[dict]) -> tuple[float, float, str]:
    """(seconds per step, seconds besides, where they come from) of a run: what the plan reads
    in ``rows`` (``plan.speeds_of``: the latest measurement on CUDA at ``paper``, the H200
    runs' until the probe's), the rest of a run taken as Seq2Seg's H200 run's where it was
    not measured; ``UNMEASURED_STEP_S`` for an experiment nothing measured."""
    from seqseg_lib.plan import speeds_of

    rest = MEASURED["seq2seg"][1]
    speed = speeds_of(rows, "paper", "cuda").get(config.experiment)
    if speed is None:
        return UNMEASURED_STEP_S, rest, "assumed, unmeasured"
    return speed.step_s, speed.overhead_s or rest, speed.source


def training_seconds(runs, jobs: int, rows: list[dict]) -> float:
    """Seconds of training ``runs`` (configs) ``jobs`` at a time, a line printed per run."""
    from stage_runs import run_steps

    seconds = []
    for config in runs:
        steps = run_steps(config)
        per_step, rest, source = step_seconds(config, rows)
        seconds.append(steps * per_step + rest)
        print(
            f"   {config.experiment} seed {config.seed}: {steps:,} steps of "
            f"{per_step * 1e3:.1f} ms ({source}) and {rest:.0f} s besides: {seconds[-1]:.0f} s"
        )
    total = sum(seconds)
    if jobs > 1 and len(runs) > 1:
        slowdown, source = shared_slowdown(min(jobs, len(runs)), rows)
        total = min(total, slowdown * max(seconds))
        print(
            f"   {min(jobs, len(runs))} at a time on the GPU: {total:.0f} s if sharing slows "
            f"each by {slowdown:.2f}x ({source}; one at a time: {sum(seconds):.0f} s)"
        )
    return total


def queue_runs(stage: str, max_steps: int | None, data_root: str | None):
    """``(configs, notebooks regenerated)`` of a training stage of the queue."""
    from stage_runs import stage_runs

    from seqseg_lib.plan import notebook_runs

    run = {} if max_steps is None else {"max_steps": max_steps}
    if stage.startswith(("table1-camvid-seed", "skip-camvid-seed")):
        study, seed = stage.split("-")[0], int(stage.rsplit("seed", 1)[1])
        configs = stage_runs(study, seed, "paper", "camvid", data_root=data_root, **run)
        notebooks = 2 if stage == "table1-camvid-seed0" else 0
        return [config for config, _ in configs], notebooks
    if stage.startswith("mnist-paper"):
        root = MNIST_COPY if stage == "mnist-paper-idx" else None
        planned = notebook_runs("03", "paper", "mnist", mnist_root=root, **run)
        return [p.config for p in planned], 1
    if stage == "panoptic-paper":
        configs = stage_runs("panoptic", 0, "paper", "synthetic", **run)
        return [config for config, _ in configs], 1
    raise ValueError(f"unknown stage {stage!r}")


def queue_seconds(stage: str, max_steps: int | None, data_root: str | None, rows) -> float:
    """Seconds of a stage of the queue, a line printed per part or run."""
    if stage in PROBE_PARTS:
        from probe import budget

        plan = budget(PROBE_PARTS[stage], 20, 3, (1, 2, 4))
        for part, seconds in plan.items():
            print(f"   probe part {part}: {seconds:.0f} s (its budget: probe.py --budget)")
        return sum(plan.values())
    if stage in DRY_RUN_NOTEBOOKS:
        from seqseg_lib.plan import notebook_runs, unique

        notebooks = DRY_RUN_NOTEBOOKS[stage]
        runs = unique([p for n in notebooks for p in notebook_runs(n, "paper")], "runs")
        print(
            f"   notebooks {', '.join(notebooks)}: {len(runs)} runs of one step x "
            f"{DRY_RUN_S_PER_RUN} s (assumed), one at a time: {len(runs) * DRY_RUN_S_PER_RUN} s"
        )
        print(f"   notebooks' own work: {NOTEBOOK_S * len(notebooks)} s")
        return len(runs) * DRY_RUN_S_PER_RUN + NOTEBOOK_S * len(notebooks)
    configs, notebooks = queue_runs(stage, max_steps, data_root)
    total = training_seconds(configs, len(configs), rows)
    if notebooks:
        print(f"   notebooks' own work: {NOTEBOOK_S * notebooks} s")
    return total + NOTEBOOK_S * notebooks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", default="main", help="main, skip, second or a queue stage")
    parser.add_argument("--limit-minutes", type=float, default=9.0)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=2, help="the second stage's rounds")
    parser.add_argument("--data-root", default=None, help="CamVid (default: the packed copy)")
    parser.add_argument("--benchmarks", default="reports/benchmarks.csv")
    args = parser.parse_args()
    print(f"== estimate of stage {args.stage} on one H200, limit {args.limit_minutes:g} min")
    if args.stage == "second":
        total = second_stage_seconds(args.repeats)
    elif args.stage in STAGES:
        total = stage_seconds(*STAGES[args.stage], args.max_steps)
    else:
        from seqseg_lib import measured

        data_root = args.data_root or CAMVID_PACKED
        try:
            rows = measured.read(args.benchmarks)
            total = queue_seconds(args.stage, args.max_steps, data_root, rows)
        except ValueError as error:
            print(f"device_plan.py: {error}", file=sys.stderr)
            return 2
    fits = total <= 60 * args.limit_minutes
    print(
        f"== stage {args.stage}: about {total / 60:.1f} min estimated "
        f"({'within' if fits else 'OVER'} {args.limit_minutes:g} min)"
    )
    return 0 if fits else 1


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())  # (benchmarks/, this script's folder, is on it already)
    sys.exit(main())
