"""``reports/benchmarks.csv`` from the measurements made before ``benchmarks/run.py`` wrote it.

    python benchmarks/csv_from_markdown.py [--out reports/benchmarks.csv]

Run once, to start the file (it refuses to write over one that exists). Its rows, in this
order, all at one run alone on the device (``concurrent`` 1), in eager mode:

1. Every ``<profile> profile, <device type>`` section of ``reports/benchmarks.md`` (as
   ``benchmarks/run.py`` wrote them: ``cpu`` on this project's 2-core AMD EPYC, and ``paper``
   on one NVIDIA H200, torch 2.11.0+cu130): ``step_s`` in float32 and bfloat16 (the medians of
   the section's rounds, dummy batches), ``train_step_s`` in the profile's precision (the
   engine's real step: the sum of its phases' medians over ``run.REAL_STEPS`` steps of a
   second epoch) and ``peak_mib`` per precision (one first step each). The device and torch
   are the section's; its date and commit are those of the commit that recorded the section
   as it stands (the last to change it), found with git.
2. The whole paper runs of one H200 that ``benchmarks/device_plan.py`` estimates from
   (``MEASURED``, 2026-11-30: notebook 01's Seq2Seg and U-Net runs of Table 1 and notebook
   02's no-skip run, each alone on the GPU, bfloat16 autocast): ``train_step_s``, the runs'
   ``train_seconds`` over their steps, and for the two runs that finished, ``run_overhead_s``,
   their wall clock less their training (the no-skip run was cut by the call's limit: the rest
   of its run is not measured). Device, torch and date come from the provenance of Table 1
   that those runs wrote (``reports/tables/table1_synthetic_paper.json``), the commit is the
   one that recorded that table. They come after the H200's ``run.py`` rows of the same day
   (which of the two ran first is not recorded), so that ``measured.latest`` reads the whole
   runs' step, first epoch and data loading included: what a plan of whole runs wants.

No number is typed here: each is read from those files.
"""

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from device_plan import MEASURED  # noqa: E402
from run import REAL_STEPS  # noqa: E402

from seqseg_lib import measured  # noqa: E402

MARKDOWN = "reports/benchmarks.md"
TABLE1 = "reports/tables/table1_synthetic_paper.json"
# the runs of MEASURED that finished: the no-skip run's rest is Seq2Seg's (device_plan.py)
FINISHED_RUNS = ("seq2seg", "unet")
SECTION = re.compile(r"(?P<profile>\w+) profile, (?P<device_type>cpu|cuda)")
PRECISIONS = {"fp32": "float32", "bf16": "bfloat16"}


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
    ).stdout


def recorded_by(path: str, part: Callable[[str], object]) -> tuple[str, str]:
    """(short commit, date) of the commit that recorded ``part`` of ``path`` as it is now: the
    oldest from which ``part`` of the file's text has not changed up to its working copy."""
    now, found = part((REPO / path).read_text()), None
    for line in git("log", "--format=%h %cs", "--", path).splitlines():
        commit, date = line.split()
        if part(git("show", f"{commit}:{path}")) != now:
            break
        found = (commit, date)
    assert found is not None, f"{path} differs from its last commit: commit it first"
    return found


def sections(text: str) -> dict[str, str]:
    """``{heading: body}`` of the ``## `` sections."""
    return dict(part.split("\n", 1) for part in text.split("\n## ")[1:])


def section(heading: str, text: str) -> str | None:
    return sections(text).get(heading)


def tables(body: str) -> list[list[dict[str, str]]]:
    """The Markdown tables of ``body``, each as rows of ``{column: cell}``."""
    found, lines = [], []
    for line in [*body.splitlines(), ""]:
        if line.startswith("|"):
            lines.append([cell.strip() for cell in line.strip("|").split("|")])
        elif lines:
            header, *rows = lines
            found.append([dict(zip(header, row)) for row in rows[1:]])  # rows[0]: the rule
            lines = []
    return found


def section_rows(heading: str, body: str, commit: str, date: str) -> list[dict]:
    """The rows of one section of ``benchmarks.md``."""
    where = SECTION.fullmatch(heading)
    machine = re.search(r"_Machine: (?P<device>[^;]+); \d+ CPUs, torch (?P<torch>\S+),", body)
    rounds = int(re.search(r"Medians \[min, max\] of (\d+) rounds", body).group(1))
    real = re.search(r"in the profile's precision \((float32|bfloat16) ?(autocast)?\)", body)
    slow_bf16 = "This device has no fast bfloat16" in body  # then one bfloat16 round
    step, real_step, other = tables(body)
    common = where.groupdict() | machine.groupdict() | {"mode": "eager", "concurrent": 1}
    common |= {"date": date, "commit": commit}
    rows = []
    for row, real_row, other_row in zip(step, real_step, other):
        assert row["experiment"] == real_row["experiment"] == other_row["experiment"]
        mine = common | {"experiment": row["experiment"]}
        for short, precision in PRECISIONS.items():
            median = float(row[f"s/step {short}"].split()[0])  # "median [min, max]"
            count = 1 if short == "bf16" and slow_bf16 else rounds
            rows.append(mine | quantity("step_s", median, count) | {"precision": precision})
        rows.append(
            mine
            | quantity("train_step_s", float(real_row["real step (s)"]), REAL_STEPS)
            | {"precision": real.group(1)}
        )
        for short, precision in PRECISIONS.items():
            memory = float(other_row[f"step memory {short} (MiB)"])
            rows.append(mine | quantity("peak_mib", memory, 1) | {"precision": precision})
    return rows


def quantity(name: str, value: float, rounds: int) -> dict:
    return {"quantity": name, "value": value, "rounds": rounds}


def whole_run_rows() -> list[dict]:
    """``MEASURED``'s runs as rows, with Table 1's provenance."""
    meta = json.loads((REPO / TABLE1).read_text())
    device, precision = meta["trained on"].rsplit(", ", 1)
    assert precision == "bfloat16 autocast", f"{TABLE1}: trained in {precision}"
    commit, _ = recorded_by(TABLE1, json.loads)
    common = {
        "device_type": device.split()[0],
        "device": device,
        "profile": meta["profile"],
        "precision": "bfloat16",
        "mode": "eager",
        "concurrent": 1,
        "date": meta["date"],
        "torch": meta["torch"],
        "commit": commit,
    }
    rows = []
    for experiment, (step_s, rest_s) in MEASURED.items():
        mine = common | {"experiment": experiment}
        rows.append(mine | quantity("train_step_s", round(step_s, 6), 1))
        if experiment in FINISHED_RUNS:
            rows.append(mine | quantity("run_overhead_s", round(rest_s, 3), 1))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(REPO / "reports" / "benchmarks.csv"))
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"{out} exists: it is started once; benchmarks/run.py appends to it")
    now = sections((REPO / MARKDOWN).read_text())
    rows = []
    for heading, body in now.items():
        if SECTION.fullmatch(heading):
            commit, date = recorded_by(MARKDOWN, partial(section, heading))
            rows += section_rows(heading, body, commit, date)
    rows += whole_run_rows()
    measured.append(out, rows)
    print(f"{out}: {len(rows)} rows")


if __name__ == "__main__":
    main()
