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

Each settings class of ``seqseg_lib.models`` says what of it these terms count, in its
``memory_footprint()`` (a ``Footprint``: its Transformer's sizes, U-Net width, queries, classes),
so the estimate reads a model by its type, not by the fields it happens to have.

Calibrated on this CPU against the measured peaks of notebook 05 (``speed.peak_step_memory``;
the tests compare the two): within about 30% from 32 to 2,048 tokens and for U-Net. It is an
estimate of the largest terms, not an allocator model: a step estimated at more than the
device holds is refused, one estimated near the limit is left to try.
"""

import os
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from seqseg_lib.config import Config

FLOAT_BYTES = 4


@dataclass(frozen=True)
class EncoderFootprint:
    """A Transformer encoder over a model's patches, as the estimate counts it."""

    layers: int
    heads: int
    width: int  # D
    ffn: int  # F
    patch_size: int
    extra_tokens: int = 0  # object queries in the sequence, beside the patches
    attention: str = "sdpa"  # "sdpa", "eager" or "performer" (``Seq2SegConfig.attention``)
    dropout: float = 0.0  # of the attention probabilities
    holds_attention_scores: bool = False  # [N, N] scores per head whatever the kernel


@dataclass(frozen=True)
class Footprint:
    """What a model's settings tell the estimate: each settings class of ``seqseg_lib.models``
    says it in its ``memory_footprint()``."""

    num_classes: int
    encoder: EncoderFootprint | None = None  # its Transformer; None without one
    base_width: int = 0  # a U-Net's first width (its feature maps); 0 without a U-Net
    num_queries: int = 0  # set prediction: query masks as outputs; 0: per-pixel class logits
    image_size: int | None = None  # its square training images, where the config has no crop


@runtime_checkable
class HasFootprint(Protocol):
    """Model settings that estimate their memory."""

    def memory_footprint(self) -> Footprint: ...


def footprint(config: Config) -> Footprint:
    """The ``Footprint`` of a config's model (``memory_footprint()`` of its settings)."""
    if not isinstance(config.model, HasFootprint):
        raise ValueError(
            f"{type(config.model).__name__} has no memory_footprint(): give the model's "
            "settings one (a seqseg_lib.memory.Footprint) to estimate its memory"
        )
    return config.model.memory_footprint()


def image_size(config: Config) -> tuple[int, int]:
    """(H, W) of a config's training images: its crop, or the model's square ``image_size``."""
    if config.crop is not None:
        return tuple(config.crop)
    size = footprint(config).image_size
    if size is None:
        raise ValueError(f"{config.experiment}: a config without a crop needs the model's size")
    return (size, size)


def tokens_of(config: Config) -> int:
    """Sequence length of a patch-based model on the config's images (object queries
    included)."""
    height, width = image_size(config)
    encoder = footprint(config).encoder
    assert encoder is not None, f"{config.experiment} has no Transformer encoder"
    patch = encoder.patch_size
    return (height // patch) * (width // patch) + encoder.extra_tokens


def estimate_step_bytes(
    config: Config, batch_size: int, parameters: int = 0, device: str | torch.device = "cuda"
) -> dict[str, int]:
    """Bytes of the largest terms a training step of ``config`` holds at its peak (see the
    module's docstring), each and in ``total``, on ``device``; ``parameters`` counts the
    model's, for the gradients and optimizer states."""
    height, width = image_size(config)
    pixels = batch_size * height * width
    model = footprint(config)
    value_bytes = 2 if config.amp else FLOAT_BYTES
    terms = {"attention": 0, "tokens": 0, "features": 0, "output": 0}
    encoder = model.encoder
    if encoder is not None:
        layers, heads = encoder.layers, encoder.heads
        tokens = tokens_of(config)
        attention, dropout = encoder.attention, encoder.dropout
        math_path = attention == "sdpa" and dropout > 0 and torch.device(device).type == "cpu"
        if attention == "eager" or math_path or encoder.holds_attention_scores:
            square = batch_size * heads * tokens**2 * FLOAT_BYTES
            per_layer = square * (1 + (1.25 if dropout > 0 else 0))
            terms["attention"] = layers * per_layer + square
        per_token = 12 * encoder.width + 2 * encoder.ffn
        terms["tokens"] = layers * batch_size * tokens * per_token * value_bytes
    if model.base_width:
        terms["features"] = 20 * pixels * model.base_width * value_bytes
    if model.num_queries:
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
    """None when a training step of ``config`` is estimated to fit in ``device``'s memory (or
    its model's settings have no ``memory_footprint()``: nothing to refuse it by); else a
    sentence saying so, with the estimate's largest term."""
    if not isinstance(config.model, HasFootprint):
        return None
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
