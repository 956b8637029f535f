"""One process trains a run directory at a time.

``run_lock(run_dir)`` holds an exclusive ``flock`` on ``RUNS/.locks/NAME.lock`` (beside the
run directory, so that a run that fails to start leaves its own folder untouched) while a
process trains ``run_dir``. A second process asking for the same run waits, saying which
process holds it, and then finds the run finished (``engine.load_or_train``), or is refused
with ``RunLockedError`` when asked not to wait. The kernel releases the lock of a process that
dies, however it dies (SIGKILL included): the next process takes it over at once and says
whose it was. The lock file holds its holder (host, pid, Slurm job, start time) for those
messages only. Under ``torchrun`` the group's rank 0 holds the lock for every rank.

``flock`` is local to a machine unless the file system shares it: NFSv4 and Lustre do; a
cluster's runs directory on a file system without shared locks is protected per node only.
"""

import contextlib
import datetime
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

LOCKS = ".locks"


class RunLockedError(RuntimeError):
    """The run directory is being trained by another process, and waiting was not asked."""


def lock_path(run_dir: str | os.PathLike) -> Path:
    run_dir = Path(run_dir)
    return run_dir.parent / LOCKS / f"{run_dir.name}.lock"


def holder() -> dict[str, object]:
    """This process, as a lock names its holder."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "slurm_job": os.environ.get("SLURM_JOB_ID"),
        "since": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def describe(path: Path) -> str:
    """'pid 123 on host h (Slurm job 45) since 2026-11-30T03:00:00', from a lock file."""
    try:
        who = json.loads(path.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        who = {}
    if not who:
        return "another process"
    job = f" (Slurm job {who['slurm_job']})" if who.get("slurm_job") else ""
    return f"pid {who.get('pid')} on host {who.get('host')}{job} since {who.get('since')}"


def is_held(run_dir: str | os.PathLike) -> bool:
    """Whether a process holds ``run_dir``'s lock now (it is training the run), read without
    taking the lock: a held lock file names its holder, a released one is empty. A holder on
    this host is checked to be alive (a killed one leaves its name behind); one on another
    host is taken at its word."""
    path = lock_path(run_dir)
    try:
        who = json.loads(path.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        return False
    if not who:
        return False
    if who.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(who.get("pid", 0)), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:  # alive, another user's
        return True
    return who.get("pid", 0) > 0


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike, wait: bool = True) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block: at once if free, else after the holder ends
    (``wait``) or not at all (``RunLockedError``, naming the holder)."""
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 holds it for the group
        yield
        return
    path = lock_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = describe(path)
            if not wait:
                raise RunLockedError(
                    f"run directory {str(run_dir)!r} is being trained by {who}; wait for it "
                    f"(the default) or train another run (lock: {str(path)!r})"
                ) from None
            print(f"waiting for {str(run_dir)!r}: trained by {who}", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        else:
            if path.stat().st_size:  # its holder ended without releasing it: killed
                print(
                    f"taking over the lock of {str(run_dir)!r} from {describe(path)}, which "
                    "ended without releasing it",
                    file=sys.stderr,
                    flush=True,
                )
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(holder()))
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()  # an empty lock file: released in good order
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
