"""Panoptic segmentation (Sec. 4): ``hungarian-unet`` on street scenes with instances
(the synthetic default or Cityscapes).

The model is ``HungarianUNet``; the loss is the Hungarian loss of Sec. 3.3 (``SetCriterion``:
Dice + cross-entropy, class weight 0.1, no-object weight 0.5) with the matching costs computed
on masks downsampled to 32x64 (Sec. 4); the evaluator is ``panoptic.PanopticEvaluator`` (PQ,
mIoU and pixel accuracy of the semantic map made from the panoptic one, redundancy).
"""

from dataclasses import replace
from typing import Any

import torch

from seqseg_lib import paper
from seqseg_lib.config import Config
from seqseg_lib.data.labels import CITYSCAPES
from seqseg_lib.data.targets import INSTANCE_OFFSET, collate_panoptic
from seqseg_lib.experiments.base import Experiment
from seqseg_lib.experiments.street import PAPER_SYNTHETIC_SIZES, build_street_datasets
from seqseg_lib.losses import SetCriterion, SetLossConfig
from seqseg_lib.models import HungarianUNet, HungarianUNetConfig
from seqseg_lib.panoptic import PanopticEvaluator

NUM_CLASSES = CITYSCAPES.num_eval_classes  # 19 trainIds; the model adds "no object"
# Cityscapes labelIds of the thing classes (car, person, ...), whose pixels carry instance ids
THING_LABEL_IDS = tuple(
    i for i in range(CITYSCAPES.num_classes) if CITYSCAPES.eval_lut[i] in CITYSCAPES.thing_eval_ids
)


def build_panoptic_criterion(config: Config) -> SetCriterion:
    """Sec. 3.3's loss, its matching batched per image on every device: at the Hungarian
    U-Net's shapes (100 queries, about 22 targets, 32x64 or the crop's pixels) the batched
    product gives the costs of every query against every target bit for bit on a CPU as well
    (40 ``cpu`` training steps end with the same weights), at 1/B of the operations."""
    criterion = SetCriterion(config.model.num_classes, config.loss)
    criterion.matcher.batched = True
    return criterion


def panoptic_preset(profile: str, dataset: str) -> dict[str, Any]:
    """The ``paper``, ``cpu`` and ``smoke`` profiles of ``hungarian-unet``."""
    values = {"paper": paper_preset, "cpu": cpu_preset, "smoke": smoke_preset}[profile]()
    if (profile, dataset) == ("paper", "synthetic"):
        values |= PAPER_SYNTHETIC_SIZES
    return values


def paper_preset() -> dict[str, Any]:
    """Sec. 4: 30 epochs of Cityscapes fine, Adam 1e-3 -> 5e-4 -> 1e-4 after 10 and 20
    epochs, N_obj = 100, matching at 32x64; Sec. 3.3's loss; Sec. 2.2's batch of 24 and
    140x280 resize with 128x256 crops (Sec. 4 gives neither; these are the U-Net's)."""
    return {
        "model": HungarianUNetConfig(num_queries=100, num_classes=NUM_CLASSES, base_width=32),
        "loss": SetLossConfig(
            no_object_weight=0.5,  # Sec. 3.3
            class_weight=0.1,  # Sec. 3.3
            mask_weight=1.0,  # Sec. 3.3
            mask_loss="dice",  # Sec. 3.3, 4
            match_size=paper.PANOPTIC_MATCH_SIZE,
        ),
        "epochs": paper.PANOPTIC_EPOCHS,
        "batch_size": paper.BATCH_SIZE,  # Sec. 2.2's
        "lr": paper.PANOPTIC_LR,
        "lr_milestones": paper.PANOPTIC_LR_MILESTONES,
        "resize": paper.RESIZE,  # Sec. 2.2's
        "crop": paper.CROP,
    }


def cpu_preset() -> dict[str, Any]:
    """2 CPU cores, under 20 minutes: half-resolution crops (64x128), the U-Net at half
    width (2.46M parameters), 600 synthetic training and 150 validation scenes, batch 16,
    the report's 30 epochs and schedule. Matching stays at 32x64, half the crop's
    resolution rather than a quarter, so that small cars survive it.

    About 18 minutes on 2 cores. Where it stands (PQ, cars found, duplicates) and what the
    ablation of notebook 04 changes: ``reports/README.md``, written from the runs.
    """
    paper = paper_preset()
    return paper | {
        "model": replace(paper["model"], base_width=16),
        "batch_size": 16,
        "resize": (70, 140),
        "crop": (64, 128),
        "num_train": 600,
        "num_val": 150,
    }


def smoke_preset() -> dict[str, Any]:
    """Seconds: 10 queries, a 4-wide U-Net, 32x64 crops, 8 training and 4 validation images."""
    paper = paper_preset()
    return paper | {
        "model": HungarianUNetConfig(num_queries=10, num_classes=NUM_CLASSES, base_width=4),
        "loss": replace(paper["loss"], match_size=(16, 32)),
        "epochs": 2,
        "batch_size": 4,
        "lr_milestones": ((1, 1e-3),),
        "resize": (36, 72),
        "crop": (32, 64),
        "num_train": 8,
        "num_val": 4,
    }


def dummy_panoptic_items(config: Config, count: int, generator: torch.Generator) -> list[dict]:
    """Street-scene items of random 16x16-pixel blocks of labelIds at the config's crop, each
    block of a thing class one instance."""
    height, width = config.crop
    items = []
    for _ in range(count):
        blocks = torch.randint(
            0, CITYSCAPES.num_classes, (height // 16, width // 16), generator=generator
        )
        labels = blocks.repeat_interleave(16, 0).repeat_interleave(16, 1)  # (H, W)
        block_ids = torch.arange(blocks.numel()).view(blocks.shape)
        block_ids = block_ids.repeat_interleave(16, 0).repeat_interleave(16, 1)  # (H, W)
        things = torch.isin(labels, torch.tensor(THING_LABEL_IDS))
        instances = torch.where(things, labels * INSTANCE_OFFSET + block_ids, labels)
        image = torch.rand(3, height, width, generator=generator)
        items.append({"image": image, "labels": labels, "instances": instances})
    return items


HUNGARIAN_UNET = Experiment(
    datasets=("synthetic", "cityscapes"),
    model_config=HungarianUNetConfig,
    loss_config=SetLossConfig,
    preset=panoptic_preset,
    build_model=lambda config: HungarianUNet(config.model),
    build_datasets=build_street_datasets,
    build_criterion=build_panoptic_criterion,
    build_evaluator=lambda config, dataset: PanopticEvaluator(dataset.label_space),
    collate_fn=collate_panoptic,
    dummy_items=dummy_panoptic_items,
    channels_last=True,
    evaluates_training_set=False,
)
