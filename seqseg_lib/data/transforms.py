"""Resize and crop shared by the semantic datasets (Sec. 2.2), and per-item randomness.

Random crops draw from a ``torch.Generator`` seeded by ``(seed, epoch, index)``, not from
global state: an item is the same whichever worker loads it and whenever a run resumes.
"""

import torch
import torch.nn.functional as F


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A generator that depends only on ``(seed, epoch, index)``."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 10_000_019 + index)


def resize_and_crop(
    sample: dict[str, torch.Tensor],
    resize: tuple[int, int] | None,
    crop: tuple[int, int] | None,
    generator: torch.Generator | None,
    hflip: bool = False,
) -> dict[str, torch.Tensor]:
    """Resize ``image`` [3, H, W] (bilinear) and the label maps [H, W] (nearest), then crop.

    ``generator`` None gives the centre crop (validation), otherwise a random crop, then, with
    ``hflip``, a horizontal flip of every map with probability 1/2 (drawn after the crop, so
    that the crops are those of a run without flips). Keys other than ``image`` holding
    [H, W] tensors are treated as label maps.
    """
    out = dict(sample)
    if resize is not None:
        for key, value in sample.items():
            if key == "image":
                out[key] = F.interpolate(
                    value[None], size=resize, mode="bilinear", align_corners=False, antialias=True
                )[0]
            elif isinstance(value, torch.Tensor) and value.dim() == 2:
                out[key] = F.interpolate(value[None, None].float(), size=resize, mode="nearest")[
                    0, 0
                ].to(value.dtype)
    if crop is not None:
        height, width = out["image"].shape[-2:]
        if crop[0] > height or crop[1] > width:
            raise ValueError(f"crop {crop} is larger than the (resized) image {(height, width)}")
        if generator is None:
            top, left = (height - crop[0]) // 2, (width - crop[1]) // 2
        else:
            top = int(torch.randint(0, height - crop[0] + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - crop[1] + 1, (1,), generator=generator))
        for key, value in out.items():
            if isinstance(value, torch.Tensor) and value.dim() >= 2:
                out[key] = value[..., top : top + crop[0], left : left + crop[1]]
    if hflip and generator is not None and bool(torch.rand(1, generator=generator) < 0.5):
        for key, value in out.items():
            if isinstance(value, torch.Tensor) and value.dim() >= 2:
                out[key] = value.flip(-1)
    return out
