"""``benchmarks/device_check.sh`` and its plan, on the CPU: missing packages named at once, the
estimate of each stage, and every output under ``--out`` with the timing summary printed even
when a stage fails."""

import os
import subprocess
import sys

from conftest import REPO

from seqseg_lib.experiments import EXPERIMENTS

SCRIPT = REPO / "benchmarks" / "device_check.sh"


def run(args, tmp_path, **env):
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env=os.environ | {"SEQSEG_PYTHON": sys.executable} | env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def run_without(package: str, error: str, tmp_path):
    """The check with ``package`` hidden: a package of that name that raises ``error``."""
    hidden = tmp_path / "hidden" / package
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text(f"raise {error}\n")
    return run(["--out", str(tmp_path / "out")], tmp_path, PYTHONPATH=str(hidden.parent))


def test_missing_packages_are_named_at_once_with_the_way_to_get_them(tmp_path):
    result = run_without("papermill", "ImportError('not on this machine')", tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    said = result.stdout + result.stderr  # (the check's log takes both)
    assert "missing Python packages: papermill" in said
    assert "benchmarks/device_wheels.sh" in said


def test_a_package_only_the_library_imports_is_named_too(tmp_path):
    """tqdm is in no list of the check: importing the library's modules finds it missing."""
    result = run_without("tqdm", "ModuleNotFoundError('hidden', name='tqdm')", tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    said = (result.stdout + result.stderr).split("missing Python packages:")[1].splitlines()[0]
    assert "tqdm" in said.split()


def test_a_failing_stage_is_reported_and_the_summary_still_printed(tmp_path):
    """The second stage at an unknown benchmark profile fails; the check says so, prints its
    seconds and archives what it has under --out."""
    out = tmp_path / "out"
    result = run(
        ["--second", "--device", "cpu", "--bench-profile", "nonsense", "--out", str(out)], tmp_path
    )
    assert result.returncode == 1
    assert "== stage benchmarks (nonsense): FAILED (exit 2)" in result.stdout
    assert (
        "== seconds per stage:" in result.stdout
        and "FAILED" in result.stdout.split("seconds per stage:")[1]
    )
    assert "== estimate of stage second" in result.stdout
    assert (out / "log.txt").read_text().count("== seconds per stage:") == 1
    assert (out / "device_check.tar.gz").is_file()


def plan(stage: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "device_plan.py"), "--stage", stage],
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_plan_estimates_every_run_of_each_stage_from_the_measured_times():
    main, skip = plan("main"), plan("skip")
    runs = [line for line in main.stdout.splitlines() if line.strip().startswith("notebook 0")]
    assert len(runs) == 2 and "5,535 steps of 29.3 ms" in runs[0] and "3,690 steps" in runs[1]
    total = main.stdout.splitlines()[-1]
    assert total.startswith("== stage main: about ") and "min estimated" in total
    assert main.returncode == (0 if "(within 9 min)" in total else 1)
    # notebook 02's three runs, Seq2Seg again, at once on the one GPU: the stated assumption
    runs = [line for line in skip.stdout.splitlines() if line.strip().startswith("notebook 02")]
    assert len(runs) == 3 and "(lr 5e-05)" in runs[1] and "(lr 0.0001)" in runs[2]
    assert "3 at a time on the GPU" in skip.stdout and "(assumed; one at a time" in skip.stdout


def test_the_second_stage_is_estimated_at_its_rounds_with_its_assumption_said():
    result = plan("second")
    said = result.stdout
    assert f"{len(EXPERIMENTS)} experiments x 2 rounds x 15.5 s" in said
    assert "optimizations.py: 4 experiments x 45 s (assumed, not measured)" in said
    assert said.splitlines()[-1].endswith("(within 9 min)") and result.returncode == 0
