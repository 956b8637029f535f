"""Notebooks: stored without outputs, one parameters cell each, and every one executed
headless by papermill under the smoke profile, writing the tables and figures it promises."""

import json
import os
import subprocess
import sys
import time

import nbformat
import papermill
import pytest
from conftest import REPO

from seqseg_lib import plan

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# What each notebook writes into reports_dir (names formatted with dataset and profile).
PROMISED = {
    "01_seq2seg_vs_unet": ["tables/table1_{tag}.csv", "tables/table1_{tag}.md"]
    + ["figures/figure1_{tag}.png", "figures/figure2_{tag}.png"],
    "02_skip_ablation": ["tables/table_skip_ablation_{tag}.csv"]
    + ["figures/figure_skip_ablation_{tag}.png"],
    "03_mnist_instance": ["tables/table_mnist_{mnist}.csv", "tables/table_mnist_{mnist}.md"]
    + ["figures/figure4_{mnist}.png", "figures/figure5_{mnist}.png"],
    "04_hungarian_unet": ["tables/table_panoptic_{tag}.csv", "tables/table_redundancy_{tag}.csv"]
    + ["tables/table_ablation_{tag}.csv"]
    + [f"figures/figure{n}_{{tag}}.png" for n in (6, 7, 8, 9)],
    "05_scaling": ["tables/table_scaling_{tag}.csv", "tables/table_scaling_slopes_{tag}.csv"]
    + ["tables/table_patches_{tag}.csv", "figures/figure_scaling_{tag}.png"],
    "06_extensions": [
        "tables/table_mask_heads_{mnist}.csv",
        "figures/figure_mask_heads_{mnist}.png",
    ]
    + ["tables/table_class_loss_{tag}.csv", "tables/table_bottleneck_{tag}.csv"]
    + ["tables/table_per_class_iou_{tag}.csv", "figures/figure_per_class_iou_{tag}.png"],
    "07_fidelity": ["tables/table_skip_depth_{tag}.csv", "tables/table_depth_{tag}.csv"]
    + ["tables/table_gap_{tag}.csv", "figures/figure_skip_depth_{tag}.png"]
    + ["tables/table_mnist_targets_{mnist}.csv"],
    "08_transformer_panoptic": ["tables/table_transformers_{tag}.csv"]
    + [f"figures/figure_transformers_{e}_{{tag}}.png" for e in ("hungarian-unet", "eomt")],
    "09_report_budget": ["tables/table_report_budget_{tag}.csv"]
    + ["figures/figure_report_budget_{tag}.png"],
    "10_efficient_attention": ["tables/table_efficient_cost_{tag}.csv"]
    + ["tables/table_efficient_{tag}.csv", "figures/figure_efficient_cost_{tag}.png"]
    + ["figures/figure_efficient_{tag}.png"],
}


def test_every_notebook_promises_its_outputs():
    assert {p.stem for p in NOTEBOOKS} == set(PROMISED)


def test_bad_parameters_are_refused_with_the_valid_ones(tmp_path, kernel_env):
    with pytest.raises(papermill.PapermillExecutionError, match="valid: smoke, cpu, paper"):
        papermill.execute_notebook(
            str(NOTEBOOKS[0]),
            str(tmp_path / "out.ipynb"),
            parameters={"profile": "fast", "reports_dir": str(tmp_path)},
            kernel_name="python3",
            cwd=str(NOTEBOOKS[0].parent),
            progress_bar=False,
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_source_notebooks_carry_no_outputs_and_one_parameters_cell(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code), (
        f"{path.name} has outputs: run `nbstripout {path.relative_to(REPO)}`"
    )
    tagged = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters'"


@pytest.fixture
def kernel_env(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("SEQSEG_PROGRESS", "log")
    monkeypatch.setenv("MPLBACKEND", "Agg")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_headless_under_smoke(path, tmp_path, kernel_env):
    reports, runs = tmp_path / "reports", tmp_path / "runs"
    parameters = {"profile": "smoke", "runs_dir": str(runs), "reports_dir": str(reports)}
    papermill.execute_notebook(
        str(path),
        str(tmp_path / path.name),
        parameters=parameters,
        kernel_name="python3",
        cwd=str(path.parent),
        progress_bar=False,
    )
    for name in PROMISED.get(path.stem, []):
        assert (reports / name.format(tag="synthetic_smoke", mnist="mnist_smoke")).is_file(), name
    executed = json.loads((tmp_path / path.name).read_text())
    text = json.dumps(executed)
    dataset = "mnist" if path.stem.startswith("03") else "synthetic"
    assert "'profile': 'smoke'" in text and f"'dataset': '{dataset}'" in text
    # it trained exactly the runs its plan lists (``python -m seqseg_lib runs plan``)
    trained = {run.name for run in runs.glob("*-seed*")}
    planned = {p.run_dir(runs).name for p in plan.notebook_runs(path.stem, "smoke", dataset)}
    assert trained == planned, (sorted(trained - planned), sorted(planned - trained))


def test_a_notebook_runs_quietly_over_ipc_with_typed_parameters(tmp_path):
    """``python -m seqseg_lib.execute``: the parameters typed as papermill's command line
    types them, nothing printed (the kernel over IPC has no TCP warning to give), and
    ``--verbose`` logs the cells."""
    notebook = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell("steps = 1\namp = False\nname = 'a'")
    parameters.metadata["tags"] = ["parameters"]
    shown = "print(repr(steps), repr(amp), repr(name))"
    notebook.cells = [parameters, nbformat.v4.new_code_cell(shown)]
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["kernelspec"] = kernelspec
    nbformat.write(notebook, tmp_path / "tiny.ipynb")
    for verbose in ([], ["--verbose"]):
        result = subprocess.run(
            [sys.executable, "-m", "seqseg_lib.execute", "tiny.ipynb", "out.ipynb"]
            + ["-p", "steps", "3", "-p", "amp", "True", "-p", "name", "b", *verbose],
            cwd=tmp_path,
            env=os.environ | {"PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "without encryption" not in result.stdout + result.stderr
        assert ("Executing Cell" in result.stdout + result.stderr) == bool(verbose)
        if not verbose:
            assert result.stdout + result.stderr == ""
        executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
        assert executed.cells[-1].outputs[0]["text"] == "3 True 'b'\n"


@pytest.mark.slow
def test_run_all_fails_on_a_broken_notebook(tmp_path):
    notebook = nbformat.read(NOTEBOOKS[0], as_version=4)
    notebook.cells.insert(3, nbformat.v4.new_code_cell("raise RuntimeError('broken on purpose')"))
    broken = tmp_path / "zz_broken.ipynb"  # outside the source notebooks/
    nbformat.write(notebook, broken)
    result = subprocess.run(
        ["bash", str(REPO / "run_all.sh"), "--profile", "smoke", str(broken)]
        + ["--reports-dir", str(tmp_path / "reports"), "--runs-dir", str(tmp_path / "runs")],
        env=os.environ | {"SEQSEG_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "broken on purpose" in result.stdout + result.stderr
    assert "FAILED" in result.stderr


def test_run_all_refuses_unknown_names():
    for args, message in [
        (["--profile", "gpu"], "valid: smoke, cpu, paper"),
        (["--dataset", "ade"], "valid: synthetic, cityscapes, camvid"),
        (["--max-steps", "0"], "--max-steps needs a positive integer, got '0'"),
        (["--data-root", "/missing"], "--data-root needs an existing folder, got '/missing'"),
        (["--seeds", "two"], "--seeds needs a positive integer, got 'two'"),
    ]:
        result = subprocess.run(
            ["bash", str(REPO / "run_all.sh"), *args],
            env=os.environ | {"SEQSEG_PYTHON": sys.executable},
            capture_output=True,
            text=True,
        )
        assert result.returncode == 2 and message in result.stderr


@pytest.mark.slow
def test_run_all_max_steps_draws_every_table_from_partial_epochs(tmp_path):
    """``--max-steps`` (the device check's quick mode) stops every run within its first epoch,
    and the notebook still writes its tables, from the partial epoch's record. ``--amp``
    reaches the notebook and every run it trains (``smoke`` alone never autocasts)."""
    reports = tmp_path / "reports"
    result = subprocess.run(
        ["bash", str(REPO / "run_all.sh"), "--profile", "smoke", "--max-steps", "1", "--amp"]
        + ["--reports-dir", str(reports), "--runs-dir", str(tmp_path / "runs")]
        + [str(NOTEBOOKS[0])],
        env=os.environ | {"SEQSEG_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    # one line for the notebook; no cell log, no kernel warning
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("== [1/1]")]
    assert " ok in " in line and "1 table, 2 figures" in line, line
    assert "Executing Cell" not in result.stdout + result.stderr
    assert "without encryption" not in result.stdout + result.stderr
    table = (reports / "tables" / "table1_synthetic_smoke.csv").read_text()
    assert ",0.5" in table  # one step of an epoch of two (8 images, batch 4)
    for run in (tmp_path / "runs").glob("*-seed*"):  # run directories, not .locks/
        (record,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert record["partial"] and record["epoch_fraction"] == 0.5
        assert record["environment"]["precision"] == "bfloat16 autocast"
    executed = nbformat.read(
        reports / "notebooks" / f"{NOTEBOOKS[0].stem}_synthetic_smoke.ipynb", 4
    )
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    values = [line.split(" = ", 1)[1] for line in injected[0].source.splitlines() if " = " in line]
    assert values and not [v for v in values if v.startswith('"/')], values
    assert "amp = True" in injected[0].source.splitlines()
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2  # figures 1 and 2 inline
    # no folder of the machine that ran it: not in papermill's record, not in an output
    text = nbformat.writes(executed)
    for folder in (tmp_path, REPO):  # as an absolute path: quoted, or PosixPath('...')
        assert f'"{folder}' not in text and f"'{folder}" not in text


@pytest.mark.slow
def test_a_smoke_run_leaves_reports_untouched(tmp_path):
    """``reports/`` holds cpu and paper results only: smoke output goes to scratch/ (here the
    test's own, ``SEQSEG_SCRATCH``: the user's scratch/ is not touched either)."""

    def status():
        return subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all", "--", "reports"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    before = status()
    started = time.time()
    result = subprocess.run(
        ["bash", str(REPO / "run_all.sh"), "--profile", "smoke", "--max-steps", "1"]
        + ["--runs-dir", str(tmp_path / "runs"), str(NOTEBOOKS[0])],
        env=os.environ | {"SEQSEG_PYTHON": sys.executable, "SEQSEG_SCRATCH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert status() == before
    table = tmp_path / "reports-smoke" / "tables" / "table1_synthetic_smoke.csv"
    assert table.stat().st_mtime >= started
