"""The training engine: train, evaluate, checkpoint, resume. It knows nothing about models.

A run directory holds ``config.json`` (the resolved config), ``metrics.jsonl`` (one JSON
line per epoch: train and validation loss terms and metrics) and ``checkpoint.pt`` (model,
optimizer, schedulers, RNG states, running metrics and position). Running ``train`` again on
a directory with a checkpoint continues from it; an uninterrupted run and a resumed one end
with the same weights on CPU, bit for bit:

- the data order of epoch ``e`` is a permutation seeded by ``(seed, e)``, and augmentation
  draws from generators seeded by ``(seed, epoch, index)`` (``data/transforms.py``);
- the global RNG (dropout) is saved and restored with the step;
- checkpoints, and ``metrics.jsonl`` when a resumption rewrites it, are written to a
  temporary file, then renamed: a crash while writing leaves the previous file intact.

Under torchrun (``seqseg_lib.distributed``) every process trains its share of each global
batch through ``DistributedDataParallel``; rank 0 alone writes the run directory, and the
checkpoint holds every process's RNG state, so a killed multi-process run resumes as well.

``evaluate`` only reads a run directory.
"""

import dataclasses
import json
import os
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import ChainedScheduler, LinearLR, MultiStepLR
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from seqseg_lib import distributed
from seqseg_lib.config import Config
from seqseg_lib.devices import configure_device, describe_device, resolve_device
from seqseg_lib.experiments import config_from_dict, get_experiment
from seqseg_lib.experiments.base import Experiment
from seqseg_lib.memory import why_it_cannot_fit
from seqseg_lib.progress import Progress
from seqseg_lib.runlock import run_lock

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
METRICS = "metrics.jsonl"


def prepare(dataset: Dataset) -> None:
    """Load what a dataset caches (rendered scenes, the memory-mapped cache of resized files)
    once, in this process, where it has a ``prepare`` method."""
    if hasattr(dataset, "prepare"):
        dataset.prepare()


def memory_format(experiment: Experiment, device: torch.device) -> torch.memory_format:
    """``channels_last`` for the convolutional experiments on CUDA, else the default."""
    if experiment.channels_last and device.type == "cuda":
        return torch.channels_last
    return torch.contiguous_format


def deterministic(config: Config, device: torch.device) -> bool:
    """Whether a run asks for bit-identical results: ``config.deterministic`` when given, else
    every run but ``paper`` on CUDA (whose speed comes from cuDNN's autotuner)."""
    if config.deterministic is not None:
        return config.deterministic
    return not (config.profile == "paper" and device.type == "cuda")


def set_determinism(device: torch.device, enabled: bool = True) -> None:
    """Deterministic kernels where PyTorch has them, or the fastest ones: set both ways, so
    that one run's choice does not carry over to the next run of the same process.

    CPU kernels used here are deterministic for a fixed thread count whatever ``enabled``
    says. On CUDA, ``enabled`` sets cuDNN to deterministic, disables its autotuner and asks for
    deterministic algorithms with ``warn_only=True`` (a few CUDA kernels, e.g. the backward of
    some interpolations and ``index_put`` with accumulation, have no deterministic version and
    only warn); otherwise cuDNN's autotuner (``cudnn.benchmark``) picks each convolution's
    fastest algorithm for the run's fixed input size.
    """
    if device.type != "cuda":
        return
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled
    torch.use_deterministic_algorithms(enabled, warn_only=True)


class EpochSampler(Sampler[int]):
    """A permutation seeded by ``(seed, epoch)``, started at ``start`` (to resume mid-epoch).

    Under several processes, this process's share of each global batch of ``batch_size``
    (``distributed.shard_batches``), ``start`` counted in its own items.
    """

    def __init__(
        self,
        size: int,
        seed: int,
        epoch: int,
        start: int = 0,
        batch_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(size, generator=generator).tolist()
        if distributed.world_size() > 1:
            order = distributed.shard_batches(order, batch_size, drop_last)
        self.order = order[start:]

    def __iter__(self):
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


class TrainOrder(Sampler[tuple[int, int]]):
    """``(epoch, index)`` pairs of the current epoch's ``EpochSampler``; ``set_position`` moves
    it to another epoch or start. One DataLoader then serves every epoch of a run, so that its
    workers persist (forked once, not at every epoch)."""

    def __init__(self, size: int, seed: int, batch_size: int, drop_last: bool) -> None:
        self.size, self.seed, self.batch_size, self.drop_last = size, seed, batch_size, drop_last
        self.set_position(0, 0)

    def set_position(self, epoch: int, start: int) -> None:
        self.epoch = epoch
        self.order = EpochSampler(
            self.size, self.seed, epoch, start, self.batch_size, self.drop_last
        )

    def __iter__(self):
        return ((self.epoch, index) for index in self.order)

    def __len__(self) -> int:
        return len(self.order)


class EpochItems(Dataset):
    """``dataset`` read by ``(epoch, index)`` pairs: each item is made with the epoch that asks
    for it (``dataset.set_epoch``), in whichever process makes it; persistent workers hold
    copies of the dataset that the main process's ``set_epoch`` never reaches."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


def _loader_generator(seed: int, epoch: int) -> torch.Generator:
    """A DataLoader draws its workers' base seed when an iterator starts; from its own
    generator, that draw leaves the global RNG (dropout) alone, so resuming does not shift it."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch + 7)


def build_schedulers(optimizer: torch.optim.Optimizer, config: Config):
    """Per-epoch learning-rate steps as chained ``MultiStepLR`` (one per milestone, its gamma
    the ratio of consecutive rates), and an optional per-step linear warm-up."""
    milestones, previous = [], config.lr
    for epoch, lr in config.lr_milestones:
        milestones.append(MultiStepLR(optimizer, [epoch], gamma=lr / previous))
        previous = lr
    epoch_scheduler = ChainedScheduler(milestones or [MultiStepLR(optimizer, [], gamma=1.0)])
    step_scheduler = None
    if config.warmup_steps:
        step_scheduler = LinearLR(optimizer, 1e-3, 1.0, total_iters=config.warmup_steps)
    return epoch_scheduler, step_scheduler


def write_atomically(path: Path, write) -> None:
    """``write(handle)`` into a temporary file in the same folder, flushed to disk, then
    renamed over ``path``: a crash at any moment leaves either the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    write_atomically(path, lambda handle: torch.save(state, handle))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with ``weights_only=True``: tensors and plain values only, nothing executed."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # UnpicklingError, RuntimeError, EOFError, ...
        raise ValueError(
            f"refusing to load checkpoint {str(path)!r}: it is not a checkpoint of tensors and "
            f"plain values written by seqseg ({type(error).__name__}: {str(error)[:300]})"
        ) from None


def prepare_run_dir(config: Config, run_dir: Path) -> None:
    """Create ``run_dir`` and save ``config``; refuse a directory made with another config."""
    check_run_config(config, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG).write_text(json.dumps(config.to_dict(), indent=2) + "\n")


def check_run_config(config: Config, run_dir: Path) -> None:
    """Raise ``ValueError`` listing the differing fields if ``run_dir`` holds another config."""
    saved_path = Path(run_dir) / CONFIG
    if saved_path.exists():
        saved = config_from_dict(json.loads(saved_path.read_text()))
        differences = saved.differences(config)
        if differences:
            raise ValueError(
                f"run directory {str(run_dir)!r} was made with another config; refusing to "
                f"resume. Differing fields (saved != requested): {'; '.join(differences)}"
            )


def load_config(run_dir: str | os.PathLike) -> Config:
    """The ``Config`` saved in a run directory's ``config.json``."""
    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise ValueError(f"{str(run_dir)!r} is not a run directory: no {CONFIG}")
    return config_from_dict(json.loads(path.read_text()))


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The per-epoch records of a run directory's ``metrics.jsonl``. A last line cut short (the
    run killed while appending it) is left out: resuming writes that epoch again."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines):
                break
            raise ValueError(
                f"{str(path)!r}, line {number}, is not a JSON record: {error}"
            ) from None
    return records


def keep_metrics_before(run_dir: Path, epoch: int) -> None:
    """Drop the records of epochs the checkpoint does not cover (written after it, before a
    kill), rewriting ``metrics.jsonl`` atomically; nothing is written when none is dropped."""
    path = run_dir / METRICS
    if not path.exists():
        return
    text = "".join(json.dumps(r) + "\n" for r in read_metrics(run_dir) if r["epoch"] < epoch)
    if text != path.read_text():  # records to drop, or a last line cut short
        write_atomically(path, lambda handle: handle.write(text.encode()))


class PhaseTimer:
    """Seconds spent in each phase of each training step (``data``, ``forward``, ``loss``,
    ``backward``, ``optimizer``, ``metrics``), one dict per step in ``steps``, when enabled.

    On CUDA every phase boundary synchronises the device, which slows training down: enable it
    to measure where time goes, not to train."""

    def __init__(self, enabled: bool = False, device: torch.device | None = None) -> None:
        self.enabled = enabled
        self.cuda = device is not None and device.type == "cuda"
        self.steps: list[dict[str, float]] = []
        self.current: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str):
        if not self.enabled:
            yield
            return
        self._synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._synchronize()
            elapsed = time.perf_counter() - start
            self.current[phase] = self.current.get(phase, 0.0) + elapsed

    def end_step(self) -> None:
        if self.enabled:
            self.steps.append(self.current)
            self.current = {}

    def _synchronize(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()


class Trainer:
    """Holds what a run needs; ``fit`` trains to the end (or ``max_steps``) and returns the
    per-epoch records. ``timed=True`` records where each step's time goes (``timer.steps``)."""

    def __init__(self, config: Config, run_dir: str | os.PathLike, timed: bool = False) -> None:
        self.config, self.run_dir = config, Path(run_dir)
        self.device = distributed.init(resolve_device(config.device))
        self.world = distributed.world_size()
        if config.batch_size % self.world:
            raise ValueError(
                f"batch_size {config.batch_size} (the global batch) does not divide among "
                f"{self.world} processes: use a number of processes that divides it"
            )
        check_run_config(config, self.run_dir)  # every process, before any of them writes
        self.timer = PhaseTimer(timed, self.device)
        set_determinism(self.device, deterministic(config, self.device))
        configure_device(self.device)
        self.experiment = get_experiment(config.experiment)
        self.memory_format = memory_format(self.experiment, self.device)
        torch.manual_seed(config.seed)
        self.model, self.train_model = self._build_model()
        parameters = sum(p.numel() for p in self.model.parameters())
        reason = why_it_cannot_fit(config, config.batch_size // self.world, self.device, parameters)
        if reason is not None:  # refused before any step, rather than out of memory in one
            raise ValueError(f"refusing to train {config.experiment} in {self.run_dir}: {reason}")
        self.train_set, self.val_set = self.experiment.build_datasets(config)
        # before DataLoader workers fork and share it; rank 0 first, on every core, writing the
        # machine's cache of rendered scenes or resized files; the other processes read it
        for main in (True, False):
            if distributed.is_main() == main:
                for dataset in (self.train_set, self.val_set):
                    prepare(dataset)
            if main:
                distributed.barrier()
        # written once the model and the data are known to load: a refused or failed start
        # leaves no run directory behind to refuse the corrected command
        if distributed.is_main():
            prepare_run_dir(config, self.run_dir)
        distributed.barrier()
        self.criterion = self.experiment.build_criterion(config).to(self.device)
        fused = config.fused_adam
        fused = self.device.type == "cuda" if fused is None else fused
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, fused=fused)
        self.epoch_scheduler, self.step_scheduler = build_schedulers(self.optimizer, config)
        self.position = {"epoch": 0, "step_in_epoch": 0, "global_step": 0}
        self.running = self._new_running()
        self._train_loader: DataLoader | None = None  # built once: ``loader``
        self._eval_loaders: dict[int, DataLoader] = {}  # per dataset: ``validate``
        self._restore()

    def _build_model(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        """The model, and what trains it: itself, or under several processes its
        ``DistributedDataParallel`` wrapper (BatchNorm synchronised across GPUs; gloo has no
        synchronised BatchNorm, so on CPU each process normalises its own share)."""
        model = self.experiment.build_model(self.config)
        if self.world > 1 and self.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model.to(self.device, memory_format=self.memory_format)
        if self.world == 1:
            return model, torch.compile(model) if self.config.compile else model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        # static_graph: the same parameters take part in every step (BERT's pooler in none)
        wrapped = DistributedDataParallel(model, device_ids=device_ids, static_graph=True)
        return model, torch.compile(wrapped) if self.config.compile else wrapped

    # -- state -------------------------------------------------------------------------
    def _new_running(self) -> dict[str, Any]:
        """The epoch's running sums; its training-set evaluator where the experiment has one
        (``Experiment.evaluates_training_set``), else None."""
        evaluator = None
        if self.experiment.evaluates_training_set:
            evaluator = self.experiment.build_evaluator(self.config, self.train_set)
        return {"evaluator": evaluator, "loss_sums": {}, "num_batches": 0, "num_images": 0}

    def state_dict(self) -> dict[str, Any]:
        running = self.running
        return {
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch_scheduler": self.epoch_scheduler.state_dict(),
            "step_scheduler": self.step_scheduler.state_dict() if self.step_scheduler else None,
            "position": dict(self.position),
            # this process's RNG states; under several processes, the list of every one's
            "rng": rng_state(self.device)
            if self.world == 1
            else distributed.all_gather(rng_state(self.device)),
            # the running sums of every process, merged (rank 0 resumes them, the others
            # start from zero)
            "running": {
                "evaluator": None
                if running["evaluator"] is None
                else distributed.merged(running["evaluator"].state_dict()),
                "loss_sums": distributed.merged(host_values(running["loss_sums"])),
                "num_batches": running["num_batches"],
                "num_images": distributed.merged(running["num_images"]),
            },
        }

    def save(self) -> None:
        """Write the checkpoint (rank 0; every process must call it: it gathers their states)."""
        state = self.state_dict()
        if distributed.is_main():
            save_checkpoint(self.run_dir / CHECKPOINT, state)
        distributed.barrier()

    def _restore(self) -> None:
        """Continue from the run directory's checkpoint, if it has one."""
        path = self.run_dir / CHECKPOINT
        if not path.exists():
            return
        # read to host memory: the model and optimizer copy their states onto their own
        # devices, the evaluators onto theirs
        state = load_checkpoint(path, "cpu")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch_scheduler.load_state_dict(state["epoch_scheduler"])
        if self.step_scheduler is not None:
            self.step_scheduler.load_state_dict(state["step_scheduler"])
        self.position = dict(state["position"])
        rng = state["rng"]  # one process's, or a list of every process's
        rng = rng[min(distributed.rank(), len(rng) - 1)] if isinstance(rng, list) else rng
        set_rng_state(rng, self.device)
        running = state["running"]
        self.running["num_batches"] = running["num_batches"]
        if distributed.is_main():
            if self.running["evaluator"] is not None:
                self.running["evaluator"].load_state_dict(running["evaluator"])
            self.running["num_images"] = running["num_images"]
            self.running["loss_sums"] = {
                key: torch.as_tensor(value, dtype=torch.float64, device=self.device)
                for key, value in running["loss_sums"].items()
            }
            keep_metrics_before(self.run_dir, self.position["epoch"])
        distributed.barrier()

    # -- loops -------------------------------------------------------------------------
    def fit(self) -> list[dict[str, Any]]:
        """Train to the last epoch, or to ``max_steps``. A run stopped by ``max_steps`` within
        an epoch ends with a record of that partial epoch (``"partial": true``: its training
        metrics so far and a validation), which resuming replaces by the whole epoch's."""
        config = self.config
        shown = config if distributed.is_main() else dataclasses.replace(config, progress=False)
        with Progress(shown, self.position, len(self.loader(0))) as progress:
            parameters = sum(p.numel() for p in self.model.parameters())
            environment = self.environment()
            progress.note(
                f"{parameters:,} parameters, {environment['device']}, "
                f"{environment['precision']}, run directory {self.run_dir}"
            )
            while self.position["epoch"] < config.epochs:
                if not self._train_epoch(progress):
                    self.save()  # stopped by max_steps
                    if self.position["step_in_epoch"] > 0:
                        self._write_record(partial=True)
                    break
                record = self._end_epoch()
                progress.epoch_done(record)
        distributed.barrier()  # rank 0 has written every record
        return read_metrics(self.run_dir)

    def loader(self, start: int) -> DataLoader:
        """The training loader at the current epoch, from its ``start``-th item of this
        process's share. One loader for the whole run: with workers, they persist."""
        epoch = self.position["epoch"]
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)
        config, world = self.config, self.world
        if self._train_loader is None:
            order = TrainOrder(
                len(self.train_set), config.seed, config.batch_size, config.drop_last
            )
            self._train_loader = DataLoader(
                EpochItems(self.train_set),
                batch_size=config.batch_size // world,  # this process's share of the batch
                sampler=order,
                drop_last=config.drop_last and world == 1,  # (shares: the sampler dropped it)
                collate_fn=self.experiment.collate_fn,
                num_workers=config.num_workers,
                persistent_workers=config.num_workers > 0,
                pin_memory=self.device.type == "cuda",
                generator=_loader_generator(config.seed, 0),
            )
        self._train_loader.sampler.set_position(epoch, start)
        return self._train_loader

    def _train_epoch(self, progress: Progress) -> bool:
        """Train to the end of the epoch; False if ``max_steps`` stopped it first."""
        config, position = self.config, self.position
        self.model.train()
        self.epoch_start = time.monotonic()  # (resumed epochs: the time since resuming)
        share = config.batch_size // self.world
        batches = iter(self.loader(position["step_in_epoch"] * share))
        while True:
            with self.timer("data"):
                batch = next(batches, None)
            if batch is None:
                return True
            if config.max_steps is not None and position["global_step"] >= config.max_steps:
                return False
            self.train_step(*batch)
            position["step_in_epoch"] += 1
            position["global_step"] += 1
            progress.step(self.running)
            if config.checkpoint_every and position["global_step"] % config.checkpoint_every == 0:
                self.save()

    def train_step(self, images, targets) -> None:
        timer = self.timer
        with timer("data"):
            images, targets = to_device(images, self.device), to_device(targets, self.device)
            images = images.contiguous(memory_format=self.memory_format)
        with distributed.global_normalization():
            outputs, losses, total = forward(
                self.train_model, self.criterion, images, targets, self.config, timer
            )
        # one host synchronisation, on every process: a non-finite loss on any process stops all
        # of them here, before the backward pass's all-reduce would wait for the one that raised
        if not distributed.all_true(torch.isfinite(total.detach())):
            values = {k: float(v) for k, v in losses.items()}
            raise FloatingPointError(
                f"non-finite loss at step {self.position['global_step'] + 1} (epoch "
                f"{self.position['epoch']}, batch {self.position['step_in_epoch']}) on "
                f"{'this process' if self.world == 1 else 'at least one process'}: this "
                f"process's terms {values}; the last checkpoint in {str(self.run_dir)!r} is "
                "left as it was"
            )
        with timer("backward"):
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
        with timer("optimizer"):
            self.optimizer.step()
            if self.step_scheduler is not None:
                self.step_scheduler.step()  # constant once the warm-up is over
        with timer("metrics"):
            accumulate(self.running, losses, total, batch_size(images))
            if self.running["evaluator"] is not None:
                self.running["evaluator"].update(detach(outputs), targets)
        timer.end_step()

    def _write_record(self, partial: bool = False) -> dict[str, Any]:
        """Append the current epoch's record to ``metrics.jsonl``: training losses and metrics
        (running means), validation (``"val"``, in the epochs of ``_validates`` and on a
        partial record), and what the numbers were computed with."""
        running = self.running
        n = max(running["num_batches"], 1) * self.world  # each process's loss is 1/N-th
        sums = distributed.merged(host_values(running["loss_sums"]))
        train = {k: v / n for k, v in sums.items()}
        if running["evaluator"] is not None:
            evaluator = merged_evaluator(
                self.experiment, self.config, running["evaluator"], self.train_set
            )
            train |= evaluator.compute()
        record = {
            "epoch": self.position["epoch"],
            "global_step": self.position["global_step"],
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_seconds": round(time.monotonic() - self.epoch_start, 2),
            "train": train,
        }
        if partial or self._validates(self.position["epoch"]):
            record["val"] = self.validate()
        record["environment"] = self.environment()
        if partial:
            steps = len(self.loader(0))
            record |= {"partial": True, "epoch_fraction": self.position["step_in_epoch"] / steps}
        if distributed.is_main():
            with open(self.run_dir / METRICS, "a") as handle:
                handle.write(json.dumps(record) + "\n")
        return record

    def _validates(self, epoch: int) -> bool:
        """Whether ``epoch``'s record holds a validation: every ``validate_every`` epochs, and
        the last."""
        return (epoch + 1) % self.config.validate_every == 0 or epoch + 1 == self.config.epochs

    def environment(self) -> dict[str, Any]:
        """Device (model and threads), processes, precision and torch version."""
        return {
            "device": describe_device(self.device),
            "threads": torch.get_num_threads(),
            "processes": self.world,
            "precision": "bfloat16 autocast" if self.config.amp else "float32",
            "tf32": self.device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32,
            "torch": torch.__version__,
        }

    def _end_epoch(self) -> dict[str, Any]:
        """The epoch's record, then the next epoch's position and schedule; a checkpoint every
        ``checkpoint_epochs`` epochs and after the last (resuming from an earlier one trains
        the epochs between again, to the same weights, and rewrites their records)."""
        record = self._write_record()
        self.epoch_scheduler.step()
        self.position.update(epoch=self.position["epoch"] + 1, step_in_epoch=0)
        self.running = self._new_running()
        epoch = self.position["epoch"]
        if epoch % self.config.checkpoint_epochs == 0 or epoch == self.config.epochs:
            self.save()
        return record

    def validate(self, dataset: Dataset | None = None) -> dict[str, Any]:
        """Loss terms (mean over batches) and metrics on ``dataset`` (default: validation)."""
        dataset = self.val_set if dataset is None else dataset
        if id(dataset) not in self._eval_loaders:  # one per dataset: its workers persist
            self._eval_loaders[id(dataset)] = evaluation_loader(
                self.experiment, self.config, dataset, persistent=True
            )
        return evaluate_model(
            self.experiment,
            self.config,
            self.model,
            self.criterion,
            dataset,
            self.device,
            self._eval_loaders[id(dataset)],
        )


def evaluation_loader(
    experiment: Experiment, config: Config, dataset: Dataset, persistent: bool = False
) -> DataLoader:
    """Batches of ``dataset`` in order, this process's contiguous share of it under several
    processes; ``persistent`` keeps its workers between passes."""
    world, rank = distributed.world_size(), distributed.rank()
    share = range(len(dataset) * rank // world, len(dataset) * (rank + 1) // world)
    return DataLoader(
        dataset if world == 1 else Subset(dataset, share),
        batch_size=config.batch_size,
        collate_fn=experiment.collate_fn,
        num_workers=config.num_workers,
        persistent_workers=persistent and config.num_workers > 0,
        generator=_loader_generator(config.seed, -1),
    )


@torch.no_grad()
def evaluate_model(
    experiment: Experiment,
    config: Config,
    model: torch.nn.Module,
    criterion: torch.nn.Module,
    dataset: Dataset,
    device: torch.device,
    loader: DataLoader | None = None,
) -> dict[str, Any]:
    """Loss terms (mean over batches) and metrics of ``model`` on ``dataset``, in eval mode;
    the model's training mode is restored afterwards. Under several processes each evaluates
    a contiguous share of ``dataset`` and the results are merged (the loss is then the mean
    over every process's batches). ``loader``: ``dataset``'s ``evaluation_loader`` to reuse."""
    was_training = model.training
    model.eval()
    prepare(dataset)
    evaluator = experiment.build_evaluator(config, dataset)
    running = {"loss_sums": {}, "num_batches": 0, "num_images": 0}
    loader = loader or evaluation_loader(experiment, config, dataset)
    layout = memory_format(experiment, device)
    for images, targets in loader:
        images, targets = to_device(images, device), to_device(targets, device)
        images = images.contiguous(memory_format=layout)
        outputs, losses, total = forward(model, criterion, images, targets, config)
        accumulate(running, losses, total, batch_size(images))
        evaluator.update(detach(outputs), targets)
    model.train(was_training)
    running = distributed.merged(running | {"loss_sums": host_values(running["loss_sums"])})
    evaluator = merged_evaluator(experiment, config, evaluator, dataset)
    batches = max(running["num_batches"], 1)
    return {k: v / batches for k, v in running["loss_sums"].items()} | evaluator.compute()


def merged_evaluator(experiment: Experiment, config: Config, evaluator: Any, dataset: Dataset):
    """``evaluator`` with every process's state merged into a new one (itself on one process)."""
    if distributed.world_size() == 1:
        return evaluator
    merged = experiment.build_evaluator(config, dataset)
    merged.load_state_dict(distributed.merged(evaluator.state_dict()))
    return merged


def forward(
    model, criterion, images, targets, config: Config, timer: PhaseTimer | None = None
) -> tuple[Any, dict, torch.Tensor]:
    """``(outputs, losses, total)`` of one batch already on the model's device: the model under
    bfloat16 autocast when ``config.amp``, the losses in float32 (as DETR), and their
    ``weight_dict``-weighted total."""
    timer = timer or PhaseTimer()
    device_type = images.device.type if isinstance(images, torch.Tensor) else "cpu"
    precision = torch.autocast(device_type, dtype=torch.bfloat16) if config.amp else nullcontext()
    with timer("forward"), precision:
        outputs = model(images)
    with timer("loss"):
        losses = criterion(to_float(outputs), targets)
        total = weighted_total(losses, criterion.weight_dict)
    return outputs, losses, total


def weighted_total(losses: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """The loss that is optimised: the ``weight_dict``-weighted sum of the raw terms."""
    return sum(weights[k] * value for k, value in losses.items() if k in weights)


def accumulate(running: dict, losses: dict, total: torch.Tensor, num_images: int) -> None:
    """Add one batch's raw terms and weighted total to the running sums: float64 tensors on the
    losses' device, read by the host only when a record is written (``host_values``)."""
    sums = running["loss_sums"]
    for key, value in [*losses.items(), ("loss", total)]:
        value = value.detach().double()
        sums[key] = sums[key] + value if key in sums else value
    running["num_batches"] += 1
    running["num_images"] += num_images


def host_values(sums: dict[str, Any]) -> dict[str, float]:
    """Running sums as Python floats (one copy from the device for all of them)."""
    if not sums:
        return {}
    values = torch.stack([torch.as_tensor(v, dtype=torch.float64) for v in sums.values()])
    return dict(zip(sums, values.tolist()))


def rng_state(device: torch.device) -> dict[str, Any]:
    """The global CPU generator's state and, on CUDA, the run's own GPU's (not every visible
    GPU's: a run resumed on fewer GPUs, or on another one, restores it all the same)."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore ``rng_state``'s states on this run's device. Checkpoints that saved every
    visible GPU's state (a list) give the entry of this device's index, or their first."""
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda")
    if isinstance(cuda, list):  # written by earlier versions: one state per visible GPU
        cuda = cuda[min(device.index or 0, len(cuda) - 1)] if cuda else None
    if cuda is not None and device.type == "cuda":
        torch.cuda.set_rng_state(cuda.cpu(), device)


def to_device(value: Any, device: torch.device) -> Any:
    """Tensors, and tensors inside lists and dicts, moved to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_device(v, device) for v in value)
    return value


def to_float(value: Any) -> Any:
    """Floating tensors (also inside dicts) in float32: autocast outputs go to the losses so."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, dict):
        return {k: to_float(v) for k, v in value.items()}
    return value


def detach(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().float()
    if isinstance(value, dict):
        return {k: detach(v) for k, v in value.items()}
    return value


def batch_size(images: Any) -> int:
    return images.shape[0] if isinstance(images, torch.Tensor) else len(images)


def train(config: Config, run_dir: str | os.PathLike, wait: bool = True) -> list[dict[str, Any]]:
    """Train ``config`` in ``run_dir`` (resuming from its checkpoint if any); return the
    per-epoch records of ``metrics.jsonl``. One process at a time (``load_or_train``)."""
    with run_lock(run_dir, wait):
        return Trainer(config, run_dir).fit()


def evaluate(
    run_dir: str | os.PathLike, split: str = "val", device: str = "auto"
) -> dict[str, Any]:
    """Loss and metrics of a run directory's checkpoint on its validation (or train) split,
    per-class values keyed by class name.

    Reads the run directory and writes nothing: no optimizer is built and no file is touched.
    Training items are those of the first epoch (its random crops)."""
    model, config = load_model(run_dir, resolve_device(device))
    experiment = get_experiment(config.experiment)
    train_set, val_set = experiment.build_datasets(config)
    dataset = {"val": val_set, "train": train_set}[split]
    device = next(model.parameters()).device
    criterion = experiment.build_criterion(config).to(device)
    metrics = evaluate_model(experiment, config, model, criterion, dataset, device)
    return name_classes(metrics, dataset.class_names)


def name_classes(metrics: dict[str, Any], class_names: tuple[str, ...]) -> dict[str, Any]:
    """``metrics`` with every per-class list (one value per class) as ``{class name: value}``."""
    return {
        key: dict(zip(class_names, value))
        if isinstance(value, list) and len(value) == len(class_names)
        else value
        for key, value in metrics.items()
    }


def is_finished(run_dir: str | os.PathLike) -> bool:
    """True when the run directory's checkpoint has completed every epoch."""
    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINT).exists():
        return False
    state = load_checkpoint(run_dir / CHECKPOINT)
    return state["position"]["epoch"] >= state["config"]["epochs"]


def run_name(config: Config, variant: str = "") -> str:
    """The run directory name under ``runs_dir`` for a config (and an optional variant)."""
    suffix = f"-{variant}" if variant else ""
    return f"{config.experiment}{suffix}-{config.dataset}-{config.profile}-seed{config.seed}"


def load_or_train(
    config: Config, runs_dir: str | os.PathLike, variant: str = "", wait: bool = True
) -> Path:
    """Train ``config`` in ``runs_dir/run_name(config)`` unless it already finished there, or
    already stopped at ``config.max_steps`` with its record written (an interrupted run
    resumes). Returns the run directory. While another process trains the same run, wait for
    it and read its result, or with ``wait=False`` raise ``RunLockedError``
    (``seqseg_lib.runlock``)."""
    run_dir = Path(runs_dir) / run_name(config, variant)
    check_run_config(config, run_dir)
    if not is_finished(run_dir) and not stopped_at(run_dir, config.max_steps):
        with run_lock(run_dir, wait):
            # finished meanwhile by the process that held the lock?
            if not is_finished(run_dir) and not stopped_at(run_dir, config.max_steps):
                Trainer(config, run_dir).fit()
    return run_dir


def stopped_at(run_dir: str | os.PathLike, max_steps: int | None) -> bool:
    """True when the run directory's checkpoint has reached ``max_steps`` and ``metrics.jsonl``
    holds the record of where it stopped (the partial epoch's, or the last whole epoch's)."""
    run_dir = Path(run_dir)
    if max_steps is None or not (run_dir / CHECKPOINT).exists():
        return False
    position = load_checkpoint(run_dir / CHECKPOINT)["position"]
    records = read_metrics(run_dir)
    last_epoch = records[-1]["epoch"] if records else -1
    recorded = last_epoch == position["epoch"] - (position["step_in_epoch"] == 0)
    return position["global_step"] >= max_steps and recorded


def load_model(
    run_dir: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, Config]:
    """The model of a run directory's checkpoint, in eval mode, with its config."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).exists() or not (run_dir / CHECKPOINT).exists():
        raise ValueError(f"{str(run_dir)!r} is not a run directory: no {CONFIG} or {CHECKPOINT}")
    state = load_checkpoint(run_dir / CHECKPOINT, device)
    config = config_from_dict(state["config"])
    experiment = get_experiment(config.experiment)
    model = experiment.build_model(config)
    model.load_state_dict(state["model"])
    device = resolve_device(device)
    return model.to(device, memory_format=memory_format(experiment, device)).eval(), config
