"""``./run_all.sh --setup`` and ``--tests``: the system packages of the browser and Slurm tests
installed as root where missing (apt-get here is a stub that records its calls: nothing is
installed), named otherwise; ``--tests`` hands its arguments to pytest and exits with its
status. ``SEQSEG_PYTHON`` stands for ``.venv`` (whose creation these tests leave out)."""

import os
import subprocess
import sys

from conftest import REPO

STUB = """#!/bin/sh
echo "apt-get $*" >> "{calls}"
# the first install fails, as on an image whose package lists were never updated
if [ "$1" = install ] && [ ! -f "{calls}.updated" ]; then exit 100; fi
[ "$1" = update ] && touch "{calls}.updated"
exit 0
"""


def run_all(tmp_path, *args: str, uid: int) -> subprocess.CompletedProcess:
    """``run_all.sh ARGS`` with a recording apt-get and an ``id`` that answers ``uid`` first on
    the PATH, Chromium missing."""
    stubs = tmp_path / "bin"
    stubs.mkdir(exist_ok=True)
    calls = tmp_path / "apt-calls"
    (stubs / "apt-get").write_text(STUB.format(calls=calls))
    (stubs / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    env = os.environ | {
        "PATH": f"{stubs}:{os.environ['PATH']}",
        "SEQSEG_PYTHON": sys.executable,
        "SEQSEG_CHROMIUM": str(tmp_path / "no-chromium"),
        "SEQSEG_SCRATCH": str(tmp_path / "scratch"),
    }
    return subprocess.run(
        ["bash", str(REPO / "run_all.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def apt_calls(tmp_path) -> list[str]:
    calls = tmp_path / "apt-calls"
    return calls.read_text().splitlines() if calls.exists() else []


def test_setup_as_root_installs_what_is_missing_updating_the_lists_when_needed(tmp_path):
    result = run_all(tmp_path, "--setup", uid=0)
    assert result.returncode == 0, result.stderr
    install, update, again = apt_calls(tmp_path)
    assert install.startswith("apt-get install -y -q chromium") and again == install
    assert update == "apt-get update -q"
    assert "== installing Debian's chromium" in result.stdout
    assert len(result.stdout.splitlines()) == 2  # that line and "== set up: ..."


def test_setup_as_another_user_names_what_it_would_install(tmp_path):
    result = run_all(tmp_path, "--setup", uid=1000)
    assert result.returncode == 0, result.stderr
    assert apt_calls(tmp_path) == []
    assert "not installed: chromium" in result.stdout
    assert "as root on Debian, ./run_all.sh --setup installs them" in result.stdout


def test_tests_hand_their_arguments_to_pytest_and_exit_with_its_status(tmp_path):
    result = run_all(tmp_path, "--tests", "-n", "0", "--co", "-q", "tests/test_setup.py", uid=1000)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test_setup.py::test_tests_hand_their_arguments_to_pytest" in result.stdout
    missing = run_all(tmp_path, "--tests", "-n", "0", "tests/test_nothing_here.py", uid=1000)
    assert missing.returncode == 4  # pytest's "usage error": no such file
