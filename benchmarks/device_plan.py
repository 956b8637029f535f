"""How long each stage of ``device_check.sh`` should take on one GPU, estimated before it runs.

    python benchmarks/device_plan.py [--stage main|second] [--peak-tflops 790]
                                     [--utilisation 0.3] [--step-floor-ms 10]
                                     [--limit-minutes 9] [--max-steps N]

For every training run of a stage, at the ``paper`` profile on the synthetic scenes (the
report's 2,975 scenes, 123 steps per epoch, 45 and 30 epochs): its steps and validated images
(exact, from the configs), its FLOPs per step (counted on this machine's CPU at batch 1 and
scaled to the batch: FLOPs are linear in the batch), and its seconds at the larger of

- the FLOPs at ``utilisation`` of the GPU's dense bfloat16 peak (``--peak-tflops``: an H200's
  matrix product was measured at about 790 TFLOP/s), and
- ``--step-floor-ms`` per step: what an eager PyTorch step costs in kernel launches, the
  optimizer and the loss, whatever its FLOPs;

validation counts a third of a training step per image. Both constants are assumptions until
a GPU run measures them (``run.py``'s step times replace them): the estimate says how a stage
is sized, not how it will go. Rendering the scenes is measured here, per scene, and divided
among the GPU machine's cores. Prints one line per run, each stage's total against
``--limit-minutes``, and exits 1 when the stage is estimated over it.
"""

import argparse
import dataclasses
import math
import os
import sys
import time

import torch

from seqseg_lib.claims.semantic_scale import steps_per_epoch
from seqseg_lib.data import build_dataset
from seqseg_lib.experiments import build_config
from seqseg_lib.speed import training_flops

# What each stage trains: (notebook, experiment, the experiment whose learning-rate schedule
# it takes, None for its own), at ``paper`` on the synthetic scenes. Notebook 02 reuses
# notebook 01's Seq2Seg run, and trains no skip at its own schedule and at Seq2Seg's.
STAGES = {
    "main": [
        ("01", "seq2seg", None),
        ("01", "unet", None),
        ("02", "seq2seg-noskip", None),
        ("02", "seq2seg-noskip", "seq2seg"),
    ],
    "second": [],  # benchmarks/run.py at paper: its own timing, no training run
}
NOTEBOOK_OVERHEAD_S = 45  # kernel start, majority baseline, Table 1's step timing, figures
BENCHMARK_ESTIMATE_S = 240  # run.py at paper: six experiments, interleaved rounds, memory


def steps_and_images(config) -> tuple[int, int]:
    """Training steps and validated images of a whole run."""
    per_epoch = steps_per_epoch(config)
    steps = config.epochs * per_epoch
    if config.max_steps is not None:
        steps = min(steps, config.max_steps)
    validations = sum(
        1
        for epoch in range(math.ceil(steps / per_epoch))
        if (epoch + 1) % config.validate_every == 0 or epoch + 1 == config.epochs
    )
    return steps, validations * config.num_val


def render_seconds_per_scene(count: int = 24) -> float:
    """Seconds to render and resize one ``paper`` synthetic scene on one core of this CPU."""
    torch.set_num_threads(1)
    config = build_config("unet", "paper", "synthetic", device="cpu")
    scenes = build_dataset(
        "synthetic", None, "train", num_images=count, resize=config.resize, crop=config.crop
    )
    start = time.perf_counter()
    scenes.prepare(processes=1, cache_dir=False)  # rendered, as a fresh machine does
    return (time.perf_counter() - start) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", choices=tuple(STAGES), default="main")
    parser.add_argument("--peak-tflops", type=float, default=790.0)
    parser.add_argument("--utilisation", type=float, default=0.3)
    parser.add_argument("--step-floor-ms", type=float, default=10.0)
    parser.add_argument("--limit-minutes", type=float, default=9.0)
    parser.add_argument("--gpu-cores", type=int, default=16, help="the GPU machine's CPUs")
    parser.add_argument("--max-steps", type=int, default=None)
    args = parser.parse_args()
    rate = args.peak_tflops * 1e12 * args.utilisation
    floor = args.step_floor_ms / 1e3
    print(
        f"== estimate of stage {args.stage}: {args.utilisation:.0%} of {args.peak_tflops:g} "
        f"TFLOP/s, at least {args.step_floor_ms:g} ms per step (assumptions), limit "
        f"{args.limit_minutes:g} min"
    )
    total = 0.0
    if args.stage == "second":
        total = BENCHMARK_ESTIMATE_S
        print(f"   benchmarks/run.py --profile paper: {total:.0f} s (its earlier runs' time)")
    else:
        per_scene = render_seconds_per_scene()
        notebooks = sorted({notebook for notebook, _, _ in STAGES[args.stage]})
        for notebook, experiment, schedule_of in STAGES[args.stage]:
            config = build_config(
                experiment, "paper", "synthetic", device="cpu", max_steps=args.max_steps
            )
            if schedule_of is not None:
                schedule = build_config(schedule_of, "paper", "synthetic")
                config = dataclasses.replace(
                    config, lr=schedule.lr, lr_milestones=schedule.lr_milestones
                )
            flops = training_flops(dataclasses.replace(config, amp=False), 1, "cpu")
            flops *= config.batch_size
            step = max(flops / rate, floor)
            steps, images = steps_and_images(config)
            validation = images / config.batch_size * max(flops / 3 / rate, floor / 3)
            scenes = (config.num_train + config.num_val) * per_scene / args.gpu_cores
            seconds = steps * step + validation + scenes
            total += seconds
            print(
                f"   notebook {notebook}, {experiment} (lr {config.lr:g}): {steps:,} steps of "
                f"{flops / 1e9:,.0f} GFLOP, {step * 1e3:.1f} ms each; {images:,} validated "
                f"images; scenes {scenes:.0f} s: {seconds:.0f} s"
            )
        total += NOTEBOOK_OVERHEAD_S * len(notebooks)
        print(f"   notebooks' own work: {NOTEBOOK_OVERHEAD_S * len(notebooks)} s")
    fits = total <= 60 * args.limit_minutes
    print(
        f"== stage {args.stage}: about {total / 60:.1f} min estimated "
        f"({'within' if fits else 'OVER'} {args.limit_minutes:g} min)"
    )
    return 0 if fits else 1


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    sys.exit(main())
