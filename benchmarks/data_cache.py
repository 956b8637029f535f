"""The data-loading share of a real training step with and without the file cache.

    python benchmarks/data_cache.py --dataset camvid --data-root ../shared/data/camvid
                                    [--experiments unet seq2seg] [--profile cpu] [--rounds 3]

For each experiment, on the real dataset: the median seconds per phase of the steps of a
second epoch through the engine (``run.real_step_phases``), with the memory-mapped cache of
resized files (``seqseg_lib.data.cache``, built from nothing in a scratch folder) and without
it (every PNG decoded and resized at every step), the two interleaved ``--rounds`` times.
Prints the data seconds per step and the data share of the step, median [min, max] over the
rounds, and the ratio of the data seconds.
"""

import argparse
import statistics

from run import PHASES, real_step_phases, spread

from seqseg_lib.devices import resolve_device
from seqseg_lib.experiments import EXPERIMENTS, build_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True, choices=["camvid", "cityscapes"])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--experiments", nargs="+", default=["unet", "seq2seg"])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    for name in args.experiments:
        if args.dataset not in EXPERIMENTS[name].datasets:
            parser.error(f"{name} does not read {args.dataset}")
        config = build_config(name, args.profile, args.dataset, data_root=args.data_root)
        seconds = {True: [], False: []}
        shares = {True: [], False: []}
        for _ in range(args.rounds):
            for cached in (True, False):
                phases = real_step_phases(config, device, cached=cached)
                seconds[cached].append(phases["data"])
                shares[cached].append(100 * phases["data"] / sum(phases[p] for p in PHASES))
        ratio = statistics.median(seconds[False]) / statistics.median(seconds[True])
        print(
            f"{name} on {args.dataset} ({args.profile}, batch {config.batch_size}): data "
            f"{spread(seconds[True])} s/step, {spread(shares[True], 1)}% of the step with the "
            f"cache; {spread(seconds[False])} s/step, {spread(shares[False], 1)}% without; "
            f"x{ratio:.1f} less data time with it",
            flush=True,
        )


if __name__ == "__main__":
    main()
