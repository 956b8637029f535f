"""How much memory a training step needs, estimated before it runs, against the device's.

A step that does not fit must be refused with a sentence, not attempted: on a GPU an
out-of-memory error surfaces deep inside a backward pass, after minutes of setting up, and
a notebook that measures many sizes (notebook 05) would stop at its first large one. The
estimate counts what a training step holds at its peak, in bytes, term by term:

- ``attention``: eager attention keeps each layer's ``B * heads * N^2`` probabilities for the
  backward pass (in float32: autocast runs the softmax in float32), and its dropout mask and
  output when dropout is on, plus one layer's scores while its softmax runs. SDPA's fused
  kernels hold no ``N^2`` tensor, so this term is 0 for them (Sec. 2.4's quadratic cost),
  except on a CPU with attention dropout: there PyTorch's SDPA has no fused kernel with
  dropout and falls back to its math path, which holds what eager attention holds.
- ``tokens``: per encoder layer and token, about ``12 D + 2 F`` saved activations (the
  projections, normalisations and residuals of width ``D``, the FFN's ``F`` before and after
  its activation).
- ``features``: a U-Net's feature maps, about ``20 * base_width`` values per pixel over its
  levels (both convolutions of each block, their normalisation and activation, encoder and
  decoder).
- ``output``: the per-pixel outputs and what the loss computes from them: ``B * C * H * W``
  logits about 3 times over for the binary cross-entropy of Sec. 2.2 (logits, and two maps
  at a time in the loss or its gradient: ``losses.OneHotBCEWithLogits``), and
  ``B * Q * H' * W'`` query masks about 4 times over (logits, sigmoid, resized copies,
  gradients) for set prediction.
- ``states``: gradients and Adam's two moments, 3 values per parameter.

Calibrated on this CPU against the measured peaks of notebook 05 (``speed.peak_step_memory``;
the tests compare the two): within about 30% from 32 to 2,048 tokens and for U-Net. It is an
estimate of the largest terms, not an allocator model: a step estimated at more than the
device holds is refused, one estimated near the limit is left to try.
"""

import os

import torch

from seqseg_lib.config import Config

FLOAT_BYTES = 4


def attention_heads(config: Config) -> tuple[int, int, int, int] | None:
    """``(layers, heads, width, ffn)`` of a config's Transformer encoder, None without one."""
    model = config.model
    if not hasattr(model, "num_heads"):
        return None
    return model.num_layers, model.num_heads, model.hidden_dim, model.ffn_dim


def image_size(config: Config) -> tuple[int, int]:
    """(H, W) of a config's training images: its crop, or the model's square ``image_size``."""
    if config.crop is not None:
        return tuple(config.crop)
    return (config.model.image_size, config.model.image_size)


def tokens_of(config: Config) -> int:
    """Sequence length of a patch-based model on the config's images (object queries
    included)."""
    height, width = image_size(config)
    patch = config.model.patch_size
    return (height // patch) * (width // patch) + getattr(config.model, "num_queries", 0)


def estimate_step_bytes(
    config: Config, batch_size: int, parameters: int = 0, device: str | torch.device = "cuda"
) -> dict[str, int]:
    """Bytes of the largest terms a training step of ``config`` holds at its peak (see the
    module's docstring), each and in ``total``, on ``device``; ``parameters`` counts the
    model's, for the gradients and optimizer states."""
    height, width = image_size(config)
    pixels = batch_size * height * width
    model = config.model
    value_bytes = 2 if config.amp else FLOAT_BYTES
    terms = {"attention": 0, "tokens": 0, "features": 0, "output": 0}
    encoder = attention_heads(config)
    if encoder is not None:
        layers, heads, width_d, ffn = encoder
        tokens = tokens_of(config)
        attention, dropout = getattr(model, "attention", "sdpa"), getattr(model, "dropout", 0.0)
        math_path = attention == "sdpa" and dropout > 0 and torch.device(device).type == "cpu"
        if attention == "eager" or math_path or getattr(model, "holds_attention_scores", False):
            square = batch_size * heads * tokens**2 * FLOAT_BYTES
            per_layer = square * (1 + (1.25 if getattr(model, "dropout", 0.0) > 0 else 0))
            terms["attention"] = layers * per_layer + square
        terms["tokens"] = layers * batch_size * tokens * (12 * width_d + 2 * ffn) * value_bytes
    if hasattr(model, "base_width"):
        terms["features"] = 20 * pixels * model.base_width * value_bytes
    if hasattr(model, "num_queries"):
        terms["output"] = 4 * batch_size * model.num_queries * height * width * FLOAT_BYTES
    else:
        terms["output"] = 3 * pixels * model.num_classes * FLOAT_BYTES
    terms["states"] = 3 * parameters * FLOAT_BYTES
    terms["total"] = sum(terms.values())
    return terms


def device_memory(device: str | torch.device) -> int:
    """Bytes a step may use on ``device``: a GPU's total memory, or the host's physical memory."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def why_it_cannot_fit(
    config: Config, batch_size: int, device: str | torch.device, parameters: int = 0
) -> str | None:
    """None when a training step of ``config`` is estimated to fit in ``device``'s memory;
    else a sentence saying so, with the estimate's largest term."""
    terms = estimate_step_bytes(config, batch_size, parameters, device)
    available = device_memory(device)
    height, width = image_size(config)
    if terms["total"] <= available:
        return None
    parts = {k: v for k, v in terms.items() if k != "total"}
    largest = max(parts, key=parts.get)
    return (
        f"a training step at batch {batch_size} on {height}x{width} images needs "
        f"about {_gib(terms['total'])} (of which {largest} {_gib(parts[largest])}) and "
        f"{torch.device(device)} has {_gib(available)}"
    )


def _gib(count: int) -> str:
    return f"{count / 2**30:.1f} GiB"
