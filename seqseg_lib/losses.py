"""Losses. Each criterion returns a dict of raw ``loss_<name>`` terms and carries a
``weight_dict``; the training loop forms the weighted sum, so every term gets logged.
"""

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seqseg_lib.data.labels import IGNORE_INDEX
from seqseg_lib.distributed import global_count
from seqseg_lib.matcher import HungarianMatcher, matched_queries, matched_targets, resize_masks

CHANNELS_LAST = torch.channels_last


@dataclass(frozen=True)
class SemanticLossConfig:
    """The semantic criterion has no setting: binary cross-entropy on the one-hot labels
    (Sec. 2.2), ignored pixels left out."""


class SemanticCriterion(nn.Module):
    """Binary cross-entropy of Sec. 2.2 on the one-hot of ``labels`` over the classes.

    ``outputs`` logits [B, C, H, W]; ``targets`` integer [B, H, W] with values in ``0..C-1`` or
    ``ignore_index`` (the datasets check their files' labels once, when they read them: the
    loss does not, since a check costs a host synchronisation per step). Ignored pixels take no
    part: the loss is the mean over the ``C`` channels
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
        weight = valid.unsqueeze(1).to(logits.dtype)  # (B, 1, H, W): void pixels weigh 0
        classes = labels.where(valid, 0).long().unsqueeze(1)  # (B, 1, H, W)
        total = OneHotBCEWithLogits.apply(logits, classes, weight)
        return total / global_count(weight.sum() * num_classes).clamp(min=1)


class OneHotBCEWithLogits(torch.autograd.Function):
    """``F.binary_cross_entropy_with_logits(logits, one_hot, weight, reduction="sum")`` for a
    one-hot target given by its classes, bit for bit in value and gradient, without building
    the one-hot: the loss of every element is ``x - log_sigmoid(x)`` but at the class, where
    it is ``-log_sigmoid(x)``, and the gradient ``sigmoid(x) - 1`` at the class. PyTorch's
    version makes about eight passes over the logits (a tenth of Seq2Seg's step at ``cpu``);
    this one four forward and three backward.

    ``logits`` [B, C, H, W] (any memory layout), ``classes`` int64 [B, 1, H, W] in ``0..C-1``,
    ``weight`` [B, 1, H, W].
    """

    @staticmethod
    def forward(ctx, logits, classes, weight):
        # elementwise work on the logits as they lie in memory (a channels-last tensor seen as
        # a contiguous [B, H, W, C] one): log_sigmoid would otherwise copy it to NCHW and back
        order = (0, 2, 3, 1) if logits.is_contiguous(memory_format=CHANNELS_LAST) else (0, 1, 2, 3)
        x, classes, weight = (t.permute(order) for t in (logits, classes, weight))
        dim = order.index(1)
        log_sigmoid = F.logsigmoid(x)
        loss = x - log_sigmoid
        loss.scatter_(dim, classes, log_sigmoid.gather(dim, classes).neg_())
        ctx.save_for_backward(x, classes, weight)
        ctx.order, ctx.dim = order, dim
        return loss.mul_(weight).sum()

    @staticmethod
    def backward(ctx, grad):
        x, classes, weight = ctx.saved_tensors
        grad_x = x.sigmoid()
        grad_x.scatter_(ctx.dim, classes, grad_x.gather(ctx.dim, classes).sub_(1))
        grad_x.mul_(grad).mul_(weight)
        return grad_x.permute(tuple(ctx.order.index(d) for d in range(4))), None, None


MASK_LOSSES = ("dice", "bce")
CLASS_LOSSES = ("ce", "focal")


@dataclass(frozen=True)
class SetLossConfig:
    """The Hungarian loss's settings; the defaults are the report's (Sec. 3.3).

    The matcher uses the loss weights as its costs (the matching cost "can be the loss",
    Sec. 3.1); ``match_size`` (H, W) is where it compares masks (Sec. 4: 32x64), None at the
    targets' resolution. ``mask_loss="bce"`` changes only the loss the masks are trained with;
    the matching cost stays the Dice cost. ``class_loss="focal"`` is the focal loss that
    Sec. 4.1 proposes against redundant detections (Lin et al., 2017): the cross-entropy of
    each query scaled by ``(1 - p_t) ** focal_gamma``, normalised as the cross-entropy is.
    """

    no_object_weight: float = 0.5  # Sec. 3.3
    class_weight: float = 0.1  # Sec. 3.3
    mask_weight: float = 1.0  # Sec. 3.3
    mask_loss: str = "dice"  # Sec. 3.3
    match_size: tuple[int, int] | None = None
    class_loss: str = "ce"  # Sec. 3.3
    focal_gamma: float = 2.0  # Lin et al.'s default

    def __post_init__(self) -> None:
        if self.mask_loss not in MASK_LOSSES:
            raise ValueError(
                f"unknown mask_loss {self.mask_loss!r}; valid: {', '.join(MASK_LOSSES)}"
            )
        if self.class_loss not in CLASS_LOSSES:
            raise ValueError(
                f"unknown class_loss {self.class_loss!r}; valid: {', '.join(CLASS_LOSSES)}"
            )
        if self.focal_gamma < 0:
            raise ValueError(f"focal_gamma must be >= 0, got {self.focal_gamma}")

    def build_matcher(self) -> HungarianMatcher:
        return HungarianMatcher(self.class_weight, self.mask_weight, self.match_size)


def dice_loss(pred: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Per-mask ``1 - Dice`` of probabilities ``pred`` and 0/1 ``target``, both [M, HW] -> [M].

    The smoothing of 1 (as in DETR) makes an empty prediction of an empty target cost 0.
    """
    numerator = 2 * (pred * target).sum(1) + smooth
    return 1 - numerator / (pred.sum(1) + target.sum(1) + smooth)


class SetCriterion(nn.Module):
    """``criterion(outputs, targets) -> {"loss_ce": [], "loss_dice" or "loss_mask_bce": [],
    "class_accuracy": []}`` (the last one logged, not optimised).

    ``outputs`` and ``targets`` as for ``HungarianMatcher``. Matched mask logits are
    upsampled bilinearly to the targets' resolution. The class loss is the cross-entropy of
    all B*Q queries (unmatched ones must say "no object", index ``num_classes``), averaged
    with the class weights as PyTorch does (divided by the sum of the weights of the targets);
    the mask loss is summed over matched masks and divided by the number of target masks in
    the batch (at least 1). Both divisors are the global batch's under several processes
    (``seqseg_lib.distributed``), as DETR does. The matcher is ``config.build_matcher()``.
    """

    def __init__(self, num_classes: int = 10, config: SetLossConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or SetLossConfig()
        self.num_classes = num_classes
        self.matcher = config.build_matcher()
        self.mask_loss = config.mask_loss
        empty_weight = torch.ones(num_classes + 1)
        empty_weight[-1] = config.no_object_weight
        self.register_buffer("empty_weight", empty_weight)
        mask_key = "loss_dice" if config.mask_loss == "dice" else "loss_mask_bce"
        self.weight_dict = {"loss_ce": config.class_weight, mask_key: config.mask_weight}

    def forward(
        self, outputs: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        indices = self.matcher(outputs, targets)
        losses = self.loss_ce(outputs, targets, indices)
        losses |= self.class_accuracy(outputs, targets, indices)
        if self.mask_loss == "dice":
            return losses | self.loss_dice(outputs, targets, indices)
        return losses | self.loss_mask_bce(outputs, targets, indices)

    @torch.no_grad()
    def class_accuracy(self, outputs, targets, indices) -> dict[str, torch.Tensor]:
        """The share of matched queries whose most probable class (of the ``C + 1``) is their
        target's, from the loss's own matching (DETR logs its complement, ``class_error``):
        logged, not optimised (it is not in ``weight_dict``); 0 for a batch without targets.
        The training-set metric of set prediction, at no cost beyond the loss's."""
        batch_idx, src_idx = matched_queries(indices)
        labels = matched_targets(targets, indices, "labels").to(src_idx.device)
        predicted = outputs["pred_logits"][batch_idx, src_idx].argmax(-1)
        correct = (predicted == labels).sum().float()
        return {"class_accuracy": correct / max(len(labels), 1)}

    def loss_ce(self, outputs, targets, indices) -> dict[str, torch.Tensor]:
        logits = outputs["pred_logits"].float()  # (B, Q, C + 1)
        target_classes = torch.full(
            logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device
        )  # (B, Q): "no object" unless matched
        batch_idx, src_idx = matched_queries(indices)
        matched = matched_targets(targets, indices, "labels")
        target_classes[batch_idx, src_idx] = matched.to(logits.device)
        if self.config.class_loss == "ce":
            loss = F.cross_entropy(logits.transpose(1, 2), target_classes, self.empty_weight)
        else:
            loss = self.focal_loss(logits, target_classes)
        # Both are means weighted by this batch's class weights; several processes average
        # over the global batch's (the ratio is exactly 1 on one process).
        weights = self.empty_weight[target_classes].sum()
        return {"loss_ce": loss * (weights / global_count(weights))}

    def focal_loss(self, logits: torch.Tensor, target_classes: torch.Tensor) -> torch.Tensor:
        """Softmax focal loss of logits [B, Q, C + 1] and classes [B, Q]: ``-w_t (1 - p_t)^g
        log p_t`` summed and divided by the sum of ``w_t``, the cross-entropy's averaging (g=0
        gives the cross-entropy exactly)."""
        log_p = logits.log_softmax(-1).gather(-1, target_classes[..., None])[..., 0]  # (B, Q)
        weight = self.empty_weight[target_classes]  # (B, Q)
        focus = (1 - log_p.exp()).clamp(min=0) ** self.config.focal_gamma
        return -(weight * focus * log_p).sum() / weight.sum()

    def loss_dice(self, outputs, targets, indices) -> dict[str, torch.Tensor]:
        pred, target = self._matched_masks(outputs, targets, indices)  # (M, HW) each
        loss = dice_loss(pred.sigmoid(), target).sum()
        return {"loss_dice": loss / self._num_masks(targets, loss.device)}

    def loss_mask_bce(self, outputs, targets, indices) -> dict[str, torch.Tensor]:
        pred, target = self._matched_masks(outputs, targets, indices)  # (M, HW) each
        loss = F.binary_cross_entropy_with_logits(pred, target, reduction="none").mean(1).sum()
        return {"loss_mask_bce": loss / self._num_masks(targets, loss.device)}

    def _matched_masks(self, outputs, targets, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """Matched mask logits, upsampled to the targets' size, and their targets: [M, HW]."""
        batch_idx, src_idx = matched_queries(indices)
        pred = outputs["pred_masks"][batch_idx, src_idx].float()  # (M, h, w)
        target = matched_targets(targets, indices, "masks")  # (M, H, W)
        pred = resize_masks(pred, tuple(target.shape[-2:]))  # (M, H, W)
        return pred.flatten(1), target.to(pred).flatten(1)

    @staticmethod
    def _num_masks(targets, device: torch.device) -> torch.Tensor:
        """Target masks in the batch (over all processes: ``distributed.global_count``), at
        least 1."""
        # a fill, not a tensor made from host data: that would be a copy the host waits for
        count = torch.full((), float(sum(len(t["labels"]) for t in targets)), device=device)
        return global_count(count).clamp(min=1)


@dataclass(frozen=True)
class EomtLossConfig:
    """EoMT's own loss settings, ``transformers``' ``EomtConfig`` defaults but the number of
    points sampled per mask: HF's 12,544 suit its 160x160 masks (640x640 inputs); here 4,096,
    a 64x64 mask's pixels."""

    class_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    no_object_weight: float = 0.1
    train_num_points: int = 4096
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75


class EomtCriterion(nn.Module):
    """EoMT's own loss (``transformers``' ``EomtLoss``: its Hungarian matching on sampled
    points, then cross-entropy, sigmoid cross-entropy and Dice on the matched masks at sampled
    points), on each masked block's predictions (``aux_outputs``) and the last block's, in
    that order, weighted and summed as ``EomtForUniversalSegmentation`` does when given labels:
    ``loss_eomt`` is its loss, bit for bit from the same random state (its point sampling
    draws random numbers), and the only term in ``weight_dict``. ``loss_cross_entropy``,
    ``loss_mask`` and ``loss_dice``, each summed over the blocks unweighted, are logged.

    ``outputs`` as ``models.EomtSegmenter`` returns them; ``targets`` as for
    ``SetCriterion`` (``labels`` [N], ``masks`` [N, H, W]). Its normalisation counts this
    process's target masks (HF averages over processes only under ``accelerate``). ``model``:
    the network's ``models.EomtSegmenterConfig`` (HF's loss reads the number of classes there).
    """

    def __init__(self, model, config: EomtLossConfig | None = None) -> None:
        super().__init__()
        from transformers.models.eomt.modeling_eomt import EomtLoss

        config = config or EomtLossConfig()
        self.weights = {  # HF's, by term
            "loss_cross_entropy": config.class_weight,
            "loss_mask": config.mask_weight,
            "loss_dice": config.dice_weight,
        }
        self.loss = EomtLoss(model.to_hf(**dataclasses.asdict(config)), self.weights)
        self.weight_dict = {"loss_eomt": 1.0}

    def forward(
        self, outputs: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        mask_labels = [target["masks"].float() for target in targets]
        class_labels = [target["labels"] for target in targets]
        total, raw = 0.0, dict.fromkeys(self.weights, 0.0)
        for predicted in [*outputs.get("aux_outputs", []), outputs]:  # HF's order
            terms = self.loss(
                predicted["pred_masks"].float(),
                predicted["pred_logits"].float(),
                mask_labels,
                class_labels,
            )
            # HF's sum: each block's weighted terms in the order its loss returns them
            total = total + sum(value * self.weights[key] for key, value in terms.items())
            raw = {key: raw[key] + terms[key].detach() for key in raw}
        return {"loss_eomt": total} | raw
