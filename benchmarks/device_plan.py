"""How long each stage of ``device_check.sh`` takes on one H200, said before it runs.

    python benchmarks/device_plan.py [--stage main|skip|second] [--limit-minutes 9]
                                     [--max-steps N] [--repeats N]

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", choices=(*STAGES, "second"), default="main")
    parser.add_argument("--limit-minutes", type=float, default=9.0)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=2, help="the second stage's rounds")
    args = parser.parse_args()
    print(f"== estimate of stage {args.stage} on one H200, limit {args.limit_minutes:g} min")
    if args.stage == "second":
        total = second_stage_seconds(args.repeats)
    else:
        total = stage_seconds(*STAGES[args.stage], args.max_steps)
    fits = total <= 60 * args.limit_minutes
    print(
        f"== stage {args.stage}: about {total / 60:.1f} min estimated "
        f"({'within' if fits else 'OVER'} {args.limit_minutes:g} min)"
    )
    return 0 if fits else 1


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    sys.exit(main())
