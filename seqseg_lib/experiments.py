"""What each experiment is made of: model, datasets, criterion, evaluator, collate.

The training engine sees only an ``Experiment``; it knows nothing of U-Net or Seq2Seg.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from seqseg_lib.config import SEMANTIC_EXPERIMENTS, Config, check_choice
from seqseg_lib.losses import SemanticCriterion
from seqseg_lib.metrics import SemanticEvaluator


@dataclass(frozen=True)
class Experiment:
    """Builders for one experiment.

    ``collate_fn(items) -> (images, targets)``; ``model(images) -> outputs``;
    ``criterion(outputs, targets) -> {"loss_<name>": scalar}`` with ``criterion.weight_dict``;
    ``evaluator.update(outputs, targets)``, ``evaluator.compute() -> dict``, and
    ``state_dict`` / ``load_state_dict`` so a resumed epoch keeps its running metrics.
    """

    build_model: Callable[[Config], nn.Module]
    build_datasets: Callable[[Config], tuple[Dataset, Dataset]]
    build_criterion: Callable[[Config], nn.Module]
    build_evaluator: Callable[[Config, Dataset], Any]
    collate_fn: Callable[[list[dict]], tuple[Any, Any]]


def build_semantic_datasets(config: Config) -> tuple[Dataset, Dataset]:
    """Train and validation splits of the configured dataset (validation: centre crops)."""
    from seqseg_lib.data import build_dataset

    common = {"resize": config.resize, "crop": config.crop, "seed": config.seed}
    train = build_dataset(config.dataset, config.data_root, "train", config.num_train, **common)
    val = build_dataset(config.dataset, config.data_root, "val", config.num_val, **common)
    return train, val


def build_semantic_model(config: Config) -> nn.Module:
    from seqseg_lib.models import Seq2Seg, UNet

    if config.experiment == "unet":
        return UNet(**config.model)
    return Seq2Seg(**config.model)


def collate_semantic(items: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """Items -> (images [B, 3, H, W], labels [B, H, W])."""
    return torch.stack([i["image"] for i in items]), torch.stack([i["labels"] for i in items])


SEMANTIC = Experiment(
    build_model=build_semantic_model,
    build_datasets=build_semantic_datasets,
    build_criterion=lambda config: SemanticCriterion(**config.loss),
    build_evaluator=lambda config, dataset: SemanticEvaluator(dataset.label_space),
    collate_fn=collate_semantic,
)

EXPERIMENTS: dict[str, Experiment] = dict.fromkeys(SEMANTIC_EXPERIMENTS, SEMANTIC)


def get_experiment(name: str) -> Experiment:
    return EXPERIMENTS[check_choice("experiment", name, list(EXPERIMENTS))]


# The set-prediction experiments register themselves (Sec. 3 and 4); imported last because
# they build on the definitions above.
from seqseg_lib import instance_experiment, panoptic_experiment  # noqa: E402, F401
