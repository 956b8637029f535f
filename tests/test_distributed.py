"""Several processes (``seqseg_lib.distributed``): the sharding, the merged metrics, and two
gloo processes on CPU training what one process trains, and resuming after being killed."""

import dataclasses
import json
import os
import subprocess
import sys
import time

import pytest
import torch
import torch.multiprocessing as mp
from conftest import REPO, free_port
from test_tensorboard import events

from seqseg_lib import distributed, engine
from seqseg_lib.experiments import build_config


def as_rank(monkeypatch, rank: int, world: int) -> None:
    monkeypatch.setattr(distributed, "world_size", lambda: world)
    monkeypatch.setattr(distributed, "rank", lambda: rank)


def test_every_global_batch_is_split_in_consecutive_shares(monkeypatch):
    order = list(range(10))
    shares = []
    for rank in range(3):
        as_rank(monkeypatch, rank, 3)
        shares.append(distributed.shard_batches(order, 6, drop_last=False))
    # batch 0..5 in shares of 2; the last partial batch 6..9 as evenly as it goes
    assert shares == [[0, 1, 6], [2, 3, 7], [4, 5, 8, 9]]
    as_rank(monkeypatch, 0, 3)
    assert distributed.shard_batches(order, 6, drop_last=True) == [0, 1]
    assert distributed.shard_batches(list(range(8)), 6, drop_last=False) == [0, 1]  # 2 < 3


def test_sampler_resumes_within_this_process_share(monkeypatch):
    as_rank(monkeypatch, 1, 2)
    full = list(engine.EpochSampler(12, seed=0, epoch=3, batch_size=4))
    assert len(full) == 6
    assert list(engine.EpochSampler(12, seed=0, epoch=3, start=2, batch_size=4)) == full[2:]
    order = torch.randperm(12, generator=torch.Generator().manual_seed(3)).tolist()
    assert full == order[2:4] + order[6:8] + order[10:12]


def test_merged_states_sum_numbers_and_tensors_and_join_lists():
    states = [
        {"matrix": torch.ones(2, 2, dtype=torch.long), "counts": {"tp": 1.0}, "records": [1]},
        {"matrix": torch.ones(2, 2, dtype=torch.long), "counts": {"tp": 2.5}, "records": [2, 3]},
    ]
    merged = distributed.merge_states(states)
    assert torch.equal(merged["matrix"], torch.full((2, 2), 2))
    assert merged["counts"] == {"tp": 3.5} and merged["records"] == [1, 2, 3]


def test_one_process_is_the_identity():
    count = torch.tensor(7.0)
    with distributed.global_normalization():
        assert distributed.global_count(count) is count
    assert distributed.merged({"a": 1}) == {"a": 1}
    assert distributed.shard_batches([3, 1, 2], 2, drop_last=False) == [3, 1, 2]


def _worker(rank: int, world: int, port: int, config, run_dir: str, stop_after: int) -> None:
    """One torchrun process, by hand: its environment, then the engine."""
    os.environ.update(
        {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world)}
        | {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    )
    torch.set_num_threads(1)
    if stop_after:  # killed right after the checkpoint of that step, on every process
        save = engine.Trainer.save

        def save_then_die(trainer):
            save(trainer)
            if trainer.position["global_step"] == stop_after:
                os._exit(0)

        engine.Trainer.save = save_then_die
    try:
        engine.train(config, run_dir)
    finally:
        distributed.finish()


def train_on(world: int, config, run_dir, stop_after: int = 0) -> None:
    mp.spawn(_worker, (world, free_port(), config, str(run_dir), stop_after), nprocs=world)


def weights(run_dir):
    return engine.load_checkpoint(run_dir / engine.CHECKPOINT)["model"]


def smoke(experiment: str, **overrides):
    # dropout 0: one process and two draw their dropout masks from different generators
    return build_config(experiment, "smoke", model={"dropout": 0.0}, progress=False, **overrides)


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["seq2seg", "mnist-easy"])
def test_two_processes_train_the_weights_of_one(tmp_path, experiment):
    config = smoke(experiment)
    torch.set_num_threads(1)
    engine.train(config, tmp_path / "one")
    train_on(2, config, tmp_path / "two")
    one, two = weights(tmp_path / "one"), weights(tmp_path / "two")
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5, msg=key)
    records = [engine.read_metrics(tmp_path / name)[-1] for name in ("one", "two")]
    assert records[1]["train"]["loss"] == pytest.approx(records[0]["train"]["loss"], rel=1e-4)
    for key in ("accuracy", "dice_loss", "miou"):
        if key in records[0]["val"]:
            assert records[1]["val"][key] == pytest.approx(records[0]["val"][key], abs=1e-5)
    # TensorBoard: rank 0 alone writes, the records those of one process
    assert len(list((tmp_path / "two").glob("events.out.tfevents.*"))) == 1
    one, two = (events(tmp_path / name) for name in ("one", "two"))
    assert [(e.step, pytest.approx(e.value, rel=1e-4)) for e in one.Scalars("train/loss")] == [
        (e.step, e.value) for e in two.Scalars("train/loss")
    ]
    assert [e.step for e in one.Scalars("train_step/loss")] == [
        e.step for e in two.Scalars("train_step/loss")
    ]


@pytest.mark.slow
def test_a_killed_two_process_run_resumes(tmp_path):
    config = smoke("mnist-easy", checkpoint_every=1)  # 2 epochs of 4 steps
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, dropout=0.1))
    train_on(2, config, tmp_path / "whole")
    train_on(2, config, tmp_path / "killed", stop_after=5)  # within the second epoch
    position = engine.load_checkpoint(tmp_path / "killed" / engine.CHECKPOINT)["position"]
    assert position == {"epoch": 1, "step_in_epoch": 1, "global_step": 5}
    train_on(2, config, tmp_path / "killed")  # resumed
    whole, resumed = weights(tmp_path / "whole"), weights(tmp_path / "killed")
    for key in whole:
        assert torch.equal(resumed[key], whole[key]), key
    lines = (tmp_path / "killed" / engine.METRICS).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0, 1]


def test_a_batch_that_does_not_divide_among_the_processes_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(distributed, "init", lambda device: device)
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    with pytest.raises(ValueError, match="batch_size 4 .the global batch. does not divide"):
        engine.Trainer(smoke("seq2seg"), tmp_path)


FAILING_SHARE = """
import os, sys
from seqseg_lib import __main__ as cli
from seqseg_lib.data.synthetic import SyntheticCityscapes

if os.environ["RANK"] == "1":  # a bad data file in this process's share, from its 7th item
    get, calls = SyntheticCityscapes.__getitem__, [0]

    def broken(self, index):
        calls[0] += 1
        if calls[0] > 6:
            raise ValueError(f"bad data file read by rank 1 (item {index})")
        return get(self, index)

    SyntheticCityscapes.__getitem__ = broken
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_an_error_on_one_torchrun_process_ends_the_group(tmp_path):
    """The process that raises prints its error and exits; the other stops at its next
    collective instead of waiting in it, and torchrun ends with the group's failure."""
    script = tmp_path / "failing_share.py"
    script.write_text(FAILING_SHARE)
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
        + [f"--master_port={free_port()}", str(script), "train", "unet", "--profile", "smoke"]
        + ["--out", str(tmp_path / "run"), "--device", "cpu"],
        env=os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert time.monotonic() - start < 60
    assert result.returncode != 0
    assert "error: bad data file read by rank 1" in result.stderr
