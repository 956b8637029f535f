"""Batches and running sums as the engine moves them: to a device, to float32, detached, and
loss sums kept on the device until a record is written (one copy to the host then)."""

from typing import Any

import torch


def to_device(value: Any, device: torch.device) -> Any:
    """Tensors, and tensors inside lists and dicts, moved to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_device(v, device) for v in value)
    return value


def to_float(value: Any) -> Any:
    """Floating tensors (also inside dicts) in float32: autocast outputs go to the losses so."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, dict):
        return {k: to_float(v) for k, v in value.items()}
    return value


def detach(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().float()
    if isinstance(value, dict):
        return {k: detach(v) for k, v in value.items()}
    return value


def batch_size(images: Any) -> int:
    return images.shape[0] if isinstance(images, torch.Tensor) else len(images)


def accumulate(running: dict, losses: dict, total: torch.Tensor, num_images: int) -> None:
    """Add one batch's raw terms and weighted total to the running sums: float64 tensors on the
    losses' device, read by the host only when a record is written (``host_values``)."""
    sums = running["loss_sums"]
    for key, value in [*losses.items(), ("loss", total)]:
        value = value.detach().double()
        sums[key] = sums[key] + value if key in sums else value
    running["num_batches"] += 1
    running["num_images"] += num_images


def host_values(sums: dict[str, Any]) -> dict[str, float]:
    """Running sums as Python floats (one copy from the device for all of them)."""
    if not sums:
        return {}
    values = torch.stack([torch.as_tensor(v, dtype=torch.float64) for v in sums.values()])
    return dict(zip(sums, values.tolist()))
