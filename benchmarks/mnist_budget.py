"""Minutes of a whole ``mnist-easy`` / ``mnist-hard`` run per head of notebook 07, measured in
one run: the step's seconds (median over interleaved rounds) times the profile's steps.

    python benchmarks/mnist_budget.py [--profile cpu] [--repeats 5] [--device auto]

Prints, for each of ``instance.MNIST_HEADS``, seconds per training step at the profile's batch
(dummy digits: the same shapes, matching and losses as real ones; data loading and validation
excluded), the minutes of the profile's steps at that rate, and the ratio to the report's
heads, all measured in this process with its threads (2 on a 2-core machine). Then, for the
longer runs of notebook 07 (``instance.MNIST_LONGER`` times the profile's epochs: the report's
step count), the minutes at the measured rate and the least they could take on this device:
the step's FLOPs (``speed.training_flops``) at the dense matrix product's throughput
(``speed.matmul_flops_per_second``), measured here as well.
"""

import argparse
import math
import statistics

import torch

from seqseg_lib.claims.instance import MNIST_HEADS, MNIST_LONGER, MNIST_LONGER_HEADS
from seqseg_lib.config import PROFILES
from seqseg_lib.experiments import build_config
from seqseg_lib.speed import (
    TrainingStep,
    matmul_flops_per_second,
    time_interleaved,
    training_flops,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu", choices=PROFILES)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    print(f"{torch.get_num_threads()} threads, profile {args.profile}")
    steps, budgets, configs = {}, {}, {}
    for label, model, loss in MNIST_HEADS:
        config = build_config("mnist-easy", args.profile, "mnist", model=model, loss=loss)
        configs[label] = config
        steps[label] = TrainingStep(config, config.batch_size, args.device).seconds
        batches = config.num_train / config.batch_size  # per epoch, as the engine draws them
        budgets[label] = config.epochs * (int(batches) if config.drop_last else math.ceil(batches))
    rounds = time_interleaved(steps, args.repeats)
    medians = {label: statistics.median(seconds) for label, seconds in rounds.items()}
    reference = medians[MNIST_HEADS[0][0]]
    for label, median in medians.items():
        minutes = median * budgets[label] / 60
        print(
            f"{label:62s} {median:.3f} s/step, {budgets[label]} steps: {minutes:.1f} min "
            f"(x{median / reference:.2f} the report's heads)"
        )
    if args.profile == "paper":
        return  # ``paper`` already trains the report's steps
    peak = matmul_flops_per_second(device=args.device)
    print(f"\n{MNIST_LONGER}x the epochs; dense matrix product: {peak / 1e9:.0f} GFLOP/s")
    for index in MNIST_LONGER_HEADS:
        label = MNIST_HEADS[index][0]
        config, count = configs[label], MNIST_LONGER * budgets[label]
        flops = training_flops(config, config.batch_size, args.device)
        print(
            f"{label:62s} {count} steps: {medians[label] * count / 60:.1f} min at the measured "
            f"rate; at least {flops * count / peak / 60:.1f} min: {flops / 1e9:.2f} GFLOP/step "
            f"at the matrix product's rate (the measured step reaches "
            f"{flops / medians[label] / peak:.2f} of it)"
        )


if __name__ == "__main__":
    main()
