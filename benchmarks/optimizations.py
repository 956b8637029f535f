"""Fused Adam and ``torch.compile`` against the engine's training step, measured side by side.

    python benchmarks/optimizations.py [--profile cpu] [--device auto] [--experiments ...]
                                       [--repeats 5] [--out reports]

For each experiment at the profile's batch size: seconds per training step of the engine's
step (Adam's default implementation, eager model), of the same with Adam's fused
implementation, and of the same with the model compiled (``torch.compile``, its compilation
left out of the timing but stated), interleaved in rounds so that the machine's load hits
them alike; then the ratios. Writes ``optimizations.md`` into ``--out`` (a section per
profile and device) and prints it. The engine uses what pays on a device: see the README.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from run import write_section  # benchmarks/run.py: this script's folder is on sys.path

from seqseg_lib.config import PROFILES
from seqseg_lib.devices import describe_device, resolve_device
from seqseg_lib.experiments import EXPERIMENTS, build_config
from seqseg_lib.plotting import to_markdown
from seqseg_lib.speed import TrainingStep, time_interleaved

TITLE = "# Fused Adam and torch.compile\n\nWritten by `benchmarks/optimizations.py`.\n"

VARIANTS = {  # name -> TrainingStep options
    "engine (Adam foreach, eager)": {},
    "fused Adam": {"fused": True},
    "torch.compile": {"compiled": True},
}


def measure(experiment: str, profile: str, device: torch.device, repeats: int) -> dict:
    config = build_config(experiment, profile, device=str(device))
    steps, compile_seconds = {}, None
    for name, options in VARIANTS.items():
        steps[name] = TrainingStep(config, config.batch_size, device, **options)
        if options.get("compiled"):
            start = time.perf_counter()
            steps[name].seconds()  # the first call compiles
            compile_seconds = time.perf_counter() - start
    times = time_interleaved({name: step.seconds for name, step in steps.items()}, repeats)
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["engine (Adam foreach, eager)"]
    row = {"batch": config.batch_size}
    for name, value in medians.items():
        row[f"{name} (s)"] = round(value, 4)
    for name in list(VARIANTS)[1:]:
        row[f"{name} speed-up"] = round(base / medians[name], 3)
    row["compilation (s)"] = round(compile_seconds, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu", choices=PROFILES)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="reports")
    args = parser.parse_args()
    device = resolve_device(args.device)
    rows = {}
    for experiment in args.experiments:
        rows[experiment] = measure(experiment, args.profile, device, args.repeats)
        print(experiment, rows[experiment], flush=True)
    table = pd.DataFrame(rows).T
    heading = f"{args.profile} profile, {device.type}"
    text = "\n".join(
        [
            f"_Machine: {describe_device(str(device))}; torch {torch.__version__}, Python "
            f"{sys.version.split()[0]}. Medians of {args.repeats} interleaved rounds after one "
            "warm-up; dummy batches at the profile's size, float32 unless the profile "
            "autocasts._",
            "",
            to_markdown(table),
            "",
        ]
    )
    out = Path(args.out) / "optimizations.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    # the other profiles' and devices' sections are kept, as in benchmarks.md
    write_section(out, heading, text, TITLE)
    print(text)


if __name__ == "__main__":
    main()
