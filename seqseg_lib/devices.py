"""The device a run uses, what it can do fast, and how it is described beside results.

- ``resolve_device``: ``auto`` is CUDA when available, else CPU.
- ``fast_bfloat16``: whether bfloat16 matmuls run natively (a CUDA device of compute
  capability 8.0 or later; a CPU with AVX-512 BF16 or AMX). Elsewhere bfloat16 is emulated
  and slower than float32 (14-25x for a training step on an AVX2 CPU), so the ``paper``
  profile autocasts to bfloat16 only where this is true.
- ``configure_device``: TF32 matmuls and convolutions on CUDA (the float32 parts of a step).
- ``describe_device``: the device, its model and the thread count, for provenance.
- ``set_determinism``: deterministic kernels, or the fastest (cuDNN's autotuner), both ways.
- ``rng_state`` / ``set_rng_state``: the random state a checkpoint saves, the run's own GPU's.
"""

import os
import platform
from typing import Any

import torch


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` is CUDA when available, else CPU; asking for CUDA without it is an error."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r}: expected auto, cpu, cuda or cuda:N (--device)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def fast_bfloat16(device: str | torch.device) -> bool:
    """True where bfloat16 matmuls run in hardware: CUDA with ``is_bf16_supported`` (compute
    capability >= 8.0), or a CPU with AVX-512 BF16 or AMX tiles."""
    device = resolve_device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def configure_device(device: torch.device) -> None:
    """Let float32 matmuls and convolutions use TF32 tensor cores on CUDA (Ampere and later):
    the parts of a step that autocast leaves in float32, and every step of a float32 run."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def describe_device(device: str | torch.device) -> str:
    """``"cuda (NVIDIA H100 80GB HBM3)"`` or ``"cpu (AMD EPYC ..., 2 threads)"``."""
    device = resolve_device(device)
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"cpu ({cpu_model()}, {threads} thread{'' if threads == 1 else 's'})"


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` where there is one."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def set_determinism(device: torch.device, enabled: bool = True) -> None:
    """Deterministic kernels where PyTorch has them, or the fastest ones: set both ways, so
    that one run's choice does not carry over to the next run of the same process.

    CPU kernels used here are deterministic for a fixed thread count whatever ``enabled``
    says. On CUDA, ``enabled`` sets cuDNN to deterministic, disables its autotuner and asks for
    deterministic algorithms with ``warn_only=True`` (a few CUDA kernels, e.g. the backward of
    some interpolations and ``index_put`` with accumulation, have no deterministic version and
    only warn); otherwise cuDNN's autotuner (``cudnn.benchmark``) picks each convolution's
    fastest algorithm for the run's fixed input size.
    """
    if device.type != "cuda":
        return
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled
    torch.use_deterministic_algorithms(enabled, warn_only=True)


def rng_state(device: torch.device) -> dict[str, Any]:
    """The global CPU generator's state and, on CUDA, the run's own GPU's (not every visible
    GPU's: a run resumed on fewer GPUs, or on another one, restores it all the same)."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore ``rng_state``'s states on this run's device. Checkpoints that saved every
    visible GPU's state (a list) give the entry of this device's index, or their first."""
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda")
    if isinstance(cuda, list):  # written by earlier versions: one state per visible GPU
        cuda = cuda[min(device.index or 0, len(cuda) - 1)] if cuda else None
    if cuda is not None and device.type == "cuda":
        torch.cuda.set_rng_state(cuda.cpu(), device)
