"""One batch through a model and its criterion (``forward``), and a model evaluated on a
dataset (``evaluate_model``: loss terms and metrics, merged across processes). The engine reads
a run directory's model back and evaluates it (``engine.load_model``, ``engine.evaluate``).
"""

from contextlib import nullcontext
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from seqseg_lib import distributed
from seqseg_lib.config import Config
from seqseg_lib.experiments.base import Experiment
from seqseg_lib.loading import evaluation_loader, prepare
from seqseg_lib.progress import PhaseTimer
from seqseg_lib.tensors import accumulate, batch_size, detach, host_values, to_device, to_float


def memory_format(experiment: Experiment, device: torch.device) -> torch.memory_format:
    """``channels_last`` for the convolutional experiments on CUDA, else the default."""
    if experiment.channels_last and device.type == "cuda":
        return torch.channels_last
    return torch.contiguous_format


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
    precision = autocast(config, device_type)
    with timer("forward"), precision:
        outputs = model(images)
    with timer("loss"):
        losses = criterion(to_float(outputs), targets)
        total = weighted_total(losses, criterion.weight_dict)
    return outputs, losses, total


def autocast(config: Config, device_type: str):
    """bfloat16 autocast when ``config.amp``, else nothing. Its cache of weights cast to
    bfloat16 is off where the step is captured (``Config.graphs``): a CUDA graph must not
    outlive tensors that the cache frees (PyTorch's notes on graphs and autocast)."""
    if not config.amp:
        return nullcontext()
    return torch.autocast(device_type, dtype=torch.bfloat16, cache_enabled=not config.graphs)


def weighted_total(losses: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """The loss that is optimised: the ``weight_dict``-weighted sum of the raw terms."""
    return sum(weights[k] * value for k, value in losses.items() if k in weights)


def name_classes(metrics: dict[str, Any], class_names: tuple[str, ...]) -> dict[str, Any]:
    """``metrics`` with every per-class list (one value per class) as ``{class name: value}``."""
    return {
        key: dict(zip(class_names, value))
        if isinstance(value, list) and len(value) == len(class_names)
        else value
        for key, value in metrics.items()
    }
