"""Command line: ``python -m seqseg_lib train ...`` and ``python -m seqseg_lib evaluate DIR``.

    python -m seqseg_lib train {seq2seg,seq2seg-noskip,unet,...} --profile cpu \
        --dataset synthetic --out runs/unet [--data-root PATH] [--max-steps N] \
        [--checkpoint-every N] [--validate-every N] [--seed S] [--device auto|cpu|cuda] \
        [--[no-]amp] [--[no-]deterministic] [--[no-]fused-adam] [--compile] [--[no-]wait]
        [--threads N]
    python -m seqseg_lib evaluate runs/unet [--split val|train] [--device auto|cpu|cuda]
    python -m seqseg_lib runs [runs]
    python -m seqseg_lib summarize [reports]
    python -m seqseg_lib names {experiments,profiles,datasets}... [--experiment NAME]

Running ``train`` again with the same ``--out`` continues the run from its checkpoint.
``torchrun --nproc_per_node=N -m seqseg_lib train ...`` trains on N processes (GPUs), the
profile's batch shared among them (``seqseg_lib.distributed``).
``evaluate`` writes nothing and prints JSON (``null`` for an undefined value). ``names``
prints the valid names of each kind asked, one line per kind (``run_all.sh`` asks it).
"""

import argparse
import json
import math
import sys
from typing import Any

from seqseg_lib.config import EXPERIMENT_NAMES, PROFILES
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


def build_parser() -> argparse.ArgumentParser:
    summary = __doc__.split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m seqseg_lib", description=summary)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train (or resume) an experiment")
    train.add_argument("experiment", choices=sorted(EXPERIMENT_NAMES))
    train.add_argument("--profile", choices=PROFILES, default="cpu")
    train.add_argument("--dataset", default=None, help="default: the experiment's embedded data")
    train.add_argument("--data-root", default=None, help="folder of the real dataset")
    train.add_argument("--out", required=True, help="run directory (created or resumed)")
    train.add_argument("--max-steps", type=positive_int, default=None)
    train.add_argument(
        "--checkpoint-every", type=positive_int, default=None, metavar="N", help="steps"
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
        help="validate every N epochs (and after the last); default 1",
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto")
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
        action="store_true",
        help="run the model through torch.compile (compiles for a minute or more first)",
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
        help="CPU threads for PyTorch (default: its own; 1 is faster on a shared machine)",
    )
    evaluate = commands.add_parser("evaluate", help="metrics of a run directory's checkpoint")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--split", choices=("val", "train"), default="val")
    evaluate.add_argument("--device", default="auto")
    runs = commands.add_parser(
        "runs", help="the run directories under RUNS_DIR: state, epoch and step of each"
    )
    runs.add_argument("runs_dir", nargs="?", default="runs")
    summarize = commands.add_parser("summarize", help="write REPORTS_DIR/README.md")
    summarize.add_argument("reports_dir", nargs="?", default="reports")
    names = commands.add_parser(
        "names", help="the valid names of each KIND, one line per kind, separated by spaces"
    )
    names.add_argument("kinds", nargs="+", choices=("experiments", "profiles", "datasets"))
    names.add_argument("--experiment", choices=sorted(EXPERIMENT_NAMES), help="its datasets only")
    return parser


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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
            with run_lock(args.out, args.wait):  # one process trains a run directory
                trainer = engine.Trainer(config, args.out)
                records = trainer.fit()  # its progress starts with the model's size and device
            if distributed.is_main():  # (torchrun: rank 0 speaks for all)
                print(stop_summary(trainer), file=sys.stderr)
                print(to_json(records[-1] if records else {}))
            distributed.finish()
        elif args.command == "evaluate":
            print(to_json(engine.evaluate(args.run_dir, args.split, args.device)))
        elif args.command == "runs":
            from seqseg_lib.runs import run_states

            for row in run_states(args.runs_dir):
                print(
                    f"{row['state']:8s} epoch {row['epoch']:>3}/{row['epochs']:<3} step "
                    f"{row['step']:>6}  {row['run']}"
                )
        elif args.command == "names":
            for kind in args.kinds:
                print(" ".join(valid_names(kind, args.experiment)))
        else:
            from seqseg_lib.summary import summarize

            print(summarize(args.reports_dir))
    except (ValueError, FloatingPointError, RunLockedError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
