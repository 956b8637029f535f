"""Speed and memory of every experiment's training step, measured side by side in one run.

    python benchmarks/run.py [--profile cpu|paper|smoke] [--device auto|cpu|cuda]
                             [--experiments unet seq2seg ...] [--repeats 5] [--out reports]
                             [--dataset camvid --data-root PATH]

For each experiment, at the profile's model, crop and batch size:

- seconds per training step and images per second, float32 and bfloat16 autocast, the two
  interleaved round by round; medians with [min, max] over the rounds, and the bfloat16
  speed-up as the median [min, max] of the per-round ratios;
- FLOPs per step (``torch.utils.flop_counter``) and FLOP utilisation: FLOPs / step time /
  dense matmul throughput measured in this process in the same precision;
- where a real training step's time goes (through the engine, on the experiment's real data,
  after an epoch that fills the data caches): data, forward, loss (matching included),
  backward, optimizer, metrics, and the share outside forward, backward and optimizer; on a
  real dataset (``--dataset``, for the experiments that read it), the data share also without
  the cache of resized files (``data.cache``), which then decodes every PNG at every step;
- inference images per second at batch 1 and 24, and the peak memory of a training step.

Prints the tables and writes them into OUT/benchmarks.md under a heading for the profile and
device (the sections of other profiles and devices are kept), and appends the measurements to
OUT/benchmarks.csv (``seqseg_lib.measured``), what code reads: ``step_s`` per precision (the
median of the rounds), ``train_step_s`` (the real step, in the profile's precision, on the
experiment's own data: the file has no dataset column) and ``peak_mib`` per precision, in eager
mode, one run alone on the device.
"""

import argparse
import dataclasses
import datetime
import os
import platform
import statistics
import tempfile
from pathlib import Path

import pandas as pd
import torch

from seqseg_lib import measured
from seqseg_lib.config import PROFILES
from seqseg_lib.data.cache import CACHE_ENV
from seqseg_lib.devices import configure_device, describe_device, resolve_device
from seqseg_lib.engine import Trainer, deterministic, set_determinism
from seqseg_lib.experiments import EXPERIMENTS, build_config
from seqseg_lib.plotting import code_version
from seqseg_lib.speed import (
    TrainingStep,
    inference_images_per_second,
    matmul_flops_per_second,
    peak_step_memory,
    time_interleaved,
    training_flops,
)

PHASES = ("data", "forward", "loss", "backward", "optimizer", "metrics")
# The side of the square matrices whose product measures the peak: 8192^3 is 1.1 TFLOP, about
# 1.4 ms on an H200 in bfloat16 (2048^3 would take 20 us, less than launching and timing it).
PEAK_MATMUL_SIZE = {"cuda": 8192, "cpu": 2048}
COMPUTE = ("forward", "backward", "optimizer")
REAL_STEPS = 8  # the real step's phases: medians over this many steps of a second epoch
PRECISIONS = {"fp32": "float32", "bf16": "bfloat16"}


def machine(device: torch.device) -> str:
    return (
        f"{describe_device(device)}; {torch.multiprocessing.cpu_count()} CPUs, "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )


def spread(values: list[float], digits: int = 3) -> str:
    return (
        f"{statistics.median(values):.{digits}f} "
        f"[{min(values):.{digits}f}, {max(values):.{digits}f}]"
    )


def step_times(config, device, repeats: int, slow_bf16: bool) -> dict[str, list[float]]:
    """Seconds of float32 and bfloat16 steps, interleaved; on a device without fast bfloat16
    (``slow_bf16``) a bfloat16 step takes seconds to minutes: one, measured after the float32
    rounds."""
    steps = {
        "float32": TrainingStep(config, config.batch_size, device),
        "bfloat16": TrainingStep(dataclasses.replace(config, amp=True), config.batch_size, device),
    }
    if not slow_bf16:
        return time_interleaved({name: step.seconds for name, step in steps.items()}, repeats)
    times = time_interleaved({"float32": steps["float32"].seconds}, repeats)
    return times | time_interleaved({"bfloat16": steps["bfloat16"].seconds}, 1, warmup=0)


def real_step_phases(
    config, device, steps: int = REAL_STEPS, cached: bool = True
) -> dict[str, float]:
    """Median seconds per phase over the steps of a second epoch through the engine;
    ``cached=False`` turns the cache of resized real-dataset files off."""
    config = dataclasses.replace(
        config,
        device=str(device),
        epochs=2,
        num_train=config.batch_size * steps,
        num_val=config.batch_size,
        drop_last=True,
        progress=False,
    )
    with tempfile.TemporaryDirectory() as run_dir, tempfile.TemporaryDirectory() as cache_dir:
        previous = os.environ.get(CACHE_ENV)
        os.environ[CACHE_ENV] = cache_dir if cached else "off"  # a cache built from nothing
        try:
            trainer = Trainer(config, run_dir, timed=True)
            trainer.fit()
        finally:
            os.environ.pop(CACHE_ENV)
            if previous is not None:
                os.environ[CACHE_ENV] = previous
    second_epoch = trainer.timer.steps[steps:]
    return {phase: statistics.median(s.get(phase, 0.0) for s in second_epoch) for phase in PHASES}


def benchmark(
    name: str, profile: str, device: torch.device, repeats: int, throughput, data=(None, None)
) -> dict:
    dataset, data_root = data
    if dataset not in EXPERIMENTS[name].datasets:
        dataset, data_root = None, None  # the experiment's embedded data
    config = build_config(name, profile, dataset, data_root=data_root, device=str(device))
    batch = config.batch_size
    slow_bf16 = throughput["bf16"] < throughput["fp32"]
    times = step_times(config, device, repeats, slow_bf16)
    speedups = [a / b for a, b in zip(times["float32"], times["bfloat16"])]
    flops = training_flops(config, batch, str(device))
    phases = real_step_phases(config, device)
    total = sum(phases.values())
    row = {
        "experiment": name,
        "batch": batch,
        "s/step fp32": spread(times["float32"]),
        "s/step bf16": spread(times["bfloat16"]),
        "bf16 speed-up": spread(speedups, 2),
        "img/s fp32": round(batch / statistics.median(times["float32"]), 1),
        "img/s bf16": round(batch / statistics.median(times["bfloat16"]), 1),
        "GFLOP/step": round(flops / 1e9, 2),
        "util. fp32": round(flops / statistics.median(times["float32"]) / throughput["fp32"], 2),
        # without fast bfloat16 matmuls the step is not bound by them: no utilisation to give
        "util. bf16": "–"
        if slow_bf16
        else round(flops / statistics.median(times["bfloat16"]) / throughput["bf16"], 2),
    }
    real = {"experiment": name, "dataset": config.dataset, "real step (s)": round(total, 3)}
    real |= {f"{phase} (%)": round(100 * phases[phase] / total, 1) for phase in PHASES}
    real["outside fwd/bwd/opt (%)"] = round(100 * (1 - sum(phases[p] for p in COMPUTE) / total), 1)
    if config.dataset in ("cityscapes", "camvid"):
        uncached = real_step_phases(config, device, cached=False)
        share = uncached["data"] / (total - phases["data"] + uncached["data"])
        real["data, no file cache (%)"] = round(100 * share, 1)
    other, memory = {"experiment": name}, {}
    for precision, amp in (("fp32", False), ("bf16", True)):
        variant = dataclasses.replace(config, amp=amp)
        for size in (1, 24):
            rounds = 1 if amp and slow_bf16 else repeats
            rate = inference_images_per_second(variant, size, str(device), rounds)
            other[f"infer img/s b{size} {precision}"] = round(rate, 1)
        memory[precision] = peak_step_memory(variant, batch, str(device)) / 2**20
        other[f"step memory {precision} (MiB)"] = round(memory[precision], 1)
    own_data = config.dataset == EXPERIMENTS[name].datasets[0]
    rows = csv_rows(config, times, total if own_data else None, memory)
    return {"step": row, "real": real, "other": other, "csv": rows}


def csv_rows(config, times: dict, real_step_s: float | None, memory_mib: dict) -> list[dict]:
    """The rows of ``benchmarks.csv`` for one experiment: ``step_s`` (the median of
    ``times``' rounds) and ``peak_mib`` per precision, and ``train_step_s`` in the profile's
    precision (unless None: a real step on another dataset than the experiment's own)."""
    device = resolve_device(config.device)
    common = {
        "device_type": device.type,
        "device": describe_device(device),
        "profile": config.profile,
        "experiment": config.experiment,
        "mode": "eager",
        "concurrent": 1,
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "commit": code_version(),
    }
    rows = []
    for short, precision in PRECISIONS.items():
        rounds = len(times[precision])
        value = statistics.median(times[precision])
        rows.append(common | quantity("step_s", value, rounds) | {"precision": precision})
        peak = quantity("peak_mib", memory_mib[short], 1)
        rows.append(common | peak | {"precision": precision})
    if real_step_s is not None:
        precision = "bfloat16" if config.amp else "float32"
        real = quantity("train_step_s", real_step_s, REAL_STEPS)
        rows.append(common | real | {"precision": precision})
    return rows


def quantity(name: str, value: float, rounds: int) -> dict:
    return {"quantity": name, "value": value, "rounds": rounds}


TITLE = "# Benchmarks\n\nWritten by `benchmarks/run.py`; a section per profile and device.\n"


def write_section(path: Path, heading: str, body: str, title: str = TITLE) -> None:
    """Replace (or add) the section under ``heading`` in ``path``, keeping the others; a new
    file starts with ``title``."""
    text = path.read_text() if path.exists() else title
    sections = text.split("\n## ")
    kept = [s for s in sections[1:] if s.split("\n", 1)[0] != heading]
    path.write_text("\n## ".join([sections[0].rstrip("\n") + "\n", *kept, f"{heading}\n\n{body}"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="cpu", choices=PROFILES)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="reports", help="folder of benchmarks.md and .csv")
    parser.add_argument(
        "--dataset", default=None, help="a real dataset for the experiments that read it"
    )
    parser.add_argument("--data-root", default=None, help="its folder")
    args = parser.parse_args()
    device = resolve_device(args.device)
    where = machine(device)
    print(f"{args.profile} profile on {where}", flush=True)
    # the device as every run of the profile trains on it, set once before anything is timed:
    # TF32 matmuls on CUDA (so the float32 peak is TF32's), and the profile's determinism
    configure_device(device)
    profile_config = build_config(args.experiments[0], args.profile, device=str(device))
    set_determinism(device, deterministic(profile_config, device))
    # a product large enough to be bound by arithmetic, not by launching it, on a GPU
    size = PEAK_MATMUL_SIZE[device.type]
    throughput = {
        "fp32": matmul_flops_per_second(torch.float32, str(device), size),
        "bf16": matmul_flops_per_second(torch.bfloat16, str(device), size),
    }
    rows = {"step": [], "real": [], "other": []}
    out = Path(args.out)
    for name in args.experiments:
        print(f"== {name}", flush=True)
        data = (args.dataset, args.data_root)
        found = benchmark(name, args.profile, device, args.repeats, throughput, data)
        measured.append(out / "benchmarks.csv", found.pop("csv"))  # each as soon as measured
        for key, row in found.items():
            rows[key].append(row)
            print("   " + ", ".join(f"{k} {v}" for k, v in row.items() if k != "experiment"))
    tables = {key: pd.DataFrame(value).set_index("experiment") for key, value in rows.items()}
    amp = build_config(args.experiments[0], args.profile, device=str(device)).amp
    precision = "bfloat16 autocast" if amp else "float32"
    body = "\n\n".join(
        [
            f"_Machine: {where}. Dense {size}^3 matmul: "
            f"{throughput['fp32'] / 1e9:.0f} GFLOP/s in float32, "
            f"{throughput['bf16'] / 1e9:.0f} GFLOP/s in bfloat16. Medians [min, max] of "
            f"{args.repeats} rounds, float32 and bfloat16 steps interleaved; dummy batches "
            "at the profile's size."
            + (
                " This device has no fast bfloat16 (its bfloat16 matmul is slower than float32):"
                " one bfloat16 step and one bfloat16 inference round each, after the float32"
                " rounds._"
                if throughput["bf16"] < throughput["fp32"]
                else "_"
            ),
            "Training step (forward, loss, backward, Adam):",
            tables["step"].to_markdown(),
            "A real training step through the engine on the experiment's data (second epoch, "
            f"caches warm), in the profile's precision ({precision}), share of its time per "
            "phase (loss includes matching):",
            tables["real"].to_markdown(),
            "Inference (eval mode) and the memory a first training step adds to the model "
            "(CUDA: the allocator's peak; CPU: the growth of a fresh process's peak resident "
            "set):",
            tables["other"].to_markdown(),
        ]
    )
    heading = f"{args.profile} profile, {device.type}" + (
        f", {args.dataset} where it applies" if args.dataset else ""
    )
    out.mkdir(parents=True, exist_ok=True)
    write_section(out / "benchmarks.md", heading, body + "\n")
    print(f"\n## {heading}\n\n{body}")


if __name__ == "__main__":
    main()
