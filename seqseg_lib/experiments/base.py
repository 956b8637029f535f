"""What an experiment is made of. The training engine sees only an ``Experiment``: it knows
nothing of U-Net or Seq2Seg."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from seqseg_lib.config import Config

PAPER_WORKERS = 4
# ``paper`` writes a checkpoint every this many epochs (and after the last): the report's
# Seq2Seg with Adam's moments is 0.6 GB, written in about as long as a GPU takes for one of its
# epochs (123 steps). A killed run then repeats at most this many epochs, to the same weights.
PAPER_CHECKPOINT_EPOCHS = 5
# ``paper`` validates every this many epochs (and after the last), as it checkpoints: the
# tables read the last epoch's validation, and each one (500 scenes) is time not training. A
# study whose curves need more (notebook 09's, every ``semantic_scale.BUDGET_VALIDATE_STEPS``
# steps) sets its own ``validate_every``.
PAPER_VALIDATE_EPOCHS = PAPER_CHECKPOINT_EPOCHS
# What the ``cpu`` and ``smoke`` presets change of ``paper``'s run control: float32 on every
# machine (their numbers do not depend on the CPU), bit-identical kernels (on a GPU too), no
# DataLoader workers (measured slower on 2 cores: ``benchmarks/workers.py``), a checkpoint and
# a validation every epoch.
CPU_RUN_CONTROL = {"amp": False, "deterministic": True, "num_workers": 0}
CPU_RUN_CONTROL |= {"checkpoint_epochs": 1, "validate_every": 1}


@dataclass(frozen=True)
class Experiment:
    """Builders and presets of one experiment.

    - ``datasets``: the dataset names it runs on, its embedded default first;
    - ``model_config`` / ``loss_config``: the settings classes of ``Config.model`` and
      ``Config.loss``;
    - ``presets``: ``{profile: Config}`` on its embedded default dataset, ``paper`` written
      out with the report's sections beside its values, ``cpu`` and ``smoke`` as
      ``dataclasses.replace`` calls on it; ``on_dataset(preset, dataset) -> Config``: a preset
      on another of its datasets (its geometry and classes there);
    - ``build_model(config)``: ``model(images) -> outputs``;
    - ``build_datasets(config) -> (train, val)``, whose items ``collate_fn(items) -> (images,
      targets)`` batches;
    - ``build_criterion(config)``: ``criterion(outputs, targets) -> {"loss_<name>": scalar}``
      with ``criterion.weight_dict``;
    - ``build_evaluator(config, dataset)``: ``update(outputs, targets)``, ``compute() ->
      dict``, and ``state_dict`` / ``load_state_dict`` so a resumed epoch keeps its running
      metrics;
    - ``dummy_items(config, count, generator)``: random items of the dataset's kind at the
      config's image size, for step timing and benchmarks (``dummy_batch``);
    - ``channels_last``: a convolutional network, trained on CUDA with its weights and images
      in the ``channels_last`` memory format (NHWC, what tensor-core convolutions read);
    - ``evaluates_training_set``: whether training runs its evaluator on every training batch.
      The set-prediction experiments do not: their evaluators match, infer panoptic segments
      and encode masks on the CPU, image by image (about a quarter of a CPU step, and a host
      synchronisation per image and query on a GPU); their training records hold the loss's
      terms, ``class_accuracy`` from the loss's own matching included, and their metrics are
      the validation set's.
    - ``graphs``: how ``Config.graphs`` captures its training step (``seqseg_lib.graphs``):
      ``"whole"`` (forward, loss, backward and Adam as one CUDA graph: a step that never
      waits for the host), ``"model"`` (the model's forward and backward as two graphs, the
      Hungarian matching and the loss between them on the host), or ``None`` (never).
    """

    datasets: tuple[str, ...]
    model_config: type
    loss_config: type
    presets: dict[str, Config]
    on_dataset: Callable[[Config, str], Config]
    build_model: Callable[[Config], nn.Module]
    build_datasets: Callable[[Config], tuple[Dataset, Dataset]]
    build_criterion: Callable[[Config], nn.Module]
    build_evaluator: Callable[[Config, Dataset], Any]
    collate_fn: Callable[[list[dict]], tuple[Any, Any]]
    dummy_items: Callable[[Config, int, torch.Generator], list[dict]]
    channels_last: bool = False
    evaluates_training_set: bool = True
    graphs: str | None = "whole"

    def dummy_batch(self, config: Config, batch_size: int, seed: int = 0) -> tuple[Any, Any]:
        """``(images, targets)`` of ``batch_size`` random items, as ``collate_fn`` makes them."""
        generator = torch.Generator().manual_seed(seed)
        return self.collate_fn(self.dummy_items(config, batch_size, generator))
