"""Semantic segmentation (Sec. 2): ``seq2seg``, ``seq2seg-noskip`` and ``unet`` on street scenes
(the synthetic default, Cityscapes or CamVid), with the binary cross-entropy of Sec. 2.2."""

from typing import Any

import torch

from seqseg_lib import paper
from seqseg_lib.config import Config
from seqseg_lib.data import PAPER_SYNTHETIC_SIZES, build_street_datasets
from seqseg_lib.data.targets import collate_semantic
from seqseg_lib.experiments.base import Experiment
from seqseg_lib.losses import SemanticCriterion, SemanticLossConfig
from seqseg_lib.metrics import SemanticEvaluator
from seqseg_lib.models.seq2seg import Seq2Seg, Seq2SegConfig
from seqseg_lib.models.unet import UNet, UNetConfig

DATASETS = ("synthetic", "cityscapes", "camvid")

# Image geometry per dataset and profile: (resize, crop) as (H, W). Cityscapes: Sec. 2.2.
# CamVid frames are 360x480: the same height, the width keeping their 3:4 aspect (a multiple
# of 16). ``cpu`` halves both sides.
GEOMETRY = {
    ("paper", "cityscapes"): (paper.RESIZE, paper.CROP),
    ("paper", "synthetic"): (paper.RESIZE, paper.CROP),
    ("paper", "camvid"): ((140, 187), (128, 176)),
    ("cpu", "cityscapes"): ((70, 140), (64, 128)),
    ("cpu", "synthetic"): ((70, 140), (64, 128)),
    ("cpu", "camvid"): ((70, 93), (64, 80)),
    ("smoke", "cityscapes"): ((36, 72), (32, 64)),
    ("smoke", "synthetic"): ((36, 72), (32, 64)),
    ("smoke", "camvid"): ((36, 48), (32, 48)),
}
NUM_CLASSES = {"cityscapes": 34, "synthetic": 34, "camvid": 11}  # the model's output channels


def semantic_preset(experiment: str):
    """The ``(profile, dataset) -> dict`` preset of ``experiment``: the report's geometry and
    schedule (``paper``), scaled down (``cpu``, see ``cpu_overrides``), or tiny (``smoke``)."""

    def preset(profile: str, dataset: str) -> dict[str, Any]:
        resize, crop = GEOMETRY[profile, dataset]
        model = {"num_classes": NUM_CLASSES[dataset]}
        if experiment != "unet":
            model["skip"] = experiment == "seq2seg"
        epochs, lr, milestones = paper.SCHEDULES[experiment]
        values = {"resize": resize, "crop": crop, "epochs": epochs, "lr": lr}
        values["lr_milestones"] = milestones
        if (profile, dataset) == ("paper", "synthetic"):
            values |= PAPER_SYNTHETIC_SIZES
        if profile == "cpu":
            values |= cpu_overrides(experiment, epochs, lr, milestones)
            model.update(values.pop("model"))
        elif profile == "smoke":
            values.update(epochs=2, batch_size=4, num_train=8, num_val=4, lr_milestones=((1, lr),))
            values["lr"] = lr if experiment != "unet" else 1e-2
            model.update(
                {"base_width": 4}
                if experiment == "unet"
                else {"patch_size": 8, "hidden_dim": 32, "num_layers": 2, "num_heads": 2}
                | {"ffn_dim": 64}
            )
        model_config = UNetConfig if experiment == "unet" else Seq2SegConfig
        return values | {"model": model_config(**model), "loss": SemanticLossConfig()}

    return preset


def cpu_overrides(experiment, epochs, lr, milestones) -> dict[str, Any]:
    """The ``cpu`` profile: half-resolution crops, a smaller Seq2Seg, the report's schedules
    shortened to a third.

    - Crops of 64x128 from a 70x140 resize (Cityscapes geometry; CamVid keeps its aspect),
      600 training and 150 validation images of the synthetic set, batch 16.
    - U-Net is the report's model (7.8M parameters).
    - Seq2Seg keeps the report's sequence of 128 tokens (8x16 patches of 8x8 pixels on a
      64x128 crop) with a 4-layer, 256-wide encoder (4 heads, FFN 1024). Being 12 times
      smaller than the report's, it trains at 5 times the report's learning rates, keeping
      their ratios: with skip 5e-4 -> 2.5e-4 -> 5e-5, without 2.5e-4 -> 5e-5 -> 2.5e-5 (at the
      report's 1e-4, 330 steps left it at 48% validation accuracy on CamVid, still falling
      slowly, against U-Net's 79%).
    - Epochs and milestones are a third of the report's: U-Net 10 (3, 7), Seq2Seg 15 (5, 10).
    """
    scale = 1 / 3
    if experiment == "unet":
        model, lr_scale = {"base_width": 32}, 1.0
    else:
        model = {"patch_size": 8, "hidden_dim": 256, "num_layers": 4, "num_heads": 4}
        model["ffn_dim"] = 1024
        lr_scale = 5.0
    return {
        "epochs": round(epochs * scale),
        "lr": lr * lr_scale,
        "lr_milestones": tuple((max(1, round(e * scale)), v * lr_scale) for e, v in milestones),
        "batch_size": 16,
        "num_train": 600,
        "num_val": 150,
        "model": model,
    }


def dummy_semantic_items(config: Config, count: int, generator: torch.Generator) -> list[dict]:
    """Random images and labels (uniform over the model's classes) at the config's crop."""
    height, width = config.crop
    return [
        {
            "image": torch.rand(3, height, width, generator=generator),
            "labels": torch.randint(
                0, config.model.num_classes, (height, width), generator=generator
            ),
        }
        for _ in range(count)
    ]


def semantic_experiment(name: str) -> Experiment:
    model_type, model_config = (UNet, UNetConfig) if name == "unet" else (Seq2Seg, Seq2SegConfig)
    return Experiment(
        datasets=DATASETS,
        model_config=model_config,
        loss_config=SemanticLossConfig,
        preset=semantic_preset(name),
        build_model=lambda config: model_type(config.model),
        build_datasets=build_street_datasets,
        build_criterion=lambda config: SemanticCriterion(),
        build_evaluator=lambda config, dataset: SemanticEvaluator(dataset.label_space),
        collate_fn=collate_semantic,
        dummy_items=dummy_semantic_items,
        channels_last=name == "unet",
    )


SEQ2SEG = semantic_experiment("seq2seg")
SEQ2SEG_NOSKIP = semantic_experiment("seq2seg-noskip")
UNET = semantic_experiment("unet")
