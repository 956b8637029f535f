"""Run directories: their names, their files, and what state a run is in.

A run directory holds ``config.json`` (the resolved config), ``metrics.jsonl`` (one JSON line
per epoch: train and validation loss terms and metrics), ``checkpoint.pt`` (model, optimizer,
schedulers, RNG states, running metrics and position) and ``status.json`` (the checkpoint's
position and the run's number of epochs, so that a run's state is read without loading its
checkpoint). Files are written to a temporary file, then renamed: a crash while writing leaves
the previous file intact. A signal whose handler raises (Ctrl-C; the time-limit signal at which
submitit requeues a job and exits; a DataLoader worker's end) is handled once the file is
written (``signals_held``).
"""

import contextlib
import json
import os
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from seqseg_lib.config import Config
from seqseg_lib.runlock import is_held

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
STATUS = "status.json"


# Signals whose Python handler may raise: Ctrl-C, termination, the signals at which Slurm and
# submitit end or requeue a job (submitit's requeue exits with SystemExit), and a child's end
# (the DataLoader's handler raises when one of its workers dies).
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """The block with the Python handlers of ``HELD_SIGNALS`` held back: a signal that arrives
    meanwhile is raised again when the block ends, its handler back in place. Raised in the
    middle of a write, a handler's exception can come out as another one: inside ``torch.save``
    submitit's ``SystemExit`` became a ``RuntimeError`` of the zip writer, and a job being
    requeued was reported failed. Python handles signals in its main thread only: in another
    thread the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {n: signal.getsignal(n) for n in HELD_SIGNALS}
    arrived: dict[int, None] = {}  # in order of arrival, each once (as the kernel keeps them)
    try:
        # every handler is put back, even when one that is back already raises meanwhile
        with contextlib.ExitStack() as restore:
            for number, handler in handlers.items():
                if callable(handler):
                    restore.callback(signal.signal, number, handler)
                    signal.signal(number, lambda signum, frame: arrived.setdefault(signum))
            yield
    finally:
        for number in arrived:
            signal.raise_signal(number)


def write_atomically(path: Path, write) -> None:
    """``write(handle)`` into a temporary file in the same folder, flushed to disk, then
    renamed over ``path``: a crash at any moment leaves either the old file or the new one,
    and a signal is handled after the rename (``signals_held``)."""
    tmp = path.with_name(path.name + ".tmp")
    with signals_held():
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    write_atomically(path, lambda handle: torch.save(state, handle))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with ``weights_only=True``: tensors and plain values only, nothing executed. A file
    that does not load (damaged, truncated, or not seqseg's) is a ``ValueError`` of one line
    that says what to do."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # UnpicklingError, RuntimeError, EOFError, ...
        raise ValueError(
            f"cannot read checkpoint {str(path)!r}: it is damaged or is not a checkpoint of "
            f"tensors and plain values written by seqseg ({type(error).__name__}: "
            f"{first_line(error)}); restore it from a copy, or delete it to train the run "
            "again from the start"
        ) from None


def first_line(error: BaseException, limit: int = 200) -> str:
    """An error's first sentence, without terminal escapes, at most ``limit`` characters (cut
    at a word, with "...")."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    line = re.split(r"(?<=\.)\s", (text.splitlines() or [""])[0])[0]
    if len(line) <= limit:
        return line
    return line[:limit].rsplit(" ", 1)[0] + " ..."


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The per-epoch records of a run directory's ``metrics.jsonl``. A last line cut short (the
    run killed while appending it) is left out: resuming writes that epoch again."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines):
                break
            raise ValueError(
                f"{str(path)!r}, line {number}, is not a JSON record: {error}"
            ) from None
    return records


def keep_metrics_before(run_dir: Path, epoch: int) -> None:
    """Drop the records of epochs the checkpoint does not cover (written after it, before a
    kill), rewriting ``metrics.jsonl`` atomically; nothing is written when none is dropped."""
    path = run_dir / METRICS
    if not path.exists():
        return
    text = "".join(json.dumps(r) + "\n" for r in read_metrics(run_dir) if r["epoch"] < epoch)
    if text != path.read_text():  # records to drop, or a last line cut short
        write_atomically(path, lambda handle: handle.write(text.encode()))


def restore_record(run_dir: Path, record: dict[str, Any] | None, epoch: int) -> str:
    """Put back epoch ``epoch``'s ``record`` (the checkpoint's copy) into ``metrics.jsonl``,
    which lacks it (``missing_record``), and say so in a line; without a copy (a checkpoint
    written before they held one), a ``ValueError`` saying what to do."""
    path = Path(run_dir) / METRICS
    if record is None or record.get("epoch") != epoch:
        raise ValueError(
            f"{str(path)!r} lacks the record of epoch {epoch + 1} (its last line cut short or "
            f"lost) and {CHECKPOINT} holds no copy of it (an older checkpoint); restore the "
            "file, or delete the run directory to train the run again"
        )
    records = [r for r in read_metrics(run_dir) if r["epoch"] < epoch] + [record]
    text = "".join(json.dumps(r) + "\n" for r in records)
    write_atomically(path, lambda handle: handle.write(text.encode()))
    return (
        f"repaired {str(path)!r}: the record of epoch {epoch + 1} was missing (its line cut "
        f"short); restored from {CHECKPOINT}"
    )


def run_name(config: Config, variant: str = "") -> str:
    """The run directory name under ``runs_dir`` for a config (and an optional variant)."""
    suffix = f"-{variant}" if variant else ""
    return f"{config.experiment}{suffix}-{config.dataset}-{config.profile}-seed{config.seed}"


def write_status(run_dir: Path, position: dict[str, int], epochs: int) -> None:
    """``status.json``: the checkpoint's position and the run's epochs (after each checkpoint)."""
    text = json.dumps({"position": position, "epochs": epochs}) + "\n"
    write_atomically(Path(run_dir) / STATUS, lambda handle: handle.write(text.encode()))


def read_status(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``{"position": ..., "epochs": ...}`` of a run's last checkpoint, None without one: from
    ``status.json``, or from the checkpoint itself for runs written before it existed."""
    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINT).exists():
        return None
    if (run_dir / STATUS).exists():
        try:
            return json.loads((run_dir / STATUS).read_text())
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{str(run_dir / STATUS)!r} is not JSON ({error}); delete it: the next "
                f"command that reads the run reads {CHECKPOINT} instead"
            ) from None
    state = load_checkpoint(run_dir / CHECKPOINT)
    return {"position": state["position"], "epochs": state["config"]["epochs"]}


def is_finished(run_dir: str | os.PathLike) -> bool:
    """True when the run directory's checkpoint has completed every epoch and
    ``metrics.jsonl`` holds the last one's record (``missing_record``)."""
    status = read_status(run_dir)
    finished = status is not None and status["position"]["epoch"] >= status["epochs"]
    return finished and missing_record(run_dir, status) is None


def missing_record(run_dir: str | os.PathLike, status: dict[str, Any] | None) -> int | None:
    """The epoch whose record ``metrics.jsonl`` lacks although the checkpoint has completed
    it (its line cut short or lost after the checkpoint was written; the engine restores it
    from the checkpoint, ``engine.Trainer``), else None. Only the last completed epoch is
    looked at: a checkpoint is written after its epoch's record."""
    if status is None or status["position"]["step_in_epoch"] or not status["position"]["epoch"]:
        return None
    epoch = status["position"]["epoch"] - 1
    records = read_metrics(run_dir)
    return None if any(record["epoch"] == epoch for record in records) else epoch


def stopped_at(run_dir: str | os.PathLike, max_steps: int | None) -> bool:
    """True when the run directory's checkpoint has reached ``max_steps`` and ``metrics.jsonl``
    holds the record of where it stopped (the partial epoch's, or the last whole epoch's)."""
    status = read_status(run_dir) if max_steps is not None else None
    if status is None:
        return False
    position = status["position"]
    records = read_metrics(run_dir)
    last_epoch = records[-1]["epoch"] if records else -1
    recorded = last_epoch == position["epoch"] - (position["step_in_epoch"] == 0)
    return position["global_step"] >= max_steps and recorded


def run_state(status: dict[str, Any] | None, run_dir: str | os.PathLike | None = None) -> str:
    """``missing`` (no checkpoint), ``partial``, ``finished`` (every epoch done) or, given its
    ``run_dir``, ``training`` (a process holds its lock: ``runlock.is_held``) and
    ``unrecorded`` (every epoch done, the last one's record missing from ``metrics.jsonl``:
    training it again restores it), from a run's ``read_status``."""
    finished = status is not None and status["position"]["epoch"] >= status["epochs"]
    if run_dir is not None and not finished and is_held(run_dir):
        return "training"
    if status is None:
        return "missing"
    if not finished:
        return "partial"
    if run_dir is not None and missing_record(run_dir, status) is not None:
        return "unrecorded"
    return "finished"


def run_states(runs_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every run directory under ``runs_dir`` (those with a ``config.json``), by name: its
    experiment, profile, dataset and seed, its position and state (``run_state``), read from
    ``status.json`` without loading a checkpoint where the run has one. A run whose files do
    not read is a row of state ``unreadable`` with the ``reason``; the others are listed as
    usual. A ``runs_dir`` that is not a folder is a ``ValueError``."""
    if not Path(runs_dir).is_dir():
        raise ValueError(
            f"runs directory {str(runs_dir)!r} is not a folder: name the folder of run "
            "directories (default: runs)"
        )
    states = []
    for run_dir in sorted(Path(runs_dir).glob(f"*/{CONFIG}")):
        run_dir = run_dir.parent
        row: dict[str, Any] = {"run": run_dir.name, "epoch": 0, "epochs": None, "step": 0}
        try:
            config = read_config_json(run_dir)
            status = read_status(run_dir)
            state = run_state(status, run_dir)
        except ValueError as error:
            states.append(row | {"state": "unreadable", "reason": str(error)})
            continue
        row |= {key: config.get(key) for key in ("experiment", "profile", "dataset", "seed")}
        position = status["position"] if status else {"epoch": 0, "global_step": 0}
        row |= {"epochs": config.get("epochs"), "epoch": position["epoch"]}
        row |= {"step": position["global_step"], "state": state}
        states.append(row)
    return states


def read_config_json(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The values of a run directory's ``config.json``; a file that is not a JSON object is a
    ``ValueError`` naming it and saying what to do."""
    path = Path(run_dir) / CONFIG
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        values = error
    if not isinstance(values, dict):
        reason = values if isinstance(values, Exception) else f"a {type(values).__name__}"
        raise ValueError(
            f"{str(path)!r} is not a config: expected a JSON object, got {reason}; restore it, "
            "or delete its run directory to train the run again"
        )
    return values


def interrupted_line(run_dirs: "list[Path] | tuple[Path, ...]") -> str:
    """What an interrupted command says: ``interrupted: N finished, M partial; rerun the same
    command to resume``, over ``run_dirs`` (partial: a checkpoint short of the last epoch)."""
    states = []
    for run_dir in run_dirs:
        try:
            states.append(run_state(read_status(run_dir)))
        except ValueError:  # (a damaged file: the rerun says which)
            states.append("unreadable")
    return (
        f"interrupted: {states.count('finished')} finished, {states.count('partial')} partial; "
        "rerun the same command to resume"
    )


def final_metrics(
    run_dir: str | Path, records: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The last epoch's record of a run, flattened: ``train_accuracy``, ``val_miou``, ...;
    ``epochs`` counts a partial last epoch (a run stopped by ``max_steps``) by its fraction,
    ``steps`` the optimiser steps taken. ``records``: the run's ``metrics.jsonl``, where the
    caller has read it already."""
    records = read_metrics(run_dir) if records is None else records
    if not records:
        raise ValueError(f"{str(run_dir)!r} has no epoch record in metrics.jsonl")
    last = records[-1]
    flat = {
        "epochs": round(last["epoch"] + last.get("epoch_fraction", 1), 2),
        "steps": last["global_step"],
    }
    for split in ("train", "val"):
        for key, value in last.get(split, {}).items():
            if isinstance(value, float | int):
                flat[f"{split}_{key}"] = value
    return flat


def training_minutes(records: list[dict[str, Any]]) -> float:
    """Minutes of training in a run's ``metrics.jsonl`` records (validation excluded)."""
    return round(sum(record["train_seconds"] for record in records) / 60, 1)
