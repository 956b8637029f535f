"""Run locks (``seqseg_lib.runlock``) between real processes: one trains a run directory, the
other waits and reads its result or is refused; a SIGKILLed holder's lock is taken over."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO

from seqseg_lib import engine
from seqseg_lib.experiments import build_config
from seqseg_lib.runlock import RunLockedError, lock_path, run_lock

HOLD = """
import sys, time
from seqseg_lib.runlock import run_lock
with run_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def holding(run_dir, seconds: float) -> subprocess.Popen:
    """A process holding ``run_dir``'s lock for ``seconds``, once it has printed "held"."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO)},
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_held_run_is_refused_without_waiting_and_waited_for_otherwise(tmp_path, capfd):
    run_dir = tmp_path / "runs" / "unet-synthetic-smoke-seed0"
    holder = holding(run_dir, 3.0)
    with pytest.raises(RunLockedError, match=rf"being trained by pid {holder.pid} on host"):
        with run_lock(run_dir, wait=False):
            pass
    start = time.monotonic()
    with run_lock(run_dir):  # waits for the holder to release it
        waited = time.monotonic() - start
    assert waited > 1.0
    holder.wait(timeout=10)
    assert f"trained by pid {holder.pid}" in capfd.readouterr().err
    assert lock_path(run_dir).read_text() == ""  # released in good order


def test_the_lock_of_a_killed_holder_is_taken_over(tmp_path, capfd):
    run_dir = tmp_path / "runs" / "unet-synthetic-smoke-seed0"
    holder = holding(run_dir, 60.0)
    assert json.loads(lock_path(run_dir).read_text())["pid"] == holder.pid
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    start = time.monotonic()
    with run_lock(run_dir, wait=False):
        assert time.monotonic() - start < 1.0
        assert json.loads(lock_path(run_dir).read_text())["pid"] == os.getpid()
    assert f"taking over the lock of {str(run_dir)!r} from pid {holder.pid}" in (
        capfd.readouterr().err
    )


TRAIN = """
import sys
from seqseg_lib import engine
from seqseg_lib.experiments import build_config
config = build_config("unet", "smoke", device="cpu", progress=False)
print(engine.load_or_train(config, sys.argv[1]), flush=True)
"""


def test_two_processes_asking_for_one_run_train_it_once(tmp_path):
    """Both return the run directory; its records are those of one run, the same as a run
    trained alone."""
    runs = tmp_path / "runs"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", TRAIN, str(runs)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs
    run_dir = runs / "unet-synthetic-smoke-seed0"
    assert [out.strip() for out, _ in outputs] == [str(run_dir)] * 2
    waiting = [err for _, err in outputs if "waiting for" in err]
    assert len(waiting) <= 1  # the second waited, unless the first had finished already
    alone = engine.train(
        build_config("unet", "smoke", device="cpu", progress=False), tmp_path / "alone"
    )
    records = engine.read_metrics(run_dir)
    assert len(records) == len(alone)
    assert [r["val"] for r in records] == [r["val"] for r in alone]
