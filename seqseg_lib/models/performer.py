"""FAVOR+ attention (the Performer; Choromanski et al., ICLR 2021), one of the efficient
Transformers Sec. 2.4 tried "but they did not yield satisfactory results".

Softmax attention ``softmax(Q K^T / sqrt(d)) V`` costs ``N^2`` in time and memory for ``N``
tokens. FAVOR+ replaces the softmax kernel ``exp(q . k / sqrt(d))`` by a dot product of
positive random features, ``phi(q) . phi(k)``, with

    phi(x) = exp(W x' - |x'|^2 / 2) / sqrt(m),    x' = x / d^(1/4),

``W`` an ``m x d`` matrix of orthogonal Gaussian rows, so that the attention becomes
``D^-1 phi(Q) (phi(K)^T V)`` with ``D = diag(phi(Q) phi(K)^T 1)``: linear in ``N``. The
estimate is unbiased and its error falls as ``m`` grows (``tests/test_performer.py`` checks it
against exact attention). Each attention layer draws its own ``W`` once, from the model's
seed, and keeps it as a buffer (saved with the checkpoint); the paper's periodic redrawing is
left out.

``performer_attention`` has the signature of a ``transformers`` attention function: BERT takes
it as ``attn_implementation="performer"`` once ``register`` has run (``build_bert_encoder``
does), every other part of BERT unchanged.
"""

import math

import torch
from torch import nn

NAME = "performer"
PROJECTION = "performer_projection"  # the buffer of each attention layer
# Added to every feature, as in the reference implementation: keeps the normaliser positive.
FEATURE_EPSILON = 1e-4


def orthogonal_gaussian(rows: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """``rows x dim`` random features: blocks of ``dim`` orthogonal rows (QR of a Gaussian
    matrix), each row rescaled to the norm of a Gaussian vector (FAVOR+'s ORF)."""
    blocks = []
    for _ in range(math.ceil(rows / dim)):
        gaussian = torch.randn(dim, dim, generator=generator)
        q, _ = torch.linalg.qr(gaussian)
        blocks.append(q.T)
    matrix = torch.cat(blocks)[:rows]
    norms = torch.randn(rows, dim, generator=generator).norm(dim=1, keepdim=True)
    return matrix * norms


def features(x: torch.Tensor, projection: torch.Tensor, is_query: bool) -> torch.Tensor:
    """Positive random features of ``x`` [B, H, N, d] (already divided by ``d^(1/4)``) ->
    [B, H, N, m]. The largest exponent is subtracted first (per query row; over all keys for
    the keys), which cancels in the normalised attention."""
    projected = x @ projection.T  # (B, H, N, m)
    squared = (x**2).sum(-1, keepdim=True) / 2
    dims = (-1,) if is_query else (-2, -1)
    stabiliser = projected.detach().amax(dim=dims, keepdim=True)
    return (torch.exp(projected - squared - stabiliser) + FEATURE_EPSILON) / math.sqrt(
        projection.shape[0]
    )


def favor_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, projection: torch.Tensor
) -> torch.Tensor:
    """FAVOR+ estimate of ``softmax(Q K^T / sqrt(d)) V``: [B, H, N, d] each -> [B, H, N, d]."""
    scale = query.shape[-1] ** -0.25
    q = features(query * scale, projection, is_query=True)  # (B, H, N, m)
    k = features(key * scale, projection, is_query=False)
    context = k.transpose(-2, -1) @ value  # (B, H, m, d): every key once, N x m x d
    normaliser = q @ k.sum(-2).unsqueeze(-1)  # (B, H, N, 1)
    return (q @ context) / normaliser


def performer_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """A ``transformers`` attention function: ``(attention output [B, N, H, d], None)``.
    Seq2Seg's sequences are never padded, so there is no mask to apply; BERT's default
    scaling ``1/sqrt(d)`` is FAVOR+'s. (The dropout of attention probabilities has no
    counterpart: there are no probabilities.)"""
    if attention_mask is not None and bool((attention_mask != 0).any()):
        raise ValueError("performer attention takes no attention mask (sequences are unpadded)")
    if scaling is not None and not math.isclose(scaling, query.shape[-1] ** -0.5):
        raise ValueError(f"performer attention scales by 1/sqrt(d), got scaling={scaling}")
    output = favor_attention(query, key, value, getattr(module, PROJECTION))
    return output.transpose(1, 2).contiguous(), None


def register() -> None:
    """Make ``attn_implementation="performer"`` known to ``transformers``."""
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, performer_attention)


def add_projections(model: nn.Module, num_features: int, seed: int = 0) -> None:
    """Give each of ``model``'s attention layers (the modules with ``query`` and ``key``
    projections) its own random features, drawn from ``seed``, as a buffer."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if hasattr(module, "query") and hasattr(module, "key"):
            dim = module.query.out_features // module.num_attention_heads
            projection = orthogonal_gaussian(num_features, dim, generator)
            module.register_buffer(PROJECTION, projection)
