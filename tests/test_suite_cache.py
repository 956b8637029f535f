"""The test suite's data cache: one scratch folder for the whole session, removed by the process
that made it. Under pytest-xdist every worker inherits ``SEQSEG_CACHE`` from the controller; a
worker that removed the folder as its own tests ended pulled it from under the runs of the
others (a Slurm job resuming from its checkpoint failed to read its scenes)."""

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def import_conftest(env: dict[str, str]) -> str:
    """A process that loads the suite's conftest, as a pytest worker does, then exits; the
    ``SEQSEG_CACHE`` it saw."""
    code = "import sys; sys.path.insert(0, 'tests'); import conftest, os; "
    code += "print(os.environ['SEQSEG_CACHE'])"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_process_given_the_cache_folder_leaves_it(tmp_path):
    folder = tmp_path / "shared-cache"
    folder.mkdir()
    (folder / "scenes").write_text("rendered by another process")
    assert import_conftest(os.environ | {"SEQSEG_CACHE": str(folder)}) == str(folder)
    assert (folder / "scenes").read_text() == "rendered by another process"


def test_the_process_that_made_the_cache_folder_removes_it():
    env = {key: value for key, value in os.environ.items() if key != "SEQSEG_CACHE"}
    folder = Path(import_conftest(env))
    assert folder.name.startswith("seqseg-test-cache-")
    assert not folder.exists()
