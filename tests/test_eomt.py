"""EoMT (``transformers``' ``EomtForUniversalSegmentation``) behind our outputs, its own loss,
and our transformer with the queries joining late, as notebook 08 trains them."""

import pytest
import torch

from seqseg_lib.data.targets import collate_panoptic
from seqseg_lib.experiments import EXPERIMENTS, build_config, build_criterion, build_model
from seqseg_lib.experiments.panoptic import dummy_panoptic_items
from seqseg_lib.losses import EomtCriterion
from seqseg_lib.models import (
    EomtSegmenter,
    EomtSegmenterConfig,
    Seq2SegInstance,
    Seq2SegInstanceConfig,
)

SMALL = EomtSegmenterConfig(
    num_queries=6, hidden_dim=32, num_layers=3, num_heads=2, image_size=32, num_blocks=2
)


def batch(config, count=2):
    images, targets = collate_panoptic(
        dummy_panoptic_items(config, count, torch.Generator().manual_seed(0))
    )
    return images, targets


class Crop:
    crop = (32, 32)


def test_eomt_gives_our_outputs_and_each_masked_block_s_predictions():
    model = EomtSegmenter(SMALL)
    images, _ = batch(Crop)
    outputs = model(images)
    assert outputs["pred_logits"].shape == (2, 6, 20)  # 19 trainIds and "no object"
    assert outputs["pred_masks"].shape == (2, 6, 16, 16)  # 4x the 4x4 patch grid
    assert len(outputs["aux_outputs"]) == SMALL.num_blocks
    assert "predict" not in vars(model.eomt)  # the recording wrapper is taken off again
    with pytest.raises(ValueError, match="square images of its image_size, 32x32"):
        model(torch.zeros(1, 3, 32, 64))


def test_our_eomt_loss_is_transformers_own_loss_bit_for_bit():
    """The criterion sums HF's EomtLoss over the masked blocks and the last one, weighted as
    HF weighs it: from the same random state (its point sampling) the same value as
    ``EomtForUniversalSegmentation(pixel_values, mask_labels, class_labels).loss``."""
    model, criterion = EomtSegmenter(SMALL), EomtCriterion(SMALL)
    model.eomt.criterion = criterion.loss  # HF's model, with our (fewer) sampled points
    images, targets = batch(Crop)
    torch.manual_seed(3)
    theirs = model.eomt(
        pixel_values=images,
        mask_labels=[t["masks"].float() for t in targets],
        class_labels=[t["labels"] for t in targets],
    ).loss
    torch.manual_seed(3)
    terms = criterion(model(images), targets)
    ours = sum(criterion.weight_dict[key] * terms[key] for key in criterion.weight_dict)
    assert torch.equal(ours, theirs)
    ours.backward()
    assert model.eomt.query.weight.grad.abs().sum() > 0


def test_queries_that_join_late_see_the_patches_of_the_last_layers_only():
    config = Seq2SegInstanceConfig(
        num_classes=19, num_queries=5, hidden_dim=32, num_layers=3, num_heads=2, ffn_dim=64,
        patch_size=8, mask_size=16, in_channels=3, mask_head="dot", image_size=32,
        query_layers=1, dropout=0.0,
    )  # fmt: skip
    model = Seq2SegInstance(config).eval()
    images = torch.randn(2, 3, 32, 32)
    outputs = model(images)
    assert outputs["pred_masks"].shape == (2, 5, 16, 16)
    # the patches' first two layers do not depend on the queries: changing the queries
    # changes the masks only through the last layer
    hidden = model.queries_join_late(model.query_embed.expand(2, -1, -1), torch.zeros(2, 16, 32))
    assert hidden.shape == (2, 5 + 16, 32)
    with pytest.raises(ValueError, match="query_layers must be None or between 1 and"):
        Seq2SegInstanceConfig(num_layers=2, query_layers=3)


@pytest.mark.parametrize("name", ["seq2seg-panoptic", "eomt"])
def test_the_transformers_train_a_smoke_step_on_square_crops(name):
    config = build_config(name, "smoke")
    assert config.crop[0] == config.crop[1]
    model, criterion = build_model(config), build_criterion(config)
    images, targets = EXPERIMENTS[name].dummy_batch(config, 2)
    losses = criterion(model(images), targets)
    total = sum(
        criterion.weight_dict[k] * v for k, v in losses.items() if k in criterion.weight_dict
    )
    total.backward()
    assert torch.isfinite(total)
