"""Command line: ``python -m seqseg_lib train ...`` and ``python -m seqseg_lib evaluate DIR``.

    python -m seqseg_lib train {seq2seg,seq2seg-noskip,unet,...} --profile cpu \
        --dataset synthetic --out runs/unet [--data-root PATH] [--max-steps N] \
        [--checkpoint-every N] [--seed S] [--device auto|cpu|cuda] [--amp] [--threads N]
    python -m seqseg_lib evaluate runs/unet [--split val|train]
    python -m seqseg_lib summarize [reports]

Running ``train`` again with the same ``--out`` continues the run from its checkpoint.
"""

import argparse
import json
import sys

import torch

from seqseg_lib.config import PROFILES, build_config
from seqseg_lib.experiments import EXPERIMENTS


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
    train.add_argument("experiment", choices=sorted(EXPERIMENTS))
    train.add_argument("--profile", choices=PROFILES, default="cpu")
    train.add_argument("--dataset", default=None, help="default: the experiment's embedded data")
    train.add_argument("--data-root", default=None, help="folder of the real dataset")
    train.add_argument("--out", required=True, help="run directory (created or resumed)")
    train.add_argument("--max-steps", type=positive_int, default=None)
    train.add_argument("--checkpoint-every", type=positive_int, default=None, metavar="N")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto")
    train.add_argument("--amp", action="store_true", help="autocast to bfloat16")
    train.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="CPU threads for PyTorch (default: its own; 1 is faster on a shared machine)",
    )
    evaluate = commands.add_parser("evaluate", help="metrics of a run directory's checkpoint")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--split", choices=("val", "train"), default="val")
    summarize = commands.add_parser("summarize", help="write REPORTS_DIR/README.md")
    summarize.add_argument("reports_dir", nargs="?", default="reports")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from seqseg_lib import engine

    try:
        if args.command == "train":
            if args.threads is not None:
                torch.set_num_threads(args.threads)
            overrides = {"seed": args.seed, "device": args.device, "amp": args.amp}
            if args.checkpoint_every is not None:
                overrides["checkpoint_every"] = args.checkpoint_every
            config = build_config(
                args.experiment,
                args.profile,
                args.dataset,
                data_root=args.data_root,
                max_steps=args.max_steps,
                **overrides,
            )
            records = engine.train(config, args.out)
            print(json.dumps(records[-1] if records else {}, indent=2))
        elif args.command == "evaluate":
            print(json.dumps(engine.evaluate(args.run_dir, args.split), indent=2))
        else:
            from seqseg_lib.reports import summarize

            print(summarize(args.reports_dir))
    except (ValueError, FloatingPointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
