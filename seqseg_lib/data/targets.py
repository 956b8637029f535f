"""What a batch of street scenes becomes: label maps for semantic segmentation (Sec. 2), or
panoptic segments for the Hungarian U-Net (Sec. 4).

Panoptic ground truth follows the official Cityscapes conversion
(``cityscapesscripts/preparation/createPanopticImgs.py``):

- every instance of a thing class (``instances >= 1000``: labelId * 1000 + k) is a segment;
- every stuff class present is one segment, all its pixels merged;
- void (labels whose trainId is 255) belongs to no segment;
- thing pixels without an instance id (``instances < 1000``: the "group" regions, e.g. a
  crowd of cars) form one *crowd* segment per class: not a training target and never
  matched, but a prediction lying mostly on it (or on void) is not a false positive.
"""

import functools

import torch
import torch.nn.functional as F

from seqseg_lib.data.labels import CITYSCAPES, IGNORE_INDEX, LabelSpace

INSTANCE_OFFSET = 1000  # Cityscapes instanceIds: labelId * 1000 + k


def gt_segments(
    semantic: torch.Tensor, instances: torch.Tensor, thing_ids: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ground-truth segments of one image.

    ``semantic`` int64 [H, W] trainIds (``IGNORE_INDEX`` void), ``instances`` int64 [H, W]
    (official encoding). Returns ``index`` int64 [H, W] (0 void, ``s`` for the ``s``-th
    segment, ``1..S``), ``categories`` int64 [S] (trainIds) and ``iscrowd`` bool [S].
    Segments are ordered stuff and crowd by class, then instances by id.
    """
    void = semantic == IGNORE_INDEX
    instances = instances.long()
    is_thing = thing_table(tuple(thing_ids), semantic.device)  # by trainId
    is_instance = is_thing[semantic] & (instances >= INSTANCE_OFFSET)
    # One key per segment: the instance id, or trainId + 1 (< 1000) for stuff and crowd.
    key = torch.where(is_instance, instances, semantic + 1).masked_fill_(void, 0)
    keys, index = torch.unique(key, return_inverse=True)
    if keys.numel() == 0 or keys[0] != 0:  # no void pixel: keep 0 for void anyway
        keys, index = F.pad(keys, (1, 0)), index + 1
    # every pixel writes its class into its segment's slot (all pixels of a segment agree;
    # void pixels write into slot 0, which is dropped)
    categories = torch.zeros(len(keys), dtype=torch.long, device=semantic.device)
    categories = categories.scatter_(0, index.flatten(), semantic.flatten())[1:]
    iscrowd = (keys[1:] < INSTANCE_OFFSET) & is_thing[categories]
    return index, categories, iscrowd


@functools.cache
def thing_table(thing_ids: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """A bool lookup table [256] of the thing classes by trainId (void, 255, is not one), built
    once per device."""
    table = torch.zeros(256, dtype=torch.bool)
    table[list(thing_ids)] = True
    return table.to(device)


def panoptic_targets(
    labels: torch.Tensor, instances: torch.Tensor, label_space: LabelSpace = CITYSCAPES
) -> dict[str, torch.Tensor]:
    """Training targets of one image from Cityscapes ``labels`` (labelIds [H, W]) and
    ``instances`` [H, W]: ``{"labels": int64 [N] trainIds, "masks": bool [N, H, W],
    "semantic": int64 [H, W] trainIds (255 void)}``, the last what the segments come from.

    Things are split per instance, stuff merged per class; void and crowd pixels are in no
    mask (see the module docstring). A crop without any segment gives ``[0]`` and
    ``[0, H, W]``.
    """
    if labels.shape != instances.shape or labels.dim() != 2:
        raise ValueError(
            f"expected labels and instances of the same shape [H, W], got "
            f"{tuple(labels.shape)} and {tuple(instances.shape)}"
        )
    semantic = label_space.to_eval(labels)
    index, categories, iscrowd = gt_segments(semantic, instances, label_space.thing_eval_ids)
    keep = (~iscrowd).nonzero()[:, 0] + 1  # segment numbers in ``index``
    masks = index[None] == keep[:, None, None]
    return {"labels": categories[~iscrowd], "masks": masks, "semantic": semantic}


def collate_panoptic(
    items: list[dict], label_space: LabelSpace = CITYSCAPES
) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Items -> (images [B, 3, H, W], targets): one dict per image with ``labels`` [N],
    ``masks`` [N, H, W] (training), ``semantic`` trainIds [H, W] (255 void) and
    ``instances`` [H, W] (evaluation)."""
    targets = []
    for item in items:
        target = panoptic_targets(item["labels"], item["instances"], label_space)
        target["instances"] = item["instances"]
        targets.append(target)
    return torch.stack([item["image"] for item in items]), targets


def collate_semantic(items: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """Items -> (images [B, 3, H, W], labels uint8 [B, H, W]).

    Labels travel as bytes (training ids and ``IGNORE_INDEX`` all fit; the datasets check
    their files' values when they read them): an eighth of int64's copy from a DataLoader
    worker and to the GPU, and the loss and metrics read them as they are."""
    labels = torch.stack([i["labels"].to(torch.uint8) for i in items])
    return torch.stack([i["image"] for i in items]), labels
