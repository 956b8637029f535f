"""What a GPU does with every experiment: step times, memory, modes, sharing, where time goes.

    python benchmarks/probe.py [--profile paper] [--device auto] [--out reports]
                               [--parts steps modes concurrent profile first-epoch eval]
                               [--steps 20] [--warm 3] [--concurrent 1 2 4] [--budget]
                               [--mode-experiments seq2seg unet mnist-easy]

Parts (each one's failure is reported and the next part runs; the exit status is 1 if any
failed):

- ``steps``: seconds per training step on dummy batches (``speed.TrainingStep``: forward,
  loss, backward, Adam) and, on CUDA, the allocator's peak of those steps (model, Adam and
  activations), for every experiment of ``EXPERIMENTS`` and, under bfloat16 autocast, notebook
  10's five encoders (``claims.efficient.study_configs``: a crash check too);
- ``modes``: seconds per step in the engine's own loop (``engine.Trainer`` on the experiment's
  data) for seq2seg, unet and mnist-easy, eager, ``Config.compile="reduce-overhead"`` and
  ``Config.graphs=True`` (the whole step as one CUDA graph; on CPU the same step uncaptured),
  and the seconds the first steps take beyond that rate (compiling, capturing);
- ``concurrent``: 1, 2 and 4 runs of seq2seg and hungarian-unet at once, each its own process
  on the one device, started together and timed over the same window (a file barrier): each
  run's seconds per step in the engine's loop;
- ``profile``: ``torch.profiler`` over ``--steps`` steps of seq2seg through the engine: the
  device-busy share of the wall time and the 15 operations that take most device time;
- ``first-epoch``: in a fresh process, what the first seconds of a seq2seg run go to (CUDA
  and cuDNN initialisation, building and caching the datasets in an empty cache, building
  the trainer, the first step with the DataLoader's workers starting), and the first epoch's
  seconds beyond its steps at the later rate;
- ``eval``: each experiment's milliseconds per validation image in its evaluator (untrained
  weights: the set-prediction evaluators' work depends on what the model predicts).

Every number becomes a row of ``OUT/benchmarks.csv`` (``seqseg_lib.measured``) and a table of
the section "probe, PROFILE profile, DEVICE" of ``OUT/benchmarks.md`` (replaced when rerun; the
other sections kept). ``--budget`` prints each part's planned seconds (``budget``) and exits;
the probe prints it first too.
"""

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from run import write_section  # noqa: E402  benchmarks/run.py, this script's folder

from seqseg_lib import measured  # noqa: E402
from seqseg_lib.claims import efficient  # noqa: E402
from seqseg_lib.config import PROFILES  # noqa: E402
from seqseg_lib.data.cache import CACHE_ENV  # noqa: E402
from seqseg_lib.devices import describe_device, resolve_device  # noqa: E402
from seqseg_lib.experiments import EXPERIMENTS, build_config  # noqa: E402
from seqseg_lib.plotting import code_version  # noqa: E402
from seqseg_lib.speed import TrainingStep, synchronize  # noqa: E402

PARTS = ("steps", "modes", "concurrent", "profile", "first-epoch", "eval")
MODE_EXPERIMENTS = ("seq2seg", "unet", "mnist-easy")
MODES = {  # the mode's name in benchmarks.csv -> the config fields that ask for it
    "eager": {"compile": False, "graphs": False},
    "compile:reduce-overhead": {"compile": "reduce-overhead", "graphs": False},
    "graphs": {"compile": False, "graphs": True},
}
CONCURRENT_EXPERIMENTS = ("seq2seg", "hungarian-unet")
PROFILED = "seq2seg"
EVAL_IMAGES = 48  # validation images per evaluator measurement
TOP_OPERATIONS = 15

# What each part's budget assumes, in seconds (not measured: the probe is what measures them;
# a paper step on one H100 or H200 is 15-30 ms for the models measured so far, taken at 0.1 s):
STEP_S = 0.1  # one step of any experiment at paper
SETUP_S = {
    "steps": 4,  # build the model, Adam and the dummy batch
    "eager": 12,  # a Trainer: datasets of a few batches, workers, and its partial validation
    "compile:reduce-overhead": 60,  # torch.compile of the model, then its CUDA graphs
    "graphs": 15,  # the step's capture
    "concurrent": 25,  # a process: interpreter, CUDA context, Trainer
    "profile": 30,  # a Trainer and the profiler's trace of its steps
    "first-epoch": 60,  # a fresh process, rendering the scenes in an empty cache, 2 epochs
    "eval": 8,  # a Trainer and a validation of EVAL_IMAGES images, twice
}


def encoder_configs(profile: str, device: str) -> dict[str, object]:
    """Notebook 10's five encoders at the profile, under bfloat16 autocast: ``{name: config}``."""
    configs = efficient.study_configs(profile, None, 0, device=device, amp=True)
    return {f"seq2seg[{label}]": config for label, (config, _) in configs.items()}


def budget(
    parts, steps: int, warm: int, concurrent: tuple[int, ...], modes=MODE_EXPERIMENTS
) -> dict[str, float]:
    """Planned seconds of each part, from ``SETUP_S`` and ``STEP_S`` (assumptions)."""
    per = (warm + steps) * STEP_S
    plan = {
        "steps": (len(EXPERIMENTS) + len(efficient.TRAINED)) * (SETUP_S["steps"] + per),
        "modes": len(modes) * sum(SETUP_S[mode] + per for mode in MODES),
        # n runs at once: each step up to n times as long
        "concurrent": len(CONCURRENT_EXPERIMENTS)
        * sum(SETUP_S["concurrent"] + n * per for n in concurrent),
        "profile": SETUP_S["profile"] + per,
        "first-epoch": SETUP_S["first-epoch"],
        "eval": len(EXPERIMENTS) * SETUP_S["eval"],
    }
    return {part: plan[part] for part in parts}


def say_budget(plan: dict[str, float], steps: int, warm: int, concurrent) -> None:
    print(
        f"== probe budget: {warm} warm-up + {steps} timed steps per measurement, concurrent "
        f"{', '.join(map(str, concurrent))}; assumed {STEP_S:g} s per step and per part's "
        "setup: " + ", ".join(f"{k} {v:g} s" for k, v in SETUP_S.items())
    )
    for part, seconds in plan.items():
        print(f"   {part}: {seconds:.0f} s")
    print(f"   total: {sum(plan.values()):.0f} s ({sum(plan.values()) / 60:.1f} min)")


# -- measuring -------------------------------------------------------------------------------


class Rows:
    """The rows of ``benchmarks.csv`` this probe writes, with their provenance filled in."""

    def __init__(self, device: torch.device, profile: str) -> None:
        self.common = {
            "device_type": device.type,
            "device": describe_device(device),
            "profile": profile,
            "date": datetime.date.today().isoformat(),
            "torch": torch.__version__,
            "commit": code_version(),
        }
        self.rows: list[dict] = []

    def add(self, config, quantity, value, rounds, mode="eager", concurrent=1, name=None):
        self.rows.append(
            self.common
            | {
                "experiment": name or config.experiment,
                "precision": "bfloat16" if config.amp else "float32",
                "mode": mode,
                "concurrent": concurrent,
                "quantity": quantity,
                "value": round(float(value), 6),
                "rounds": rounds,
            }
        )


def dummy_steps(config, device: torch.device, steps: int, warm: int) -> tuple[float, float | None]:
    """Median seconds of ``steps`` dummy-batch steps after ``warm``, and the CUDA allocator's
    peak over them in MiB (None on CPU)."""
    step = TrainingStep(config, config.batch_size, device)
    for _ in range(warm):
        step()
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = [step.seconds() for _ in range(steps)]
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    del step
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return statistics.median(times), peak


def engine_config(config, steps: int, warm: int, **fields):
    """``config`` for a short run through the engine: one epoch of ``warm + steps + 1``
    batches stopped after ``warm + steps`` (a partial validation of one batch), no progress."""
    batches = warm + steps + 1
    return dataclasses.replace(
        config,
        num_train=config.batch_size * batches,
        num_val=config.batch_size,
        epochs=1,
        max_steps=warm + steps,
        progress=False,
        validate_every=1,
        **fields,
    )


def engine_steps(config, steps: int, warm: int, barrier=None) -> dict[str, float]:
    """Train ``config`` (``engine_config``) in a temporary run directory and time its loop:
    ``train_step_s``, the seconds per step over the last ``steps`` steps (data loading
    included, the device synchronised at both ends only), and ``capture_s``, what the first
    ``warm`` steps took beyond that rate. ``barrier()`` is called between the two."""
    from seqseg_lib.engine import Trainer

    stamps, count = {}, [0]
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, run_dir)
        trainer.save = lambda: None  # no checkpoint: what is timed is the loop
        device, step = trainer.device, trainer.train_step

        def timed_step(*batch):
            if count[0] == 0:
                stamps["first"] = time.perf_counter()
            step(*batch)
            count[0] += 1
            if count[0] == warm:  # the window starts with every warm-up step done
                synchronize(device)
                stamps["warm"] = time.perf_counter()
                if barrier is not None:
                    barrier()
                stamps["window"] = time.perf_counter()
            elif count[0] == warm + steps:
                synchronize(device)
                stamps["end"] = time.perf_counter()

        trainer.train_step = timed_step
        start = time.perf_counter()
        trainer.fit()
        end = time.perf_counter()
    if "end" not in stamps:
        raise ValueError(f"expected {warm} warm-up and {steps} timed steps, the run took fewer")
    rate = (stamps["end"] - stamps["window"]) / steps
    return {
        "train_step_s": rate,
        "capture_s": max(0.0, stamps["warm"] - stamps["first"] - warm * rate),
        "wall_s": end - start,
    }


def part_steps(args, device, rows: Rows, lines: list[str]) -> None:
    configs = {name: build_config(name, args.profile, device=str(device)) for name in EXPERIMENTS}
    configs |= encoder_configs(args.profile, str(device))
    lines += ["| experiment | precision | s/step | peak MiB |", "|---|---|---|---|"]
    for name, config in configs.items():
        seconds, peak = dummy_steps(config, device, args.steps, args.warm)
        rows.add(config, "step_s", seconds, args.steps, name=name)
        if peak is not None:
            rows.add(config, "peak_mib", peak, 1, name=name)
        precision = "bfloat16" if config.amp else "float32"
        lines.append(
            f"| {name} | {precision} | {seconds:.4f} | {'–' if peak is None else f'{peak:.0f}'} |"
        )
        print(f"   {name}: {seconds:.4f} s/step, peak {peak} MiB", flush=True)


def part_modes(args, device, rows: Rows, lines: list[str]) -> None:
    lines += [
        "| experiment | mode | s/step (engine) | first steps beyond it (s) |",
        "|---|---|---|---|",
    ]
    for name in args.mode_experiments:
        base = build_config(name, args.profile, device=str(device))
        for mode, fields in MODES.items():
            config = engine_config(base, args.steps, args.warm, **fields)
            try:
                result = engine_steps(config, args.steps, args.warm)
            except Exception as error:  # one mode failing is a result; the others still run
                lines.append(f"| {name} | {mode} | failed: {error_line(error)} | |")
                print(f"   {name} {mode}: FAILED {error_line(error)}", flush=True)
                traceback.print_exc()
                continue
            rows.add(config, "train_step_s", result["train_step_s"], args.steps, mode=mode)
            rows.add(config, "capture_s", result["capture_s"], 1, mode=mode)
            lines.append(
                f"| {name} | {mode} | {result['train_step_s']:.4f} | {result['capture_s']:.1f} |"
            )
            print(f"   {name} {mode}: {result}", flush=True)


def part_concurrent(args, device, rows: Rows, lines: list[str]) -> None:
    lines += [
        "| experiment | runs at once | s/step of each run (engine) | against alone |",
        "|---|---|---|---|",
    ]
    for name in CONCURRENT_EXPERIMENTS:
        alone = None
        for count in args.concurrent:
            results = concurrent_runs(args, device, name, count)
            values = [r["train_step_s"] for r in results]
            config = build_config(name, args.profile, device=str(device))
            for value in values:
                rows.add(config, "train_step_s", value, args.steps, concurrent=count)
            median = statistics.median(values)
            alone = median if count == 1 else alone
            ratio = f"{median / alone:.2f}x" if alone else "–"
            listed = ", ".join(f"{v:.4f}" for v in values)
            lines.append(f"| {name} | {count} | {listed} | {ratio} |")
            print(f"   {name} x{count}: {listed} s/step", flush=True)


def concurrent_runs(args, device, name: str, count: int) -> list[dict]:
    """``count`` worker processes training ``name`` at once, timed over one window."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, __file__, "--worker", "engine", "--experiment", name]
        command += ["--profile", args.profile, "--device", str(device), "--steps", str(args.steps)]
        command += ["--warm", str(args.warm), "--barrier", folder, "--barrier-count", str(count)]
        processes = [
            subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(count)
        ]
        outputs = [process.communicate()[0] for process in processes]
        failed = [p.returncode for p in processes if p.returncode]
        if failed:
            raise RuntimeError(f"{len(failed)} of {count} {name} processes failed ({failed})")
        return [json.loads(output.strip().splitlines()[-1]) for output in outputs]


def file_barrier(folder: str, count: int, timeout_s: float = 300.0):
    """A barrier of ``count`` processes through files in ``folder``."""

    def wait() -> None:
        Path(folder, f"ready-{os.getpid()}").touch()
        deadline = time.monotonic() + timeout_s
        while len(list(Path(folder).glob("ready-*"))) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the other runs did not reach the barrier in {timeout_s} s")
            time.sleep(0.01)

    return wait


def part_profile(args, device, rows: Rows, lines: list[str]) -> None:
    from torch.profiler import ProfilerActivity, profile

    from seqseg_lib.engine import Trainer

    base = build_config(PROFILED, args.profile, device=str(device))
    config = engine_config(base, args.steps, args.warm)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, run_dir)
        trainer.save = lambda: None
        step, count = trainer.train_step, [0]
        holder = {}

        def profiled_step(*batch):
            count[0] += 1
            if count[0] == args.warm + 1:  # the profiler covers the steps after the warm-up
                synchronize(device)
                holder["profiler"] = profile(activities=activities)
                holder["profiler"].__enter__()
                holder["start"] = time.perf_counter()
            step(*batch)
            if count[0] == args.warm + args.steps:
                synchronize(device)
                holder["wall"] = time.perf_counter() - holder["start"]
                holder["profiler"].__exit__(None, None, None)

        trainer.train_step = profiled_step
        trainer.fit()
    events = holder["profiler"].key_averages()
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    if device.type == "cuda":  # the kernels' own events (an operator's would count them again)
        kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
        busy_us = sum(e.self_device_time_total for e in kernels)
    else:  # every operator's self time (none counts another's)
        busy_us = sum(e.self_cpu_time_total for e in events)
    wall = holder["wall"]
    share = busy_us / 1e6 / wall
    where = "device" if device.type == "cuda" else "CPU (self time of every operation)"
    lines.append(
        f"{PROFILED}, {args.steps} steps through the engine after {args.warm}: {wall:.3f} s of "
        f"wall time, {where} busy {100 * share:.0f}% of it; the {TOP_OPERATIONS} operations "
        f"with most {'device' if device.type == 'cuda' else 'CPU'} time:"
    )
    table = events.table(sort_by=key, row_limit=TOP_OPERATIONS, max_name_column_width=60)
    lines += ["", "```", table.rstrip(), "```"]
    rows.add(config, "train_step_s", wall / args.steps, args.steps, mode="eager")
    print(f"   busy {100 * share:.0f}% of {wall:.3f} s", flush=True)


def first_seconds(profile: str, device: torch.device, steps: int) -> dict[str, float]:
    """In this (fresh) process: the seconds of what a seq2seg run does first."""
    from seqseg_lib.engine import Trainer
    from seqseg_lib.experiments import get_experiment

    seconds = {}
    start = time.perf_counter()
    if device.type == "cuda":
        torch.zeros(1, device=device)
        synchronize(device)
        seconds["CUDA initialisation"] = time.perf_counter() - start
        start = time.perf_counter()
        conv = torch.nn.Conv2d(3, 8, 3).to(device)
        conv(torch.randn(2, 3, 32, 32, device=device)).sum().backward()
        synchronize(device)
        seconds["cuDNN's first convolution"] = time.perf_counter() - start
    base = build_config(PROFILED, profile, device=str(device))
    batches = 2 * (steps + 1)
    config = dataclasses.replace(
        base,
        num_train=base.batch_size * batches,
        num_val=base.batch_size,
        epochs=2,
        progress=False,
    )
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as run_dir:
        os.environ[CACHE_ENV] = cache  # a fresh machine's empty cache
        start = time.perf_counter()
        for dataset in get_experiment(PROFILED).build_datasets(config):
            if hasattr(dataset, "prepare"):
                dataset.prepare()
        seconds["building and caching the datasets"] = time.perf_counter() - start
        start = time.perf_counter()
        trainer = Trainer(config, run_dir)
        trainer.save = lambda: None
        seconds["building the trainer (datasets from the cache)"] = time.perf_counter() - start
        step, ends = trainer.train_step, []

        def timed_step(*batch):
            step(*batch)
            synchronize(device)
            ends.append(time.perf_counter())

        trainer.train_step = timed_step
        start = time.perf_counter()
        trainer.fit()
    per_epoch = len(ends) // 2
    rate = (ends[-1] - ends[per_epoch]) / (per_epoch - 1)  # the second epoch's steps
    seconds["the first step (DataLoader workers starting)"] = ends[0] - start - rate
    seconds["first_epoch_extra_s"] = ends[per_epoch - 1] - start - per_epoch * rate
    seconds["rate"] = rate
    return seconds


def part_first_epoch(args, device, rows: Rows, lines: list[str]) -> None:
    command = [sys.executable, __file__, "--worker", "first-epoch", "--profile", args.profile]
    command += ["--device", str(device), "--steps", str(args.steps)]
    output = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True).stdout
    seconds = json.loads(output.strip().splitlines()[-1])
    config = build_config(PROFILED, args.profile, device=str(device))
    rows.add(config, "first_epoch_extra_s", seconds["first_epoch_extra_s"], 1)
    lines += [
        f"The first seconds of a {PROFILED} run, in a fresh process with an empty data cache "
        f"(two epochs of {args.steps + 1} steps; later steps {seconds['rate']:.4f} s):",
        "",
        "| what | s |",
        "|---|---|",
    ]
    for what, value in seconds.items():
        if what != "rate":
            label = "the first epoch beyond its steps" if what == "first_epoch_extra_s" else what
            lines.append(f"| {label} | {value:.2f} |")
    print(f"   {seconds}", flush=True)


def part_eval(args, device, rows: Rows, lines: list[str]) -> None:
    from seqseg_lib.engine import Trainer

    lines += ["| experiment | ms per validation image |", "|---|---|"]
    for name in EXPERIMENTS:
        base = build_config(name, args.profile, device=str(device))
        images = min(EVAL_IMAGES, base.batch_size * 2)
        config = dataclasses.replace(
            base, num_train=base.batch_size, num_val=images, epochs=1, progress=False
        )
        with tempfile.TemporaryDirectory() as run_dir:
            trainer = Trainer(config, run_dir)
            trainer.validate()  # the loader's workers start, the first kernels are chosen
            synchronize(trainer.device)
            start = time.perf_counter()
            trainer.validate()
            synchronize(trainer.device)
            value = (time.perf_counter() - start) / len(trainer.val_set) * 1e3
        rows.add(config, "eval_ms_per_image", value, 1)
        lines.append(f"| {name} | {value:.1f} |")
        print(f"   {name}: {value:.1f} ms per image", flush=True)


PART_FUNCTIONS = {
    "steps": part_steps,
    "modes": part_modes,
    "concurrent": part_concurrent,
    "profile": part_profile,
    "first-epoch": part_first_epoch,
    "eval": part_eval,
}
PART_TITLES = {
    "steps": "Training step on dummy batches (forward, loss, backward, Adam), median of the "
    "timed steps; peak: the CUDA allocator's over them (model and Adam included); notebook "
    "10's encoders under bfloat16 autocast",
    "modes": "The engine's loop (its data included): eager, torch.compile reduce-overhead, "
    "the whole step as one CUDA graph",
    "concurrent": "Runs at once on the one device, each its own process, timed over the same "
    "window",
    "profile": "torch.profiler through the engine",
    "first-epoch": "The start of a run",
    "eval": f"Evaluators at up to {EVAL_IMAGES} validation images (untrained weights), after "
    "one validation that starts the loader",
}


def error_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:200]


def worker(args) -> int:
    """A child process: one measurement, its result as the last line of JSON."""
    device = resolve_device(args.device)
    if args.worker == "engine":
        base = build_config(args.experiment, args.profile, device=str(device))
        config = engine_config(base, args.steps, args.warm)
        barrier = file_barrier(args.barrier, args.barrier_count) if args.barrier else None
        result = engine_steps(config, args.steps, args.warm, barrier)
    else:
        result = first_seconds(args.profile, device, args.steps)
    print(json.dumps(result))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="paper", choices=PROFILES)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="reports", help="folder of benchmarks.md and .csv")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--warm", type=int, default=3, help="warm-up steps before them")
    parser.add_argument("--concurrent", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--mode-experiments", nargs="+", choices=list(EXPERIMENTS), default=list(MODE_EXPERIMENTS)
    )
    parser.add_argument("--budget", action="store_true", help="print the budget, run nothing")
    parser.add_argument("--worker", choices=("engine", "first-epoch"), help=argparse.SUPPRESS)
    parser.add_argument("--experiment", help=argparse.SUPPRESS)
    parser.add_argument("--barrier", help=argparse.SUPPRESS)
    parser.add_argument("--barrier-count", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps < 2 or args.warm < 1:
        parser.error("--steps must be at least 2 and --warm at least 1")
    if args.worker:
        return worker(args)
    plan = budget(args.parts, args.steps, args.warm, tuple(args.concurrent), args.mode_experiments)
    say_budget(plan, args.steps, args.warm, args.concurrent)
    if args.budget:
        return 0
    device = resolve_device(args.device)
    rows = Rows(device, args.profile)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sections, failed, written = [], [], 0
    heading = f"probe, {args.profile} profile, {device.type}"
    for part in args.parts:
        print(f"== probe part {part} (budget {plan[part]:.0f} s)", flush=True)
        lines, start = [], time.perf_counter()
        try:
            PART_FUNCTIONS[part](args, device, rows, lines)
        except Exception as error:  # reported; the next part runs
            traceback.print_exc()
            failed.append(part)
            lines.append(f"**Failed**: {error_line(error)}")
        seconds = time.perf_counter() - start
        print(f"== probe part {part}: {seconds:.0f} s (budget {plan[part]:.0f} s)", flush=True)
        sections.append(
            f"### {part} ({seconds:.0f} s)\n\n{PART_TITLES[part]}:\n\n" + "\n".join(lines)
        )
        # written after every part: a probe stopped later keeps what it measured
        measured.append(out / "benchmarks.csv", rows.rows[written:])
        written = len(rows.rows)
        body = "\n\n".join(
            [
                f"_Written by `benchmarks/probe.py` ({rows.common['date']}, "
                f"{rows.common['device']}, torch {torch.__version__}, {rows.common['commit']}); "
                f"{args.warm} warm-up and {args.steps} timed steps per measurement; every "
                "number is also a row of `benchmarks.csv`._",
                *sections,
            ]
        )
        write_section(out / "benchmarks.md", heading, body + "\n")
        with contextlib.suppress(Exception):
            torch.cuda.empty_cache()
    print(
        f"== probe: {len(rows.rows)} rows into {out / 'benchmarks.csv'}; failed parts: "
        f"{', '.join(failed) or 'none'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
