"""Panoptic segmentation (Sec. 4) on street scenes with instances (the synthetic default or
Cityscapes):

- ``hungarian-unet``: the model of Sec. 4, ``HungarianUNet``; the loss is the Hungarian loss
  of Sec. 3.3 (``SetCriterion``: Dice + cross-entropy, class weight 0.1, no-object weight
  0.5) with the matching costs computed on masks downsampled to 32x64 (Sec. 4);
- ``seq2seg-panoptic`` (ours): Sec. 3's transformer with object queries on the same task and
  loss, with Sec. 3.5's dot-product masks; the report fell back to the U-Net here because the
  transformer was too costly;
- ``eomt``: the field's answer, EoMT (``models.EomtSegmenter``: ``transformers``' own
  ``EomtForUniversalSegmentation``) trained with its own loss (``losses.EomtCriterion``).

The two transformers take square crops (EoMT's input is a square of its ``image_size``). The
evaluator of all three is ``panoptic.PanopticEvaluator`` (PQ, mIoU and pixel accuracy of the
semantic map made from the panoptic one, redundancy).
"""

from dataclasses import replace

import torch

from seqseg_lib import paper
from seqseg_lib.config import Config
from seqseg_lib.data import build_street_datasets
from seqseg_lib.data.labels import CITYSCAPES
from seqseg_lib.data.targets import INSTANCE_OFFSET, collate_panoptic
from seqseg_lib.experiments.base import (
    CPU_RUN_CONTROL,
    PAPER_CHECKPOINT_EPOCHS,
    PAPER_VALIDATE_EPOCHS,
    PAPER_WORKERS,
    Experiment,
)
from seqseg_lib.losses import EomtCriterion, EomtLossConfig, SetCriterion, SetLossConfig
from seqseg_lib.models.eomt import EomtSegmenter, EomtSegmenterConfig
from seqseg_lib.models.hungarian_unet import HungarianUNet, HungarianUNetConfig
from seqseg_lib.models.seq2seg_instance import Seq2SegInstance, Seq2SegInstanceConfig
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


# -- presets: ``paper`` written out; ``cpu`` and ``smoke`` as its changes -----------------------
# Sec. 4: 30 epochs, Adam 1e-3 -> 5e-4 -> 1e-4 after 10 and 20 epochs, N_obj = 100, matching at
# 32x64; Sec. 3.3's loss; Sec. 2.2's batch of 24 and 140x280 resize with 128x256 crops (Sec. 4
# gives neither; these are the U-Net's). On the synthetic scenes at Cityscapes' sizes.
HUNGARIAN_UNET_PAPER = Config(
    experiment="hungarian-unet",
    profile="paper",
    dataset="synthetic",
    model=HungarianUNetConfig(num_queries=100, num_classes=NUM_CLASSES, base_width=32),
    loss=SetLossConfig(
        no_object_weight=0.5,  # Sec. 3.3
        class_weight=0.1,  # Sec. 3.3
        mask_weight=1.0,  # Sec. 3.3
        mask_loss="dice",  # Sec. 3.3, 4
        match_size=paper.PANOPTIC_MATCH_SIZE,  # 32x64 (Sec. 4)
    ),
    epochs=paper.PANOPTIC_EPOCHS,  # 30 (Sec. 4)
    batch_size=paper.BATCH_SIZE,  # Sec. 2.2's
    lr=paper.PANOPTIC_LR,  # 1e-3, then 5e-4 and 1e-4 after 10 and 20 epochs (Sec. 4)
    lr_milestones=paper.PANOPTIC_LR_MILESTONES,
    drop_last=True,
    resize=paper.RESIZE,  # Sec. 2.2's
    crop=paper.CROP,
    num_train=paper.CITYSCAPES_TRAIN_IMAGES,  # Cityscapes fine's split sizes
    num_val=paper.CITYSCAPES_VAL_IMAGES,
    amp=None,  # bfloat16 autocast where the device has it in hardware (``build_config``)
    # a GPU's run control (results do not change), as the semantic experiments'
    num_workers=PAPER_WORKERS,
    checkpoint_epochs=PAPER_CHECKPOINT_EPOCHS,
    validate_every=PAPER_VALIDATE_EPOCHS,
)
# ``cpu``: 2 CPU cores, about 18 minutes: half-resolution crops (64x128), the U-Net at half
# width (2.46M parameters), 600 synthetic training and 150 validation scenes, batch 16, the
# report's 30 epochs and schedule; float32 and bit-identical kernels, no workers, checkpoints
# and validations every epoch. Matching stays at 32x64, half the crop's resolution rather than
# a quarter, so that small cars survive it. Where it stands (PQ, cars found, duplicates) and
# what the ablation of notebook 04 changes: ``reports/README.md``, written from the runs.
HUNGARIAN_UNET_CPU = replace(
    HUNGARIAN_UNET_PAPER,
    profile="cpu",
    model=replace(HUNGARIAN_UNET_PAPER.model, base_width=16),
    batch_size=16,
    resize=(70, 140),
    crop=(64, 128),
    num_train=600,
    num_val=150,
    **CPU_RUN_CONTROL,
)
# ``smoke``: seconds, 10 queries, a 4-wide U-Net, 32x64 crops, 8 training and 4 validation
# images.
HUNGARIAN_UNET_SMOKE = replace(
    HUNGARIAN_UNET_PAPER,
    profile="smoke",
    model=HungarianUNetConfig(num_queries=10, num_classes=NUM_CLASSES, base_width=4),
    loss=replace(HUNGARIAN_UNET_PAPER.loss, match_size=(16, 32)),
    epochs=2,
    batch_size=4,
    lr_milestones=((1, 1e-3),),
    resize=(36, 72),
    crop=(32, 64),
    num_train=8,
    num_val=4,
    **CPU_RUN_CONTROL,
)


def on_dataset(preset: Config, dataset: str) -> Config:
    """``preset`` (on the synthetic scenes) on ``dataset``: on Cityscapes, its whole splits
    where the preset has Cityscapes' split sizes (``paper``), the geometry unchanged."""
    if dataset == "synthetic":
        return preset
    config = replace(preset, dataset=dataset)
    if preset.num_train == paper.CITYSCAPES_TRAIN_IMAGES:
        config = replace(config, num_train=None, num_val=None)
    return config


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
    presets={
        "paper": HUNGARIAN_UNET_PAPER,
        "cpu": HUNGARIAN_UNET_CPU,
        "smoke": HUNGARIAN_UNET_SMOKE,
    },
    on_dataset=on_dataset,
    build_model=lambda config: HungarianUNet(config.model),
    build_datasets=build_street_datasets,
    build_criterion=build_panoptic_criterion,
    build_evaluator=lambda config, dataset: PanopticEvaluator(dataset.label_space),
    collate_fn=collate_panoptic,
    dummy_items=dummy_panoptic_items,
    channels_last=True,
    evaluates_training_set=False,
    graphs="model",  # its matching copies the costs to the host
)


# -- the transformers on the same task (notebook 08) -------------------------------------------
# Square crops, a 4-layer, 256-wide encoder (the ``cpu`` Seq2Seg's) with 8x8 patches: 256 patch
# tokens and 100 queries at ``cpu``; the report's encoder and 16x16 patches at ``paper``.
TRANSFORMER_SIZES = {
    "smoke": {"hidden_dim": 32, "num_layers": 2, "num_heads": 2, "patch_size": 8, "image": 32},
    "cpu": {"hidden_dim": 256, "num_layers": 4, "num_heads": 4, "patch_size": 8, "image": 128},
    "paper": {key: paper.ENCODER[key] for key in ("hidden_dim", "num_layers", "num_heads")}
    | {"patch_size": 16, "image": 256},
}
SQUARE_RESIZE = {"smoke": (36, 72), "cpu": (140, 280), "paper": (280, 560)}
# The layers the queries join at the end (EoMT's ``num_blocks``; ours with ``query_layers``).
QUERY_LAYERS = 2
HUNGARIAN_UNET_PRESETS = HUNGARIAN_UNET.presets


SQUARE_LR = {"smoke": 1e-3, "cpu": 5e-4, "paper": paper.SEQ2SEG_LR}


def square_crops(profile: str) -> Config:
    """The data and schedule both transformers (and notebook 08's Hungarian U-Net) train with:
    the Hungarian U-Net's preset of the profile, on square crops, with Seq2Seg's learning rate
    of the profile (5e-4 at ``cpu``, 1e-4 at ``paper``: the report's) and the same decays at a
    third and two thirds of training, matching at a quarter of the crop's side (Sec. 4)."""
    preset = HUNGARIAN_UNET_PRESETS[profile]
    side, lr = TRANSFORMER_SIZES[profile]["image"], SQUARE_LR[profile]
    return replace(
        preset,
        resize=SQUARE_RESIZE[profile],
        crop=(side, side),
        lr=lr,
        lr_milestones=third_decays(preset.epochs, lr),
        loss=replace(preset.loss, match_size=(side // 4, side // 4)),
    )


def eomt_mask_side(profile: str) -> int:
    """The side of EoMT's masks: its patch grid upscaled 4x by its two upscale blocks."""
    sizes = TRANSFORMER_SIZES[profile]
    return 4 * (sizes["image"] // sizes["patch_size"])


def third_decays(epochs: int, lr: float) -> tuple[tuple[int, float], ...]:
    """Sec. 4's schedule shape for ``epochs``: ``lr`` halved after a third of them, a tenth
    after two thirds (1e-3, 5e-4, 1e-4 in the report)."""
    if epochs < 3:
        return ((1, lr),)
    return ((epochs // 3, lr / 2), (2 * epochs // 3, lr / 10))


def seq2seg_panoptic(profile: str) -> Config:
    """Ours: ``Seq2SegInstance`` with Sec. 4's 100 queries (10 at ``smoke``), Sec. 3.5's
    dot-product masks at 4x the patch grid (EoMT's mask size: 64x64 at ``cpu``), the queries
    in the last ``QUERY_LAYERS`` layers only, as EoMT's; Sec. 3.3's loss as the Hungarian
    U-Net's, on ``square_crops``."""
    sizes = TRANSFORMER_SIZES[profile]
    square = square_crops(profile)
    model = Seq2SegInstanceConfig(
        num_classes=NUM_CLASSES,
        num_queries=square.model.num_queries,
        hidden_dim=sizes["hidden_dim"],
        num_layers=sizes["num_layers"],
        num_heads=sizes["num_heads"],
        ffn_dim=4 * sizes["hidden_dim"],
        patch_size=sizes["patch_size"],
        mask_size=eomt_mask_side(profile),
        in_channels=3,
        mask_head="dot",
        image_size=sizes["image"],
        query_layers=min(QUERY_LAYERS, sizes["num_layers"]),
    )
    return replace(square, experiment="seq2seg-panoptic", model=model)


def eomt(profile: str) -> Config:
    """The field's: HF's EoMT at our transformer's width, depth, heads and patch, 100 queries
    (10 at ``smoke``) in its last ``QUERY_LAYERS`` blocks, trained with its own loss
    (``EomtLossConfig``) on the same data and schedule as ours (``square_crops``)."""
    sizes = TRANSFORMER_SIZES[profile]
    square = square_crops(profile)
    model = EomtSegmenterConfig(
        num_classes=NUM_CLASSES,
        num_queries=square.model.num_queries,
        hidden_dim=sizes["hidden_dim"],
        num_layers=sizes["num_layers"],
        num_heads=sizes["num_heads"],
        image_size=sizes["image"],
        patch_size=sizes["patch_size"],
        num_blocks=min(QUERY_LAYERS, sizes["num_layers"]),
    )
    loss = EomtLossConfig(train_num_points=eomt_mask_side(profile) ** 2)  # a mask's pixels
    return replace(square, experiment="eomt", model=model, loss=loss)


SEQ2SEG_PANOPTIC = replace(
    HUNGARIAN_UNET,
    model_config=Seq2SegInstanceConfig,
    presets={profile: seq2seg_panoptic(profile) for profile in TRANSFORMER_SIZES},
    build_model=lambda config: Seq2SegInstance(config.model),
    channels_last=False,
)
EOMT = replace(
    HUNGARIAN_UNET,
    model_config=EomtSegmenterConfig,
    loss_config=EomtLossConfig,
    presets={profile: eomt(profile) for profile in TRANSFORMER_SIZES},
    build_model=lambda config: EomtSegmenter(config.model),
    build_criterion=lambda config: EomtCriterion(config.model, config.loss),
    channels_last=False,
    graphs=None,  # transformers' loss and model, as the field ships them
)
