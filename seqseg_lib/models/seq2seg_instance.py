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
"""

from dataclasses import dataclass

import torch
from torch import nn

from seqseg_lib.models.seq2seg import build_bert_encoder, check_sequence_length, patchify


@dataclass(frozen=True)
class Seq2SegInstanceConfig:
    """Seq2SegInstance's settings; the defaults are the report's (Sec. 3.3) where it gives
    them, and the choices of the module docstring where it does not."""

    num_classes: int = 10  # MNIST digits
    num_queries: int = 6  # Sec. 3.3
    hidden_dim: int = 512  # Sec. 3.3
    num_layers: int = 4  # Sec. 3.3
    num_heads: int = 8  # Sec. 3.3
    ffn_dim: int = 2048  # Sec. 3.3
    patch_size: int = 8
    mask_size: int = 32
    in_channels: int = 1
    max_positions: int = 512  # BERT's
    dropout: float = 0.1  # BERT's


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
        self.encoder = build_bert_encoder(
            hidden_dim,
            config.num_layers,
            config.num_heads,
            config.ffn_dim,
            config.max_positions,
            config.dropout,
        )
        self.class_head = nn.Linear(hidden_dim, config.num_classes + 1)
        self.mask_head = nn.Linear(hidden_dim, config.mask_size**2)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens, _ = patchify(images, self.patch_size)  # (B, N, s^2)
        batch, num_queries = images.shape[0], self.num_queries
        check_sequence_length(
            num_queries + tokens.shape[1], self.encoder.config.max_position_embeddings
        )
        queries = self.query_embed.expand(batch, -1, -1)  # (B, Q, D)
        sequence = torch.cat([queries, self.patch_embed(tokens)], dim=1)  # (B, Q + N, D)
        hidden = self.encoder(inputs_embeds=sequence).last_hidden_state[
            :, :num_queries
        ]  # (B, Q, D)
        masks = self.mask_head(hidden).unflatten(
            2, (self.mask_size, self.mask_size)
        )  # (B, Q, h, w)
        return {"pred_logits": self.class_head(hidden), "pred_masks": masks}
