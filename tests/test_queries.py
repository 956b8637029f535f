"""What a query says (``seqseg_lib.queries``): prediction, confidence, duplicates, by hand."""

import math

import pytest
import torch

from seqseg_lib.queries import claim_segments, mask_iou, predict_queries


def logits_for(*probabilities):
    """Class logits [Q, C + 1] whose softmax is each row of ``probabilities``."""
    return torch.tensor(probabilities).log()


def test_prediction_leaves_no_object_out_of_the_class():
    prediction = predict_queries(logits_for([0.1, 0.3, 0.6], [0.5, 0.2, 0.3], [0.3, 0.3, 0.4]))
    assert prediction.classes.tolist() == [1, 0, 0]  # never the last, "no object"
    assert prediction.scores.tolist() == pytest.approx([0.3, 0.5, 0.3])
    assert prediction.no_object.tolist() == pytest.approx([0.6, 0.3, 0.4])
    assert prediction.predicts_object.tolist() == [False, True, False]
    names = ["cat", "dog"]
    assert prediction.label(0, names) == ("no object", pytest.approx(0.6))
    assert prediction.label(1, names) == ("cat", pytest.approx(0.5))


def test_confident_needs_an_object_and_the_threshold():
    # query 0: a real class just ahead of "no object"; query 1: "no object" ahead
    prediction = predict_queries(logits_for([0.45, 0.1, 0.449], [0.35, 0.05, 0.6]))
    assert prediction.confident(0.4).tolist() == [True, False]
    assert prediction.confident(0.5).tolist() == [False, False], "below the threshold"
    assert prediction.confident(0.0).tolist() == [True, False], "'no object' is never confident"


def test_mask_iou_by_hand():
    a = torch.zeros(2, 2, 4, dtype=torch.bool)
    a[0, :, :2] = True  # 4 pixels
    b = torch.zeros(2, 2, 4, dtype=torch.bool)
    b[0, :, 1:3] = True  # 4 pixels, 2 shared with a[0]
    iou = mask_iou(a, b)
    assert iou.tolist() == [[pytest.approx(2 / 6), 0.0], [0.0, 0.0]]


def disjoint_segments():
    """Two ground-truth segments (class 0 and 1) of 4 pixels each in a 2x4 image."""
    masks = torch.zeros(2, 2, 4, dtype=torch.bool)
    masks[0, :, :2] = True
    masks[1, :, 2:] = True
    return torch.tensor([0, 1]), masks


def test_duplicates_are_later_matches_of_a_claimed_segment():
    labels, gt = disjoint_segments()
    half = gt[0].clone()
    half[1] = False  # 2 of segment 0's pixels: IoU exactly 0.5
    masks = torch.stack([gt[0], gt[0], gt[1], half, gt[1]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95, 0.6])
    classes = torch.tensor([0, 0, 1, 0, 0])  # the last one has the wrong class
    counts = claim_segments(scores, classes, masks, labels, gt)
    # IoU >= 0.5: the half mask (most confident) claims segment 0, queries 0 and 1 repeat it
    assert counts == {"tp": 2, "duplicates": 2}
    strict = claim_segments(scores, classes, masks, labels, gt, strict=True)
    # IoU > 0.5: the half mask matches nothing; query 0 claims, query 1 repeats
    assert strict == {"tp": 2, "duplicates": 1}


def test_a_query_claims_its_best_free_segment():
    labels, gt = torch.tensor([0, 0]), disjoint_segments()[1]
    both = gt[0] | gt[1]  # IoU 0.5 with each segment
    counts = claim_segments(
        torch.tensor([0.9, 0.8]), torch.tensor([0, 0]), torch.stack([both, both]), labels, gt
    )
    assert counts == {"tp": 2, "duplicates": 0}, "the second takes the segment still free"
    none = claim_segments(torch.ones(0), torch.zeros(0, dtype=torch.long), gt[:0], labels, gt)
    assert none == {"tp": 0, "duplicates": 0}
    assert not math.isnan(mask_iou(gt[:0], gt).sum())


def test_one_binarisation_rule_for_every_metric():
    """A mask probability of exactly one half is in the binary mask, for the MNIST metrics
    and for panoptic post-processing alike (``queries.binary_masks``)."""
    from seqseg_lib.queries import MASK_THRESHOLD, binary_masks

    probabilities = torch.tensor([0.4999, MASK_THRESHOLD, 0.5001])
    assert binary_masks(probabilities).tolist() == [False, True, True]
