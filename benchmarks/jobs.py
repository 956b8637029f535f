"""Wall-clock minutes of ``./run_all.sh`` with its runs trained one at a time and N at a time.

    python benchmarks/jobs.py [--jobs 1 2] [--profile cpu] [NOTEBOOK ...]

For each ``--jobs`` value in turn, runs ``./run_all.sh --jobs N`` on the notebooks (default:
01 and 02) from nothing, into a fresh folder of runs and reports, and times its two phases:
training the notebooks' runs (``runs train``: on CPU each of N jobs trains on cores/N threads)
and executing the notebooks on the finished runs. Prints and writes to
``reports/benchmarks.md`` the minutes of each and their ratio to the first ``--jobs`` value.
Nothing else should run on the machine meanwhile: the measurement is of the whole machine.
"""

import argparse
import os
import re
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path

import pandas as pd
import torch
from run import machine, write_section

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_NOTEBOOKS = ["notebooks/01_seq2seg_vs_unet.ipynb", "notebooks/02_skip_ablation.ipynb"]


def timed_run_all(jobs: int, profile: str, notebooks: list[str], folder: Path) -> dict:
    """Run ``run_all.sh`` into ``folder`` and return the seconds of its phases, read from the
    moments its progress lines appear."""
    command = ["./run_all.sh", "--profile", profile, "--jobs", str(jobs)]
    command += ["--runs-dir", str(folder / "runs"), "--reports-dir", str(folder / "reports")]
    start = time.monotonic()
    first_notebook = None
    log = []
    with subprocess.Popen(
        [*command, *notebooks],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        for line in process.stdout:
            log.append(line)
            print(line, end="", flush=True)
            if first_notebook is None and re.match(r"== \[1/\d+\]", line):
                first_notebook = time.monotonic() - start
    total = time.monotonic() - start
    if process.returncode != 0:
        raise SystemExit(f"run_all.sh --jobs {jobs} failed (exit {process.returncode})")
    if first_notebook is None:
        raise SystemExit(
            f"run_all.sh --jobs {jobs}: no notebook started; its output:\n" + "".join(log)
        )
    runs = sorted(p.name for p in (folder / "runs").iterdir() if not p.name.startswith("."))
    return {
        "training (min)": first_notebook / 60,
        "notebooks (min)": (total - first_notebook) / 60,
        "total (min)": total / 60,
        "runs": len(runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", default=DEFAULT_NOTEBOOKS)
    parser.add_argument("--jobs", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--output", type=Path, default=ROOT / "reports" / "benchmarks.md")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    rows = []
    for jobs in args.jobs:
        with tempfile.TemporaryDirectory(prefix=f"jobs{jobs}-") as folder:
            rows.append(
                {"--jobs": jobs, **timed_run_all(jobs, args.profile, args.notebooks, Path(folder))}
            )
    table = pd.DataFrame(rows).set_index("--jobs")
    for column in ("training (min)", "total (min)"):
        table[f"{column.split()[0]} speed-up"] = table[column].iloc[0] / table[column]
    table = table.round(2)
    names = ", ".join(Path(n).stem for n in args.notebooks)
    body = (
        f"_Machine: {machine(torch.device('cpu'))}; load average "
        f"{load:.2f} before the first run; {date.today()}. Each row runs `./run_all.sh "
        f"--profile {args.profile} --jobs N` from nothing (fresh runs and reports folders) on "
        f"{names}, the --jobs values one after the other. Training: from the start to the first "
        "notebook (the plan's runs, N at a time, each on cores/N threads); notebooks: executing "
        "them on the finished runs._\n\n" + table.to_markdown() + "\n"
    )
    print(body)
    write_section(
        args.output, f"run_all.sh, --jobs {' vs '.join(map(str, args.jobs))} ({args.profile})", body
    )


if __name__ == "__main__":
    main()
