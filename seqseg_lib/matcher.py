"""Hungarian matching of predictions to targets (DETR, Sec. 3.1), with a mask Dice cost.

For each image, the cost of giving target ``j`` to query ``i`` is

    cost[i, j] = cost_class * (-p_i(label_j)) + cost_dice * (1 - dice(mask_i, mask_j))

and ``scipy.optimize.linear_sum_assignment`` finds the assignment of least total cost. The
default weights are the report's loss weights (class 0.1, mask 1, Sec. 3.3): the report says
the matching cost "can be the loss" (Sec. 3.1) and gives no other weights, so the loss
weights serve as matching weights. As in DETR the class cost is the negative probability,
not the log-probability, and the Dice has a smoothing of 1.
"""

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn
from torch.nn.utils.rnn import pad_sequence

# Stands in for NaN or infinite costs (from non-finite outputs early in a diverging run):
# larger than any finite cost (at most cost_class + cost_dice), so such pairs are chosen last,
# and small enough for linear_sum_assignment, which rejects non-finite matrices.
NON_FINITE_COST = 1e6


def dice_cost(pred: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - Dice between every pair: ``pred`` probabilities [..., P, HW], ``target`` [..., T, HW]
    -> [..., P, T] (leading dimensions batched)."""
    numerator = 2 * pred @ target.transpose(-1, -2) + smooth  # (..., P, T)
    denominator = pred.sum(-1)[..., :, None] + target.sum(-1)[..., None, :] + smooth
    return 1 - numerator / denominator


def image_dice_costs(
    pred: torch.Tensor, target: torch.Tensor, sizes: list[int], batched: bool
) -> torch.Tensor:
    """``dice_cost`` of each image's queries ``pred`` [B, Q, HW] against its own targets (the
    rows of ``target`` [sum sizes, HW], ``sizes[b]`` of them for image b): [B, Q, max sizes],
    padded. ``batched``: one product per image, batched; else every query against every
    target, each image's block then taken (B times the operations, the CPU's rounding)."""
    if batched:
        padded = pad_sequence(list(target.split(sizes)), batch_first=True)  # (B, T', HW)
        return dice_cost(pred, padded)
    every = dice_cost(pred.flatten(0, 1), target).view(*pred.shape[:2], -1)  # (B, Q, T)
    blocks = [block[b].T for b, block in enumerate(every.split(sizes, -1))]  # (T_b, Q) each
    return pad_sequence(blocks, batch_first=True).transpose(1, 2)  # (B, Q, T')


def resize_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of [N, h, w] maps (logits or 0/1 masks) to ``size``; no-op if equal."""
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks
    return F.interpolate(masks[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


class HungarianMatcher(nn.Module):
    """``matcher(outputs, targets) -> [(src_idx, tgt_idx), ...]``, one int64 pair per image,
    on the outputs' device.

    ``outputs``: ``pred_logits`` [B, Q, C + 1] and ``pred_masks`` mask logits [B, Q, h, w].
    ``targets``: list of B dicts with ``labels`` int64 [T_b] and ``masks`` [T_b, H, W].
    Each pair holds ``min(Q, T_b)`` indices: ``src_idx`` into the queries (increasing),
    ``tgt_idx`` into the image's targets. Masks are compared at ``mask_size`` (H', W') when
    given, both resized bilinearly (Sec. 4 matches at 32x64 to save memory); otherwise the
    predictions are upsampled to the targets' resolution.
    """

    def __init__(
        self,
        cost_class: float = 0.1,  # Sec. 3.3 (the class loss weight)
        cost_dice: float = 1.0,  # Sec. 3.3 (the mask loss weight)
        mask_size: tuple[int, int] | None = None,
        batched: bool | None = None,
    ) -> None:
        super().__init__()
        if cost_class < 0 or cost_dice < 0 or cost_class + cost_dice == 0:
            raise ValueError(
                f"matching costs must be >= 0 and not both 0, got cost_class={cost_class}, "
                f"cost_dice={cost_dice}"
            )
        self.cost_class, self.cost_dice = cost_class, cost_dice
        self.mask_size = None if mask_size is None else tuple(mask_size)
        # the mask costs as one batched product per image (``image_dice_costs``); None: on
        # CUDA only (see ``cost_matrix``)
        self.batched = batched

    @torch.no_grad()
    def forward(
        self, outputs: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        logits = outputs["pred_logits"]
        batch, num_queries = logits.shape[:2]
        sizes = [len(t["labels"]) for t in targets]
        if sum(sizes) == 0:
            empty = [np.empty(0, dtype=np.int64)] * batch
            return Indices.from_host(empty, empty, sizes, logits.device)
        cost = self.cost_matrix(outputs, targets)  # (B, Q, max T_b)
        # the padded costs copied to the CPU in one transfer; image b's (Q, T_b) block there
        cost = torch.nan_to_num(
            cost.cpu(), nan=NON_FINITE_COST, posinf=NON_FINITE_COST, neginf=-NON_FINITE_COST
        ).numpy()
        rows, cols = [], []
        for b, size in enumerate(sizes):
            src, tgt = linear_sum_assignment(cost[b, :, :size])
            rows.append(src)
            cols.append(tgt)
        return Indices.from_host(rows, cols, sizes, logits.device)

    def cost_matrix(
        self, outputs: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]
    ) -> torch.Tensor:
        """Costs between each image's queries and its own targets: [B, Q, max_b T_b], image
        b's targets in its first T_b columns (the others are padding).

        ``batched`` (on CUDA by default): one batched product over the images, B times fewer
        operations than every query against every target of the batch. Otherwise (a CPU by
        default) every query against every target, each image's block then taken: for
        scattered MNIST's shapes the batched product rounds some costs differently in the last
        bit, which can turn a near tie of the assignment, and the ``cpu`` results in
        ``reports/`` were trained with this rounding. (For the Hungarian U-Net's shapes both
        give the same bits: ``experiments.panoptic`` batches on every device.)"""
        probs = outputs["pred_logits"].float().softmax(-1)  # (B, Q, C + 1)
        batch, num_queries = probs.shape[:2]
        pred_masks = outputs["pred_masks"].flatten(0, 1).float()  # (B*Q, h, w)
        tgt_masks = torch.cat([t["masks"] for t in targets]).float()  # (T, H, W)
        size = self.mask_size or tuple(tgt_masks.shape[-2:])
        pred_masks = resize_masks(pred_masks, size).sigmoid().flatten(1)  # (B*Q, H'W')
        tgt_masks = resize_masks(tgt_masks, size).flatten(1)  # (T, H'W')
        sizes = [len(t["labels"]) for t in targets]
        labels = pad_sequence([t["labels"] for t in targets], batch_first=True)  # (B, T')
        class_cost = -probs.gather(2, labels[:, None, :].expand(-1, num_queries, -1))
        mask_cost = image_dice_costs(
            pred_masks.view(batch, num_queries, -1),
            tgt_masks,
            sizes,
            batched=pred_masks.device.type == "cuda" if self.batched is None else self.batched,
        )
        return self.cost_class * class_cost + self.cost_dice * mask_cost


class Indices(list):
    """The matcher's ``[(src_idx, tgt_idx), ...]``, one pair per image as DETR's, with the same
    matches flat over the batch, int64 [M] on the device: ``batch_idx`` (the image),
    ``src_idx`` (the query), ``target_idx`` (the target in the batch's targets concatenated).
    The flat ones gather every image's matches in one operation, not one per image."""

    batch_idx: torch.Tensor
    src_idx: torch.Tensor
    target_idx: torch.Tensor

    @classmethod
    def from_host(cls, rows: list, cols: list, sizes: list[int], device) -> "Indices":
        """From each image's assignment (host arrays of query and target indices, ``sizes``
        targets per image): every index reaches the device in one copy, from pinned memory on
        CUDA (no wait)."""
        counts = [len(r) for r in rows]
        offsets = np.cumsum([0, *sizes[:-1]])
        images = np.repeat(np.arange(len(rows)), counts)
        src, tgt = np.concatenate(rows), np.concatenate(cols)
        flat = torch.from_numpy(
            np.stack([images, src, tgt, tgt + offsets[images]]).astype(np.int64)
        )
        if torch.device(device).type == "cuda":
            flat = flat.pin_memory()
        flat = flat.to(device, non_blocking=True)  # (4, M)
        indices = cls(zip(flat[1].split(counts), flat[2].split(counts)))
        indices.batch_idx, indices.src_idx, indices.target_idx = flat[0], flat[1], flat[3]
        return indices


def matched_queries(
    indices: list[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """(image index, query index) int64 [M] of every matched query, concatenated over the
    batch in the matcher's order: ``pred[batch_idx, src_idx]`` gathers the matched predictions
    of any ``[B, Q, ...]`` output."""
    if isinstance(indices, Indices):
        return indices.batch_idx, indices.src_idx
    batch_idx = torch.cat([torch.full_like(src, b) for b, (src, _) in enumerate(indices)])
    return batch_idx, torch.cat([src for src, _ in indices])


def matched_targets(
    targets: list[dict[str, torch.Tensor]],
    indices: list[tuple[torch.Tensor, torch.Tensor]],
    key: str,
) -> torch.Tensor:
    """``targets[b][key]`` of every matched target [M, ...], in the order of
    ``matched_queries``: row ``m`` of one is the ground truth of row ``m`` of the other."""
    if isinstance(indices, Indices):
        every = torch.cat([target[key] for target in targets])  # (T, ...)
        return every[indices.target_idx.to(every.device)]
    return torch.cat([target[key][tgt] for target, (_, tgt) in zip(targets, indices)])
