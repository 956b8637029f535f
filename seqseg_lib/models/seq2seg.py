"""Seq2Seg (Sec. 2.1-2.2): a BERT encoder over 16x16 patches and one transposed convolution.

    images [B, 3, H, W]
      -> flattened s x s patches          [B, N, 3 s^2]      N = (H/s)(W/s)
      -> linear projection                [B, N, d_model]
      -> BERT encoder (position embeddings added at its input)
      -> sum of the hidden states         [B, N, d_model]    (skip=True)
         or the last hidden state                            (skip=False)
      -> reshape                          [B, d_model, H/s, W/s]
      -> ConvTranspose2d(k=s, stride=s)   [B, C, H, W]

Which hidden states are summed: the report sums "the hidden state vectors from all layers of
the Transformer encoder". Hugging Face's ``hidden_states`` holds the embedding output (patch
projection + position + token-type embeddings) followed by the output of each of the
``num_layers`` layers; we sum all ``num_layers + 1`` of them, so the embedding output is
included and the patch projection has a direct path to the output.
"""

from dataclasses import dataclass

import torch
from torch import nn

from seqseg_lib import paper
from seqseg_lib.models.blocks import (
    build_bert_encoder,
    check_sequence_length,
    patchify,
)
from seqseg_lib.models.encoders import ENCODERS, build_efficient_encoder, fit_bigbird_attention

ATTENTIONS = ("sdpa", "eager", "performer")


@dataclass(frozen=True)
class Seq2SegConfig:
    """Seq2Seg's settings; the defaults are the report's (Sec. 2.2) and give 50.79M parameters
    (Table 1: 50.8M)."""

    num_classes: int = 34  # Cityscapes labelIds
    skip: bool = True  # sum all hidden states (Sec. 2.1); False: the last one only (Sec. 2.2)
    patch_size: int = paper.PATCH_SIZE
    hidden_dim: int = paper.ENCODER["hidden_dim"]
    num_layers: int = paper.ENCODER["num_layers"]
    num_heads: int = paper.ENCODER["num_heads"]  # BERT-base's, for a hidden size of 768
    ffn_dim: int = paper.ENCODER["ffn_dim"]
    in_channels: int = 3
    max_positions: int = 512  # BERT's
    dropout: float = 0.1  # BERT's
    # "sdpa": PyTorch's fused scaled_dot_product_attention (memory-efficient kernels where the
    # device has them); "eager": softmax(QK^T)V written out, the attention matrix in memory;
    # "performer": FAVOR+ (``models.performer``), linear in the number of tokens
    attention: str = "sdpa"
    performer_features: int = 256  # "performer": random features per head
    # "bert" (the report's), or an efficient Transformer of Sec. 2.4 (``models.encoders``)
    encoder: str = "bert"
    window: int = 64  # "longformer": attention window; "reformer": LSH chunk length
    block_size: int = 16  # "bigbird": tokens per block

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}; valid: {', '.join(ENCODERS)}")
        if self.encoder == "reformer" and not self.skip:
            raise ValueError(
                "the reformer encoder's output already sums every layer's (reversible "
                "residual streams): skip=False has no counterpart"
            )
        if self.encoder != "bert" and self.attention != "sdpa":
            raise ValueError(
                f"attention={self.attention!r} is BERT's; the {self.encoder} encoder has its own"
            )
        if self.attention not in ATTENTIONS:
            raise ValueError(
                f"unknown attention {self.attention!r}; valid: {', '.join(ATTENTIONS)}"
            )


# Encoders that run in float32 even under bfloat16 autocast (``Seq2Seg.forward``)
FLOAT32_ENCODERS = ("bigbird",)


class Seq2Seg(nn.Module):
    """``forward(images [B, 3, H, W]) -> logits [B, C, H, W]``; H, W multiples of ``patch_size``.

    BERT's pooler is kept (unused, as in the report's ``BertModel``), with 512 position
    embeddings and a vocabulary of 1 (inputs go in as ``inputs_embeds``, so the word table
    would be unused).
    """

    def __init__(self, config: Seq2SegConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or Seq2SegConfig()
        self.patch_size, self.skip = config.patch_size, config.skip
        self.patch_embed = nn.Linear(config.in_channels * config.patch_size**2, config.hidden_dim)
        sizes = (config.hidden_dim, config.num_layers, config.num_heads, config.ffn_dim)
        if config.encoder == "bert":
            self.encoder = build_bert_encoder(
                *sizes,
                config.max_positions,
                config.dropout,
                config.attention,
                performer_features=config.performer_features,
            )
        else:
            self.encoder = build_efficient_encoder(
                config.encoder,
                *sizes,
                config.max_positions,
                config.dropout,
                config.window,
                config.block_size,
            )
        self.head = nn.ConvTranspose2d(
            config.hidden_dim, config.num_classes, config.patch_size, stride=config.patch_size
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens, grid = patchify(images, self.patch_size)  # (B, N, 3 s^2), (H/s, W/s)
        check_sequence_length(tokens.shape[1], self.encoder.config.max_position_embeddings)
        if self.config.encoder == "reformer" and tokens.shape[1] != self.config.max_positions:
            raise ValueError(
                f"the Reformer encoder trains on exactly max_positions="
                f"{self.config.max_positions} tokens, the image gives {tokens.shape[1]}: set "
                "max_positions to the number of patches"
            )
        embedded = self.patch_embed(tokens)  # (B, N, D)
        if self.config.encoder == "bigbird":
            fit_bigbird_attention(self.encoder, tokens.shape[1])
        if self.config.encoder in FLOAT32_ENCODERS and torch.is_autocast_enabled(
            images.device.type
        ):
            # transformers' block-sparse attention scatters bfloat16 scores into a float32 buffer
            # under autocast (5.24: "scatter(): Expected self.dtype to be equal to src.dtype"):
            # this encoder runs in float32
            with torch.autocast(images.device.type, enabled=False):
                out = self.encoder(inputs_embeds=embedded.float(), output_hidden_states=True)
        else:
            out = self.encoder(inputs_embeds=embedded, output_hidden_states=True)
        if self.config.encoder == "reformer":
            # its two reversible streams, summed: the embedding twice and every layer's output
            # (the hidden states it lists are outside the autograd graph of its layers)
            hidden = sum(out.last_hidden_state.chunk(2, dim=-1))  # (B, N, D)
        elif self.skip:
            hidden = torch.stack(out.hidden_states).sum(0)  # (B, N, D)
        else:
            hidden = out.hidden_states[-1]  # (B, N, D): the last layer's
        hidden = hidden.transpose(1, 2).unflatten(2, grid)  # (B, D, H/s, W/s)
        return self.head(hidden)  # (B, C, H, W)
