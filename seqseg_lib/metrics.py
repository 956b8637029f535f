"""Metrics: pixel accuracy (the report's), mean and per-class IoU from a confusion matrix.

Semantic metrics are computed over a dataset's *evaluation* classes (``LabelSpace``): the 19
Cityscapes trainIds, or CamVid's 11 classes; ``IGNORE_INDEX`` pixels take no part.
"""

import torch

from seqseg_lib.data.labels import IGNORE_INDEX, LabelSpace


def confusion_matrix(
    pred: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    ignore_index: int = IGNORE_INDEX,
    check: bool = True,
) -> torch.Tensor:
    """int64 [K, K + 1] on the inputs' device: rows = target class, columns = predicted class,
    ignored pixels dropped.

    A prediction outside ``0..K-1`` (e.g. a void labelId) counts as wrong: it lands in the
    extra last column, which adds to the row's total (its recall) and to no class's
    predictions. Computed without a host synchronisation (no boolean indexing, no data-sized
    output) unless ``check`` asks to verify that targets lie in ``0..K-1`` or
    ``ignore_index`` (a ``ValueError`` otherwise); callers whose targets went through
    ``LabelSpace.to_eval`` have nothing to check.
    """
    k = num_classes
    if check:
        valid_values = (target == ignore_index) | ((target >= 0) & (target < k))
        if not bool(valid_values.all()):
            raise ValueError(f"target values must be in 0..{k - 1} or {ignore_index}")
    target, pred = target.flatten().long(), pred.flatten().long()
    column = torch.where((pred >= 0) & (pred < k), pred, k)  # k: the misses column
    # every ignored pixel goes to one extra bin past the matrix, dropped below
    cell = torch.where(target == ignore_index, k * (k + 1), target * (k + 1) + column)
    counts = torch.zeros(k * (k + 1) + 1, dtype=torch.long, device=cell.device)
    counts.scatter_add_(0, cell, torch.ones_like(cell))
    return counts[:-1].reshape(k, k + 1)


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
    by the label space (labelIds -> trainIds for Cityscapes). The matrix lives where the
    batches are (a training run's device: no copy to the host per batch); a state loaded from
    a checkpoint, wherever it was read to, joins it there. ``state_dict`` is on the CPU.
    """

    def __init__(self, label_space: LabelSpace, device: str | torch.device = "cpu") -> None:
        self.label_space = label_space
        k = label_space.num_eval_classes
        self.matrix = torch.zeros(k, k + 1, dtype=torch.long, device=device)

    @torch.no_grad()
    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        pred = self.label_space.to_eval(outputs.argmax(1))
        target = self.label_space.to_eval(targets)
        k = self.label_space.num_eval_classes
        matrix = confusion_matrix(pred, target, k, check=False)
        self.matrix = self.matrix.to(matrix.device) + matrix

    def compute(self) -> dict[str, float | list[float]]:
        return scores(self.matrix.cpu())

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"matrix": self.matrix.cpu().clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.matrix = state["matrix"].to(self.matrix.device, copy=True)
