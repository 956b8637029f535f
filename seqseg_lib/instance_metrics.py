"""Instance segmentation metrics (Sec. 3.4): the report's two numbers, and mask AP.

Per ground-truth digit, after Hungarian matching (the same matcher as the loss):

- ``accuracy``: the matched query's argmax class (over the 10 digits and "no object") is the
  digit's label; a digit left unmatched (more digits than queries) counts as wrong. The
  report's 97% (easy) and 62% (hard).
- ``dice_loss``: ``1 - Dice`` of the matched query's soft mask (sigmoid, upsampled to 64x64,
  smoothing 1: the training loss's formula), averaged over digits. This is what the report
  calls the "mask dice score" (0.03 easy, 0.2 hard): lower is better there, and easy < hard.
  ``dice`` is ``1 - dice_loss``; ``dice_hard`` the Dice of the binary mask
  (``queries.binary_masks``).

Per prediction, at a confidence ``threshold`` (default 0.5): the *detections* are the
confident queries and a *duplicate* is a detection that finds only digits already claimed by a
more confident one, both as ``seqseg_lib.queries`` defines them, with COCO's "IoU >= 0.5".
``precision`` = TP / detections, ``recall`` = TP / digits, ``miss_rate`` = 1 - recall,
``duplicate_rate`` = duplicates / digits (how often a digit is found twice).

``with_ap=True`` also keeps every prediction's mask as a COCO RLE string (compact: about 30
bytes for a 64x64 digit) and computes COCO mask AP, AP50 and AP75 (pycocotools, ``segm``) over
all queries, scored by their ``queries.predict_queries`` score, at ``compute()``.
"""

import contextlib
import io
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from seqseg_lib.losses import dice_loss
from seqseg_lib.matcher import HungarianMatcher, matched_queries, matched_targets
from seqseg_lib.queries import binary_masks, claim_segments, predict_queries

_COUNTERS = ("digits", "correct", "dice_loss", "dice_hard", "detections", "tp", "duplicates")


class InstanceEvaluator:
    """``update(outputs, targets)`` per batch, ``compute() -> dict`` of floats.

    ``outputs``/``targets`` as for ``HungarianMatcher`` (any device; work happens on CPU).
    State (``state_dict``) is plain numbers, strings and lists, so it can be saved in a
    checkpoint read with ``weights_only=True``.
    """

    def __init__(
        self,
        num_classes: int = 10,
        matcher: HungarianMatcher | None = None,
        threshold: float = 0.5,
        iou_threshold: float = 0.5,
        with_ap: bool = True,
    ) -> None:
        self.num_classes = num_classes
        self.matcher = matcher or HungarianMatcher()
        self.threshold, self.iou_threshold, self.with_ap = threshold, iou_threshold, with_ap
        self.counts = dict.fromkeys(_COUNTERS, 0.0)
        self.records: list[dict[str, Any]] = []  # per image, only with_ap

    @torch.no_grad()
    def update(
        self, outputs: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]
    ) -> None:
        outputs = {k: outputs[k].detach().float().cpu() for k in ("pred_logits", "pred_masks")}
        targets = [{k: t[k].cpu() for k in ("labels", "masks")} for t in targets]
        indices = self.matcher(outputs, targets)
        size = tuple(targets[0]["masks"].shape[-2:]) if targets else (1, 1)
        soft = F.interpolate(outputs["pred_masks"], size, mode="bilinear", align_corners=False)
        soft = soft.sigmoid()  # (B, Q, H, W)
        self._update_matched(outputs["pred_logits"], soft, targets, indices)
        prediction = predict_queries(outputs["pred_logits"])  # [B, Q] each
        detected = prediction.confident(self.threshold)  # (B, Q)
        for b, target in enumerate(targets):
            scores, classes = prediction.scores[b], prediction.classes[b]
            binary = binary_masks(soft[b])  # (Q, H, W)
            keep = detected[b]
            counts = claim_segments(
                scores[keep],
                classes[keep],
                binary[keep],
                target["labels"],
                target["masks"],
                self.iou_threshold,
            )
            self.counts["tp"] += counts["tp"]
            self.counts["duplicates"] += counts["duplicates"]
            self.counts["detections"] += int(keep.sum())
            if self.with_ap:
                self.records.append(ap_record(scores, classes, binary, target))

    def _update_matched(self, pred_logits, soft, targets, indices) -> None:
        """Accuracy and Dice of the matched queries, the whole batch at once."""
        batch_idx, src_idx = matched_queries(indices)
        labels = matched_targets(targets, indices, "labels")
        masks = matched_targets(targets, indices, "masks")
        pred = soft[batch_idx, src_idx].flatten(1)  # (M, HW)
        masks = masks.flatten(1).float()  # (M, HW)
        counts = self.counts
        counts["digits"] += sum(len(t["labels"]) for t in targets)
        # the matched query's most probable of the C + 1 classes must be the digit
        probs = pred_logits[batch_idx, src_idx].softmax(-1)  # (M, C + 1)
        counts["correct"] += int((probs.argmax(-1) == labels).sum())
        counts["dice_loss"] += float(dice_loss(pred, masks).sum())
        counts["dice_hard"] += float((1 - dice_loss(binary_masks(pred).float(), masks)).sum())

    def compute(self) -> dict[str, float]:
        c = self.counts
        digits = c["digits"] or float("nan")
        recall = c["tp"] / digits
        results = {
            "accuracy": c["correct"] / digits,
            "dice_loss": c["dice_loss"] / digits,
            "dice": 1 - c["dice_loss"] / digits,
            "dice_hard": c["dice_hard"] / digits,
            "precision": c["tp"] / c["detections"] if c["detections"] else float("nan"),
            "recall": recall,
            "miss_rate": 1 - recall,
            "duplicate_rate": c["duplicates"] / digits,
        }
        if self.with_ap:
            results |= coco_mask_ap(self.records, self.num_classes)
        return results

    def state_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "records": list(self.records)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counts = dict(state["counts"])
        self.records = list(state["records"])


def ap_record(scores, classes, pred_masks, target) -> dict[str, Any]:
    """One image's predictions and ground truth in plain values, masks as RLE strings."""
    return {
        "scores": scores.tolist(),
        "classes": classes.tolist(),
        "masks": [encode_mask(m) for m in pred_masks],
        "labels": target["labels"].tolist(),
        "gt_masks": [encode_mask(m) for m in target["masks"].bool()],
        "size": list(pred_masks.shape[-2:]),
    }


def encode_mask(mask: torch.Tensor) -> str:
    """A boolean [H, W] mask as the string of its COCO compressed RLE."""
    rle = mask_utils.encode(np.asfortranarray(mask.numpy().astype(np.uint8)))
    return rle["counts"].decode("ascii")


def coco_mask_ap(records: list[dict[str, Any]], num_classes: int) -> dict[str, float]:
    """COCO mask AP, AP50, AP75 (``COCOeval``, ``iouType="segm"``) of per-image records;
    NaN when there is no ground truth. pycocotools' printing is silenced."""
    images, annotations, results = [], [], []
    for image_id, record in enumerate(records):
        height, width = record["size"]
        images.append({"id": image_id, "height": height, "width": width})
        for label, counts in zip(record["labels"], record["gt_masks"]):
            rle = {"size": [height, width], "counts": counts}
            area = float(mask_utils.area(_as_bytes(rle)))
            bbox = mask_utils.toBbox(_as_bytes(rle)).tolist()
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image_id, "category_id": label}
                | {"segmentation": rle, "area": area, "bbox": bbox, "iscrowd": 0}
            )
        for score, label, counts in zip(record["scores"], record["classes"], record["masks"]):
            segmentation = {"size": [height, width], "counts": counts}
            results.append(
                {"image_id": image_id, "category_id": label, "segmentation": segmentation}
                | {"score": score}
            )
    if not annotations:
        return {"ap": float("nan"), "ap50": float("nan"), "ap75": float("nan")}
    if not results:  # loadRes cannot take an empty list; no detection means no precision
        return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0}
    categories = [{"id": k, "name": str(k)} for k in range(num_classes)]
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO()
        ground_truth.dataset = {"images": images, "annotations": annotations}
        ground_truth.dataset["categories"] = categories
        ground_truth.createIndex()
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(results), iouType="segm")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = evaluation.stats
    return {"ap": float(stats[0]), "ap50": float(stats[1]), "ap75": float(stats[2])}


def _as_bytes(rle: dict[str, Any]) -> dict[str, Any]:
    return {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
