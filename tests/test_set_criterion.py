import math

import pytest
import torch
import torch.nn.functional as F

from seqseg_lib.losses import SetCriterion, SetLossConfig, dice_loss
from seqseg_lib.matcher import HungarianMatcher


def tiny_case():
    """One image, two queries, one target: a 2x2 mask, query 0 matches it exactly."""
    logits = torch.zeros(1, 2, 3)  # 2 classes + no-object, uniform probabilities
    masks = torch.full((1, 2, 2, 2), -100.0)
    masks[0, 0, 0] = 100.0  # query 0: top row
    target = {"labels": torch.tensor([1]), "masks": torch.tensor([[[1, 1], [0, 0]]]).bool()}
    return {"pred_logits": logits, "pred_masks": masks}, [target]


def test_hand_computed_values():
    outputs, targets = tiny_case()
    criterion = SetCriterion(num_classes=2)
    losses = criterion(outputs, targets)
    # Query 0 -> class 1 (weight 1), query 1 -> no-object (weight 0.5); both -log(1/3); the
    # weighted mean is (1 * log 3 + 0.5 * log 3) / (1 + 0.5) = log 3.
    assert float(losses["loss_ce"]) == pytest.approx(math.log(3), abs=1e-6)
    # Perfect mask: 1 - (2 * 2 + 1) / (2 + 2 + 1) = 0.
    assert float(losses["loss_dice"]) == pytest.approx(0.0, abs=1e-6)
    assert criterion.weight_dict == {"loss_ce": 0.1, "loss_dice": 1.0}  # Sec. 3.3


def test_no_object_weight_enters_the_class_loss():
    outputs, targets = tiny_case()
    outputs["pred_logits"][0, 1] = torch.tensor([0.0, 0.0, math.log(4)])  # p(no-object) = 2/3
    loss = float(SetCriterion(2, SetLossConfig(no_object_weight=0.5))(outputs, targets)["loss_ce"])
    expected = (1 * math.log(3) + 0.5 * -math.log(2 / 3)) / 1.5
    assert loss == pytest.approx(expected, abs=1e-6)


def test_dice_loss_by_hand_and_normalised_by_the_number_of_masks():
    pred = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    target = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    assert float(dice_loss(pred, target)[0]) == pytest.approx(1 - 3 / 4)
    # Two images, one target each; matched masks half right: the loss is the mean per mask.
    masks = torch.full((2, 1, 1, 4), -100.0)
    masks[:, 0, 0, 0] = 100.0
    targets = [{"labels": torch.tensor([0]), "masks": target.view(1, 1, 4).bool()}] * 2
    outputs = {"pred_logits": torch.zeros(2, 1, 2), "pred_masks": masks}
    loss = SetCriterion(num_classes=1)(outputs, targets)["loss_dice"]
    assert float(loss) == pytest.approx(0.25, abs=1e-5)


def test_bce_variant_by_hand():
    outputs, targets = tiny_case()
    outputs["pred_masks"][0, 0] = torch.tensor([[0.0, 0.0], [0.0, 0.0]])  # p = 0.5 everywhere
    criterion = SetCriterion(2, SetLossConfig(mask_loss="bce"))
    losses = criterion(outputs, targets)
    assert set(losses) == {"loss_ce", "loss_mask_bce", "class_accuracy"}
    assert float(losses["loss_mask_bce"]) == pytest.approx(math.log(2), abs=1e-6)
    assert criterion.weight_dict == {"loss_ce": 0.1, "loss_mask_bce": 1.0}


def test_low_resolution_masks_are_upsampled_to_the_targets():
    outputs, targets = tiny_case()
    outputs["pred_masks"] = outputs["pred_masks"][..., :1, :]  # (1, 2, 1, 2): the top row
    targets[0]["masks"] = F.interpolate(targets[0]["masks"][None].float(), size=(4, 2))[0] > 0
    losses = SetCriterion(num_classes=2)(outputs, targets)
    assert float(losses["loss_dice"]) == pytest.approx(1 - 9 / 13, abs=1e-5)  # all 8 pixels vs 4


def test_images_without_objects_give_finite_losses_and_gradients():
    outputs = {
        "pred_logits": torch.randn(2, 6, 11, requires_grad=True),
        "pred_masks": torch.randn(2, 6, 32, 32, requires_grad=True),
    }
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 64, 64).bool()}
    for criterion in (SetCriterion(), SetCriterion(10, SetLossConfig(mask_loss="bce"))):
        losses = criterion(outputs, [empty, empty])
        assert all(torch.isfinite(v) for v in losses.values())
        sum(losses.values()).backward()
        assert torch.isfinite(outputs["pred_logits"].grad).all()


def test_matched_queries_are_the_ones_supervised():
    """Targets listed in a different order than the queries still reach the right query."""
    logits = torch.zeros(1, 3, 4)
    masks = torch.full((1, 3, 1, 3), -100.0)
    masks[0, 0, 0, 2] = masks[0, 2, 0, 0] = 100.0
    targets = [{"labels": torch.tensor([0, 1]), "masks": torch.eye(3)[[0, 2]].view(2, 1, 3) > 0}]
    outputs = {"pred_logits": logits, "pred_masks": masks}
    indices = HungarianMatcher()(outputs, targets)
    assert indices[0][0].tolist() == [0, 2] and indices[0][1].tolist() == [1, 0]
    assert float(SetCriterion(num_classes=3)(outputs, targets)["loss_dice"]) < 1e-6


def test_unknown_mask_loss_is_refused():
    with pytest.raises(ValueError, match="mask_loss 'focal'; valid: dice, bce"):
        SetLossConfig(mask_loss="focal")


def test_focal_loss_with_gamma_0_is_the_cross_entropy():
    outputs, targets = tiny_case()
    outputs["pred_logits"] = torch.randn(1, 2, 3, generator=torch.Generator().manual_seed(0))
    ce = SetCriterion(2)(outputs, targets)["loss_ce"]
    focal = SetCriterion(2, SetLossConfig(class_loss="focal", focal_gamma=0.0))
    torch.testing.assert_close(focal(outputs, targets)["loss_ce"], ce)


def test_focal_loss_by_hand():
    outputs, targets = tiny_case()
    outputs["pred_logits"][0, 1] = torch.tensor([0.0, 0.0, math.log(4)])  # p(no-object) = 2/3
    criterion = SetCriterion(2, SetLossConfig(class_loss="focal", focal_gamma=2.0))
    loss = float(criterion(outputs, targets)["loss_ce"])
    # query 0: class 1, p = 1/3; query 1: no object (weight 0.5), p = 2/3
    expected = (1 * (2 / 3) ** 2 * math.log(3) + 0.5 * (1 / 3) ** 2 * -math.log(2 / 3)) / 1.5
    assert loss == pytest.approx(expected, abs=1e-6)


def test_unknown_class_loss_is_refused():
    with pytest.raises(ValueError, match="unknown class_loss 'hinge'; valid: ce, focal"):
        SetLossConfig(class_loss="hinge")
    with pytest.raises(ValueError, match="focal_gamma must be >= 0"):
        SetLossConfig(class_loss="focal", focal_gamma=-1.0)
