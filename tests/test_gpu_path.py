"""The GPU path, proven on the CPU: host synchronisations per training step, evaluator states
on the device their updates run on, random states of one GPU, a non-finite loss stopping every
process, and determinism set both ways."""

import dataclasses
import os
import time

import pytest
import torch
import torch.multiprocessing as mp
from conftest import free_port

from seqseg_lib import costs, devices, distributed, engine, experiments, memory, speed
from seqseg_lib.claims import scaling
from seqseg_lib.data.labels import CAMVID, CITYSCAPES
from seqseg_lib.experiments import EXPERIMENTS, build_config, build_model
from seqseg_lib.metrics import SemanticEvaluator
from seqseg_lib.syncs import HostSyncCounter, host_tensors

SEMANTIC = ("seq2seg", "seq2seg-noskip", "unet")
SET_PREDICTION = ("mnist-easy", "mnist-hard", "hungarian-unet", "seq2seg-panoptic")
# EoMT trains with transformers' own loss, whose matcher copies each image's costs to the host:
# not held to the budget (notebook 08 compares it as the field ships it)
OWN_LOSS = ("eomt",)


def step_syncs(tmp_path, experiment: str, **overrides) -> HostSyncCounter:
    """Host synchronisations of one ``smoke`` training step (the second: the first creates
    the optimizer's state)."""
    torch.manual_seed(0)
    config = build_config(experiment, "smoke", device="cpu", progress=False, **overrides)
    trainer = engine.Trainer(config, tmp_path / experiment)
    images, targets = next(iter(trainer.loader(0)))
    trainer.train_step(images, targets)
    with HostSyncCounter(host_tensors(trainer.optimizer)) as syncs:
        trainer.train_step(images, targets)
    return syncs


@pytest.mark.parametrize("experiment", SEMANTIC)
def test_a_semantic_step_never_synchronises(tmp_path, experiment):
    """Nothing in it waits for the GPU (so a CUDA graph can hold it): the non-finite check
    reads a flag every ``check_every`` steps, here never."""
    syncs = step_syncs(tmp_path, experiment, check_every=1000)
    assert syncs.total == 0, dict(syncs.counts)


@pytest.mark.parametrize("experiment", SET_PREDICTION)
def test_a_set_prediction_step_synchronises_a_fixed_few_times(tmp_path, experiment):
    """The matcher's one copy of the costs, whatever the batch size and the number of queries
    (no tensor made from host data: the count of target masks was one, a hidden wait)."""
    counts = {
        (batch, queries): dict(
            step_syncs(
                tmp_path / f"{batch}-{queries}",
                experiment,
                batch_size=batch,
                model={"num_queries": queries},
                check_every=1000,
            ).counts
        )
        for batch, queries in ((2, 3), (4, 3), (4, 7))
    }
    assert all(count == {".cpu()": 1} for count in counts.values()), counts


def test_the_non_finite_check_is_the_one_synchronisation_of_its_steps(tmp_path):
    syncs = step_syncs(tmp_path, "unet", check_every=1)
    assert dict(syncs.counts) == {"item": 1}, dict(syncs.counts)


def test_the_counter_sees_what_synchronises():
    x = torch.arange(6.0)
    with HostSyncCounter() as syncs:
        x.sum().item()
        x[x > 2].sum()
        x.nonzero()
        x.cpu()
        x.tolist()
        torch.unique(x)
        torch.tensor(3.0, device=x.device)  # a copy from pageable host memory on a GPU
        torch.as_tensor([1, 2], device=x.device)
        x.to("meta")  # (a host tensor onto another device, blocking)
        x.sum() * 2  # stays on the device
        torch.full((), 3.0, device=x.device)  # a fill on the device
        torch.tensor(3.0)  # host memory, to stay there
        x.to("cpu")
    assert dict(syncs.counts) == {
        "item": 1,
        "boolean indexing": 1,
        "nonzero": 1,
        ".cpu()": 1,
        ".tolist()": 1,
        "unique": 1,
        "host data to device": 2,
        "host-to-device copy": 1,
    }


def test_every_experiment_is_under_a_budget():
    assert set(SEMANTIC + SET_PREDICTION + OWN_LOSS) == set(EXPERIMENTS)


# -- evaluator states live where their updates run ---------------------------------------------
def test_a_restored_evaluator_state_joins_the_device_of_its_updates():
    """A confusion matrix read from a checkpoint on the CPU, updated on another device (meta,
    standing in for a GPU): before, ``matrix += x.cpu()`` failed whatever the two devices."""
    trained = SemanticEvaluator(CAMVID)
    labels = torch.randint(0, 11, (2, 8, 8))
    trained.update(torch.randn(2, 11, 8, 8), labels)
    resumed = SemanticEvaluator(CAMVID, device="meta")
    resumed.load_state_dict(trained.state_dict())
    assert resumed.matrix.device.type == "meta"
    resumed.update(torch.randn(2, 11, 8, 8, device="meta"), labels.to("meta"))
    assert resumed.matrix.device.type == "meta"
    assert trained.state_dict()["matrix"].device.type == "cpu"


def test_an_evaluator_on_the_cpu_takes_a_state_from_anywhere_and_keeps_counting():
    first = SemanticEvaluator(CITYSCAPES)
    labels = torch.randint(0, 34, (1, 6, 6))
    logits = torch.randn(1, 34, 6, 6)
    first.update(logits, labels)
    second = SemanticEvaluator(CITYSCAPES)
    second.load_state_dict({"matrix": first.state_dict()["matrix"].clone()})
    second.update(logits, labels)
    assert torch.equal(second.matrix, 2 * first.matrix)


def test_training_resumes_onto_the_cpu_from_a_checkpoint_read_anywhere(tmp_path, monkeypatch):
    """``_restore`` reads the checkpoint to host memory whatever the run's device: the model,
    optimizer and evaluators copy it onto theirs."""
    config = build_config("unet", "smoke", device="cpu", progress=False, max_steps=1)
    engine.train(config, tmp_path)
    locations = []
    load = engine.load_checkpoint

    def spy(path, map_location="cpu"):
        locations.append(str(map_location))
        return load(path, map_location)

    monkeypatch.setattr(engine, "load_checkpoint", spy)
    trainer = engine.Trainer(dataclasses.replace(config, max_steps=2), tmp_path)
    assert locations == ["cpu"]
    assert trainer.running["evaluator"].matrix.device.type == "cpu"
    trainer.fit()  # the resumed step updates the restored state


# -- random states: the run's own GPU -----------------------------------------------------------
class FakeCuda:
    """``torch.cuda``'s random-state functions on a machine with ``count`` GPUs."""

    def __init__(self, count: int) -> None:
        self.count, self.set = count, []

    def get_rng_state(self, device):
        return torch.full((4,), device.index or 0, dtype=torch.uint8)

    def set_rng_state(self, state, device):
        index = device.index or 0
        if index >= self.count:
            raise IndexError(f"no GPU {index}")
        self.set.append((index, state.tolist()))


def test_a_checkpoint_holds_its_own_gpus_random_state(monkeypatch):
    fake = FakeCuda(count=4)
    monkeypatch.setattr(torch.cuda, "get_rng_state", fake.get_rng_state)
    state = devices.rng_state(torch.device("cuda", 2))
    assert state["cuda"].tolist() == [2, 2, 2, 2]
    assert devices.rng_state(torch.device("cpu"))["cuda"] is None


def test_a_checkpoint_of_several_gpus_resumes_on_one(monkeypatch):
    """Written by earlier versions with every visible GPU's state (here 8), restored on a
    machine with one: its entry only, no ``IndexError``."""
    fake = FakeCuda(count=1)
    monkeypatch.setattr(torch.cuda, "set_rng_state", fake.set_rng_state)
    states = [torch.full((4,), k, dtype=torch.uint8) for k in range(8)]
    devices.set_rng_state({"torch": torch.get_rng_state(), "cuda": states}, torch.device("cuda", 0))
    assert fake.set == [(0, [0, 0, 0, 0])]
    fake.set.clear()
    one = {"torch": torch.get_rng_state(), "cuda": states[5]}
    devices.set_rng_state(one, torch.device("cuda", 0))
    assert fake.set == [(0, [5, 5, 5, 5])]


# -- a non-finite loss stops every process ------------------------------------------------------
def _nan_worker(rank: int, world: int, port: int, run_dir: str, results) -> None:
    os.environ.update(
        {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world)}
        | {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    )
    torch.set_num_threads(1)
    config = build_config("seq2seg", "smoke", device="cpu", progress=False)
    forward = engine.forward

    def poisoned(model, criterion, images, targets, config, timer=None):
        outputs, losses, total = forward(model, criterion, images, targets, config, timer)
        if rank == 1:  # only this process sees a non-finite loss
            total = total * float("nan")
        return outputs, losses, total

    engine.forward = poisoned
    try:
        trainer = engine.Trainer(config, run_dir)
        images, targets = next(iter(trainer.loader(0)))
        trainer.train_step(images, targets)
        results.put((rank, "trained"))
    except FloatingPointError as error:
        results.put((rank, f"raised: {error}"))
    finally:
        distributed.finish()


@pytest.mark.slow
def test_a_non_finite_loss_on_one_process_stops_every_process(tmp_path):
    """Before, the process with the NaN raised and the other waited in the backward pass's
    all-reduce until the collective's timeout."""
    results = mp.get_context("spawn").Queue()
    processes = mp.start_processes(
        _nan_worker,
        (2, free_port(), str(tmp_path), results),
        nprocs=2,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + 120
    while not processes.join(timeout=5):
        if time.monotonic() > deadline:
            for process in processes.processes:
                process.kill()
            pytest.fail("a process still waits two minutes after the other one raised")
    outcomes = dict(results.get(timeout=10) for _ in range(2))
    assert set(outcomes) == {0, 1}
    assert all(outcome.startswith("raised: non-finite loss") for outcome in outcomes.values())
    assert "on another process, in the 1 step(s) to step 1 " in outcomes[0]
    assert "at step 1 (epoch 0) on this process" in outcomes[1]


# -- determinism is a choice ---------------------------------------------------------------------
def test_paper_on_cuda_uses_the_autotuner_unless_asked(monkeypatch):
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    paper = build_config("unet", "paper", device="cpu")
    assert not engine.deterministic(paper, cuda)
    assert engine.deterministic(paper, cpu)
    asked = build_config("unet", "paper", device="cpu", deterministic=True)
    assert engine.deterministic(asked, cuda)
    for profile in ("cpu", "smoke"):
        assert engine.deterministic(build_config("unet", profile), cuda)


def test_determinism_is_set_both_ways(monkeypatch):
    """One process that trains a deterministic run then a fast one (a notebook) does not carry
    the first choice over."""
    calls = []
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda on, **_: calls.append(on))
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    engine.set_determinism(torch.device("cuda"), True)
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    engine.set_determinism(torch.device("cuda"), False)
    assert not torch.backends.cudnn.deterministic and torch.backends.cudnn.benchmark
    assert calls == [True, False]


# -- memory: estimated before a step runs ------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    ("experiment", "crop", "model"),
    [
        ("seq2seg", (256, 512), {"attention": "eager"}),  # 512 tokens of 16x16 patches
        ("seq2seg", (256, 512), {"attention": "sdpa"}),
        ("unet", (128, 256), {}),
    ],
)
def test_the_memory_estimate_is_near_the_measured_peak(experiment, crop, model):
    config = experiments.scaled_config(experiment, "cpu", crop, **model)
    parameters = sum(p.numel() for p in build_model(config).parameters())
    estimate = memory.estimate_step_bytes(config, 2, parameters)["total"]
    measured = speed.peak_step_memory(config, 2)
    assert 0.6 < estimate / measured < 1.5, (estimate / 2**20, measured / 2**20)


def test_the_estimate_reads_each_model_by_its_settings_type():
    """Every experiment's settings class says what the estimate counts (``memory_footprint``):
    a Transformer for the Seq2Segs and EoMT, a U-Net's feature maps, query masks for set
    prediction. Settings without one cannot be estimated, and so are not refused."""
    kinds = {}
    for name in EXPERIMENTS:
        config = build_config(name, "smoke")
        assert isinstance(config.model, memory.HasFootprint), name
        terms = memory.estimate_step_bytes(config, 2)
        kinds[name] = (terms["tokens"] > 0, terms["features"] > 0)
    assert kinds["unet"] == kinds["hungarian-unet"] == (False, True)
    assert kinds["seq2seg"] == kinds["mnist-easy"] == kinds["eomt"] == (True, False)

    @dataclasses.dataclass(frozen=True)
    class Unknown:
        num_classes: int = 3

    config = dataclasses.replace(build_config("unet", "smoke"), model=Unknown())
    with pytest.raises(ValueError, match="Unknown has no memory_footprint"):
        memory.estimate_step_bytes(config, 2)
    assert memory.why_it_cannot_fit(config, 2, "cpu") is None


def test_eager_attention_at_the_largest_paper_size_does_not_fit_an_h200(monkeypatch):
    """Notebook 05 at ``paper``: 8,192 tokens at batch 8 hold 8 * 12 * 8192^2 float32
    probabilities per layer (24 GiB) in eager attention; SDPA holds none."""
    monkeypatch.setattr(memory, "device_memory", lambda device: 139 * 2**30)
    crop, batch = (1024, 2048), scaling.STUDY["paper"]["batch_size"]
    eager = experiments.scaled_config("seq2seg", "paper", crop, attention="eager")
    sdpa = experiments.scaled_config("seq2seg", "paper", crop, attention="sdpa")
    assert memory.estimate_step_bytes(eager, batch)["attention"] > 6 * 8 * 12 * 8192**2 * 4
    reason = memory.why_it_cannot_fit(eager, batch, "cuda")
    assert reason is not None and "attention" in reason and "139.0 GiB" in reason
    assert memory.why_it_cannot_fit(sdpa, batch, "cuda") is None


def test_the_scaling_study_skips_what_cannot_fit_with_a_line(monkeypatch, capsys):
    """No step is attempted for a row estimated above the device's memory: it is listed with
    the reason, and the slopes and verdicts use the rows that ran."""
    monkeypatch.setattr(memory, "device_memory", lambda device: 400 * 2**20)
    attempted = []

    class FakeStep:
        def __init__(self, config, batch_size, device):
            attempted.append(memory.estimate_step_bytes(config, batch_size)["total"])

        def seconds(self):
            return 1.0

    monkeypatch.setattr(costs, "TrainingStep", FakeStep)
    monkeypatch.setattr(costs, "training_flops", lambda config, batch, device: 1e9)
    monkeypatch.setattr(costs, "peak_step_memory", lambda config, batch, device: 2**20)
    crops = experiments.side_doublings((64, 128), 4)
    table = costs.scaling_table("cpu", crops, batch_size=2, repeats=1)
    skipped = table.dropna(subset=["skipped"])
    assert 0 < len(skipped) < len(table)
    assert all(text.startswith("skipped: ") for text in skipped["skipped"])
    assert skipped["seconds"].isna().all() and len(attempted) == len(table) - len(skipped)
    assert "skipped: " in capsys.readouterr().out
    slopes = scaling.fitted_slopes(table)
    assert slopes.notna().all().all()
    assert "skipped: " in scaling.compare_scaling(slopes, table)


def test_a_run_that_cannot_fit_is_refused_before_its_first_step(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "device_memory", lambda device: 2**20)
    config = build_config("unet", "smoke", device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"refusing to train unet .* needs about .* GiB"):
        engine.Trainer(config, tmp_path)
    assert not (tmp_path / engine.CONFIG).exists()


def test_a_run_whose_data_cannot_load_leaves_no_run_directory(tmp_path):
    config = build_config("unet", "smoke", "camvid", data_root=str(tmp_path / "missing"))
    with pytest.raises(ValueError):
        engine.Trainer(config, tmp_path / "run")
    assert not (tmp_path / "run" / engine.CONFIG).exists()


# -- checkpoints every k epochs --------------------------------------------------------------------
def test_paper_checkpoints_every_few_epochs_and_the_others_every_epoch():
    assert build_config("seq2seg", "paper").checkpoint_epochs == 5
    assert build_config("seq2seg", "cpu").checkpoint_epochs == 1
    assert build_config("seq2seg", "paper", checkpoint_epochs=1).checkpoint_epochs == 1
    with pytest.raises(ValueError, match="checkpoint_epochs must be a positive integer"):
        build_config("unet", "smoke", checkpoint_epochs=0)


def test_a_run_killed_between_checkpoints_repeats_its_epochs_to_the_same_weights(
    tmp_path, monkeypatch
):
    config = build_config(
        "unet", "smoke", device="cpu", progress=False, epochs=5, checkpoint_epochs=2
    )
    engine.train(config, tmp_path / "whole")
    saved = []
    save = engine.Trainer.save

    def save_then_die(trainer):
        if trainer.position["epoch"] == 5:  # the last epoch's checkpoint is never written
            raise KeyboardInterrupt
        saved.append(trainer.position["epoch"])
        save(trainer)

    monkeypatch.setattr(engine.Trainer, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        engine.train(config, tmp_path / "killed")
    assert saved == [2, 4]  # every 2 epochs
    assert len(engine.read_metrics(tmp_path / "killed")) == 5
    monkeypatch.setattr(engine.Trainer, "save", save)
    records = engine.train(config, tmp_path / "killed")  # epoch 5 again, from epoch 4's
    assert [r["epoch"] for r in records] == [0, 1, 2, 3, 4]
    whole = engine.load_checkpoint(tmp_path / "whole" / engine.CHECKPOINT)["model"]
    resumed = engine.load_checkpoint(tmp_path / "killed" / engine.CHECKPOINT)["model"]
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key


# -- what the workers send -------------------------------------------------------------------------
def test_semantic_labels_travel_as_bytes_and_compute_the_same():
    from seqseg_lib.data.targets import collate_semantic
    from seqseg_lib.losses import SemanticCriterion

    generator = torch.Generator().manual_seed(0)
    items = [
        {"image": torch.rand(3, 8, 8, generator=generator), "labels": labels}
        for labels in torch.randint(0, 34, (2, 8, 8), generator=generator)
    ]
    items[0]["labels"][0, :3] = 255  # ignored pixels
    images, labels = collate_semantic(items)
    assert labels.dtype == torch.uint8
    wide = labels.long()
    logits = torch.randn(2, 34, 8, 8, generator=generator)
    criterion = SemanticCriterion()
    assert torch.equal(criterion(logits, labels)["loss_bce"], criterion(logits, wide)["loss_bce"])
    narrow, int64 = SemanticEvaluator(CITYSCAPES), SemanticEvaluator(CITYSCAPES)
    narrow.update(logits, labels)
    int64.update(logits, wide)
    assert torch.equal(narrow.matrix, int64.matrix)


def test_a_dry_run_trains_one_batch_and_validates_a_few_images(monkeypatch):
    """``./run_all.sh --dry-run``: every config, ``paper``'s included, one step on one batch
    and ``SEQSEG_DRY_RUN`` validation images; the study of notebook 05 at its two smallest
    sizes; a value that is not a count is refused, naming the variable."""
    from seqseg_lib.experiments import DRY_RUN_ENV

    monkeypatch.setenv(DRY_RUN_ENV, "3")
    for experiment in EXPERIMENTS:
        config = build_config(experiment, "paper", device="cpu")
        assert (config.num_train, config.num_val, config.max_steps) == (2, 3, 1)
        assert config.batch_size == 2
    assert scaling.study("paper")["sizes"] == 2 and scaling.study("paper")["repeats"] == 1
    monkeypatch.setenv(DRY_RUN_ENV, "many")
    with pytest.raises(ValueError, match=DRY_RUN_ENV):
        build_config("unet", "paper", device="cpu")
    monkeypatch.delenv(DRY_RUN_ENV)
    assert build_config("unet", "paper", device="cpu").max_steps is None
    assert scaling.study("paper") == scaling.STUDY["paper"]


def test_fused_adam_is_off_on_cpu_unless_asked(tmp_path):
    """Adam's fused kernels: off on CPU unless asked, so that the ``cpu`` numbers stay those
    of the default implementation; asked for, a fused step runs on CPU."""
    config = build_config("unet", "smoke", device="cpu", progress=False)
    trainer = engine.Trainer(config, tmp_path / "default")
    assert not trainer.optimizer.defaults["fused"]
    asked = dataclasses.replace(config, fused_adam=True, max_steps=1)
    trainer = engine.Trainer(asked, tmp_path / "fused")
    assert trainer.optimizer.defaults["fused"]
    trainer.fit()  # a fused step on CPU runs
    assert engine.read_metrics(tmp_path / "fused")[-1]["global_step"] == 1


def test_sdpa_with_dropout_on_a_cpu_counts_its_attention_matrices():
    """On a CPU, PyTorch's SDPA has no fused kernel with dropout and falls back to its math
    path: the ``N^2`` probabilities of every layer are held, as in eager attention (the paper
    dry run of notebook 07, 4x4 patches at batch 24: 2,048 tokens, killed for memory before
    this). On CUDA its fused kernels hold none."""
    config = experiments.scaled_config("seq2seg", "paper", (128, 256), 4, dropout=0.1)
    cpu = memory.estimate_step_bytes(config, 24, device="cpu")
    assert cpu["attention"] > 6 * 24 * 12 * 2048**2 * 4
    assert memory.estimate_step_bytes(config, 24, device="cuda")["attention"] == 0
    no_dropout = dataclasses.replace(config, model=dataclasses.replace(config.model, dropout=0.0))
    assert memory.estimate_step_bytes(no_dropout, 24, device="cpu")["attention"] == 0
