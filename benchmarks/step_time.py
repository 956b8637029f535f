"""Training-step time of U-Net and Seq2Seg (Table 1's "Training Step"), measured in one run.

    python benchmarks/step_time.py [--profile paper|cpu] [--batch-size 24] [--device auto]

Prints seconds per step for each model, the ratio Seq2Seg / U-Net (the report: 0.2 / 0.3 =
0.67 on its GPU) and the ratio of BERT's SDPA attention to its eager attention, all measured
in this process on this device.
"""

import argparse

import torch

from seqseg_lib.config import PROFILES
from seqseg_lib.engine import resolve_device
from seqseg_lib.experiments import build_config
from seqseg_lib.speed import measure_step_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="paper", choices=PROFILES)
    parser.add_argument("--batch-size", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"device {device}, {torch.get_num_threads()} threads, profile {args.profile}")
    times = {}
    for name in ("unet", "seq2seg"):
        config = build_config(name, args.profile, "cityscapes")
        times[name] = measure_step_time(config, args.batch_size, args.repeats, str(device))
        print(f"{name:8s} {times[name]:.3f} s/step (batch {args.batch_size}, crop {config.crop})")
    print(f"ratio seq2seg / unet: {times['seq2seg'] / times['unet']:.2f} (report: 0.67)")

    config = build_config("seq2seg", args.profile, "cityscapes", model={"attention": "eager"})
    eager_time = measure_step_time(config, args.batch_size, args.repeats, str(device))
    print(f"seq2seg eager attention {eager_time:.3f} s/step")
    print(f"ratio sdpa / eager: {times['seq2seg'] / eager_time:.2f}")


if __name__ == "__main__":
    main()
