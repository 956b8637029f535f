"""Semantic segmentation (Sec. 2): ``seq2seg``, ``seq2seg-noskip`` and ``unet`` on street scenes
(the synthetic default, Cityscapes or CamVid), with the binary cross-entropy of Sec. 2.2."""

from dataclasses import replace

import torch

from seqseg_lib import paper
from seqseg_lib.config import Config
from seqseg_lib.data import build_street_datasets
from seqseg_lib.data.targets import collate_semantic
from seqseg_lib.experiments.base import (
    CPU_RUN_CONTROL,
    PAPER_CHECKPOINT_EPOCHS,
    PAPER_VALIDATE_EPOCHS,
    PAPER_WORKERS,
    Experiment,
)
from seqseg_lib.losses import SemanticCriterion, SemanticLossConfig
from seqseg_lib.metrics import SemanticEvaluator
from seqseg_lib.models.seq2seg import Seq2Seg, Seq2SegConfig
from seqseg_lib.models.unet import UNet, UNetConfig

DATASETS = ("synthetic", "cityscapes", "camvid")
NUM_CLASSES = {"cityscapes": 34, "synthetic": 34, "camvid": 11}  # the model's output channels

# -- presets: ``paper`` written out; ``cpu`` and ``smoke`` as its changes -----------------------
# Sec. 2.2 on the embedded synthetic scenes, in Cityscapes' label space and at its sizes.
UNET_PAPER = Config(
    experiment="unet",
    profile="paper",
    dataset="synthetic",
    model=UNetConfig(num_classes=NUM_CLASSES["synthetic"]),  # 7.8M parameters (Table 1)
    loss=SemanticLossConfig(),  # binary cross-entropy (Sec. 2.2)
    epochs=paper.EPOCHS["unet"],  # 30 epochs (Sec. 2.2)
    batch_size=paper.BATCH_SIZE,  # 24 (Sec. 2.2)
    lr=paper.SCHEDULES["unet"][1],  # 1e-3, then 5e-4 and 1e-4 after 10 and 20 epochs
    lr_milestones=paper.SCHEDULES["unet"][2],
    drop_last=True,  # 2,975 // 24 = 123 minibatches per epoch (Sec. 2.2)
    resize=paper.RESIZE,  # 140x280 (Sec. 2.2)
    crop=paper.CROP,  # random 128x256 crops, the centre one in validation (Sec. 2.2)
    num_train=paper.CITYSCAPES_TRAIN_IMAGES,  # Cityscapes fine's split sizes
    num_val=paper.CITYSCAPES_VAL_IMAGES,
    amp=None,  # bfloat16 autocast where the device has it in hardware (``build_config``)
    deterministic=None,  # bit-identical kernels but on CUDA, where cuDNN's autotuner picks
    # a GPU's run control (results do not change): DataLoader workers, a checkpoint and a
    # validation every 5 epochs (``experiments.PAPER_CHECKPOINT_EPOCHS``) and after the last
    num_workers=PAPER_WORKERS,
    checkpoint_epochs=PAPER_CHECKPOINT_EPOCHS,
    validate_every=PAPER_VALIDATE_EPOCHS,
)
SEQ2SEG_PAPER = replace(
    UNET_PAPER,
    experiment="seq2seg",
    # BERT of 6 layers, 768 wide, FFN 3072, over 16x16 patches, every hidden state summed into
    # one transposed convolution (Sec. 2.1-2.2): the model's defaults
    model=Seq2SegConfig(num_classes=NUM_CLASSES["synthetic"], skip=True),
    epochs=paper.EPOCHS["seq2seg"],  # 45 epochs (Sec. 2.2)
    lr=paper.SCHEDULES["seq2seg"][1],  # 1e-4, then 5e-5 and 1e-5 after 15 and 30 epochs
    lr_milestones=paper.SCHEDULES["seq2seg"][2],
)
SEQ2SEG_NOSKIP_PAPER = replace(
    SEQ2SEG_PAPER,
    experiment="seq2seg-noskip",
    model=replace(SEQ2SEG_PAPER.model, skip=False),  # the last hidden state only (Sec. 2.2)
    lr=paper.SCHEDULES["seq2seg-noskip"][1],  # 5e-5, then 1e-5 and 5e-6 (Sec. 2.2)
    lr_milestones=paper.SCHEDULES["seq2seg-noskip"][2],
)
# ``cpu``: 2 CPU cores, minutes per model. Crops of 64x128 from a 70x140 resize (half the
# report's sides), 600 training and 150 validation scenes, batch 16, the report's schedules
# shortened to a third (U-Net 10 epochs, decays after 3 and 7; Seq2Seg 15, after 5 and 10);
# float32 and bit-identical kernels (also on a GPU); no workers, checkpoints and validations
# every epoch.
CPU_DATA = {"batch_size": 16, "resize": (70, 140), "crop": (64, 128)}
CPU_DATA |= {"num_train": 600, "num_val": 150} | CPU_RUN_CONTROL
# Seq2Seg keeps the report's sequence of 128 tokens (8x16 patches of 8x8 pixels on a 64x128
# crop) with a 4-layer, 256-wide encoder (4 heads, FFN 1024). Being 12 times smaller than the
# report's, it trains at 5 times the report's learning rates, keeping their ratios (at the
# report's 1e-4, 330 steps left it at 48% validation accuracy on CamVid, still falling slowly,
# against U-Net's 79%).
CPU_ENCODER = {"patch_size": 8, "hidden_dim": 256, "num_layers": 4, "num_heads": 4}
CPU_ENCODER |= {"ffn_dim": 1024}
UNET_CPU = replace(
    UNET_PAPER,
    profile="cpu",
    **CPU_DATA,
    model=replace(UNET_PAPER.model, base_width=32),  # the report's U-Net
    epochs=10,
    lr_milestones=((3, 5e-4), (7, 1e-4)),
)
SEQ2SEG_CPU = replace(
    SEQ2SEG_PAPER,
    profile="cpu",
    **CPU_DATA,
    model=replace(SEQ2SEG_PAPER.model, **CPU_ENCODER),
    epochs=15,
    lr=5 * SEQ2SEG_PAPER.lr,  # 5e-4 -> 2.5e-4 -> 5e-5
    lr_milestones=((5, 5 * 5e-5), (10, 5 * 1e-5)),
)
SEQ2SEG_NOSKIP_CPU = replace(
    SEQ2SEG_NOSKIP_PAPER,
    profile="cpu",
    **CPU_DATA,
    model=replace(SEQ2SEG_NOSKIP_PAPER.model, **CPU_ENCODER),
    epochs=15,
    lr=5 * SEQ2SEG_NOSKIP_PAPER.lr,  # 2.5e-4 -> 5e-5 -> 2.5e-5
    lr_milestones=((5, 5 * 1e-5), (10, 5 * 5e-6)),
)
# ``smoke``: seconds. 8 training and 4 validation scenes of 32x64, batch 4, 2 epochs, the
# second at the report's first rate, tiny models (U-Net 4 wide, first at 1e-2; a 2-layer,
# 32-wide encoder).
SMOKE_DATA = {"epochs": 2, "batch_size": 4, "resize": (36, 72), "crop": (32, 64)}
SMOKE_DATA |= {"num_train": 8, "num_val": 4} | CPU_RUN_CONTROL
SMOKE_ENCODER = {"patch_size": 8, "hidden_dim": 32, "num_layers": 2, "num_heads": 2}
SMOKE_ENCODER |= {"ffn_dim": 64}
UNET_SMOKE = replace(
    UNET_PAPER,
    profile="smoke",
    **SMOKE_DATA,
    model=replace(UNET_PAPER.model, base_width=4),
    lr=1e-2,
    lr_milestones=((1, UNET_PAPER.lr),),  # (1e-3 from epoch 1)
)
SEQ2SEG_SMOKE = replace(
    SEQ2SEG_PAPER,
    profile="smoke",
    **SMOKE_DATA,
    model=replace(SEQ2SEG_PAPER.model, **SMOKE_ENCODER),
    lr_milestones=((1, SEQ2SEG_PAPER.lr),),
)
SEQ2SEG_NOSKIP_SMOKE = replace(
    SEQ2SEG_NOSKIP_PAPER,
    profile="smoke",
    **SMOKE_DATA,
    model=replace(SEQ2SEG_NOSKIP_PAPER.model, **SMOKE_ENCODER),
    lr_milestones=((1, SEQ2SEG_NOSKIP_PAPER.lr),),
)
PRESETS = {
    "unet": {"paper": UNET_PAPER, "cpu": UNET_CPU, "smoke": UNET_SMOKE},
    "seq2seg": {"paper": SEQ2SEG_PAPER, "cpu": SEQ2SEG_CPU, "smoke": SEQ2SEG_SMOKE},
    "seq2seg-noskip": {
        "paper": SEQ2SEG_NOSKIP_PAPER,
        "cpu": SEQ2SEG_NOSKIP_CPU,
        "smoke": SEQ2SEG_NOSKIP_SMOKE,
    },
}

# A preset on the real datasets: Cityscapes whole (its splits' own sizes at ``paper``), at the
# synthetic scenes' geometry; CamVid's 360x480 frames at the same height, the width keeping
# their 3:4 aspect (a multiple of 16), and its 11 classes.
CAMVID_GEOMETRY = {
    "paper": ((140, 187), (128, 176)),
    "cpu": ((70, 93), (64, 80)),
    "smoke": ((36, 48), (32, 48)),
}


def on_dataset(preset: Config, dataset: str) -> Config:
    """``preset`` (on the synthetic scenes) on ``dataset``."""
    if dataset == "synthetic":
        return preset
    model = replace(preset.model, num_classes=NUM_CLASSES[dataset])
    config = replace(preset, dataset=dataset, model=model)
    if preset.num_train == paper.CITYSCAPES_TRAIN_IMAGES:  # ``paper``: the whole splits
        config = replace(config, num_train=None, num_val=None)
    if dataset == "camvid":
        resize, crop = CAMVID_GEOMETRY[preset.profile]
        config = replace(config, resize=resize, crop=crop)
    return config


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
        presets=PRESETS[name],
        on_dataset=on_dataset,
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
