"""TensorBoard event files beside a run's ``metrics.jsonl``, for watching a long run live
(``tensorboard --logdir runs/``: one TensorBoard run per run directory).

What the engine writes through ``TensorBoardLog``, every point at its global step:

- ``train/<term>``, ``val/<metric>``: each epoch's record as ``metrics.jsonl`` holds it (its
  scalars; per-class lists are left to the file);
- ``train_step/loss`` and ``lr``: the mean training loss since the previous point and the
  learning rate, read where the host waits for the device already: at the non-finite checks
  (``Config.check_every``: every step on a CPU, every 50 on CUDA) and at each record, so
  TensorBoard adds no host synchronisation to a step;
- ``val/predictions``: at each validation of a semantic experiment (a model that returns
  logits [B, C, H, W] on a dataset with a ``label_space``), a few validation images beside
  their labels and the model's predictions, in the dataset's palette.

Rank 0 writes; the other processes hold a log that writes nothing. Each start or resumption
opens a new event file (TensorBoard reads them all, in order) with a purge step: the events
after the checkpoint's step that it resumes from, which the stopped process may have written
before it stopped and the resumed one writes again, are hidden, so a resumed run shows each
step once. A run resumed mid-epoch hides the events at that step too: the stopped process's
partial record, which the epoch's whole record replaces (as in ``metrics.jsonl``), and its
training loss there.
"""

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqseg_lib.evaluation import autocast
from seqseg_lib.plotting import colorize

PREVIEW_IMAGES = 3  # validation images shown at each validation
PREVIEW_HEIGHT = 256  # larger images are subsampled to at most this height (event file size)


class TensorBoardLog:
    """Events of one training process in ``run_dir`` (None: write nothing, e.g. rank > 0).
    ``position`` and ``running`` are the trainer's, as restored from a checkpoint."""

    def __init__(self, run_dir: Path | None, position: dict[str, int], running: dict) -> None:
        self.run_dir, self._writer = run_dir, None
        self.last_step = step = position["global_step"]
        # resumed at an epoch's end, that epoch's record (at ``step``) stays; mid-epoch, the
        # stopped process's partial record there goes with what follows it
        self.purge_step = None if step == 0 else step + (position["step_in_epoch"] == 0)
        self._since(running)

    @property
    def writer(self):
        """The ``SummaryWriter``, opened at the first event (a trainer that writes nothing, or
        a finished run trained again, leaves no empty event file); None on a process that
        writes nothing, or where ``tensorboard`` is not installed."""
        if self._writer is None and self.run_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # (an environment installed before requirements.txt had it)
                warnings.warn(
                    "tensorboard is not installed, so this run writes no TensorBoard events: "
                    "pip install -r requirements.txt",
                    stacklevel=3,
                )
                self.run_dir = None
                return None
            wait_for_a_later_second(self.run_dir)
            self._writer = SummaryWriter(str(self.run_dir), purge_step=self.purge_step)
        return self._writer

    def __enter__(self) -> "TensorBoardLog":
        return self

    def __exit__(self, *exc) -> None:
        if self._writer is not None:
            self._writer.close()

    def _since(self, running: dict) -> None:
        """Remember the running sums (the epoch's: the trainer makes new ones each epoch) and
        their loss sum and batches, which the next point's mean starts from."""
        self.running = running
        loss = running["loss_sums"].get("loss")
        self.loss_sum = 0.0 if loss is None else float(loss)
        self.batches = running["num_batches"]

    def train_step(self, step: int, running: dict, lr: float) -> None:
        """``train_step/loss``, the mean loss of this process's batches since the last point
        (under several processes, rank 0's share of each batch: reading the others' would
        wait for them), and ``lr``, at ``step``. Reads the device: call it where the host has
        waited for it already."""
        if self.writer is None or step == self.last_step:
            return
        if running is not self.running:  # a new epoch's running sums
            self.loss_sum, self.batches = 0.0, 0
        batches = running["num_batches"] - self.batches
        if batches > 0:
            loss_sum = float(running["loss_sums"]["loss"])
            mean = (loss_sum - self.loss_sum) / batches
            self.writer.add_scalar("train_step/loss", mean, step)
        self.writer.add_scalar("lr", lr, step)
        self.last_step = step
        self._since(running)

    def record(self, record: dict[str, Any]) -> None:
        """An epoch's record (``Trainer._write_record``'s): its training and validation
        scalars at its global step; written to disk at once."""
        if self.writer is None:
            return
        step = record["global_step"]
        for split in ("train", "val"):
            for key, value in record.get(split, {}).items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self.writer.add_scalar(f"{split}/{key}", value, step)
        self.writer.flush()

    def predictions(
        self, step: int, model: torch.nn.Module, dataset: Any, config: Any, device: torch.device
    ) -> None:
        """``val/predictions`` at ``step``: the first ``PREVIEW_IMAGES`` validation images,
        each beside its labels and ``model``'s prediction (``semantic_previews``); nothing for
        a model whose outputs are not semantic logits."""
        if self.writer is None:
            return
        grid = semantic_previews(model, dataset, config, device)
        if grid is not None:
            self.writer.add_image("val/predictions", grid, step, dataformats="HWC")


def wait_for_a_later_second(run_dir: Path) -> None:
    """Return once the clock is past the second the newest event file in ``run_dir`` was
    opened in (at most a second): TensorBoard reads a directory's event files in the order of
    their names, which begin with that second, so a resumption's file must sort after the
    stopped process's, not by process id."""
    seconds = [int(path.name.split(".")[3]) for path in run_dir.glob("events.out.tfevents.*")]
    while seconds and time.time() < max(seconds) + 1:
        time.sleep(0.05)


@torch.no_grad()
def semantic_previews(
    model: torch.nn.Module, dataset: Any, config: Any, device: torch.device
) -> np.ndarray | None:
    """uint8 [N*H, 3*W, 3]: for each of the first ``PREVIEW_IMAGES`` items of ``dataset``, its
    image, labels and ``model``'s argmax in the dataset's evaluation classes, side by side
    (void black), subsampled to at most ``PREVIEW_HEIGHT`` rows each; None where the dataset
    has no ``label_space`` or the model's outputs are not logits [B, C, H, W]."""
    label_space = getattr(dataset, "label_space", None)
    if label_space is None or len(dataset) == 0:
        return None
    items = [dataset[i] for i in range(min(PREVIEW_IMAGES, len(dataset)))]
    if not all(isinstance(item, dict) and "labels" in item for item in items):
        return None
    images = torch.stack([item["image"] for item in items])  # (N, 3, H, W)
    was_training = model.training
    model.eval()
    with autocast(config, device.type):
        outputs = model(images.to(device))
    model.train(was_training)
    if not isinstance(outputs, torch.Tensor) or outputs.shape[-2:] != images.shape[-2:]:
        return None
    every = -(-images.shape[-2] // PREVIEW_HEIGHT)  # (ceil)
    labels = label_space.to_eval(torch.stack([item["labels"] for item in items]).long())
    predicted = label_space.to_eval(outputs.argmax(1).cpu())
    rows = [
        np.concatenate(
            [
                (image.permute(1, 2, 0).clamp(0, 1).numpy() * 255).astype(np.uint8),
                colorize(target, label_space),
                colorize(prediction, label_space),
            ],
            axis=1,
        )[::every, ::every]
        for image, target, prediction in zip(images, labels, predicted)
    ]
    return np.concatenate(rows, axis=0)
