"""What an object query says, defined once for metrics, post-processing, figures and widgets.

A set-prediction model (``Seq2SegInstance``, ``HungarianUNet``) gives each query class logits
``pred_logits`` [..., C + 1], the last class being "no object" (Sec. 3.1), and a mask.

- **Prediction**: the softmax over the C + 1 classes; the query's *class* is its most probable
  real class, its *score* that class's probability, ``no_object`` the probability of "no
  object". It *predicts an object* when ``score > no_object``.
- **Confident**: it predicts an object and ``score >= threshold``. At the default 0.5 this is
  simply ``score >= 0.5``, as a real class above one half is always the most probable.
- **Duplicate**: confident queries, by decreasing score, each claim the unclaimed ground-truth
  segment of their class that their binary mask overlaps most, when that IoU reaches the
  threshold; a confident query that finds only segments already claimed by a more confident
  query is a duplicate (a "redundant detection", Sec. 4.1). The ground-truth segments of one
  image never overlap here (MNIST digits own their pixels; panoptic segments partition the
  image), so with PQ's strict "IoU > 0.5" a query can match one segment only, and the
  duplicates are then the matches beyond the first of each segment.
- **Binary mask**: the pixels where a query's mask probability is at least
  ``MASK_THRESHOLD`` (one half), for every metric, post-processing step and figure.
"""

from typing import NamedTuple

import torch

MASK_THRESHOLD = 0.5


def binary_masks(probabilities: torch.Tensor) -> torch.Tensor:
    """Mask probabilities [...] -> bool [...]: at least ``MASK_THRESHOLD``."""
    return probabilities >= MASK_THRESHOLD


class QueryPrediction(NamedTuple):
    """``scores``, ``classes`` (int64) and ``no_object``, each [...] for logits [..., C + 1]."""

    scores: torch.Tensor
    classes: torch.Tensor
    no_object: torch.Tensor

    @property
    def predicts_object(self) -> torch.Tensor:
        return self.scores > self.no_object

    def confident(self, threshold: float = 0.5) -> torch.Tensor:
        """Boolean [...]: predicts an object with ``score >= threshold``."""
        return self.predicts_object & (self.scores >= threshold)

    def label(self, query: int, class_names: list[str] | tuple[str, ...]) -> tuple[str, float]:
        """What query ``query`` (an index into a [Q] prediction) says, in words: its class name
        and score, or ``"no object"`` and that probability."""
        if self.predicts_object[query]:
            return class_names[int(self.classes[query])], float(self.scores[query])
        return "no object", float(self.no_object[query])

    def describe(self, query: int, class_names: list[str] | tuple[str, ...]) -> str:
        """``"q3: car (0.93)"`` or ``"q4: no object (0.88)"``: the words of every figure."""
        name, probability = self.label(query, class_names)
        return f"q{query}: {name} ({probability:.2f})"


def predict_queries(pred_logits: torch.Tensor) -> QueryPrediction:
    """The ``QueryPrediction`` of class logits [..., C + 1] (module docstring)."""
    probs = pred_logits.float().softmax(-1)  # (..., C + 1)
    scores, classes = probs[..., :-1].max(-1)  # (...,): "no object" left out of the max
    return QueryPrediction(scores, classes, probs[..., -1])


def mask_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of every pair of boolean masks: [P, H, W] x [T, H, W] -> [P, T] (0 for two empty)."""
    pred, target = pred.flatten(1).float(), target.flatten(1).float()  # (P, HW), (T, HW)
    intersection = pred @ target.T  # (P, T), exact counts below 2^24 pixels
    union = pred.sum(1)[:, None] + target.sum(1)[None, :] - intersection
    return intersection / union.clamp(min=1)


def claim_segments(
    scores: torch.Tensor,
    classes: torch.Tensor,
    masks: torch.Tensor,
    gt_labels: torch.Tensor,
    gt_masks: torch.Tensor,
    iou_threshold: float = 0.5,
    strict: bool = False,
) -> dict[str, int]:
    """True positives and duplicates of one image's *confident* queries (module docstring).

    ``scores`` [P], ``classes`` [P] and binary ``masks`` [P, H, W] of the confident queries;
    ``gt_labels`` [N] and ``gt_masks`` [N, H, W]. A query and a segment match when their
    classes agree and their IoU is ``>= iou_threshold`` (COCO's convention), or
    ``> iou_threshold`` with ``strict=True`` (PQ's). Returns ``tp`` (segments claimed) and
    ``duplicates`` (queries that matched only claimed segments).
    """
    iou = mask_iou(masks, gt_masks)  # (P, N)
    iou = torch.where(classes[:, None] == gt_labels[None, :], iou, torch.zeros_like(iou))
    matches = iou > iou_threshold if strict else iou >= iou_threshold  # (P, N)
    claimed = torch.zeros(len(gt_labels), dtype=torch.bool, device=gt_labels.device)
    tp = duplicates = 0
    for query in scores.argsort(descending=True).tolist():
        free = matches[query] & ~claimed
        if free.any():
            claimed[iou[query].masked_fill(~free, -1.0).argmax()] = True
            tp += 1
        elif matches[query].any():
            duplicates += 1
    return {"tp": tp, "duplicates": duplicates}
