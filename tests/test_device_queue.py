"""The queue of GPU stages (``benchmarks/device_queue.py``): the first stage not done runs next,
its outcome travels back inside the archive and goes into the queue here, and the
measurements that came back are appended once."""

import json
import os
import subprocess
import sys
import tarfile

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import device_queue  # noqa: E402

from seqseg_lib import measured  # noqa: E402

QUEUE = """# A queue

Some words.

| stage | state | date | device | commit | what it wrote |
|---|---|---|---|---|---|
| first | done | 2026-12-01 10:00 UTC | cuda:0 (H200) | abc1234 | reports/benchmarks.csv |
| second | failed | 2026-12-02 10:00 UTC | cuda:0 (H100) | abc1234 | nothing |
| third | waiting |  |  |  |  |

After the table.
"""


def test_the_next_stage_is_the_first_not_done_and_a_failed_one_runs_again(tmp_path):
    path = tmp_path / "queue.md"
    path.write_text(QUEUE)
    rows = device_queue.read(path)
    assert [r.stage for r in rows] == ["first", "second", "third"]
    assert device_queue.next_stage(rows).stage == "second"
    done = [device_queue.Row(r.stage, "done") for r in rows]
    assert device_queue.next_stage(done) is None
    assert device_queue.next_stage([done[0], rows[2]]).stage == "third"


def test_a_queue_file_is_rewritten_with_only_its_row_changed(tmp_path):
    row = device_queue.Row("third", "done", "2026-12-08 00:00 UTC", "cpu", "def5678", "a | b")
    text = device_queue.updated(QUEUE, row)
    assert text.startswith("# A queue\n\nSome words.\n\n") and text.endswith("\nAfter the table.\n")
    before, rows, _ = device_queue.parse(text)
    assert rows[2] == row and rows[:2] == device_queue.parse(QUEUE)[1][:2]
    with pytest.raises(ValueError, match="no stage 'fourth'; its stages: first, second, third"):
        device_queue.updated(QUEUE, device_queue.Row("fourth"))
    with pytest.raises(ValueError, match="line 9: expected 6 cells with a state among"):
        device_queue.parse(QUEUE.replace("| third | waiting |", "| third | maybe |"))


def test_mark_writes_the_row_into_out_and_record_puts_it_into_the_queue(tmp_path):
    queue = tmp_path / "queue.md"
    queue.write_text(QUEUE)
    out = tmp_path / "out"
    (out / "reports" / "tables").mkdir(parents=True)
    (out / "reports" / "tables" / "t.md").write_text("t")
    (out / "runs" / "seq2seg").mkdir(parents=True)
    (out / "runs" / "seq2seg" / "config.json").write_text("{}")
    row = {c: "x" for c in measured.COLUMNS} | {"quantity": "step_s", "value": 0.5}
    row |= {"concurrent": 1, "rounds": 3}
    measured.append(out / "reports" / "benchmarks.csv", [row, row | {"value": 0.25}])
    marked = device_queue.mark(out, "third", "done", queue, "cuda:0 (NVIDIA H100)", "def5678")
    assert marked.state == "done" and marked.device == "cuda:0 (NVIDIA H100)"
    assert marked.commit == "def5678" and marked.date.endswith(" UTC")
    assert marked.wrote == "reports/benchmarks.csv, 1 in reports/tables/, 1 run"
    assert device_queue.read(out / "device_queue.md")[2] == marked
    assert queue.read_text() == QUEUE  # the machine's copy is what changed
    # what comes back is the archive alone
    with tarfile.open(out / "device_check.tar.gz", "w:gz") as tar:
        for name in ("device_queue.md", "queue_row.json", "reports"):
            tar.add(out / name, arcname=name)
    back = tmp_path / "back"
    back.mkdir()
    (out / "device_check.tar.gz").rename(back / "device_check.tar.gz")
    csv_path = tmp_path / "benchmarks.csv"
    measured.append(csv_path, [row])  # one of the two is here already
    recorded, appended = device_queue.record(back, queue, csv_path)
    assert recorded == marked and device_queue.read(queue)[2] == marked
    assert appended == 1 and len(measured.read(csv_path)) == 2
    assert device_queue.record(back, queue, csv_path)[1] == 0  # recorded twice: once
    with pytest.raises(ValueError, match="no queue_row.json"):
        device_queue.record(tmp_path, queue, csv_path)


def test_the_committed_queue_reads_and_the_check_knows_each_stage():
    rows = device_queue.read(device_queue.QUEUE)
    assert rows[0].stage == "probe" and len({r.stage for r in rows}) == len(rows)
    script = (REPO / "benchmarks" / "device_check.sh").read_text()
    for row in rows:  # each stage is one the check knows (a pattern of its case)
        kind = row.stage.rstrip("0123456789").removesuffix("-")
        assert kind.split("-seed")[0] in script, row.stage


@pytest.mark.slow
def test_next_runs_the_first_stage_not_done_and_records_how_it_ended(tmp_path):
    """A queue whose first stage is done and whose next is ``second`` at an unknown profile,
    stopped by its limit: ``--next`` runs that one, and the archive, copied to the folder that
    comes back, brings back its row."""
    queue = tmp_path / "queue.md"
    queue.write_text(
        QUEUE.replace("| second | failed |", "| nothing-else | done |").replace(
            "| third | waiting |", "| second | waiting |"
        )
    )
    out = tmp_path / "out"
    env = os.environ | {
        "SEQSEG_PYTHON": sys.executable,
        "SEQSEG_DEVICE_QUEUE": str(queue),
        "SEQSEG_COMMIT": "feed123",
    }
    back = tmp_path / "back"  # the folder a machine sends back
    args = ["--next", "--device", "cpu", "--bench-profile", "nonsense", "--out", str(out)]
    args += ["--return", str(back), "--stage-limit", "1"]  # its two steps: 1 s for both
    result = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "device_check.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    said = result.stdout + result.stderr
    assert result.returncode == 1, said
    assert "== next stage of the queue: second" in said
    assert "== estimate of stage second" in said
    assert "| second | failed | " in said  # the row to paste
    assert said.count("stopped at the stage's --stage-limit 1 s") == 2
    assert (back / "device_check.tar.gz").is_file() and (back / "log.txt").is_file()
    with tarfile.open(back / "device_check.tar.gz") as tar:
        row = json.loads(tar.extractfile("queue_row.json").read())
    assert row["stage"] == "second" and row["state"] == "failed"
    assert row["commit"] == "feed123"
    assert row["device"].startswith("cpu")
    recorded, _ = device_queue.record(out, queue, None)
    assert device_queue.read(queue)[2] == recorded and recorded.state == "failed"
    assert device_queue.read(queue)[0].state == "done"
