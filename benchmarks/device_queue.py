"""The queue of GPU stages (``benchmarks/device_queue.md``): which one runs next, how each ended.

    python benchmarks/device_queue.py next [QUEUE]          # the first stage not done
    python benchmarks/device_queue.py mark OUT --stage S --state done|failed
                                      [--queue QUEUE] [--device D] [--commit C]
    python benchmarks/device_queue.py record OUT [--queue QUEUE] [--csv reports/benchmarks.csv]

The queue is a Markdown table, one row per stage in the order they run, with the columns of
``COLUMNS``: a stage is ``waiting``, ``done`` or ``failed``; ``device_check.sh --next`` runs the
first one not ``done`` (a failed one runs again). The machine's copy of the repository is
thrown away after its call, so the outcome travels back inside the stage's archive: ``mark``
(run there, by ``device_check.sh``) writes ``OUT/device_queue.md``, the queue with the stage's
row updated, and ``OUT/queue_row.json``, and prints the row; ``record`` (run here, once the
archive ``OUT/device_check.tar.gz`` is fetched) puts that row into the committed queue and
appends the measurements that came back (``OUT``'s ``reports/benchmarks.csv``) to the
repository's, each row once.
"""

import argparse
import datetime
import json
import sys
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path

COLUMNS = ("stage", "state", "date", "device", "commit", "what it wrote")
STATES = ("waiting", "done", "failed")
QUEUE = Path(__file__).with_name("device_queue.md")
ROW_FILE = "queue_row.json"
ARCHIVE = "device_check.tar.gz"


@dataclass(frozen=True)
class Row:
    """One stage of the queue."""

    stage: str
    state: str = "waiting"
    date: str = ""
    device: str = ""
    commit: str = ""
    wrote: str = ""

    def line(self) -> str:
        """The row as a line of the Markdown table (``|`` in a value escaped)."""
        values = [str(v).replace("|", "\\|") for v in asdict(self).values()]
        return "| " + " | ".join(values) + " |"


def parse(text: str, where: str = "the queue") -> tuple[str, list[Row], str]:
    """``(text before the table, rows, text after it)`` of a queue file's ``text``. A table
    whose header is not ``COLUMNS``, a row of another width or an unknown state is a
    ``ValueError`` naming ``where``."""
    lines = text.splitlines(keepends=True)
    header = next((i for i, line in enumerate(lines) if line.startswith("| stage |")), None)
    if header is None:
        raise ValueError(f"{where}: no table with the header | {' | '.join(COLUMNS)} |")
    if cells(lines[header]) != list(COLUMNS):
        raise ValueError(
            f"{where}: expected the columns {', '.join(COLUMNS)}, found "
            f"{', '.join(cells(lines[header]))}; restore it from the repository"
        )
    end = header + 2
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    rows = []
    for number, line in enumerate(lines[header + 2 : end], header + 3):
        values = cells(line)
        if len(values) != len(COLUMNS) or values[1] not in STATES:
            raise ValueError(
                f"{where}, line {number}: expected {len(COLUMNS)} cells with a state among "
                f"{', '.join(STATES)}, got {line.strip()!r}"
            )
        rows.append(Row(*values))
    return "".join(lines[:header]), rows, "".join(lines[end:])


def cells(line: str) -> list[str]:
    """The cells of a Markdown table line (``\\|`` is a ``|`` inside a cell)."""
    inner = line.strip().removeprefix("|").removesuffix("|")
    return [c.strip().replace("\0", "|") for c in inner.replace("\\|", "\0").split("|")]


def render(before: str, rows: list[Row], after: str) -> str:
    """The queue file of ``rows`` between ``before`` and ``after``."""
    table = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return before + "\n".join(table + [row.line() for row in rows]) + "\n" + after


def read(path: str | Path = QUEUE) -> list[Row]:
    return parse(Path(path).read_text(), str(path))[1]


def next_stage(rows: list[Row]) -> Row | None:
    """The first row not ``done`` (a failed stage runs again), None when every one is."""
    return next((row for row in rows if row.state != "done"), None)


def updated(text: str, row: Row, where: str = "the queue") -> str:
    """``text`` (a queue file) with the row of ``row.stage`` replaced by ``row``."""
    before, rows, after = parse(text, where)
    if row.stage not in [r.stage for r in rows]:
        raise ValueError(
            f"{where}: no stage {row.stage!r}; its stages: {', '.join(r.stage for r in rows)}"
        )
    rows = [row if r.stage == row.stage else r for r in rows]
    return render(before, rows, after)


def wrote(out: Path) -> str:
    """What a stage left under ``out``: its files of ``reports/`` (tables and figures counted,
    the others named) and its runs, in one short line."""
    reports = sorted(p for p in (out / "reports").rglob("*") if p.is_file())
    named = [p.relative_to(out).as_posix() for p in reports if p.parent == out / "reports"]
    counted = {}
    for path in reports:
        if path.parent != out / "reports":
            part = path.relative_to(out / "reports").parts[0]
            counted[part] = counted.get(part, 0) + 1
    runs = [p for p in (out / "runs").glob("*/") if (p / "config.json").is_file()]
    parts = named + [f"{n} in reports/{part}/" for part, n in sorted(counted.items())]
    parts += [f"{len(runs)} run{'s' if len(runs) > 1 else ''}"] if runs else []
    return ", ".join(parts) or "nothing"


def mark(out: Path, stage: str, state: str, queue: Path, device: str, commit: str) -> Row:
    """Write ``out/device_queue.md`` (``queue`` with ``stage``'s row updated to ``state``,
    today's date, ``device``, ``commit`` and what ``out`` holds) and ``out/queue_row.json``."""
    if state not in STATES[1:]:
        raise ValueError(f"--state must be done or failed, got {state!r}")
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    row = Row(stage, state, date, device, commit, wrote(out))
    text = updated(queue.read_text(), row, str(queue))
    out.mkdir(parents=True, exist_ok=True)
    (out / "device_queue.md").write_text(text)
    (out / ROW_FILE).write_text(json.dumps(asdict(row), indent=1) + "\n")
    return row


def returned(out: Path, name: str) -> bytes | None:
    """The file ``name`` that came back in ``out``: from its archive when there is one (what
    the machine wrote), else the file beside it; None when neither holds it."""
    archive = out / ARCHIVE
    if archive.is_file():
        with tarfile.open(archive) as tar:
            try:
                member = tar.extractfile(name)
            except KeyError:
                member = None
            if member is not None:
                return member.read()
    path = out / name
    return path.read_bytes() if path.is_file() else None


def record(out: Path, queue: Path, csv_path: Path | None) -> tuple[Row, int]:
    """Put the row that came back in ``out`` into ``queue``, and append the benchmark rows
    that came back to ``csv_path`` (those not there already); ``(row, rows appended)``."""
    data = returned(out, ROW_FILE)
    if data is None:
        raise ValueError(
            f"{out}: no {ROW_FILE}, in {ARCHIVE} or beside it; give the folder that "
            "device_check.sh --out wrote, once its archive is fetched"
        )
    row = Row(**json.loads(data))
    queue.write_text(updated(queue.read_text(), row, str(queue)))
    appended = 0
    measured = returned(out, "reports/benchmarks.csv")
    if csv_path is not None and measured:
        appended = append_new(csv_path, measured.decode())
    return row, appended


def append_new(csv_path: Path, text: str) -> int:
    """Append to ``csv_path`` the rows of the CSV ``text`` it does not hold yet; their count."""
    import csv
    import io

    from seqseg_lib import measured

    have = set()
    if csv_path.is_file():
        with open(csv_path, newline="") as handle:
            have = {tuple(r.values()) for r in csv.DictReader(handle)}
    rows = [r for r in csv.DictReader(io.StringIO(text)) if tuple(r.values()) not in have]
    measured.append(csv_path, rows)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    nxt = commands.add_parser("next", help="print the first stage not done (exit 1: none)")
    nxt.add_argument("queue", nargs="?", type=Path, default=QUEUE)
    mk = commands.add_parser("mark", help="on the machine: the stage's outcome into OUT")
    mk.add_argument("out", type=Path)
    mk.add_argument("--stage", required=True)
    mk.add_argument("--state", required=True, choices=STATES[1:])
    mk.add_argument("--queue", type=Path, default=QUEUE)
    mk.add_argument("--device", default="")
    mk.add_argument("--commit", default="")
    rec = commands.add_parser("record", help="here: the outcome that came back, into the queue")
    rec.add_argument("out", type=Path)
    rec.add_argument("--queue", type=Path, default=QUEUE)
    rec.add_argument("--csv", type=Path, default=Path("reports/benchmarks.csv"))
    args = parser.parse_args(argv)
    try:
        if args.command == "next":
            row = next_stage(read(args.queue))
            if row is None:
                print(f"every stage of {args.queue} is done", file=sys.stderr)
                return 1
            print(row.stage)
        elif args.command == "mark":
            row = mark(args.out, args.stage, args.state, args.queue, args.device, args.commit)
            print(f"== the queue's row (python benchmarks/device_queue.py record {args.out}):")
            print(row.line())
        else:
            row, appended = record(args.out, args.queue, args.csv)
            print(f"{args.queue}: {row.line()}")
            print(f"{args.csv}: {appended} measurement rows appended")
    except ValueError as error:
        print(f"device_queue.py: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
