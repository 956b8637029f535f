"""Measured speeds and memory, one row per measurement: ``reports/benchmarks.csv``.

``reports/benchmarks.md`` is for people; this file is what code reads (the plan's minutes per
run, how many runs share a GPU). Every benchmark that writes a table there also appends its
rows here (``append``); rows are never edited by hand. Columns (``COLUMNS``):

- ``device_type``: ``cpu`` or ``cuda``; ``device``: its description (``describe_device``);
- ``profile``, ``experiment``: the preset measured (its model, crop and batch);
- ``precision``: ``float32`` or ``bfloat16`` (autocast);
- ``mode``: how the step ran: ``eager``, ``compile`` (``torch.compile``, its mode after a
  colon: ``compile:reduce-overhead``) or ``graphs`` (the whole step as one CUDA graph);
- ``concurrent``: runs training on the device at once (1: alone);
- ``quantity`` (``QUANTITIES``) and ``value``; ``rounds``: how many measurements the value is
  the median of;
- ``date``, ``torch``, ``commit``: provenance.
"""

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any

COLUMNS = (
    "device_type",
    "device",
    "profile",
    "experiment",
    "precision",
    "mode",
    "concurrent",
    "quantity",
    "value",
    "rounds",
    "date",
    "torch",
    "commit",
)
QUANTITIES = {
    "step_s": "seconds per training step on dummy batches (forward, loss, backward, Adam)",
    # (``rounds`` 1: a whole run's mean step, its first epoch's warm-up included; else the
    # steps measured after it)
    "train_step_s": "seconds per training step in the engine's loop on the experiment's data",
    "run_overhead_s": "seconds of a run outside its training steps (start, data, validation)",
    "first_epoch_extra_s": "seconds the first epoch takes beyond its steps at the later rate",
    "capture_s": "seconds spent compiling or capturing the step before the first one",
    "peak_mib": "peak device memory of a training step, MiB",
    "eval_ms_per_image": "milliseconds per validation image in the experiment's evaluator",
}


def append(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Append ``rows`` to the CSV at ``path`` (written with its header if new). A row must
    name every column; ``quantity`` must be one of ``QUANTITIES``."""
    path = Path(path)
    rows = list(rows)
    for row in rows:
        missing = [column for column in COLUMNS if column not in row]
        assert not missing, f"benchmark row without {missing}: {row}"
        assert row["quantity"] in QUANTITIES, f"unknown quantity {row['quantity']!r}"
    new = not path.exists() or path.stat().st_size == 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerows(rows)


def read(path: str | Path) -> list[dict[str, Any]]:
    """The rows of ``path`` (empty when there is no such file), ``value`` as a float and
    ``concurrent`` and ``rounds`` as ints. A file whose header is not ``COLUMNS`` is a
    ``ValueError`` naming it."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(
                f"{path}: expected the columns {', '.join(COLUMNS)}, found "
                f"{', '.join(reader.fieldnames or ()) or 'none'}; it is written by "
                "benchmarks/run.py: restore it from the repository or run that again"
            )
        rows = []
        for row in reader:
            row["value"] = float(row["value"])
            row["concurrent"] = int(row["concurrent"])
            row["rounds"] = int(row["rounds"] or 0)
            rows.append(row)
    return rows


def latest(rows: Iterable[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    """The rows equal to ``match`` on its columns, the latest per (device, profile, experiment,
    precision, mode, concurrent, quantity): a measurement repeated later replaces the earlier
    one (rows are appended in time order)."""
    kept: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        if all(row[column] == value for column, value in match.items()):
            key = tuple(row[c] for c in COLUMNS[:8])
            kept.pop(key, None)  # re-insert at the end: the order stays the measurement order
            kept[key] = row
    return list(kept.values())


# The repository's measurements (absent from an installed copy without ``reports/``: no rows).
BENCHMARKS_CSV = Path(__file__).resolve().parents[1] / "reports" / "benchmarks.csv"


def fastest_mode(
    rows: Iterable[dict[str, Any]],
    experiment: str,
    profile: str,
    device_type: str,
    precision: str,
) -> str | None:
    """The ``mode`` whose latest seconds per step, alone on the device, is the least for this
    experiment, profile, device type and precision: the engine's loop (``train_step_s``) where
    it was measured in two modes or more, else the dummy batches (``step_s``); None when fewer
    than two modes were measured (nothing to choose between)."""
    rows = latest(
        rows,
        experiment=experiment,
        profile=profile,
        device_type=device_type,
        precision=precision,
        concurrent=1,
    )
    for quantity in ("train_step_s", "step_s"):
        seconds = {row["mode"]: row["value"] for row in rows if row["quantity"] == quantity}
        if len(seconds) >= 2:
            return min(seconds, key=seconds.get)
    return None
