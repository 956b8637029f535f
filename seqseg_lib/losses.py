"""Losses. Each criterion returns a dict of raw ``loss_<name>`` terms and carries a
``weight_dict``; the training loop forms the weighted sum, so every term gets logged.
"""

import torch
import torch.nn.functional as F
from torch import nn

from seqseg_lib.data.labels import IGNORE_INDEX


class SemanticCriterion(nn.Module):
    """Binary cross-entropy of Sec. 2.2 on the one-hot of ``labels`` over the classes.

    ``outputs`` logits [B, C, H, W]; ``targets`` int64 [B, H, W] with values in ``0..C-1`` or
    ``ignore_index``. Ignored pixels take no part: the loss is the mean over the ``C`` channels
    of the non-ignored pixels (an all-ignored batch gives 0, with a gradient).
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.weight_dict = {"loss_bce": 1.0}

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss_bce": self.loss_bce(outputs, targets)}

    def loss_bce(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        num_classes = logits.shape[1]
        valid = labels != self.ignore_index  # (B, H, W)
        if labels[valid].numel() and int(labels[valid].max()) >= num_classes:
            raise ValueError(f"labels hold values >= num_classes={num_classes}")
        onehot = F.one_hot(labels.where(valid, 0), num_classes)  # (B, H, W, C)
        onehot = onehot.permute(0, 3, 1, 2).to(logits.dtype)  # (B, C, H, W)
        loss = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
        weight = valid.unsqueeze(1).to(loss.dtype)  # (B, 1, H, W)
        return (loss * weight).sum() / (weight.sum() * num_classes).clamp(min=1)
