"""The Transformer encoders: ``transformers``' own models built from a config and fed through
``inputs_embeds`` (a vocabulary of 1: the word table would be unused).

- ``build_bert_encoder``: BERT, the report's encoder, as ``transformers.BertModel`` (the
  instance Seq2Seg of Sec. 3 and the Hungarian U-Net's bottleneck layers of Sec. 5 read its
  outputs themselves).
- Seq2Seg's encoders (``seq2seg.build_encoder`` picks one by ``Seq2SegConfig.encoder``): BERT,
  or one of the efficient Transformers of Sec. 2.4, "the Longformer, the Reformer or the
  Performer", at BERT's hidden size, depth, heads and feed-forward size (``Sizes``). Each
  is a subclass of the ``transformers`` model that adds only a ``build`` and a
  ``forward(embedded [B, N, D]) -> hidden [B, N, D]``: what Seq2Seg's head reads, the sum of
  the hidden states or the last one (``read_hidden_states``). Its weights, their names (those
  of the checkpoints) and their initialisation are the model's own (``TransformersInit``).
  (The Performer is BERT with FAVOR+ attention: ``models.performer``.)

  - ``LongformerEncoder``: each token attends to a window of ``window`` tokens around it (no
    global tokens: there is no [CLS]); sequences are padded to a multiple of the window
    inside the model.
  - ``BigBirdEncoder``: block-sparse attention (blocks of ``block_size`` tokens: sliding,
    global and 3 random blocks); below about 9 blocks of tokens the model falls back to full
    attention, as ``transformers`` implements it.
  - ``ReformerEncoder``: LSH attention in chunks of ``window`` tokens, reversible layers, and
    axial position embeddings of two near-square factors of ``max_positions``: a Reformer
    trains on exactly ``max_positions`` tokens, so ``max_positions`` must be the image's
    number of patches. Its output is its two reversible residual streams side by side
    (``2 x hidden_dim``): their sum holds the embedding and every layer's output, as
    Seq2Seg's sum of hidden states does.

  Longformer and BigBird list ``hidden_states`` (the embedding output, then each layer's) when
  called with ``output_hidden_states=True``, as BERT does.

``transformers``' models take seconds to import, which a command that builds no encoder (a
U-Net, ``names``) should not pay: the models import this module when they build one, not with
their own module.
"""

import math
from typing import NamedTuple

import torch
from transformers import (
    BertConfig,
    BertModel,
    BigBirdConfig,
    BigBirdModel,
    LongformerConfig,
    LongformerModel,
    ReformerConfig,
    ReformerModel,
)

from seqseg_lib.models import performer
from seqseg_lib.models.blocks import check_sequence_length


class Sizes(NamedTuple):
    """The sizes an encoder is built at (Seq2Seg's: ``Seq2SegConfig``'s, BERT's by default)."""

    hidden_dim: int
    num_layers: int
    num_heads: int
    ffn_dim: int
    max_positions: int
    dropout: float


def bert_config(sizes: Sizes, attention: str = "sdpa") -> BertConfig:
    """BERT's config: SDPA attention (or ``attention="eager"``, or ``"performer"``: FAVOR+,
    ``models.performer``, registered with ``transformers`` here)."""
    if attention == performer.NAME:
        performer.register()
    return BertConfig(
        vocab_size=1,
        hidden_size=sizes.hidden_dim,
        num_hidden_layers=sizes.num_layers,
        num_attention_heads=sizes.num_heads,
        intermediate_size=sizes.ffn_dim,
        max_position_embeddings=sizes.max_positions,
        hidden_dropout_prob=sizes.dropout,
        attention_probs_dropout_prob=sizes.dropout,
        attn_implementation=attention,
    )


def add_performer_features(model: BertModel, attention: str, num_features: int) -> None:
    """Under FAVOR+ attention, each layer's ``num_features`` random features per head, drawn
    from the model's seed (one draw of the global generator, after the weights')."""
    if attention == performer.NAME:
        seed = int(torch.randint(0, 2**31 - 1, (1,)))
        performer.add_projections(model, num_features, seed)


def build_bert_encoder(
    hidden_dim: int,
    num_layers: int,
    num_heads: int,
    ffn_dim: int,
    max_positions: int = 512,
    dropout: float = 0.1,
    attention: str = "sdpa",
    pooler: bool = True,
    performer_features: int = 256,
) -> BertModel:
    """A Hugging Face BERT encoder (``bert_config``), BERT's pooler kept (as in the report's
    ``BertModel``; it is unused and its 0.6M parameters count in Table 1's 50.8M;
    ``pooler=False`` leaves it out), ``performer_features`` random features per head under
    ``attention="performer"``."""
    sizes = Sizes(hidden_dim, num_layers, num_heads, ffn_dim, max_positions, dropout)
    model = BertModel(bert_config(sizes, attention), add_pooling_layer=pooler)
    add_performer_features(model, attention, performer_features)
    return model


def read_hidden_states(hidden_states: tuple[torch.Tensor, ...], skip: bool) -> torch.Tensor:
    """Seq2Seg's reading of ``hidden_states`` (the embedding output, then each layer's, each
    [B, N, D]): their sum (``skip``, Sec. 2.1), or the last layer's (Sec. 2.2)."""
    if skip:
        return torch.stack(hidden_states).sum(0)  # (B, N, D)
    return hidden_states[-1]  # (B, N, D): the last layer's


def common_settings(sizes: Sizes) -> dict:
    """The settings the efficient Transformers' configs share."""
    return {
        "vocab_size": 1,  # inputs go in as ``inputs_embeds``
        "hidden_size": sizes.hidden_dim,
        "num_hidden_layers": sizes.num_layers,
        "num_attention_heads": sizes.num_heads,
        "hidden_dropout_prob": sizes.dropout,
        "pad_token_id": 0,
        "bos_token_id": None,
        "eos_token_id": None,
        "sep_token_id": None,
    }


class TransformersInit:
    """Mixed into the encoder classes below, before ``transformers``' class: their weights are
    initialised as that class's own, draw for draw, so that a seed gives the same weights."""

    @classmethod
    def is_custom_code(cls) -> bool:
        # transformers takes a class defined outside its package for custom code, and then
        # skips the weights a module initialised itself (5.24: the Reformer's axial position
        # embeddings, one fewer draw of the generator); these classes add only a ``forward``
        return False


class HiddenStatesEncoder(TransformersInit):
    """``forward(embedded [B, N, D]) -> [B, N, D]``: the ``transformers`` model's hidden
    states, read by ``read_hidden_states`` (``skip``, set by the class's constructor)."""

    skip: bool

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        check_sequence_length(embedded.shape[1], self.config.max_position_embeddings)
        out = super().forward(inputs_embeds=embedded, output_hidden_states=True)
        return read_hidden_states(out.hidden_states, self.skip)  # (B, N, D)


class BertEncoder(HiddenStatesEncoder, BertModel):
    """Seq2Seg's BERT (Sec. 2.1, and the Performer under ``attention="performer"``), the
    pooler kept as ``build_bert_encoder`` keeps it."""

    def __init__(self, config: BertConfig, skip: bool) -> None:
        super().__init__(config, add_pooling_layer=True)
        self.skip = skip

    @classmethod
    def build(
        cls, sizes: Sizes, skip: bool, attention: str, performer_features: int
    ) -> "BertEncoder":
        model = cls(bert_config(sizes, attention), skip)
        add_performer_features(model, attention, performer_features)
        return model


class LongformerEncoder(HiddenStatesEncoder, LongformerModel):
    """The Longformer, each token attending to a window of ``window`` tokens."""

    def __init__(self, config: LongformerConfig, skip: bool) -> None:
        super().__init__(config, add_pooling_layer=False)
        self.skip = skip

    @classmethod
    def build(cls, sizes: Sizes, skip: bool, window: int) -> "LongformerEncoder":
        if window % 2:
            raise ValueError(f"the Longformer's window must be even, got window={window}")
        padded = math.ceil(sizes.max_positions / window) * window
        config = LongformerConfig(
            **common_settings(sizes),
            intermediate_size=sizes.ffn_dim,
            attention_probs_dropout_prob=sizes.dropout,
            attention_window=[window] * sizes.num_layers,
            max_position_embeddings=padded + 2,  # positions start after the padding index
        )
        return cls(config, skip)


def reformer_buckets(sequence_length: int, chunk_length: int) -> int | list[int]:
    """The LSH buckets of a Reformer attending ``sequence_length`` tokens (its
    ``max_position_embeddings``) in chunks of ``chunk_length``: ``transformers``' own choice
    when ``num_buckets`` is not set (``LSHSelfAttention._set_num_buckets``), about two per
    chunk, a power of 2, factorised into two when it exceeds twice the larger of
    sqrt(chunks) and ``chunk_length``."""
    power = (2 * (sequence_length // chunk_length)).bit_length() - 1
    limit = 2 * max(int((sequence_length // chunk_length) ** 0.5), chunk_length)
    return 2**power if 2**power <= limit else [2 ** (power // 2), 2 ** (power - power // 2)]


def fit_bigbird_attention(encoder: torch.nn.Module, sequence_length: int) -> None:
    """Switch a BigBird ``encoder`` to full attention where ``sequence_length`` tokens are too
    few for its global, sliding and random blocks: what ``BigBirdModel.forward`` does by the
    same rule at that point (and never back), with the same modules and random draws, but
    without its warning on every model it switches."""
    config = encoder.config
    too_short = sequence_length <= (5 + 2 * config.num_random_blocks) * config.block_size
    if too_short and encoder.attention_type == "block_sparse":
        encoder.set_attention_type("original_full")


class BigBirdEncoder(HiddenStatesEncoder, BigBirdModel):
    """BigBird, block-sparse attention in blocks of ``block_size`` tokens, in float32 even
    under autocast."""

    def __init__(self, config: BigBirdConfig, skip: bool) -> None:
        super().__init__(config, add_pooling_layer=False)
        self.skip = skip

    @classmethod
    def build(cls, sizes: Sizes, skip: bool, block_size: int) -> "BigBirdEncoder":
        config = BigBirdConfig(
            **common_settings(sizes),
            intermediate_size=sizes.ffn_dim,
            attention_probs_dropout_prob=sizes.dropout,
            attention_type="block_sparse",
            block_size=block_size,
            num_random_blocks=3,
            max_position_embeddings=sizes.max_positions,
        )
        return cls(config, skip)

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        fit_bigbird_attention(self, embedded.shape[1])
        device = embedded.device.type
        if torch.is_autocast_enabled(device):
            # transformers' block-sparse attention scatters bfloat16 scores into a float32
            # buffer under autocast (5.24: "scatter(): Expected self.dtype to be equal to
            # src.dtype"): this encoder runs in float32
            with torch.autocast(device, enabled=False):
                return super().forward(embedded.float())  # (B, N, D)
        return super().forward(embedded)  # (B, N, D)


def axial_shape(positions: int) -> tuple[int, int]:
    """Two factors of ``positions``, as close to square as they go (the Reformer's axial
    position embeddings): 32 -> (4, 8), 512 -> (16, 32)."""
    first = max(d for d in range(1, math.isqrt(positions) + 1) if positions % d == 0)
    return first, positions // first


class ReformerEncoder(TransformersInit, ReformerModel):
    """The Reformer, LSH attention in chunks of ``window`` tokens over exactly
    ``max_positions`` tokens: ``forward(embedded [B, N, D]) -> [B, N, D]``, the sum of its two
    reversible streams (it has no ``skip=False``: ``Seq2SegConfig`` refuses one)."""

    @classmethod
    def build(cls, sizes: Sizes, window: int) -> "ReformerEncoder":
        hidden_dim, num_layers, num_heads, ffn_dim, max_positions, dropout = sizes
        rows, cols = axial_shape(max_positions)
        if window <= 0 or max_positions % window:
            raise ValueError(
                f"the Reformer's chunk length (window={window}) must divide its sequence "
                f"length (max_positions={max_positions})"
            )
        config = ReformerConfig(
            **common_settings(sizes),
            attention_head_size=hidden_dim // num_heads,
            feed_forward_size=ffn_dim,
            attn_layers=["lsh"] * num_layers,
            lsh_attn_chunk_length=window,
            num_buckets=reformer_buckets(max_positions, window),
            lsh_attention_probs_dropout_prob=dropout,
            axial_pos_embds=True,
            axial_pos_shape=(rows, cols),
            axial_pos_embds_dim=(hidden_dim // 2, hidden_dim - hidden_dim // 2),
            max_position_embeddings=max_positions,
            is_decoder=False,
        )
        return cls(config)

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        positions = self.config.max_position_embeddings
        check_sequence_length(embedded.shape[1], positions)
        if embedded.shape[1] != positions:
            raise ValueError(
                f"the Reformer encoder trains on exactly max_positions={positions} tokens, the "
                f"image gives {embedded.shape[1]}: set max_positions to the number of patches"
            )
        out = super().forward(inputs_embeds=embedded, output_hidden_states=True)
        # its two reversible streams, summed: the embedding twice and every layer's output
        # (the hidden states it lists are outside the autograd graph of its layers)
        return sum(out.last_hidden_state.chunk(2, dim=-1))  # (B, N, D)
