"""Seconds per real training step through the engine with and without DataLoader workers.

    python benchmarks/workers.py [--profile cpu] [--experiments mnist-easy unet ...]
                                 [--workers 0 1] [--steps 60] [--rounds 3] [--device auto]

For each experiment, trains two epochs of ``--steps`` steps of its preset on its real data
with each worker count in turn, ``--rounds`` times interleaved, and prints the median over
rounds of the median second-epoch step (data caches warm), with [min, max], and its speed
relative to the first worker count. Workers
overlap making the next batch (composing MNIST images, cropping scenes, collating) with the
step, at the price of a process competing for the same cores.
"""

import argparse
import dataclasses
import statistics
import tempfile

from seqseg_lib.engine import Trainer
from seqseg_lib.experiments import EXPERIMENTS, build_config


def seconds_per_step(config, steps: int) -> float:
    """Median wall-clock seconds of the steps of a second epoch of ``steps`` steps (the first
    fills the data caches), waiting for the batch included."""
    config = dataclasses.replace(
        config,
        epochs=2,
        num_train=config.batch_size * steps,
        num_val=config.batch_size,
        drop_last=True,
        progress=False,
    )
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, run_dir, timed=True)
        trainer.fit()
    return statistics.median(sum(step.values()) for step in trainer.timer.steps[steps:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--experiments", nargs="+", default=["mnist-easy", "unet"])
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    for name in args.experiments:
        if name not in EXPERIMENTS:
            parser.error(f"unknown experiment {name!r}; valid: {', '.join(EXPERIMENTS)}")
        base = build_config(name, args.profile, device=args.device, progress=False)
        times = {workers: [] for workers in args.workers}
        for _ in range(args.rounds):
            for workers in args.workers:
                config = dataclasses.replace(base, num_workers=workers)
                times[workers].append(seconds_per_step(config, args.steps))
        first = statistics.median(times[args.workers[0]])
        for workers, values in times.items():
            median = statistics.median(values)
            print(
                f"{name}: {workers} workers {median:.3f} s/step "
                f"[{min(values):.3f}, {max(values):.3f}], x{first / median:.2f} the speed "
                f"of {args.workers[0]} workers",
                flush=True,
            )


if __name__ == "__main__":
    main()
