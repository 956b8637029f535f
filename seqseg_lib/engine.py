"""The training engine: train, checkpoint, resume. It knows nothing about models.

Run directories and their files are ``seqseg_lib.runs``'s; batches come from
``seqseg_lib.loading``; ``seqseg_lib.evaluation`` runs a batch through a model and evaluates
one. Running ``train`` again on a directory with a checkpoint continues from it; an
uninterrupted run and a resumed one end with the same weights on CPU, bit for bit:

- the data order of epoch ``e`` is a permutation seeded by ``(seed, e)``, and augmentation
  draws from generators seeded by ``(seed, epoch, index)`` (``data/transforms.py``);
- the global RNG (dropout) is saved and restored with the step;
- checkpoints, and ``metrics.jsonl`` when a resumption rewrites it, are written to a
  temporary file, then renamed: a crash while writing leaves the previous file intact.

Each record, the training loss every few steps and a few validation predictions also go to
TensorBoard event files beside ``metrics.jsonl`` (``seqseg_lib.tensorboard``).

Under torchrun (``seqseg_lib.distributed``) every process trains its share of each global
batch through ``DistributedDataParallel``; rank 0 alone writes the run directory, and the
checkpoint holds every process's RNG state, so a killed multi-process run resumes as well.
"""

import dataclasses
import json
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import ChainedScheduler, LinearLR, MultiStepLR
from torch.utils.data import DataLoader, Dataset

from seqseg_lib import distributed, measured
from seqseg_lib.config import Config
from seqseg_lib.devices import (
    configure_device,
    describe_device,
    resolve_device,
    rng_state,
    set_determinism,
    set_rng_state,
)
from seqseg_lib.evaluation import (
    autocast,
    evaluate_model,
    forward,
    memory_format,
    merged_evaluator,
    name_classes,
    weighted_total,
)
from seqseg_lib.experiments import (
    check_checkpoint_config,
    check_run_config,
    config_from_dict,
    get_experiment,
    load_config,
    prepare_run_dir,
)
from seqseg_lib.graphs import (
    WholeStep,
    float_learning_rates,
    graph_model,
    learning_rate,
    tensor_learning_rates,
)
from seqseg_lib.loading import (
    EpochItems,
    EpochSampler,
    TrainOrder,
    evaluation_loader,
    loader_generator,
    prepare,
)
from seqseg_lib.memory import why_it_cannot_fit
from seqseg_lib.models import count_parameters
from seqseg_lib.progress import PhaseTimer, Progress
from seqseg_lib.runlock import run_lock
from seqseg_lib.runs import (
    CHECKPOINT,
    CONFIG,
    METRICS,
    is_finished,
    keep_metrics_before,
    load_checkpoint,
    missing_record,
    read_metrics,
    restore_record,
    run_name,
    save_checkpoint,
    stopped_at,
    write_status,
)
from seqseg_lib.tensorboard import TensorBoardLog
from seqseg_lib.tensors import (
    accumulate,
    batch_size,
    detach,
    host_values,
    to_device,
)

# Names other modules and the notebooks reach through the engine (``engine.read_metrics``).
__all__ = [
    "CHECKPOINT",
    "CONFIG",
    "METRICS",
    "EpochSampler",
    "Trainer",
    "deterministic",
    "evaluate",
    "evaluate_model",
    "forward",
    "host_values",
    "is_finished",
    "load_checkpoint",
    "load_config",
    "load_model",
    "load_or_train",
    "memory_format",
    "prepare",
    "read_metrics",
    "resolve_device",
    "run_name",
    "set_determinism",
    "stopped_at",
    "to_device",
    "train",
    "weighted_total",
]


def deterministic(config: Config, device: torch.device) -> bool:
    """Whether a run asks for bit-identical results: ``config.deterministic`` when given (the
    ``cpu`` and ``smoke`` presets: yes), else everywhere but on CUDA (whose speed comes from
    cuDNN's autotuner: ``paper``'s)."""
    if config.deterministic is not None:
        return config.deterministic
    return device.type != "cuda"


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
        given = config  # as config.json says it; run control resolved for this process:
        self.config = config = dataclasses.replace(
            config, **self._step_mode(config), check_every=self._check_every(config)
        )
        self.memory_format = memory_format(self.experiment, self.device)
        torch.manual_seed(config.seed)
        self.model, self.train_model = self._build_model()
        parameters = count_parameters(self.model)
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
            prepare_run_dir(given, self.run_dir)
        distributed.barrier()
        self.criterion = self.experiment.build_criterion(config).to(self.device)
        fused = config.fused_adam
        fused = self.device.type == "cuda" if fused is None else fused
        # the whole step in one CUDA graph: Adam's state and learning rate on the device
        self.captures_step = (
            config.graphs and self.experiment.graphs == "whole" and self.device.type == "cuda"
        )
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=config.lr, fused=fused, capturable=self.captures_step
        )
        self.epoch_scheduler, self.step_scheduler = build_schedulers(self.optimizer, config)
        self.position = {"epoch": 0, "step_in_epoch": 0, "global_step": 0}
        self.running = self._new_running()
        self.last_record: dict[str, Any] | None = None  # (``state_dict``)
        self._train_loader: DataLoader | None = None  # built once: ``loader``
        self._eval_loaders: dict[int, DataLoader] = {}  # per dataset: ``validate``
        # non-finite losses since the host last looked (``check_finite``), and the first one's
        # step (-1: none): read every ``check_every`` steps, not every step
        self.non_finite = torch.zeros((), dtype=torch.bool, device=self.device)
        self.first_non_finite = torch.full((), -1, dtype=torch.int64, device=self.device)
        self._restore()
        if self.captures_step:
            tensor_learning_rates(self.optimizer)  # (a checkpoint may have brought floats)
        else:
            float_learning_rates(self.optimizer)  # (or a captured run's tensors)
        whole = config.graphs and self.experiment.graphs == "whole"
        self.step = WholeStep(self._step, self.device) if whole else self._step
        self.model_graph_seconds: float | None = None  # ``graph_model``'s, once captured
        self.tensorboard = TensorBoardLog(None, self.position, self.running)  # ``fit``'s

    def _step_mode(self, config: Config) -> dict[str, Any]:
        """``graphs`` and ``compile`` as this run uses them. Where ``graphs`` is None (and no
        ``compile`` is asked): on CUDA in one process, the mode that ``reports/benchmarks.csv``
        measured fastest for this experiment, profile and precision (``measured.fastest_mode``:
        ``graphs``, a ``compile:MODE`` or ``eager``); eager where it has no comparison, and
        always on a CPU (nothing to capture there, and compiling is measured slower)."""
        graphs, name = config.graphs, config.experiment
        if graphs is None:
            if self.device.type != "cuda" or self.world > 1 or config.compile:
                return {"graphs": False}
            precision = "bfloat16" if config.amp else "float32"
            rows = measured.read(measured.BENCHMARKS_CSV)
            fastest = measured.fastest_mode(rows, name, config.profile, "cuda", precision) or ""
            if fastest.startswith("compile"):
                _, _, mode = fastest.partition(":")
                return {"graphs": False, "compile": mode or True}
            return {"graphs": fastest == "graphs" and self.experiment.graphs is not None}
        if graphs and self.experiment.graphs is None:
            raise ValueError(f"--graphs: {name}'s training step cannot be captured; drop it")
        if graphs and (self.world > 1 or config.compile):
            raise ValueError(
                "--graphs takes one process and no --compile: drop one of them"
                if config.compile
                else "--graphs: a step is captured only in one process; drop it under torchrun"
            )
        return {"graphs": graphs}

    def _check_every(self, config: Config) -> int:
        """Steps between reads of the non-finite flag: every step on a CPU (a read costs
        nothing there), every 50 on a GPU (each read waits for the GPU)."""
        if config.check_every is not None:
            return config.check_every
        return 1 if self.device.type == "cpu" else 50

    def _build_model(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        """The model, and what trains it: itself, or under several processes its
        ``DistributedDataParallel`` wrapper (BatchNorm synchronised across GPUs; gloo has no
        synchronised BatchNorm, so on CPU each process normalises its own share)."""
        model = self.experiment.build_model(self.config)
        if self.world > 1 and self.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model.to(self.device, memory_format=self.memory_format)
        if self.world == 1:
            return model, self._compiled(model)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        # static_graph: the same parameters take part in every step (BERT's pooler in none)
        wrapped = DistributedDataParallel(model, device_ids=device_ids, static_graph=True)
        return model, self._compiled(wrapped)

    def _compiled(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` through ``torch.compile`` in ``config.compile``'s mode, or itself."""
        compile = self.config.compile
        if not compile:
            return model
        return torch.compile(model, mode=None if compile is True else compile)

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
            # the last whole epoch's record (as JSON: its values are not all plain types),
            # restored from here should metrics.jsonl lose it
            "record": None if self.last_record is None else json.dumps(self.last_record),
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
        """Write the checkpoint (rank 0; every process must call it: it gathers their states),
        never of weights that a non-finite loss has touched (``check_finite`` raises first)."""
        self.check_finite()
        state = self.state_dict()
        if distributed.is_main():
            save_checkpoint(self.run_dir / CHECKPOINT, state)
            write_status(self.run_dir, self.position, self.config.epochs)
        distributed.barrier()

    def _restore(self) -> None:
        """Continue from the run directory's checkpoint, if it has one."""
        path = self.run_dir / CHECKPOINT
        if not path.exists():
            return
        # read to host memory: the model and optimizer copy their states onto their own
        # devices, the evaluators onto theirs
        state = load_checkpoint(path, "cpu")
        check_checkpoint_config(state, self.config, self.run_dir)
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
            self.last_record = json.loads(state["record"]) if state.get("record") else None
            epoch = missing_record(self.run_dir, {"position": self.position})
            if epoch is not None:  # a record lost after its checkpoint was written
                print(restore_record(self.run_dir, self.last_record, epoch), file=sys.stderr)
        distributed.barrier()

    # -- loops -------------------------------------------------------------------------
    def fit(self) -> list[dict[str, Any]]:
        """Train to the last epoch, or to ``max_steps``. A run stopped by ``max_steps`` within
        an epoch ends with a record of that partial epoch (``"partial": true``: its training
        metrics so far and a validation), which resuming replaces by the whole epoch's."""
        config = self.config
        shown = config if distributed.is_main() else dataclasses.replace(config, progress=False)
        events = self.run_dir if distributed.is_main() else None  # TensorBoard's, beside
        tensorboard = TensorBoardLog(events, self.position, self.running)
        with Progress(shown, self.position, len(self.loader(0))) as progress, tensorboard:
            self.tensorboard = tensorboard
            parameters = count_parameters(self.model)
            environment = self.environment()
            progress.note(
                f"{parameters:,} parameters, {environment['device']}, "
                f"{environment['precision']}, {environment['step']} step, "
                f"run directory {self.run_dir}"
                + (
                    f"; resumed at epoch {self.position['epoch'] + 1} step "
                    f"{self.position['global_step']}"
                    if self.position["global_step"]
                    else ""
                )
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
                generator=loader_generator(config.seed, 0),
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
            if position["global_step"] % config.check_every == 0:  # read by check_finite
                self.tensorboard.train_step(
                    position["global_step"], self.running, learning_rate(self.optimizer)
                )
            if config.checkpoint_every and position["global_step"] % config.checkpoint_every == 0:
                self.save()

    def train_step(self, images, targets) -> None:
        """One optimiser step on a batch: ``self.step`` (eager, or replayed from a CUDA graph),
        then its losses flagged if not finite and added to the running sums on the device."""
        timer = self.timer
        with timer("data"):
            images, targets = to_device(images, self.device), to_device(targets, self.device)
            images = images.contiguous(memory_format=self.memory_format)
        if self.config.graphs and self.experiment.graphs == "model":
            self._graph_model(images)
        outputs, losses, total = self.step(images, targets)
        with timer("optimizer"):
            if self.step_scheduler is not None:
                self.step_scheduler.step()  # constant once the warm-up is over
        with timer("metrics"):
            self._flag_non_finite(total)
            accumulate(self.running, losses, total, batch_size(images))
            if self.running["evaluator"] is not None:
                self.running["evaluator"].update(detach(outputs), targets)
        if (self.position["global_step"] + 1) % self.config.check_every == 0:
            self.check_finite()
        timer.end_step()

    def _step(self, images, targets) -> tuple[Any, dict, torch.Tensor]:
        """Forward, loss, backward and Adam: the step that ``graphs.WholeStep`` captures, so
        nothing in it may wait for the host (``tests/test_gpu_path.py`` counts)."""
        timer = self.timer
        with distributed.global_normalization():
            outputs, losses, total = forward(
                self.train_model, self.criterion, images, targets, self.config, timer
            )
        with timer("backward"):
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
        with timer("optimizer"):
            self.optimizer.step()
        return outputs, losses, total

    def _graph_model(self, images: torch.Tensor) -> None:
        """On the first step on CUDA, the model's forward and backward captured as graphs on
        this batch's shape (``graphs.graph_model``), under the run's autocast."""
        if self.model_graph_seconds is not None or self.device.type != "cuda":
            return
        with autocast(self.config, self.device.type):
            self.model_graph_seconds = graph_model(self.model, images)

    def _flag_non_finite(self, total: torch.Tensor) -> None:
        """Remember, on the device, whether this step's loss was not finite and the first such
        step: no synchronisation (``check_finite`` reads it)."""
        bad = ~torch.isfinite(total.detach())
        first = self.first_non_finite
        step = self.position["global_step"] + 1
        self.first_non_finite = torch.where(bad & (first < 0), step, first)
        self.non_finite = self.non_finite | bad

    def check_finite(self) -> None:
        """Raise ``FloatingPointError`` if a loss since the last check was not finite, on any
        process (one host synchronisation, on every process at the same step: a non-finite loss
        on one stops them all). The weights it updated are never checkpointed: ``save`` checks
        first, and the run directory keeps its last checkpoint."""
        if distributed.all_true(~self.non_finite):
            return
        step = int(self.first_non_finite)  # -1: on another process only
        epoch, sums = self.position["epoch"], host_values(self.running["loss_sums"])
        where = (
            f"at step {step} (epoch {epoch}) on this process"
            if step > 0
            else f"on another process, in the {self.config.check_every} step(s) to step "
            f"{self.position['global_step'] + 1} (epoch {epoch})"
        )
        raise FloatingPointError(
            f"non-finite loss {where}; this process's running loss sums {sums}; the last "
            f"checkpoint in {str(self.run_dir)!r} is left as it was: lower the learning rate "
            "or resume from it with --check-every 1 to find the step"
        )

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
            "lr": learning_rate(self.optimizer),
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
            self._log_record(record)
        return record

    def _log_record(self, record: dict[str, Any]) -> None:
        """A record's TensorBoard events (``seqseg_lib.tensorboard``): the training loss since
        the last point, the record's scalars, and at a validation a few predictions."""
        tensorboard, step = self.tensorboard, record["global_step"]
        tensorboard.train_step(step, self.running, record["lr"])
        tensorboard.record(record)
        if "val" in record:
            tensorboard.predictions(step, self.model, self.val_set, self.config, self.device)

    def _validates(self, epoch: int) -> bool:
        """Whether ``epoch``'s record holds a validation: every ``validate_every`` epochs, the
        last, and the one at whose end ``max_steps`` stops the run (so that a stopped run's
        last record always has one)."""
        config = self.config
        stops = config.max_steps is not None and self.position["global_step"] >= config.max_steps
        return (epoch + 1) % config.validate_every == 0 or epoch + 1 == config.epochs or stops

    def step_mode(self) -> str:
        """How the training step runs (``Config.graphs``, ``Config.compile``), with the seconds
        its capture took once it has."""
        config = self.config
        if config.graphs and self.device.type == "cuda":
            seconds = self.model_graph_seconds
            if isinstance(self.step, WholeStep):
                seconds = self.step.capture_seconds
            what = "whole step" if isinstance(self.step, WholeStep) else "model forward/backward"
            captured = "" if seconds is None else f", captured in {seconds:.1f} s"
            return f"CUDA graphs ({what}{captured})"
        if config.compile:
            return f"torch.compile ({'default' if config.compile is True else config.compile})"
        return "eager"

    def environment(self) -> dict[str, Any]:
        """Device (model and threads), processes, precision and torch version."""
        return {
            "device": describe_device(self.device),
            "threads": torch.get_num_threads(),
            "processes": self.world,
            "precision": "bfloat16 autocast" if self.config.amp else "float32",
            "step": self.step_mode(),
            "tf32": self.device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32,
            "torch": torch.__version__,
        }

    def _end_epoch(self) -> dict[str, Any]:
        """The epoch's record, then the next epoch's position and schedule; a checkpoint every
        ``checkpoint_epochs`` epochs and after the last (resuming from an earlier one trains
        the epochs between again, to the same weights, and rewrites their records)."""
        self.check_finite()
        record = self.last_record = self._write_record()
        with warnings.catch_warnings():
            # resumed at an epoch's end, this process steps the schedule before its first
            # optimizer step: the order PyTorch warns about, but the epoch's steps were taken
            # (before the checkpoint), so the schedule is where it should be
            warnings.filterwarnings("ignore", re.escape("Detected call of `lr_scheduler.step()`"))
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


def train(config: Config, run_dir: str | os.PathLike, wait: bool = True) -> list[dict[str, Any]]:
    """Train ``config`` in ``run_dir`` (resuming from its checkpoint if any); return the
    per-epoch records of ``metrics.jsonl``. One process at a time (``load_or_train``)."""
    with run_lock(run_dir, wait):
        return Trainer(config, run_dir).fit()


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


def load_model(
    run_dir: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, Config]:
    """The model of a run directory's checkpoint, in eval mode, with its config."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).exists() or not (run_dir / CHECKPOINT).exists():
        raise ValueError(f"{str(run_dir)!r} is not a run directory: no {CONFIG} or {CHECKPOINT}")
    state = load_checkpoint(run_dir / CHECKPOINT, device)
    config = config_from_dict(state["config"])
    check_checkpoint_config(state, load_config(run_dir), run_dir)
    experiment = get_experiment(config.experiment)
    model = experiment.build_model(config)
    model.load_state_dict(state["model"])
    device = resolve_device(device)
    return model.to(device, memory_format=memory_format(experiment, device)).eval(), config
