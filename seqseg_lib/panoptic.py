"""Panoptic segmentation with the Hungarian U-Net (Sec. 4): targets, post-processing, panoptic
quality, and the "redundant detections" of Sec. 4.1, measured.

Classes are the 19 Cityscapes trainIds (``CITYSCAPES.eval_names``) plus "no object", index
19. Ground truth follows the official Cityscapes panoptic conversion
(``seqseg_lib.data.targets``): things per instance, stuff merged per class, void in no
segment, and thing pixels without an instance id as one *crowd* segment per class, which is
not a training target and is never matched, but a prediction lying mostly on it (or on void)
is not a false positive.

Panoptic quality follows Kirillov et al. (2019) as computed by
``cityscapesscripts/evaluation/evalPanopticSemanticLabeling.py`` (COCO panoptic API),
against which ``tests/test_panoptic.py`` checks it.
"""

import torch
import torch.nn.functional as F

from seqseg_lib.data.labels import CITYSCAPES, IGNORE_INDEX, LabelSpace
from seqseg_lib.data.targets import gt_segments
from seqseg_lib.metrics import confusion_matrix, scores
from seqseg_lib.queries import binary_masks, claim_segments, predict_queries


# -- post-processing -------------------------------------------------------------------------
@torch.no_grad()
def panoptic_inference(
    pred_logits: torch.Tensor,
    pred_masks: torch.Tensor,
    thing_ids: tuple[int, ...] = CITYSCAPES.thing_eval_ids,
    threshold: float = 0.5,
    overlap: float = 0.8,
    min_area: int = 1,
) -> tuple[torch.Tensor, list[dict]]:
    """One image's queries -> (segment map int64 [H, W], 0 void and ``1..S`` segments;
    segments: dicts ``id``, ``category_id`` (trainId), ``isthing``, ``score``, ``area``,
    ``query``).

    ``pred_logits`` [Q, C + 1] (last = no object), ``pred_masks`` [Q, H, W] mask logits.
    MaskFormer's panoptic inference (Cheng et al., 2021, ``panoptic_inference``):

    1. only confident queries stay (``seqseg_lib.queries``: the most probable class is a
       real one, with probability ``score >= threshold``);
    2. each pixel goes to the remaining query with the largest ``score * sigmoid(mask)``,
       and stays void unless that query's own probability there is >= 0.5;
    3. a query keeps its segment only if it kept at least ``overlap`` of its binarised mask
       (probability >= 0.5) and at least ``min_area`` pixels; the pixels of a dropped query
       become void (they are not reassigned);
    4. the segments of one stuff class merge into one.

    Thresholds: MaskFormer uses 0.8 for both ``threshold`` and ``overlap``; we keep its
    overlap and lower the score threshold to 0.5, "more likely an object than not", as the
    Sec. 4 model is far less confident. One difference: MaskFormer's kept area counts every
    pixel where the query wins the argmax, even below 0.5; ours counts the pixels it labels.
    Segments are numbered by decreasing score.
    """
    prediction = predict_queries(pred_logits)
    scores, classes = prediction.scores, prediction.classes  # (Q,), (Q,)
    queries = prediction.confident(threshold).nonzero()[:, 0]
    queries = queries[scores[queries].argsort(descending=True, stable=True)]
    segment_map = torch.zeros(pred_masks.shape[-2:], dtype=torch.long, device=pred_masks.device)
    if queries.numel() == 0:
        return segment_map, []
    probs = pred_masks[queries].sigmoid()  # (K, H, W)
    winner = (scores[queries, None, None] * probs).argmax(0)  # (H, W)
    labelled = binary_masks(probs.gather(0, winner[None])[0])  # (H, W)
    kept_area = torch.bincount(winner[labelled], minlength=len(queries))  # (K,)
    original_area = binary_masks(probs).flatten(1).sum(1)  # (K,)
    valid = (kept_area >= max(min_area, 1)) & (kept_area >= overlap * original_area)
    segment_of = torch.zeros(len(queries), dtype=torch.long, device=pred_masks.device)
    segments, stuff_segment = [], {}
    columns = (queries, classes[queries], scores[queries], kept_area, valid)
    for k, (query, category, score, area, kept) in enumerate(zip(*(c.tolist() for c in columns))):
        if not kept:
            continue
        isthing = category in thing_ids
        if not isthing and category in stuff_segment:
            segment = stuff_segment[category]
            segment["area"] += area
        else:
            segment = {"id": len(segments) + 1, "category_id": category, "isthing": isthing}
            segment |= {"score": score, "area": area, "query": query}
            segments.append(segment)
            if not isthing:
                stuff_segment[category] = segment
        segment_of[k] = segment["id"]
    segment_map = torch.where(labelled, segment_of[winner], 0)
    return segment_map, segments


def semantic_from_panoptic(
    segment_map: torch.Tensor, segments: list[dict], ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """trainId map int64 [H, W] of a segment map (void -> ``ignore_index``)."""
    lut = torch.full((len(segments) + 1,), ignore_index, dtype=torch.long)
    for position, segment in enumerate(segments, start=1):
        if segment["id"] != position:
            raise ValueError(
                f"segment ids must be 1..S in order, got {segment['id']} at {position}"
            )
        lut[position] = segment["category_id"]
    return lut.to(segment_map.device)[segment_map]


# -- panoptic quality ------------------------------------------------------------------------
def segment_index(
    segment_map: torch.Tensor, segments: list[dict], num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``index`` int64 [H, W] (0 void, ``1..P`` the segments present) and ``categories`` [P]
    of a predicted segment map; segments listed but absent from the map are dropped."""
    category_of = {int(s["id"]): int(s["category_id"]) for s in segments}
    ids, index = torch.unique(segment_map, return_inverse=True)
    if ids.numel() == 0 or ids[0] != 0:
        ids, index = F.pad(ids, (1, 0)), index + 1
    missing = [i for i in ids[1:].tolist() if i not in category_of]
    if missing:
        raise ValueError(f"segment ids {missing[:10]} are in the map but not in the segments")
    categories = torch.tensor([category_of[i] for i in ids[1:].tolist()], dtype=torch.long)
    if categories.numel() and (int(categories.min()) < 0 or int(categories.max()) >= num_classes):
        raise ValueError(f"segment category_id must be in 0..{num_classes - 1}")
    return index, categories.to(segment_map.device)


def pq_stats(
    segment_map: torch.Tensor,
    segments: list[dict],
    semantic: torch.Tensor,
    instances: torch.Tensor,
    label_space: LabelSpace = CITYSCAPES,
) -> dict[str, torch.Tensor]:
    """Per-class ``iou`` (float64 sum over matches), ``tp``, ``fp``, ``fn`` (int64) [K] of one
    image; ground truth as trainIds ``semantic`` [H, W] and ``instances`` [H, W].

    As ``evalPanopticSemanticLabeling.pq_compute_single_core``: a predicted and a
    ground-truth segment of the same class match if IoU > 0.5, where the predicted
    segment's void pixels are removed from the union; crowd segments match nothing; an
    unmatched prediction is a false positive unless more than half of it lies on void or on
    the crowd segment of its class.
    """
    num_classes = label_space.num_eval_classes
    gt_index, gt_cat, crowd = gt_segments(semantic, instances, label_space.thing_eval_ids)
    pred_index, pred_cat = segment_index(segment_map, segments, num_classes)
    num_pred = len(pred_cat) + 1
    joint = gt_index.flatten() * num_pred + pred_index.flatten()
    counts = torch.bincount(joint, minlength=(len(gt_cat) + 1) * num_pred)
    counts = counts.view(len(gt_cat) + 1, num_pred)  # (G + 1, P + 1), row/column 0 = void
    inter, pred_void = counts[1:, 1:], counts[0, 1:]  # (G, P), (P,)
    pred_area, gt_area = counts[:, 1:].sum(0), counts[1:, :].sum(1)  # (P,), (G,)
    union = pred_area[None] + gt_area[:, None] - inter - pred_void[None]  # (G, P)
    same = gt_cat[:, None] == pred_cat[None]  # (G, P)
    match = (2 * inter > union) & same & ~crowd[:, None]  # IoU > 0.5, exactly
    iou = torch.where(match, inter.double() / union.clamp(min=1), 0.0)  # (G, P)
    gt_matched, pred_matched = match.any(1), match.any(0)
    on_crowd = (inter * (same & crowd[:, None])).sum(0)  # (P,)
    ignored = 2 * (pred_void + on_crowd) > pred_area
    k = num_classes
    return {
        "iou": torch.zeros(k, dtype=torch.double, device=iou.device).index_add_(
            0, gt_cat, iou.sum(1)
        ),
        "tp": torch.bincount(gt_cat[gt_matched], minlength=k),
        "fn": torch.bincount(gt_cat[~gt_matched & ~crowd], minlength=k),
        "fp": torch.bincount(pred_cat[~pred_matched & ~ignored], minlength=k),
    }


def summarize_pq(stats: dict[str, torch.Tensor], thing_ids: tuple[int, ...]) -> dict:
    """PQ, SQ, RQ overall, for things and for stuff, and per class, from summed ``pq_stats``.

    As the official ``PQStat.pq_average``: a class with ``tp + fp + fn == 0`` is left out of
    the means (its per-class values are ``nan`` here, 0 there); a class with no true
    positive has SQ 0 and counts in the SQ mean. A group without any class gives ``nan``.
    """
    iou, tp = stats["iou"].double(), stats["tp"].double()
    denominator = tp + 0.5 * stats["fp"].double() + 0.5 * stats["fn"].double()
    present = denominator > 0
    per_class = {
        "pq": torch.where(present, iou / denominator.clamp(min=0.5), torch.nan),
        "sq": torch.where(present, torch.where(tp > 0, iou / tp.clamp(min=1), 0.0), torch.nan),
        "rq": torch.where(present, tp / denominator.clamp(min=0.5), torch.nan),
    }
    is_thing = torch.zeros_like(present)
    is_thing[list(thing_ids)] = True
    results = {}
    for suffix, group in (("", present), ("_things", is_thing), ("_stuff", ~is_thing)):
        group = group & present
        for name, values in per_class.items():
            results[name + suffix] = float(values[group].mean()) if group.any() else float("nan")
    for name, values in per_class.items():
        results[f"{name}_per_class"] = [float(v) for v in values]
    return results


def panoptic_quality(
    segment_map: torch.Tensor,
    segments: list[dict],
    gt_labels: torch.Tensor,
    gt_instances: torch.Tensor,
    label_space: LabelSpace = CITYSCAPES,
) -> dict:
    """PQ, SQ, RQ (``summarize_pq``'s keys) of one predicted segment map against Cityscapes
    ``gt_labels`` (labelIds [H, W]) and ``gt_instances`` [H, W]."""
    semantic = label_space.to_eval(gt_labels)
    stats = pq_stats(segment_map, segments, semantic, gt_instances, label_space)
    return summarize_pq(stats, label_space.thing_eval_ids)


# -- redundancy (Sec. 4.1) -------------------------------------------------------------------
@torch.no_grad()
def redundancy_stats(
    pred_logits: torch.Tensor,
    pred_masks: torch.Tensor,
    target: dict[str, torch.Tensor],
    threshold: float = 0.5,
) -> dict[str, int]:
    """How many confident queries describe the same ground-truth segment ("lots of redundant
    detections", Sec. 4.1), measured *before* the per-pixel assignment of
    ``panoptic_inference``, which hides duplicates.

    ``pred_logits`` [Q, C + 1], ``pred_masks`` [Q, H, W] logits; ``target`` with ``labels``
    [N] and ``masks`` bool [N, H, W]. Confident queries with a non-empty binarised mask
    (probability >= 0.5) claim segments as ``seqseg_lib.queries`` defines it, with PQ's
    "IoU > 0.5": as the segments are disjoint, a query matches at most one. Returns counts:
    ``confident`` queries, ``gt_segments`` N, ``matched_gt`` segments found, ``duplicates``
    (confident queries on a segment already found) and ``matches`` = matched_gt + duplicates,
    the (query, segment) pairs.
    """
    prediction = predict_queries(pred_logits)
    binary = binary_masks(pred_masks.sigmoid())  # (Q, H, W)
    keep = prediction.confident(threshold) & binary.flatten(1).any(1)  # (Q,)
    counts = claim_segments(
        prediction.scores[keep],
        prediction.classes[keep],
        binary[keep],
        target["labels"],
        target["masks"],
        strict=True,
    )
    return {
        "confident": int(keep.sum()),
        "gt_segments": len(target["labels"]),
        "matches": counts["tp"] + counts["duplicates"],
        "matched_gt": counts["tp"],
        "duplicates": counts["duplicates"],
    }


# -- evaluator for the engine ----------------------------------------------------------------
REDUNDANCY_COUNTS = ("confident", "gt_segments", "matches", "matched_gt", "duplicates")


class PanopticEvaluator:
    """Accumulates panoptic quality, semantic scores and redundancy over batches.

    ``update(outputs, targets)``: ``outputs`` the model's dict (``pred_logits`` [B, Q, C + 1],
    ``pred_masks`` [B, Q, H', W'], resized to the targets' [H, W] if needed), ``targets`` the
    list from ``collate_panoptic`` (``labels``, ``masks``, ``semantic``, ``instances``).
    ``compute()`` gives ``summarize_pq``'s keys (skipped with ``light=True``), ``accuracy``,
    ``miou`` and ``iou`` of the semantic map made from the panoptic one (over the 19
    trainIds, as ``seqseg_lib.metrics``; void predictions count as wrong), the redundancy
    counts per image and ``redundancy`` = matches / matched_gt (confident queries per
    detected segment, 1 without duplicates), and ``segments_per_image``.
    ``state_dict()`` holds tensors only (checkpoints load with ``weights_only=True``).
    """

    def __init__(
        self,
        label_space: LabelSpace = CITYSCAPES,
        threshold: float = 0.5,
        overlap: float = 0.8,
        light: bool = False,
    ) -> None:
        self.label_space, self.light = label_space, light
        self.threshold, self.overlap = threshold, overlap
        k = label_space.num_eval_classes
        self.state = {
            "iou": torch.zeros(k, dtype=torch.double),
            "tp": torch.zeros(k, dtype=torch.long),
            "fp": torch.zeros(k, dtype=torch.long),
            "fn": torch.zeros(k, dtype=torch.long),
            "matrix": torch.zeros(k, k + 1, dtype=torch.long),
            "redundancy": torch.zeros(len(REDUNDANCY_COUNTS), dtype=torch.long),
            "segments": torch.zeros((), dtype=torch.long),
            "images": torch.zeros((), dtype=torch.long),
        }

    @torch.no_grad()
    def update(self, outputs: dict[str, torch.Tensor], targets: list[dict]) -> None:
        pred_logits, pred_masks = outputs["pred_logits"].float(), outputs["pred_masks"].float()
        size = targets[0]["semantic"].shape[-2:] if targets else pred_masks.shape[-2:]
        if pred_masks.shape[-2:] != size:
            pred_masks = F.interpolate(pred_masks, size=size, mode="bilinear", align_corners=False)
        state, k = self.state, self.label_space.num_eval_classes
        for logits, masks, target in zip(pred_logits, pred_masks, targets):
            segment_map, segments = panoptic_inference(
                logits, masks, self.label_space.thing_eval_ids, self.threshold, self.overlap
            )
            semantic = semantic_from_panoptic(segment_map, segments)
            state["matrix"] += confusion_matrix(semantic, target["semantic"], k).cpu()
            if not self.light:
                stats = pq_stats(
                    segment_map, segments, target["semantic"], target["instances"], self.label_space
                )
                for name, value in stats.items():
                    state[name] += value.cpu()
            counts = redundancy_stats(logits, masks, target, self.threshold)
            state["redundancy"] += torch.tensor([counts[name] for name in REDUNDANCY_COUNTS])
            state["segments"] += len(segments)
            state["images"] += 1

    def compute(self) -> dict:
        state = self.state
        results = {} if self.light else summarize_pq(state, self.label_space.thing_eval_ids)
        results |= scores(state["matrix"])
        images = max(int(state["images"]), 1)
        counts = dict(zip(REDUNDANCY_COUNTS, state["redundancy"].tolist()))
        results |= {f"{name}_per_image": value / images for name, value in counts.items()}
        matched = counts["matched_gt"]
        results["redundancy"] = counts["matches"] / matched if matched else float("nan")
        results["segments_per_image"] = int(state["segments"]) / images
        return results

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: value.clone() for name, value in self.state.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if set(state) != set(self.state):
            raise ValueError(
                f"expected evaluator state keys {sorted(self.state)}, got {sorted(state)}"
            )
        self.state = {name: value.clone().cpu() for name, value in state.items()}
