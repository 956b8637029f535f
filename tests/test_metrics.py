import math

import pytest
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from seqseg_lib.data.labels import CAMVID, CITYSCAPES, IGNORE_INDEX
from seqseg_lib.losses import OneHotBCEWithLogits, SemanticCriterion
from seqseg_lib.metrics import SemanticEvaluator, confusion_matrix, scores


def test_scores_by_hand():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 0, 2]])
    result = scores(confusion_matrix(pred, target, 3))
    # 6 valid pixels, 4 right.
    assert result["accuracy"] == pytest.approx(4 / 6)
    # class 0: tp 1, fn 1, fp 1 -> 1/3; class 1: tp 2, fp 1 -> 2/3; class 2: tp 1, fn 1 -> 1/2
    assert result["iou"] == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert result["miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)


def test_absent_classes_are_left_out_of_the_mean():
    target = torch.tensor([0, 0, 1])
    result = scores(confusion_matrix(target, target, 4))
    assert result["miou"] == 1.0 and math.isnan(result["iou"][3])


def test_predictions_outside_the_evaluation_classes_count_as_wrong():
    target = torch.tensor([0, 1])
    pred = torch.tensor([0, IGNORE_INDEX])  # e.g. a void labelId predicted
    result = scores(confusion_matrix(pred, target, 2))
    assert result["accuracy"] == 0.5 and result["iou"] == [1.0, 0.0]


def test_against_torchmetrics_on_random_maps():
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 11, (4, 20, 30), generator=generator)
    target[:, :3] = IGNORE_INDEX
    pred = torch.randint(0, 11, (4, 20, 30), generator=generator)
    pred[target == 3] = 3  # some structure
    ours = scores(confusion_matrix(pred, target, 11))
    iou = MulticlassJaccardIndex(11, average="macro", ignore_index=IGNORE_INDEX)
    accuracy = MulticlassAccuracy(11, average="micro", ignore_index=IGNORE_INDEX)
    assert ours["miou"] == pytest.approx(float(iou(pred, target)), abs=1e-6)
    assert ours["accuracy"] == pytest.approx(float(accuracy(pred, target)), abs=1e-6)


def test_cityscapes_evaluator_maps_label_ids_to_train_ids():
    # labelIds: 7 road (trainId 0), 26 car (13), 0 unlabeled (ignored).
    labels = torch.tensor([[[7, 7, 26, 0]]])
    logits = torch.zeros(1, 34, 1, 4)
    logits[0, 7, 0, :2] = 1  # road, road
    logits[0, 26, 0, 2] = 1  # car
    logits[0, 5, 0, 3] = 1  # a void class on an ignored pixel: not counted
    evaluator = SemanticEvaluator(CITYSCAPES)
    evaluator.update(logits, labels)
    result = evaluator.compute()
    assert result["accuracy"] == 1.0 and result["miou"] == 1.0
    assert len(result["iou"]) == 19


def test_cityscapes_label_space_comes_from_cityscapesscripts():
    from cityscapesscripts.helpers.labels import id2label

    for label_id in range(34):
        expected = id2label[label_id].trainId
        expected = IGNORE_INDEX if expected in (-1, 255) else expected
        assert CITYSCAPES.eval_lut[label_id] == expected
    assert CITYSCAPES.eval_names[13] == "car" and CITYSCAPES.num_eval_classes == 19
    assert CAMVID.num_eval_classes == 11


def test_evaluator_state_round_trip():
    """The same scores from a restored state, nan (a class absent from both the targets and
    the predictions of 32 random pixels) included."""
    generator = torch.Generator().manual_seed(0)
    evaluator = SemanticEvaluator(CAMVID)
    evaluator.update(
        torch.randn(2, 11, 4, 4, generator=generator),
        torch.randint(0, 11, (2, 4, 4), generator=generator),
    )
    other = SemanticEvaluator(CAMVID)
    other.load_state_dict(evaluator.state_dict())
    restored, original = other.compute(), evaluator.compute()
    assert restored.keys() == original.keys()
    for key, value in original.items():
        assert_equal = torch.testing.assert_close
        assert_equal(
            torch.tensor(restored[key]), torch.tensor(value), equal_nan=True, rtol=0, atol=0
        )


def test_bce_on_one_hot_by_hand():
    logits = torch.tensor([[[[0.0]], [[2.0]]]])  # [B=1, C=2, 1, 1]
    labels = torch.tensor([[[1]]])
    loss = SemanticCriterion()(logits, labels)["loss_bce"]
    expected = (math.log(2) + math.log1p(math.exp(-2))) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("threads", [1, 2])
def test_the_one_hot_bce_is_pytorchs_bit_for_bit(layout, threads):
    """Value and gradient equal to ``F.binary_cross_entropy_with_logits`` on the one-hot, at
    Seq2Seg's and U-Net's output layout (channels last) and the default one: the ``cpu``
    results trained with PyTorch's version are reproduced exactly."""
    generator = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(3, 34, 24, 40, generator=generator)
    logits = logits.contiguous(memory_format=layout)
    classes = torch.randint(0, 34, (3, 1, 24, 40), generator=generator)
    weight = (torch.rand(3, 1, 24, 40, generator=generator) > 0.2).float()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ours = logits.clone().requires_grad_()
        value = OneHotBCEWithLogits.apply(ours, classes, weight)
        (value / 7).backward()
        theirs = logits.clone().requires_grad_()
        onehot = torch.zeros_like(logits).scatter_(1, classes, 1.0)
        if layout == torch.channels_last:  # PyTorch's one-hot as it was built: channels last
            onehot = onehot.contiguous(memory_format=torch.channels_last)
        expected = F.binary_cross_entropy_with_logits(theirs, onehot, weight, reduction="sum")
        (expected / 7).backward()
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(ours.grad, theirs.grad)
    if layout == torch.channels_last:  # the sum runs over memory in the same order
        assert torch.equal(value, expected)
    assert float(value.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)


def test_ignored_pixels_take_no_part_in_the_loss():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    labels = torch.tensor([[[0, 1], [IGNORE_INDEX, IGNORE_INDEX]]])
    loss = SemanticCriterion()(logits, labels)["loss_bce"]
    loss.backward()
    assert torch.all(logits.grad[0, :, 1] == 0) and torch.any(logits.grad[0, :, 0] != 0)
    only_valid = SemanticCriterion()(logits[..., :1, :], labels[:, :1])["loss_bce"]
    assert float(loss.detach()) == pytest.approx(float(only_valid.detach()))
