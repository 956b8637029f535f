"""Command line: ``python -m seqseg_lib train ...`` and ``python -m seqseg_lib evaluate DIR``.

    python -m seqseg_lib train {seq2seg,seq2seg-noskip,unet,...} --profile cpu \
        --dataset synthetic --out runs/unet [--data-root PATH] [--max-steps N] \
        [--checkpoint-every N] [--validate-every N] [--seed S] [--device auto|cpu|cuda] \
        [--[no-]amp] [--[no-]deterministic] [--[no-]fused-adam] [--compile [MODE]] [--[no-]graphs]
        [--check-every N] [--[no-]wait] [--threads N]
    python -m seqseg_lib evaluate runs/unet [--split val|train] [--device auto|cpu|cuda]
    python -m seqseg_lib runs [runs]
    python -m seqseg_lib runs plan [NOTEBOOK...] [--profile cpu] [--dataset D] [--seeds N]
        [--benchmarks reports/benchmarks.csv] [--device-type cpu|cuda]
    python -m seqseg_lib runs train [NOTEBOOK...] [--experiment unet ...] --profile cpu \
        [--dataset D] [--seeds N] [--runs-dir runs] [--jobs N] [--executor local|slurm] \
        [--partition P] [--time-minutes M] [--gpus-per-job G] [--cpus-per-job C] [--max-steps N]
    python -m seqseg_lib summarize [reports]
    python -m seqseg_lib names {experiments,profiles,datasets}... [--experiment NAME]
    python -m seqseg_lib data pack-camvid --data-root PATH --out FOLDER [--profile paper] \
        [--splits train val] [--float32]

Running ``train`` again with the same ``--out`` continues the run from its checkpoint.
``torchrun --nproc_per_node=N -m seqseg_lib train ...`` trains on N processes (GPUs), the
profile's batch shared among them (``seqseg_lib.distributed``).
``runs plan`` lists the runs notebooks need (``seqseg_lib.plan``) with their state and their
minutes as measured in ``reports/benchmarks.csv`` (``--profile paper``: on a GPU); ``runs
train`` trains those and each experiment's runs (one per seed) that are not done, N at a time,
as local processes or Slurm jobs (``seqseg_lib.launch``), and exits with 1 if one failed.
``evaluate`` writes nothing and prints JSON (``null`` for an undefined value). ``names``
prints the valid names of each kind asked, one line per kind (``run_all.sh`` asks it).
``data pack-camvid`` writes CamVid resized at a profile's size into a small folder of arrays
(``seqseg_lib.data.packed``) that ``--data-root`` accepts in place of the files.
"""

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from seqseg_lib.config import DATASET_NAMES, EXPERIMENT_NAMES, PROFILES, Config
from seqseg_lib.runlock import RunLockedError, run_lock

# torch, the experiments and the engine are imported when a command needs them, so that
# ``--help`` and a mistyped argument answer at once.


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def jobs_count(text: str) -> int:
    """``runs train --jobs``: a positive integer. (``run_all.sh --jobs 0`` trains nothing
    beforehand, leaving each notebook to train its runs: here there is nothing else to do.)"""
    if text.strip() == "0":
        raise argparse.ArgumentTypeError(
            "expected a positive integer, got '0': runs train trains at least one run at a "
            "time (./run_all.sh --jobs 0 means: no training beforehand, each notebook trains "
            "its own runs)"
        )
    return positive_int(text)


class HelpFormatter(argparse.HelpFormatter):
    """Wraps each paragraph of a description or epilog to the terminal, but keeps a paragraph
    with indented lines (command lines, a list of commands) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.strip("\n").split("\n\n"):
            if "\n  " in paragraph or paragraph.startswith("  "):
                paragraphs.append("\n".join(indent + line for line in paragraph.splitlines()))
            else:
                paragraphs.append(super()._fill_text(paragraph, width, indent))
        return "\n\n".join(paragraphs)


DEVICE_CHOICES = "{auto,cpu,cuda,cuda:N}"  # (cuda:N: no fixed list of choices)
DEVICE_HELP = "auto (default), cpu, cuda or cuda:N: auto is cuda where there is a GPU, else cpu"

# Each command's help ends with an example (``tests/test_cli.py`` checks that every one has).
MAIN_EPILOG = """\
commands:
  train EXPERIMENT --out DIR  train one run, or resume it from its checkpoint
  evaluate DIR                loss and metrics of a run directory's checkpoint, as JSON
  runs [RUNS_DIR]             the run directories: state, epoch and step of each
  runs plan [NOTEBOOK...]     the runs the notebooks need: steps, estimated minutes, state
  runs train [NOTEBOOK...]    train those not done, N at a time, here or as Slurm jobs
  summarize [REPORTS_DIR]     write REPORTS_DIR/README.md from its tables
  names KIND...               the valid experiments, profiles or datasets

Each command's --help lists its options, their defaults and an example.

example:
  python -m seqseg_lib train unet --profile smoke --out runs/unet-smoke
"""

TRAIN_EPILOG = """\
Running train again with the same --out resumes the run from its checkpoint.
torchrun --nproc_per_node=N -m seqseg_lib train ... trains on N processes (GPUs), the
profile's batch shared among them.

example:
  python -m seqseg_lib train seq2seg --profile smoke --out runs/seq2seg-smoke --max-steps 4
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m seqseg_lib",
        description="Train, evaluate and list the runs of seqseg, a reproduction of the report "
        '"Image Segmentation with Transformers", and summarize its reports.',
        epilog=MAIN_EPILOG,
        formatter_class=HelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = add_command(
        commands,
        "train",
        help="train (or resume) an experiment",
        description="Train EXPERIMENT at a profile's preset sizes into the run directory --out, "
        "or resume it from its checkpoint; prints the last epoch's record as JSON.",
        epilog=TRAIN_EPILOG,
    )
    train.add_argument(
        "experiment",
        choices=sorted(EXPERIMENT_NAMES),
        metavar="EXPERIMENT",
        help=f"what to train: {', '.join(sorted(EXPERIMENT_NAMES))}",
    )
    train.add_argument(
        "--profile",
        choices=PROFILES,
        default="cpu",
        help="preset sizes: smoke (seconds), cpu (minutes on 2 cores), paper (the report's, "
        "for a GPU); default: cpu",
    )
    train.add_argument(
        "--dataset",
        choices=DATASET_NAMES,
        default=None,
        help="default: the experiment's embedded data (synthetic street scenes, or MNIST "
        "digits); python -m seqseg_lib names datasets --experiment EXPERIMENT lists its own",
    )
    train.add_argument(
        "--data-root", default=None, metavar="PATH", help="folder of the real dataset"
    )
    train.add_argument(
        "--out", required=True, metavar="DIR", help="run directory (created or resumed)"
    )
    train.add_argument(
        "--max-steps",
        type=positive_int,
        default=None,
        metavar="N",
        help="stop after N optimizer steps in all, with a checkpoint and a partial record "
        "(default: train every epoch); the same command without it resumes",
    )
    train.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=None,
        metavar="N",
        help="also a checkpoint every N steps (default: only at epochs' ends)",
    )
    train.add_argument(
        "--checkpoint-epochs",
        type=positive_int,
        default=None,
        metavar="K",
        help="a checkpoint every K epochs and after the last (default 1; paper: 5)",
    )
    train.add_argument(
        "--validate-every",
        type=positive_int,
        default=None,
        metavar="N",
        help="validate every N epochs (and after the last); default 1, paper: 5",
    )
    train.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="S",
        help="seed of the weights, the data order and the augmentation (default 0)",
    )
    train.add_argument("--device", default="auto", metavar=DEVICE_CHOICES, help=DEVICE_HELP)
    train.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="autocast to bfloat16 (default: on under --profile paper where the device has "
        "fast bfloat16, off otherwise)",
    )
    train.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bit-identical CUDA kernels (default: on, except under --profile paper on CUDA, "
        "which lets cuDNN pick its fastest algorithms); CPU runs are deterministic either way",
    )
    train.add_argument(
        "--fused-adam",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Adam's fused kernels (default: on CUDA, off on CPU; benchmarks/optimizations.py "
        "measures both)",
    )
    train.add_argument(
        "--compile",
        nargs="?",
        const=True,
        default=False,
        metavar="MODE",
        help="run the model through torch.compile, in its default mode or MODE "
        "(reduce-overhead, max-autotune); compiles for a minute or more first",
    )
    train.add_argument(
        "--graphs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="replay the whole training step as one CUDA graph (default: where "
        "reports/benchmarks.csv measured it faster; never on CPU)",
    )
    train.add_argument(
        "--check-every",
        type=positive_int,
        default=None,
        metavar="N",
        help="steps between checks that the loss is finite (default: 1 on CPU, 50 on CUDA, "
        "where each check waits for the GPU)",
    )
    train.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="while another process trains --out, wait for it (default) or stop at once",
    )
    train.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help="CPU threads for PyTorch (default: its own; 1 is faster on a shared machine)",
    )
    add_evaluate_parser(commands)
    runs_help = (
        "the run directories under RUNS_DIR: state, epoch and step of each; "
        "runs plan and runs train (see their --help) plan and train the notebooks' runs"
    )
    runs = add_command(
        commands,
        "runs",
        help=runs_help,
        description=runs_help,
        epilog=example("runs runs/"),
    )
    runs.add_argument(
        "runs_dir", nargs="?", default="runs", metavar="RUNS_DIR", help="default: runs"
    )
    summarize = add_command(
        commands,
        "summarize",
        help="write REPORTS_DIR/README.md",
        description="Write REPORTS_DIR/README.md: the tables of REPORTS_DIR beside the "
        "report's numbers, and the verdict on each of its claims.",
        epilog=example("summarize reports/"),
    )
    summarize.add_argument(
        "reports_dir", nargs="?", default="reports", metavar="REPORTS_DIR", help="default: reports"
    )
    names = add_command(
        commands,
        "names",
        help="the valid names of each KIND, one line per kind, separated by spaces",
        description="The valid names of each KIND, one line per kind, separated by spaces "
        "(run_all.sh reads them).",
        epilog=example("names profiles datasets --experiment unet"),
    )
    names.add_argument(
        "kinds",
        nargs="+",
        choices=("experiments", "profiles", "datasets"),
        metavar="KIND",
        help="experiments, profiles or datasets",
    )
    names.add_argument(
        "--experiment",
        choices=sorted(EXPERIMENT_NAMES),
        metavar="EXPERIMENT",
        help="datasets: only those EXPERIMENT trains on",
    )
    data = add_command(
        commands,
        "data",
        help="prepare a dataset (pack-camvid)",
        description="Prepare a dataset: data pack-camvid packs CamVid at a profile's size.",
        epilog=example("data pack-camvid --data-root /data/CamVid --out data/camvid-packed"),
    )
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    pack = add_command(
        data_commands,
        "pack-camvid",
        help="CamVid resized at a profile's size, as arrays --data-root accepts",
        description="Write CamVid's splits after the profile's resize (before its crop) into "
        "OUT (one .npz per split and manifest.json): a folder that --data-root accepts in "
        "place of the files, small enough to travel with the repository.",
        epilog=example(
            "data pack-camvid --data-root /data/CamVid --profile paper --out data/camvid-packed"
        ),
    )
    pack.add_argument("--data-root", required=True, help="CamVid in the SegNet layout")
    pack.add_argument("--out", required=True, help="the folder to write")
    pack.add_argument(
        "--profile", choices=PROFILES, default="paper", help="whose resize (default: paper)"
    )
    pack.add_argument(
        "--splits",
        nargs="+",
        choices=("train", "val", "test"),
        default=["train", "val", "test"],
        help="default: train val test (notebook 01's figures draw from test)",
    )
    pack.add_argument(
        "--float32",
        action="store_true",
        help="images as float32, exactly the resize (default uint8: rounded, a quarter the size)",
    )
    return parser


def pack_camvid_command(args: argparse.Namespace) -> int:
    """``data pack-camvid``: write the folder, say its size."""
    from pathlib import Path

    from seqseg_lib.data.camvid import pack_camvid
    from seqseg_lib.experiments import build_config

    resize = build_config("unet", args.profile, "camvid", data_root=args.data_root).resize
    image_type = "float32" if args.float32 else "uint8"
    manifest = pack_camvid(args.data_root, args.out, resize, tuple(args.splits), image_type)
    size = sum(p.stat().st_size for p in Path(args.out).iterdir() if p.is_file())
    counts = ", ".join(f"{split} {v['count']}" for split, v in manifest["splits"].items())
    print(
        f"{args.out}: CamVid at {resize[0]}x{resize[1]} ({counts} images, {image_type}), "
        f"{size / 1e6:.1f} MB, fingerprint {manifest['fingerprint']}"
    )
    return 0


def add_command(commands, name: str, **kwargs) -> argparse.ArgumentParser:
    """A command's parser, its description and epilog (an ``example``) wrapped as written."""
    return commands.add_parser(name, formatter_class=HelpFormatter, **kwargs)


def example(*commands: str) -> str:
    """An epilog of example command lines, each ``python -m seqseg_lib COMMAND``."""
    return "example:\n" + "".join(f"  python -m seqseg_lib {command}\n" for command in commands)


def add_evaluate_parser(commands) -> None:
    evaluate = add_command(
        commands,
        "evaluate",
        help="metrics of a run directory's checkpoint",
        description="Loss and metrics of a run directory's checkpoint on a split, printed as "
        "JSON (null for an undefined value). Writes nothing.",
        epilog=example("evaluate runs/unet-smoke --split val"),
    )
    evaluate.add_argument("run_dir", metavar="DIR", help="a run directory (train's --out)")
    evaluate.add_argument("--split", choices=("val", "train"), default="val", help="default: val")
    evaluate.add_argument("--device", default="auto", metavar=DEVICE_CHOICES, help=DEVICE_HELP)


# ``runs [RUNS_DIR]`` lists runs; ``runs train ...`` trains them. argparse has no optional
# positional beside sub-commands, so ``parse_args`` hands ``runs train`` to its own parser.
RUNS_COMMANDS = ("train", "plan")


def sbatch_option(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not key or not equals:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. account=abc), got {text!r}")
    return key, value


def build_runs_parser() -> argparse.ArgumentParser:
    """``runs train``: the runs of each experiment and seed, through ``launch.train_runs``."""
    parser = argparse.ArgumentParser(
        prog="python -m seqseg_lib runs",
        description="Plan and train the runs the notebooks need.",
        epilog=example("runs plan 01 02 --profile smoke", "runs train 01 --profile smoke"),
        formatter_class=HelpFormatter,
    )
    parser.set_defaults(command="runs")
    commands = parser.add_subparsers(dest="runs_command", required=True)
    train = add_command(
        commands,
        "train",
        help="train runs not done yet, N at a time, as local processes or Slurm jobs",
        description="Train the runs that NOTEBOOKs need (their plan: runs plan) and each "
        "--experiment's runs (one per seed) that are not done yet in RUNS_DIR, N at a time, "
        "each in its own process: here, or as Slurm jobs. A job that reaches its time limit is "
        "requeued and resumes from the run's last checkpoint. Exits with 1 if a run failed.",
        epilog=example(
            "runs train 01 02 --profile smoke --jobs 2",
            "runs train --experiment unet --seeds 3 --executor slurm --partition gpu",
        ),
    )
    add_notebooks(train)
    train.add_argument(
        "--experiment",
        dest="experiments",
        action="append",
        default=[],
        choices=sorted(EXPERIMENT_NAMES),
        help="an experiment's preset run per seed (repeat for several)",
    )
    add_plan_options(train)
    train.add_argument(
        "--jobs",
        type=jobs_count,
        default=None,
        metavar="N",
        help="runs at a time; more than GPUs here share them, CUDA MPS where there is one "
        "(default: here one per GPU, paper GPUs x the runs per GPU measured fastest in "
        "reports/benchmarks.csv, else 2; without GPUs one per core; Slurm: all)",
    )
    train.add_argument(
        "--executor",
        choices=("local", "slurm"),
        default="local",
        help="local: processes on this machine (default); slurm: one Slurm job per run",
    )
    train.add_argument("--partition", default=None, metavar="P", help="Slurm partition")
    train.add_argument(
        "--time-minutes",
        type=positive_int,
        default=None,
        metavar="M",
        help="each job's time limit; a run longer than it is requeued and resumes "
        "(default: none here, 240 on Slurm)",
    )
    train.add_argument(
        "--gpus-per-job",
        type=int,
        default=None,
        metavar="G",
        help="GPUs of each job, under torchrun when more than 1 (default: 1 here where there "
        "are GPUs, else 0)",
    )
    train.add_argument(
        "--cpus-per-job",
        type=positive_int,
        default=None,
        metavar="C",
        help="Slurm's cpus-per-task, each job's threads (here: cores // jobs)",
    )
    train.add_argument(
        "--sbatch",
        type=sbatch_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a further sbatch option, e.g. account=abc or qos=long (repeat for several)",
    )
    train.add_argument(
        "--max-steps",
        type=positive_int,
        default=None,
        metavar="N",
        help="stop each run after N steps (default: train every epoch); without it, the same "
        "command resumes them",
    )
    train.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=None,
        metavar="N",
        help="a checkpoint every N steps (and per epoch), what a requeued job resumes from",
    )
    train.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="autocast to bfloat16 (default: as train decides, on the device of this "
        "machine: say --amp for paper runs on GPUs submitted from a machine without one)",
    )
    train.add_argument(
        "--poll-seconds",
        type=float,
        default=None,
        metavar="S",
        help="how often the jobs' states are read (default 2 here, 15 on Slurm)",
    )
    add_plan_parser(commands)
    return parser


def add_notebooks(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "notebooks",
        nargs="*",
        metavar="NOTEBOOK",
        help="01 ... 10, or a notebook's file name (runs plan: default all)",
    )


def add_plan_options(parser: argparse.ArgumentParser) -> None:
    """What decides a notebook's runs: ``run_all.sh``'s parameters."""
    parser.add_argument(
        "--profile", choices=PROFILES, default="cpu", help="preset sizes (default: cpu)"
    )
    parser.add_argument(
        "--dataset",
        choices=DATASET_NAMES,
        default=None,
        help="street scenes (default: synthetic for notebooks, each experiment's embedded data)",
    )
    parser.add_argument(
        "--data-root", default=None, metavar="PATH", help="folder of the real dataset"
    )
    parser.add_argument(
        "--mnist-root", default=None, metavar="PATH", help="folder of MNIST IDX files"
    )
    parser.add_argument(
        "--seeds", type=positive_int, default=1, metavar="N", help="seeds 0..N-1 (default 1)"
    )
    parser.add_argument(
        "--runs-dir", default="runs", metavar="DIR", help="where the runs are (default: runs)"
    )


def add_plan_parser(commands) -> None:
    plan = add_command(
        commands,
        "plan",
        help="list the runs notebooks need, without training: directory, steps, state",
        description="Every training run the NOTEBOOKs (default: all) need at these "
        "parameters, from the declarations the notebooks train from: its directory, "
        "experiment, steps, estimated minutes (from the measurements of BENCHMARKS on "
        "DEVICE_TYPE where the run has its experiment's preset sizes) and state (missing, "
        "partial, finished); then the minutes of each notebook and in all.",
        epilog=example("runs plan", "runs plan 01 04 --profile paper --device-type cuda"),
    )
    add_notebooks(plan)
    add_plan_options(plan)
    plan.add_argument(
        "--benchmarks",
        default="reports/benchmarks.csv",
        metavar="BENCHMARKS",
        help="the measured step times (default: reports/benchmarks.csv)",
    )
    plan.add_argument(
        "--device-type",
        choices=("cpu", "cuda"),
        default=None,
        help="what the runs train on (default: cuda for --profile paper, else this machine's)",
    )


def planned_runs(args: argparse.Namespace, **run) -> list:
    """The ``plan.PlannedRun``s of ``args.notebooks`` (all of them for ``runs plan``
    without any)."""
    from seqseg_lib import plan

    notebooks = args.notebooks
    if not notebooks and args.runs_command == "plan":
        notebooks = list(plan.NOTEBOOKS)
    planned = [
        p
        for notebook in notebooks
        for p in plan.notebook_runs(
            notebook,
            args.profile,
            args.dataset or "synthetic",
            seeds=args.seeds,
            data_root=args.data_root,
            mnist_root=args.mnist_root,
            **run,
        )
    ]
    return plan.unique(planned, args.runs_dir)


def plan_command(args: argparse.Namespace) -> int:
    """``runs plan``: a line per run, the minutes of each notebook, the experiments without a
    measurement, then the totals."""
    from seqseg_lib import plan
    from seqseg_lib.devices import resolve_device
    from seqseg_lib.experiments import sized_for_gpu

    device_type = args.device_type or (
        "cuda" if sized_for_gpu(args.profile) else resolve_device("auto").type
    )
    speeds = plan.measured_speeds(args.benchmarks, args.profile, device_type)
    rows = plan.describe(planned_runs(args), args.runs_dir, speeds)
    for row in rows:
        steps = "?" if row["steps"] is None else str(row["steps"])
        print(
            f"{row['notebook']}  {row['state']:8s} {steps:>6} steps "
            f"{minutes_text(row['minutes (est.)']):>6} min  {row['experiment']:16s} "
            f"{row['run directory']}"
        )
    for notebook in [plan.notebook_key(n) for n in args.notebooks or plan.NOTEBOOKS]:
        own = [r for r in rows if r["notebook"] == notebook]
        print(
            f"notebook {notebook}: {len(own)} runs, {minutes_summary(own)}"
            if own
            else f"notebook {notebook}: no runs besides those listed above"
        )
    used = dict.fromkeys(row["experiment"] for row in rows)
    for experiment in (e for e in used if e in speeds):
        speed = speeds[experiment]
        besides = (
            f"{speed.overhead_s:.0f} s per run besides"
            if speed.overhead_s
            else "the rest of a run not measured"
        )
        print(f"{experiment}: {speed.step_s * 1e3:.1f} ms per step, {besides} ({speed.source})")
    resized = sum(r["experiment"] in speeds and r["minutes (est.)"] is None for r in rows)
    if resized:
        print(f"{resized} runs at other sizes than their experiment's preset: not measured")
    missing = [e for e in used if e not in speeds]
    if missing:
        print(
            f"no measurement in {args.benchmarks} of {', '.join(missing)} at {args.profile} on "
            f"{device_type} ({plan.profile_precision(args.profile, device_type)}, one run alone)"
        )
    states = [row["state"] for row in rows]
    others = "".join(f", {states.count(s)} {s}" for s in ("training", "unrecorded") if s in states)
    print(
        f"{len(rows)} runs: {states.count('finished')} finished, {states.count('partial')} "
        f"partial, {states.count('missing')} missing{others}; {minutes_summary(rows)}, on "
        f"{device_type}"
    )
    return 0


def minutes_text(minutes: float | None) -> str:
    return "?" if minutes is None else f"{minutes:.1f}"


def minutes_summary(rows: list[dict]) -> str:
    """``"about M min in all, L left"`` over ``plan.describe``'s ``rows``, and how many of them
    have no estimate. (A run two notebooks share is a row of the first.)"""
    known = [r for r in rows if r["minutes (est.)"] is not None]
    total = sum(r["minutes (est.)"] for r in known)
    left = sum(r["minutes left (est.)"] for r in known)
    unknown = len(rows) - len(known)
    return f"about {total:.1f} min in all, {left:.1f} left" + (
        f", and {unknown} runs of unknown length" if unknown else ""
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["runs"] and argv[1:2] and argv[1] in RUNS_COMMANDS:
        return build_runs_parser().parse_args(argv[1:])
    return build_parser().parse_args(argv)


def train_runs_command(args: argparse.Namespace) -> int:
    """``runs train``: 1 when a run failed, else 0."""
    from seqseg_lib.experiments import build_config
    from seqseg_lib.launch import JobOptions, train_runs

    overrides = {"data_root": args.data_root, "max_steps": args.max_steps, "amp": args.amp}
    if args.checkpoint_every is not None:
        overrides["checkpoint_every"] = args.checkpoint_every
    if not args.notebooks and not args.experiments:
        raise SystemExit("runs train: name a NOTEBOOK or an --experiment (or several)")
    runs = [
        (build_config(experiment, args.profile, args.dataset, seed=seed, **overrides), None)
        for experiment in args.experiments
        for seed in range(args.seeds)
    ]
    control = {k: v for k, v in overrides.items() if k != "data_root" and v is not None}
    runs += [(p.config, p.name) for p in planned_runs(args, **control)]
    print_plan(args, runs)
    options = JobOptions(
        gpus=args.gpus_per_job,
        cpus=args.cpus_per_job,
        time_minutes=args.time_minutes,
        partition=args.partition,
        sbatch=tuple(args.sbatch),
    )
    results = train_runs(
        runs, args.runs_dir, args.jobs, args.executor, options, args.poll_seconds, None, length
    )
    return 1 if any(result.state == "failed" for result in results) else 0


def print_plan(args: argparse.Namespace, runs: list[tuple[Config, str | None]]) -> None:
    """``runs train``'s first lines: its runs, their state and their minutes by the plan
    (``plan.describe``: ``runs plan``'s estimate, on this machine's kind of device), and where
    the runs go."""
    import torch

    from seqseg_lib import plan
    from seqseg_lib.launch import available_cores
    from seqseg_lib.measured import BENCHMARKS_CSV

    device_type = "cuda" if torch.cuda.is_available() else "cpu"
    planned = [plan.PlannedRun("", "", config, name or "") for config, name in runs]
    speeds = plan.measured_speeds(BENCHMARKS_CSV, args.profile, device_type)
    rows = plan.describe(plan.unique(planned, args.runs_dir), args.runs_dir, speeds)
    states = [row["state"] for row in rows]
    known = [row for row in rows if row["minutes (est.)"] is not None]
    where = (
        f"{torch.cuda.device_count()} GPU(s)"
        if device_type == "cuda"
        else f"{available_cores()} CPU cores"
    )
    if known:
        left = sum(row["minutes left (est.)"] for row in known)
        unknown = len(rows) - len(known)
        minutes = (
            f"about {left:.1f} min of training left, one run at a time on {where}, by "
            f"{BENCHMARKS_CSV.name}" + (f" ({unknown} runs not measured)" if unknown else "")
        )
    else:
        minutes = (
            f"no estimate of their minutes: {BENCHMARKS_CSV.name} has no measurement of "
            f"--profile {args.profile} on {device_type}"
        )
    print(
        f"plan: {len(rows)} runs ({states.count('finished')} finished, "
        f"{states.count('partial')} partial, {states.count('missing')} not started), "
        f"{minutes}; runs go to {args.runs_dir}",
        flush=True,
    )


def length(config: Config) -> tuple[int | None, float | None]:
    """A run's steps and seconds per step by the plan (``plan.planned_steps`` and the step
    times ``plan.measured_speeds`` reads on this machine's kind of device), what ``runs
    train`` orders its runs by."""
    import torch

    from seqseg_lib import plan
    from seqseg_lib.measured import BENCHMARKS_CSV

    device_type = "cuda" if torch.cuda.is_available() else "cpu"
    speed = plan.measured_speeds(BENCHMARKS_CSV, config.profile, device_type).get(config.experiment)
    return plan.planned_steps(config), None if speed is None else speed.step_s


def valid_names(kind: str, experiment: str | None = None) -> list[str]:
    if kind == "experiments":
        return list(EXPERIMENT_NAMES)
    if kind == "profiles":
        return list(PROFILES)
    from seqseg_lib.data import DATASETS
    from seqseg_lib.experiments import EXPERIMENTS

    return list(EXPERIMENTS[experiment].datasets if experiment else DATASETS)


def to_json(value: Any) -> str:
    """Indented JSON with ``null`` for NaN and infinities (which JSON cannot hold)."""

    def clean(item: Any) -> Any:
        if isinstance(item, float) and not math.isfinite(item):
            return None
        if isinstance(item, dict):
            return {key: clean(v) for key, v in item.items()}
        if isinstance(item, list | tuple):
            return [clean(v) for v in item]
        return item

    return json.dumps(clean(value), indent=2, allow_nan=False)


def stop_summary(trainer) -> str:
    """Where training stopped: step and epoch, the last training losses, the checkpoint."""
    position, config = trainer.position, trainer.config
    where = f"step {position['global_step']}"
    if position["epoch"] >= config.epochs:
        where += f": finished all {config.epochs} epochs"
    else:
        steps = len(trainer.loader(0))
        where += (
            f", epoch {position['epoch'] + 1} of {config.epochs} at step "
            f"{position['step_in_epoch']} of {steps} (--max-steps {config.max_steps}; the same "
            "command without it resumes)"
        )
    running = trainer.running
    batches = max(running["num_batches"], 1)
    losses = ", ".join(f"{k} {v / batches:.4f}" for k, v in running["loss_sums"].items())
    from seqseg_lib.engine import CHECKPOINT

    checkpoint = trainer.run_dir / CHECKPOINT
    return (
        f"stopped at {where}; "
        + (f"this epoch's mean {losses}; " if losses else "")
        + (f"checkpoint {checkpoint}")
    )


def interrupt(signum: int, frame: Any) -> None:
    """SIGTERM (and SIGINT, even where a shell started the command with it ignored) stops a
    command as Ctrl-C does."""
    raise KeyboardInterrupt


@contextlib.contextmanager
def stops_cleanly() -> Iterator[None]:
    """The block with SIGINT and SIGTERM raising ``KeyboardInterrupt`` (their handlers put
    back after it): ``main`` ends the command in one line, exit status 130."""
    numbers = (signal.SIGINT, signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {number: signal.signal(number, interrupt) for number in numbers}
    try:
        yield
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with stops_cleanly():
        try:
            return run_command(args)
        except KeyboardInterrupt as stop:
            from seqseg_lib.launch import Interrupted
            from seqseg_lib.runs import interrupted_line

            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C: this line first
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            if isinstance(stop, Interrupted):
                line = str(stop)
            elif args.command == "train":
                line = interrupted_line([Path(args.out)])
            else:
                line = "interrupted"
            if os.environ.get("RANK", "0") == "0":  # (torchrun: rank 0 speaks for all)
                print(line, file=sys.stderr, flush=True)
            return 130


def run_command(args: argparse.Namespace) -> int:
    """The command of ``args``: its exit status."""
    import torch

    from seqseg_lib import distributed, engine
    from seqseg_lib.experiments import build_config

    try:
        if args.command == "train":
            if args.threads is not None:
                torch.set_num_threads(args.threads)
            overrides = {"seed": args.seed, "device": args.device, "amp": args.amp}
            overrides["deterministic"] = args.deterministic
            overrides["fused_adam"], overrides["compile"] = args.fused_adam, args.compile
            overrides["graphs"], overrides["check_every"] = args.graphs, args.check_every
            if args.checkpoint_every is not None:
                overrides["checkpoint_every"] = args.checkpoint_every
            if args.checkpoint_epochs is not None:
                overrides["checkpoint_epochs"] = args.checkpoint_epochs
            if args.validate_every is not None:
                overrides["validate_every"] = args.validate_every
            config = build_config(
                args.experiment,
                args.profile,
                args.dataset,
                data_root=args.data_root,
                max_steps=args.max_steps,
                **overrides,
            )
            if Path(args.out).exists() and not Path(args.out).is_dir():
                raise ValueError(
                    f"--out {args.out!r} is a file: name a run directory (new, or one to resume)"
                )
            with run_lock(args.out, args.wait):  # one process trains a run directory
                trainer = engine.Trainer(config, args.out)
                records = trainer.fit()  # its progress starts with the model's size and device
            if distributed.is_main():  # (torchrun: rank 0 speaks for all)
                print(stop_summary(trainer), file=sys.stderr)
                print(to_json(records[-1] if records else {}))
            distributed.finish()
        elif args.command == "evaluate":
            print(to_json(engine.evaluate(args.run_dir, args.split, args.device)))
        elif args.command == "runs" and getattr(args, "runs_command", None) == "train":
            return train_runs_command(args)
        elif args.command == "runs" and getattr(args, "runs_command", None) == "plan":
            return plan_command(args)
        elif args.command == "runs":
            from seqseg_lib.runs import run_states

            for row in run_states(args.runs_dir):
                if row["state"] == "unreadable":
                    print(f"unreadable {row['run']}: {row['reason']}")
                    continue
                print(
                    f"{row['state']:8s} epoch {row['epoch']:>3}/{row['epochs']:<3} step "
                    f"{row['step']:>6}  {row['run']}"
                )
        elif args.command == "data":
            return pack_camvid_command(args)
        elif args.command == "names":
            for kind in args.kinds:
                print(" ".join(valid_names(kind, args.experiment)))
        else:
            from seqseg_lib.claims import summarize

            print(summarize(args.reports_dir))
    except (ValueError, FloatingPointError, RunLockedError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
