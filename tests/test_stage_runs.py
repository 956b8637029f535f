"""The runs of the GPU queue's training stages (``benchmarks/stage_runs.py``) and every queue
stage's estimate (``device_plan.queue_seconds``): one seed per stage, the report's steps, and no
stage over 9 minutes on measured numbers alone."""

import sys

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import device_plan  # noqa: E402
import device_queue  # noqa: E402
from stage_runs import run_steps, stage_runs  # noqa: E402


def test_a_table1_stage_trains_one_seed_of_notebooks_01_and_09(camvid_root):
    runs = stage_runs("table1", 2, "paper", "camvid", data_root=str(camvid_root))
    assert {config.seed for config, _ in runs} == {2}
    steps = sorted((config.experiment, run_steps(config)) for config, _ in runs)
    # CamVid's 367 training images: 15 steps of 24 per epoch (notebook 01: 45 and 30 epochs);
    # notebook 09: the report's 5,535 and 3,690 steps (Sec. 2.2)
    assert steps == [("seq2seg", 675), ("seq2seg", 5535), ("unet", 450), ("unet", 3690)]


def test_a_skip_stage_trains_notebook_02s_runs_for_the_reports_steps(camvid_root):
    runs = stage_runs("skip", 1, "paper", "camvid", data_root=str(camvid_root))
    assert [config.experiment for config, _ in runs] == [
        "seq2seg",
        "seq2seg-noskip",
        "seq2seg-noskip",
    ]
    assert [run_steps(config) for config, _ in runs] == [5535] * 3
    assert all(name.endswith("report-steps") and config.seed == 1 for config, name in runs)
    assert runs[1][0].lr != runs[2][0].lr == runs[0][0].lr  # no skip at its rate and at Seq2Seg's


def test_no_queue_stage_is_over_9_minutes_on_measured_numbers(camvid_root, capsys):
    for row in device_queue.read(device_queue.QUEUE):
        seconds = device_plan.queue_seconds(row.stage, None, str(camvid_root), [])
        said = capsys.readouterr().out
        assert seconds > 0, row.stage
        if seconds > 9 * 60:  # only where an assumption stands for a measurement the probe makes
            assert "assumed, unmeasured" in said, (row.stage, said)


def test_an_unknown_stage_is_refused():
    with pytest.raises(ValueError, match="unknown stage 'table1-cityscapes'"):
        device_plan.queue_runs("table1-cityscapes", None, None)
