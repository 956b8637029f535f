"""Shared fixtures. Real data in ``../shared/data`` is optional: tests using it skip."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("SEQSEG_PROGRESS", "none")
# The data caches (rendered synthetic scenes, resized real-dataset files) go to a scratch
# folder, not the user's. Only the process that made it removes it, at its exit: under
# pytest-xdist the controller, whose workers inherit the variable and share the folder (a
# worker that removed it when its own tests ended would pull it from under the others' runs).
# A folder named by the caller is theirs and stays.
if "SEQSEG_CACHE" not in os.environ:
    os.environ["SEQSEG_CACHE"] = tempfile.mkdtemp(prefix="seqseg-test-cache-")
    atexit.register(shutil.rmtree, os.environ["SEQSEG_CACHE"], ignore_errors=True)
# The suite's models are tiny: one thread avoids threading overhead (and oversubscription when
# the machine is shared). Subprocesses started by tests inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(scope="session")
def camvid_root() -> Path:
    root = Path(os.environ.get("CAMVID_ROOT", SHARED_DATA / "camvid"))
    if not (root / "train").is_dir():
        pytest.skip(f"CamVid not found at {root} (set CAMVID_ROOT to run this test)")
    return root


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    root = Path(os.environ.get("MNIST_ROOT", SHARED_DATA / "mnist"))
    if not any(root.glob("t10k-images-idx3-ubyte*")):
        pytest.skip(
            f"MNIST IDX files (t10k-images-idx3-ubyte, ...) not found in {root} (set MNIST_ROOT "
            "to their folder to run this test)"
        )
    return root


def untimed(records: list[dict]) -> list[dict]:
    """Per-epoch records without their wall-clock time, which no two runs share."""
    return [{k: v for k, v in r.items() if k != "train_seconds"} for r in records]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
