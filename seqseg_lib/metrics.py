"""Metrics: pixel accuracy (the report's), mean and per-class IoU from a confusion matrix.

Semantic metrics are computed over a dataset's *evaluation* classes (``LabelSpace``): the 19
Cityscapes trainIds, or CamVid's 11 classes; ``IGNORE_INDEX`` pixels take no part.
"""

import torch

from seqseg_lib.data.labels import IGNORE_INDEX, LabelSpace


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """int64 [K, K], rows = target class, columns = predicted class, ignored pixels dropped.

    A prediction outside ``0..K-1`` (e.g. a void labelId) counts as wrong: it lands in no
    column but still reduces the row's recall through ``row totals``.
    """
    valid = target != ignore_index
    target, pred = target[valid], pred[valid]
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        raise ValueError(f"target values must be in 0..{num_classes - 1} or {ignore_index}")
    in_range = (pred >= 0) & (pred < num_classes)
    matrix = torch.bincount(
        target[in_range] * num_classes + pred[in_range], minlength=num_classes**2
    ).reshape(num_classes, num_classes)
    # Pixels predicted as a class outside the evaluation set are errors: keep them on the
    # diagonal's complement by adding them to an extra, implicit column of the row totals.
    misses = torch.bincount(target[~in_range], minlength=num_classes)
    return torch.cat([matrix, misses[:, None]], dim=1)  # (K, K + 1)


def scores(matrix: torch.Tensor) -> dict[str, float | list[float]]:
    """Pixel accuracy, mean IoU and per-class IoU from a [K, K + 1] confusion matrix.

    mIoU averages over classes present in the targets or predictions (IoU defined); an
    absent class has IoU ``nan`` and is left out of the mean.
    """
    matrix = matrix.double()
    true_positive = matrix.diagonal()
    target_total = matrix.sum(1)
    pred_total = matrix[:, :-1].sum(0)
    union = target_total + pred_total - true_positive
    iou = torch.where(union > 0, true_positive / union.clamp(min=1), torch.nan)
    total = target_total.sum()
    return {
        "accuracy": float(true_positive.sum() / total) if total > 0 else float("nan"),
        "miou": float(iou.nanmean()) if (union > 0).any() else float("nan"),
        "iou": [float(v) for v in iou],
    }


class SemanticEvaluator:
    """Accumulates a confusion matrix over batches of logits [B, C, H, W] and labels [B, H, W].

    Predictions are the argmax over the training classes, then mapped to evaluation classes
    by the label space (labelIds -> trainIds for Cityscapes).
    """

    def __init__(self, label_space: LabelSpace) -> None:
        self.label_space = label_space
        k = label_space.num_eval_classes
        self.matrix = torch.zeros(k, k + 1, dtype=torch.long)

    @torch.no_grad()
    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        pred = self.label_space.to_eval(outputs.argmax(1))
        target = self.label_space.to_eval(targets)
        matrix = confusion_matrix(pred, target, self.label_space.num_eval_classes)
        self.matrix += matrix.cpu()

    def compute(self) -> dict[str, float | list[float]]:
        return scores(self.matrix)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"matrix": self.matrix.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.matrix = state["matrix"].clone()
