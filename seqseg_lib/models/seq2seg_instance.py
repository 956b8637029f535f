"""Seq2Seg for instance segmentation (Sec. 3.2-3.3, Figure 3): object queries in a BERT encoder.

    images [B, 1, 64, 64]
      -> flattened s x s patches               [B, N, s^2]          N = (64/s)^2
      -> linear projection                     [B, N, D]
      -> prepend Q learnable object queries    [B, Q + N, D]
      -> BERT encoder (position embeddings added at its input, Sec. 2.1)
      -> last hidden state of the queries      [B, Q, D]
      -> linear: class logits                  [B, Q, C + 1]        (+1: "no object")
      -> linear: mask logits                   [B, Q, h * w] -> [B, Q, h, w]

Two sizes the report leaves open, chosen here:

- ``patch_size = 8``: 64 patches + 6 queries = 70 tokens, each patch a 64-pixel vector (the
  same 8x8 patches as the ``cpu`` semantic Seq2Seg; 4x4 patches would give 262 tokens).
- ``mask_size = 32``: each query predicts a 32x32 map (a 512 -> 1024 linear layer), which the
  losses, matcher and metrics upsample bilinearly to 64x64. The report calls these masks "low
  resolution" (Sec. 3.5) yet reaches a Dice loss of 0.03 on easy images (Sec. 3.4). Measured by
  fitting per-mask logits to 100 easy validation masks through the bilinear upsampling, the best
  Dice loss reachable is 0.21 at 16x16, 0.04 at 32x32 and 0.002 at 64x64: 16x16 cannot give the
  report's number, 32x32 can, and is the lowest such resolution.

``mask_head="dot"`` is the first extension of Sec. 3.5 ("compute the attention heatmaps between
the hidden states of each object query and the hidden states of all images patches"): a query's
mask is the dot product of a projection of its hidden state with an embedding of every patch,
so the mask draws on every patch's hidden state rather than on the query's alone. To reach the
same ``mask_size`` as the linear head, each patch's hidden state is projected to r x r
embeddings, one per cell of an r x r grid inside the patch (r = mask_size * patch_size /
image_size; r = 1 is the heatmap at the patch grid exactly):

    queries [B, Q, D] -> Linear -> [B, Q, E]
    patches [B, N, D] -> Linear -> [B, N, r*r*E] -> [B, E, (H/s) r, (W/s) r]
    einsum                     -> pred_masks [B, Q, mask_size, mask_size]

``query_layers=k`` (notebook 08) arranges the encoder as EoMT does (Kerssies et al., 2025): the
patches go through the first layers alone and the queries, without position embeddings, join
them for the last ``k`` layers only; by default (None) they take part from the input on, as in
Sec. 3.2.

``class_head="masked"`` (ours) adds to each query's class logits a term read from the patches
under its own mask: the patches' hidden states averaged with the query's mask probabilities
as weights, then an MLP (``MaskedClassHead``, shared with the Hungarian U-Net). The report's
head reads the query's hidden state alone, which must then carry both the digit's shape and
its class.
"""

from dataclasses import dataclass

import torch
from torch import nn

from seqseg_lib import paper
from seqseg_lib.memory import EncoderFootprint, Footprint
from seqseg_lib.models.blocks import MaskedClassHead, check_sequence_length, patchify


@dataclass(frozen=True)
class Seq2SegInstanceConfig:
    """Seq2SegInstance's settings; the defaults are the report's (Sec. 3.3) where it gives
    them, and the choices of the module docstring where it does not."""

    num_classes: int = 10  # MNIST digits
    num_queries: int = paper.MNIST_QUERIES
    hidden_dim: int = paper.MNIST_ENCODER["hidden_dim"]
    num_layers: int = paper.MNIST_ENCODER["num_layers"]
    num_heads: int = paper.MNIST_ENCODER["num_heads"]
    ffn_dim: int = paper.MNIST_ENCODER["ffn_dim"]
    patch_size: int = 8
    mask_size: int = 32
    in_channels: int = 1
    max_positions: int = 512  # BERT's
    dropout: float = 0.1  # BERT's
    mask_head: str = "linear"  # Sec. 3.2; "dot": Sec. 3.5's proposal (module docstring)
    mask_dim: int = 64  # "dot": width E of the query and patch embeddings
    image_size: int = paper.MNIST_IMAGE_SIZE  # sets r of the "dot" head
    class_head: str = "linear"  # Sec. 3.2; "masked": ours (module docstring)
    class_hidden: int = 256  # "masked": width of its MLP's hidden layer
    query_layers: int | None = None  # None: queries from the input on (Sec. 3.2); k: EoMT's

    def __post_init__(self) -> None:
        if self.mask_head not in MASK_HEADS:
            raise ValueError(
                f"unknown mask_head {self.mask_head!r}; valid: {', '.join(MASK_HEADS)}"
            )
        if self.class_head not in CLASS_HEADS:
            raise ValueError(
                f"unknown class_head {self.class_head!r}; valid: {', '.join(CLASS_HEADS)}"
            )
        if self.query_layers is not None and not 1 <= self.query_layers <= self.num_layers:
            raise ValueError(
                f"query_layers must be None or between 1 and num_layers ({self.num_layers}), "
                f"got {self.query_layers}"
            )
        grid = self.image_size // self.patch_size
        if self.mask_head == "dot" and (self.image_size % self.patch_size or self.mask_size % grid):
            raise ValueError(
                f'mask_head="dot" needs mask_size ({self.mask_size}) to be a multiple of the '
                f"patch grid image_size / patch_size = {self.image_size}/{self.patch_size}"
            )

    def memory_footprint(self) -> Footprint:
        sizes = (self.num_layers, self.num_heads, self.hidden_dim, self.ffn_dim, self.patch_size)
        encoder = EncoderFootprint(*sizes, extra_tokens=self.num_queries, dropout=self.dropout)
        queries, size = self.num_queries, self.image_size
        return Footprint(self.num_classes, encoder, num_queries=queries, image_size=size)


MASK_HEADS = ("linear", "dot")
CLASS_HEADS = ("linear", "masked")


class LinearMaskHead(nn.Linear):
    """``forward(queries [B, Q, D], patches [B, N, D], grid (h, w)) -> [B, Q, m, m]``: a
    linear map of each query's hidden state alone to its ``m x m`` mask (Sec. 3.2; the
    patches are unused)."""

    def __init__(self, hidden_dim: int, mask_size: int) -> None:
        super().__init__(hidden_dim, mask_size**2)
        self.mask_size = mask_size

    def forward(
        self, queries: torch.Tensor, patches: torch.Tensor, grid: tuple[int, int]
    ) -> torch.Tensor:
        masks = super().forward(queries)  # (B, Q, m * m)
        return masks.unflatten(2, (self.mask_size, self.mask_size))  # (B, Q, m, m)


class DotProductMaskHead(nn.Module):
    """``forward(queries [B, Q, D], patches [B, N, D], grid (h, w)) -> [B, Q, h r, w r]``: each
    query's embedding dotted with r x r embeddings of every patch (module docstring)."""

    def __init__(self, hidden_dim: int, mask_dim: int, subgrid: int) -> None:
        super().__init__()
        self.subgrid = subgrid
        self.query_proj = nn.Linear(hidden_dim, mask_dim)
        self.patch_proj = nn.Linear(hidden_dim, subgrid * subgrid * mask_dim)

    def forward(
        self, queries: torch.Tensor, patches: torch.Tensor, grid: tuple[int, int]
    ) -> torch.Tensor:
        r = self.subgrid
        embedded = self.patch_proj(patches)  # (B, N, r*r*E)
        embedded = embedded.unflatten(1, grid).unflatten(-1, (r, r, -1))  # (B, h, w, r, r, E)
        embedded = embedded.permute(0, 5, 1, 3, 2, 4).flatten(4, 5).flatten(2, 3)  # (B,E,hr,wr)
        return torch.einsum("bqe,behw->bqhw", self.query_proj(queries), embedded)


class Seq2SegInstance(nn.Module):
    """``forward(images [B, 1, H, W]) -> {"pred_logits": [B, Q, C + 1], "pred_masks":
    [B, Q, h, w]}`` (mask logits at ``mask_size``). Defaults are the report's (Sec. 3.3).

    BERT is built as in ``Seq2Seg``: a vocabulary of 1 (inputs go in as ``inputs_embeds``),
    512 position embeddings, dropout 0.1 (BERT's default), the pooler kept but unused. The
    queries take the first ``num_queries`` positions, so each has its own position embedding
    on top of its learnt vector.
    """

    def __init__(self, config: Seq2SegInstanceConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or Seq2SegInstanceConfig()
        self.num_classes, self.num_queries = config.num_classes, config.num_queries
        self.patch_size, self.mask_size = config.patch_size, config.mask_size
        hidden_dim = config.hidden_dim
        self.patch_embed = nn.Linear(config.in_channels * config.patch_size**2, hidden_dim)
        self.query_embed = nn.Parameter(torch.randn(config.num_queries, hidden_dim) * 0.02)
        from seqseg_lib.models.encoders import build_bert_encoder  # transformers: when built

        self.encoder = build_bert_encoder(
            hidden_dim,
            config.num_layers,
            config.num_heads,
            config.ffn_dim,
            config.max_positions,
            config.dropout,
        )
        self.class_head = nn.Linear(hidden_dim, config.num_classes + 1)
        if config.class_head == "masked":
            self.masked_class_head = MaskedClassHead(
                hidden_dim, config.class_hidden, config.num_classes
            )
        if config.mask_head == "dot":
            subgrid = config.mask_size * config.patch_size // config.image_size
            self.mask_head = DotProductMaskHead(hidden_dim, config.mask_dim, subgrid)
        else:
            self.mask_head = LinearMaskHead(hidden_dim, config.mask_size)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens, grid = patchify(images, self.patch_size)  # (B, N, s^2), (H/s, W/s)
        batch, num_queries = images.shape[0], self.num_queries
        queries = self.query_embed.expand(batch, -1, -1)  # (B, Q, D)
        if self.config.query_layers is None:
            check_sequence_length(
                num_queries + tokens.shape[1], self.encoder.config.max_position_embeddings
            )
            sequence = torch.cat([queries, self.patch_embed(tokens)], dim=1)  # (B, Q + N, D)
            hidden = self.encoder(inputs_embeds=sequence).last_hidden_state  # (B, Q + N, D)
        else:
            hidden = self.queries_join_late(queries, self.patch_embed(tokens))
        queries, patches = hidden[:, :num_queries], hidden[:, num_queries:]  # (B, Q|N, D)
        masks = self.mask_head(queries, patches, grid)  # (B, Q, h, w)
        logits = self.class_head(queries)  # (B, Q, C + 1)
        if self.config.class_head == "masked":
            features = patches.transpose(1, 2).unflatten(2, grid)  # (B, D, H/s, W/s)
            logits = logits + self.masked_class_head(features, masks)  # (B, Q, C + 1)
        return {"pred_logits": logits, "pred_masks": masks}

    def queries_join_late(self, queries: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """EoMT's arrangement: the patches [B, N, D] (with their position embeddings) go
        through the first layers alone; the queries [B, Q, D] join them, without position
        embeddings, for the last ``query_layers`` layers. Returns [B, Q + N, D]."""
        check_sequence_length(patches.shape[1], self.encoder.config.max_position_embeddings)
        layers = self.encoder.encoder.layer
        first = len(layers) - self.config.query_layers
        hidden = self.encoder.embeddings(inputs_embeds=patches)  # (B, N, D)
        for layer in layers[:first]:
            hidden = layer(hidden)
        hidden = torch.cat([queries, hidden], dim=1)  # (B, Q + N, D)
        for layer in layers[first:]:
            hidden = layer(hidden)
        return hidden
