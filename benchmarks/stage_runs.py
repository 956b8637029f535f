"""Train the runs of one seed of a GPU stage, all at once on the device (``launch.train_runs``).

    python benchmarks/stage_runs.py table1|skip --seed K --profile paper --dataset camvid
        [--data-root PATH] [--runs-dir runs] [--max-steps N] [--jobs N] [--list]

``runs train NOTEBOOK --seeds N`` trains seeds 0..N-1; a stage split by seed trains one:

- ``table1``: notebook 01's runs (the profile's epochs) and notebook 09's (Seq2Seg and U-Net
  for the report's 5,535 and 3,690 steps, Sec. 2.2), seed K, under the directory names the
  notebooks load them from (``seqseg_lib.plan``);
- ``panoptic``: the Hungarian U-Net at its preset (Sec. 4: 3,690 steps on the synthetic
  scenes) and notebook 08's three models (``panoptic.transformer_study``), seed K;
- ``skip``: notebook 02's three runs (Sec. 2.2's skip ablation), seed K, each trained for the
  report's 5,535 steps as ``semantic_scale.report_budget_study`` scales Seq2Seg (whole epochs
  of the dataset, the milestones at the same fractions, a validation every ~200 steps); their
  directories carry ``report-steps`` (no notebook reads them yet: their records are the
  result).

``--jobs`` runs at a time (default: every run at once); ``--list`` prints the runs and steps
without training. Exits 1 when a run failed.
"""

import argparse
import dataclasses
import math
import os
import sys

from seqseg_lib import paper
from seqseg_lib.claims import semantic
from seqseg_lib.claims.semantic_scale import BUDGET_VALIDATE_STEPS, steps_per_epoch
from seqseg_lib.config import PROFILES
from seqseg_lib.experiments import build_config
from seqseg_lib.plan import notebook_runs, planned_steps, unique

STUDIES = ("table1", "skip", "panoptic")


def report_steps(config):
    """``config`` trained for the report's Seq2Seg steps (Sec. 2.2: 45 epochs of 123), as
    ``report_budget_study`` scales it."""
    per_epoch = steps_per_epoch(config)
    epochs = math.ceil(paper.EPOCHS["seq2seg"] * paper.STEPS_PER_EPOCH / per_epoch)
    scale = epochs / config.epochs
    return dataclasses.replace(
        config,
        epochs=epochs,
        lr_milestones=tuple((round(e * scale), lr) for e, lr in config.lr_milestones),
        validate_every=max(1, round(BUDGET_VALIDATE_STEPS / per_epoch)),
    )


def run_steps(config) -> int:
    """Optimiser steps of a run (its training split counted where the config does not say)."""
    steps = planned_steps(config)
    if steps is None:
        steps = config.epochs * steps_per_epoch(config)
        steps = steps if config.max_steps is None else min(steps, config.max_steps)
    return steps


def stage_runs(study: str, seed: int, profile: str, dataset: str, **run) -> list[tuple]:
    """``[(config, run-name suffix)]`` of ``study`` for ``seed``."""
    if study == "table1":
        planned = [
            p
            for notebook in ("01", "09")
            for p in notebook_runs(notebook, profile, dataset, seed=seed, **run)
        ]
        return [(p.config, p.name) for p in unique(planned, "runs")]
    if study == "panoptic":
        own = (build_config("hungarian-unet", profile, dataset, seed=seed, **run), "")
        planned = notebook_runs("08", profile, dataset, seed=seed, **run)
        return [own] + [(p.config, p.name) for p in unique(planned, "runs")]
    if study == "skip":
        configs = semantic.skip_configs(profile, dataset, seed=seed, **run)
        return [
            (report_steps(config), "-".join(filter(None, [name, "report-steps"])))
            for config, name in configs.values()
        ]
    raise ValueError(f"unknown study {study!r}; valid: {', '.join(STUDIES)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("study", choices=STUDIES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", choices=PROFILES, default="paper")
    parser.add_argument("--dataset", default="camvid")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=None, help="default: every run at once")
    parser.add_argument("--list", action="store_true", help="print the runs, train nothing")
    args = parser.parse_args()
    run = {"data_root": args.data_root}
    if args.max_steps is not None:
        run["max_steps"] = args.max_steps
    try:
        runs = stage_runs(args.study, args.seed, args.profile, args.dataset, **run)
    except ValueError as error:
        print(f"stage_runs.py: {error}", file=sys.stderr)
        return 2
    for config, name in runs:
        label = f"{config.experiment} {name}".strip()
        print(f"   {label}, seed {config.seed}: {run_steps(config):,} steps")
    if args.list:
        return 0
    from seqseg_lib.launch import train_runs

    results = train_runs(runs, args.runs_dir, args.jobs or len(runs))
    return 1 if any(result.state == "failed" for result in results) else 0


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    sys.exit(main())
