"""One notebook executed headless with papermill, as ``run_all.sh`` runs each:

    python -m seqseg_lib.execute NOTEBOOK OUTPUT --cwd DIR [-p NAME VALUE]... [--verbose]

Quiet by default: nothing is printed but a failure's one line (its error, its cell and the
executed notebook that holds the traceback); ``--verbose`` logs every cell and its outputs
as they run (papermill's ``--log-output``). Exits with 1 when the notebook failed.

The kernel talks to papermill over IPC (Unix domain sockets in a private temporary folder)
rather than TCP on localhost: no port is open to other users of the machine, and the kernel
has no reason for its "Kernel is running over TCP without encryption" warning, which it
prints once per notebook when started over TCP without CurveZMQ keys.
"""

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any


def parameter_value(text: str) -> Any:
    """A ``-p NAME VALUE`` value as papermill's own command line reads it: ``True``,
    ``False``, ``None``, an int, a float, else the text."""
    literals = {"True": True, "False": False, "None": None}
    if text in literals:
        return literals[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def execute(
    notebook: str | Path,
    output: str | Path,
    parameters: dict[str, Any],
    cwd: str | Path,
    verbose: bool = False,
    kernel: str = "python3",
) -> None:
    """Execute ``notebook`` into ``output`` with ``parameters`` (papermill's), in ``cwd``, its
    kernel over IPC; raises papermill's ``PapermillExecutionError`` when a cell fails (the
    executed notebook is written either way)."""
    import papermill
    from traitlets.config import Config

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    sockets = Path(tempfile.mkdtemp(prefix="seqseg-kernel-"))
    try:
        config = Config({"KernelManager": {"transport": "ipc", "ip": str(sockets / "kernel")}})
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=parameters,
            kernel_name=kernel,
            cwd=str(cwd),
            progress_bar=False,
            log_output=verbose,
            config=config,
        )
    finally:
        shutil.rmtree(sockets, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m seqseg_lib.execute",
        description="Execute a notebook headless with papermill (run_all.sh runs each so).",
    )
    parser.add_argument("notebook", help="the notebook to run")
    parser.add_argument("output", help="where the executed notebook goes")
    parser.add_argument("--cwd", default=".", help="the kernel's working directory")
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a value of the notebook's parameters cell (repeat for several)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every cell as it runs")
    args = parser.parse_args(argv)
    from papermill.exceptions import PapermillExecutionError

    parameters = {name: parameter_value(value) for name, value in args.parameter}
    try:
        execute(args.notebook, args.output, parameters, args.cwd, args.verbose)
    except PapermillExecutionError as error:
        print(
            f"{error.ename}: {error.evalue} (cell {error.exec_count}; the traceback is in "
            f"{args.output})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
