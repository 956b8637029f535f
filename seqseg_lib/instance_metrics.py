"""Instance segmentation metrics (Sec. 3.4): the report's two numbers, and mask AP.

Per ground-truth digit, after Hungarian matching (the same matcher as the loss):

- ``accuracy``: the matched query's argmax class (over the 10 digits and "no object") is the
  digit's label; a digit left unmatched (more digits than queries) counts as wrong. The
  report's 97% (easy) and 62% (hard).
- ``dice_loss``: ``1 - Dice`` of the matched query's soft mask (sigmoid, upsampled to 64x64,
  smoothing 1: the training loss's formula), averaged over digits. This is what the report
  calls the "mask dice score" (0.03 easy, 0.2 hard): lower is better there, and easy < hard.
  ``dice`` is ``1 - dice_loss``; ``dice_hard`` the Dice of the mask thresholded at 0.5.

Per prediction, at a confidence ``threshold`` (default 0.5): a query is a *detection* when its
best digit probability (softmax over all C + 1 classes, "no object" left out of the max) is at
least the threshold. Detections, by decreasing confidence, take the unclaimed ground truth of
their class with the highest mask IoU, if that IoU is >= 0.5 (true positive). A detection whose
best-IoU ground truth (IoU >= 0.5, same class) was already taken is a *duplicate*.
``precision`` = TP / detections, ``recall`` = TP / digits, ``miss_rate`` = 1 - recall,
``duplicate_rate`` = duplicates / digits (how often a digit is found twice).

``with_ap=True`` also keeps every prediction's mask as a COCO RLE string (compact: about 30
bytes for a 64x64 digit) and computes COCO mask AP, AP50 and AP75 (pycocotools, ``segm``) over
all queries, scored by their best digit probability, at ``compute()``.
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
from seqseg_lib.matcher import HungarianMatcher

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
        probs = outputs["pred_logits"].softmax(-1)  # (B, Q, C + 1)
        size = tuple(targets[0]["masks"].shape[-2:]) if targets else (1, 1)
        soft = F.interpolate(outputs["pred_masks"], size, mode="bilinear", align_corners=False)
        soft = soft.sigmoid()  # (B, Q, H, W)
        self._update_matched(probs, soft, targets, indices)
        scores, classes = probs[..., : self.num_classes].max(-1)  # (B, Q): "no object" left out
        for b, target in enumerate(targets):
            binary = soft[b] > 0.5  # (Q, H, W)
            self._update_detections(scores[b], classes[b], binary, target)
            if self.with_ap:
                self.records.append(ap_record(scores[b], classes[b], binary, target))

    def _update_matched(self, probs, soft, targets, indices) -> None:
        """Accuracy and Dice of the matched queries, the whole batch at once."""
        batch_idx = torch.cat([torch.full_like(src, b) for b, (src, _) in enumerate(indices)])
        src_idx = torch.cat([src for src, _ in indices])
        labels = torch.cat([t["labels"][tgt] for t, (_, tgt) in zip(targets, indices)])
        masks = torch.cat([t["masks"][tgt] for t, (_, tgt) in zip(targets, indices)])
        pred = soft[batch_idx, src_idx].flatten(1)  # (M, HW)
        masks = masks.flatten(1).float()  # (M, HW)
        counts = self.counts
        counts["digits"] += sum(len(t["labels"]) for t in targets)
        counts["correct"] += int((probs[batch_idx, src_idx].argmax(-1) == labels).sum())
        counts["dice_loss"] += float(dice_loss(pred, masks).sum())
        counts["dice_hard"] += float((1 - dice_loss((pred > 0.5).float(), masks)).sum())

    def _update_detections(self, scores, classes, pred_masks, target) -> None:
        """Greedy matching of confident detections to ground truth (module docstring)."""
        iou = mask_iou(pred_masks, target["masks"])  # (Q, T)
        same_class = classes[:, None] == target["labels"][None, :]  # (Q, T)
        iou = torch.where(same_class, iou, torch.zeros_like(iou))
        taken = torch.zeros(len(target["labels"]), dtype=torch.bool)
        detected = [
            q for q in scores.argsort(descending=True).tolist() if scores[q] >= self.threshold
        ]
        for query in detected:
            free_iou = iou[query].masked_fill(taken, 0.0)
            if free_iou.numel() and free_iou.max() >= self.iou_threshold:
                taken[free_iou.argmax()] = True
                self.counts["tp"] += 1
            elif iou[query].numel() and iou[query].max() >= self.iou_threshold:
                self.counts["duplicates"] += 1
        self.counts["detections"] += len(detected)

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


def mask_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of every pair of boolean masks: [P, H, W] x [T, H, W] -> [P, T]."""
    pred, target = pred.flatten(1).float(), target.flatten(1).float()  # (P, HW), (T, HW)
    intersection = pred @ target.T  # (P, T)
    union = pred.sum(1)[:, None] + target.sum(1)[None, :] - intersection
    return intersection / union.clamp(min=1)


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
