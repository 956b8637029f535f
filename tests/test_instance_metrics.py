import io
import math

import pytest
import torch

from seqseg_lib.instance_metrics import InstanceEvaluator, encode_mask
from seqseg_lib.queries import mask_iou


def probabilities(best: int, p: float, classes: int = 11) -> torch.Tensor:
    """Logits whose softmax is ``p`` at ``best`` and equal elsewhere."""
    probs = torch.full((classes,), (1 - p) / (classes - 1))
    probs[best] = p
    return probs.log()


def hand_case():
    """Two digits (3 and 7); query 0 finds the 3, query 1 finds it again less surely, query 2
    segments the 7 but says "no object"."""
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[0, 2:8, 2:8] = True
    masks[1, 9:14, 9:14] = True
    logits = torch.stack([probabilities(3, 0.9), probabilities(3, 0.8), probabilities(10, 0.9)])
    pred_masks = torch.where(masks[[0, 0, 1]], 20.0, -20.0)
    outputs = {"pred_logits": logits[None], "pred_masks": pred_masks[None]}
    return outputs, [{"labels": torch.tensor([3, 7]), "masks": masks}]


def test_hand_computed_metrics():
    evaluator = InstanceEvaluator()
    evaluator.update(*hand_case())
    results = evaluator.compute()
    assert results["accuracy"] == 0.5  # the 7 is matched to a "no object" query
    assert results["dice_loss"] == pytest.approx(0.0, abs=1e-6)
    assert results["dice"] == pytest.approx(1.0, abs=1e-6)
    assert results["dice_hard"] == 1.0
    # Detections at 0.5: queries 0 and 1, both class 3; query 1 is a duplicate of query 0.
    assert results["precision"] == 0.5 and results["recall"] == 0.5
    assert results["miss_rate"] == 0.5 and results["duplicate_rate"] == 0.5
    # AP over the classes with ground truth: 3 is found first (AP 1), 7 never (AP 0).
    assert results["ap"] == pytest.approx(0.5) and results["ap50"] == pytest.approx(0.5)
    assert results["ap75"] == pytest.approx(0.5)


def test_threshold_decides_what_is_a_detection():
    evaluator = InstanceEvaluator(threshold=0.85, with_ap=False)
    evaluator.update(*hand_case())
    results = evaluator.compute()
    assert results["precision"] == 1.0 and results["duplicate_rate"] == 0.0
    assert "ap" not in results


def test_a_wrong_class_is_not_a_true_positive():
    outputs, targets = hand_case()
    targets[0]["labels"] = torch.tensor([4, 7])
    evaluator = InstanceEvaluator(with_ap=False)
    evaluator.update(outputs, targets)
    assert evaluator.compute()["recall"] == 0.0


def test_batches_accumulate_and_state_survives_a_weights_only_checkpoint():
    outputs, targets = hand_case()
    evaluator = InstanceEvaluator()
    evaluator.update(outputs, targets)
    evaluator.update(outputs, targets)
    buffer = io.BytesIO()
    torch.save(evaluator.state_dict(), buffer)
    buffer.seek(0)
    restored = InstanceEvaluator()
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.compute() == evaluator.compute()
    assert restored.compute()["ap"] == pytest.approx(0.5)


def test_low_resolution_predictions_and_images_without_digits():
    outputs, targets = hand_case()
    outputs["pred_masks"] = outputs["pred_masks"][..., ::2, ::2]  # (1, 3, 8, 8)
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 16, 16) > 0}
    batch = {k: torch.cat([v, v]) for k, v in outputs.items()}
    evaluator = InstanceEvaluator()
    evaluator.update(batch, [empty, targets[0]])
    results = evaluator.compute()
    assert results["recall"] == 0.5 and results["dice_hard"] > 0.8
    assert all(math.isfinite(v) for v in results.values())


def test_no_digits_at_all_gives_nan_not_an_error():
    outputs, _ = hand_case()
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 16, 16) > 0}
    evaluator = InstanceEvaluator()
    evaluator.update(outputs, [empty])
    results = evaluator.compute()
    assert math.isnan(results["accuracy"]) and math.isnan(results["ap"])


def test_mask_iou_and_rle_by_hand():
    a = torch.zeros(1, 4, 4, dtype=torch.bool)
    a[0, :2] = True
    b = torch.zeros(2, 4, 4, dtype=torch.bool)
    b[0, :1] = True
    b[1, 2:] = True
    assert mask_iou(a, b)[0].tolist() == pytest.approx([0.5, 0.0])
    assert isinstance(encode_mask(a[0]), str)
