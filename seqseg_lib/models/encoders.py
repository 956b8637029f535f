"""Seq2Seg's encoder: BERT (the report's), or one of the efficient Transformers of Sec. 2.4,
"the Longformer, the Reformer or the Performer", each ``transformers``' own model built from a
config at BERT's hidden size, depth, heads and feed-forward size, fed through
``inputs_embeds`` as BERT is. (The Performer is BERT with FAVOR+ attention:
``models.performer``.)

- ``longformer``: each token attends to a window of ``window`` tokens around it (no global
  tokens: there is no [CLS]); sequences are padded to a multiple of the window inside the model.
- ``bigbird``: block-sparse attention (blocks of ``block_size`` tokens: sliding, global and 3
  random blocks); on a sequence of up to 11 blocks it falls back to full attention, as
  ``transformers`` implements it. Seq2Seg switches it before the forward
  (``fit_bigbird_attention``), where ``BigBirdModel`` would switch it itself, saying so.
- ``reformer``: LSH attention in chunks of ``window`` tokens, reversible layers, and axial
  position embeddings of two near-square factors of ``max_positions``: a Reformer trains on
  exactly ``max_positions`` tokens, so ``max_positions`` must be the image's number of patches.
  Its output is its two reversible residual streams side by side (``2 x hidden_dim``): their
  sum holds the embedding and every layer's output, as Seq2Seg's sum of hidden states does.
  Its number of hash buckets is the one ``transformers`` would pick at the first forward
  (``reformer_buckets``), given in the config so that it is not picked, and said, per layer.

Longformer and BigBird list ``hidden_states`` (the embedding output, then each layer's) when
called with ``output_hidden_states=True``, as BERT does.
"""

import math

from torch import nn

ENCODERS = ("bert", "longformer", "bigbird", "reformer")


def axial_shape(positions: int) -> tuple[int, int]:
    """Two factors of ``positions``, as close to square as they go (the Reformer's axial
    position embeddings): 32 -> (4, 8), 512 -> (16, 32)."""
    first = max(d for d in range(1, math.isqrt(positions) + 1) if positions % d == 0)
    return first, positions // first


def reformer_buckets(sequence_length: int, chunk_length: int) -> int | list[int]:
    """The LSH buckets of a Reformer attending ``sequence_length`` tokens (its
    ``max_position_embeddings``) in chunks of ``chunk_length``: ``transformers``' own choice
    when ``num_buckets`` is not set (``LSHSelfAttention._set_num_buckets``), about two per
    chunk, a power of 2, factorised into two when it exceeds twice the larger of
    sqrt(chunks) and ``chunk_length``."""
    power = (2 * (sequence_length // chunk_length)).bit_length() - 1
    limit = 2 * max(int((sequence_length // chunk_length) ** 0.5), chunk_length)
    return 2**power if 2**power <= limit else [2 ** (power // 2), 2 ** (power - power // 2)]


def fit_bigbird_attention(encoder: nn.Module, sequence_length: int) -> None:
    """Switch a BigBird ``encoder`` to full attention where ``sequence_length`` tokens are too
    few for its global, sliding and random blocks: what ``BigBirdModel.forward`` does by the
    same rule at that point (and never back), with the same modules and random draws, but
    without its warning on every model it switches."""
    config = encoder.config
    too_short = sequence_length <= (5 + 2 * config.num_random_blocks) * config.block_size
    if too_short and encoder.attention_type == "block_sparse":
        encoder.set_attention_type("original_full")


def build_efficient_encoder(
    name: str,
    hidden_dim: int,
    num_layers: int,
    num_heads: int,
    ffn_dim: int,
    max_positions: int,
    dropout: float,
    window: int,
    block_size: int,
) -> nn.Module:
    """The ``name`` encoder (``longformer``, ``bigbird`` or ``reformer``) from its config."""
    common = {
        "vocab_size": 1,  # inputs go in as ``inputs_embeds``
        "hidden_size": hidden_dim,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "hidden_dropout_prob": dropout,
        "pad_token_id": 0,
        "bos_token_id": None,
        "eos_token_id": None,
        "sep_token_id": None,
    }
    if name == "longformer":
        from transformers import LongformerConfig, LongformerModel

        if window % 2:
            raise ValueError(f"the Longformer's window must be even, got window={window}")
        padded = math.ceil(max_positions / window) * window
        config = LongformerConfig(
            **common,
            intermediate_size=ffn_dim,
            attention_probs_dropout_prob=dropout,
            attention_window=[window] * num_layers,
            max_position_embeddings=padded + 2,  # positions start after the padding index
        )
        return LongformerModel(config, add_pooling_layer=False)
    if name == "bigbird":
        from transformers import BigBirdConfig, BigBirdModel

        config = BigBirdConfig(
            **common,
            intermediate_size=ffn_dim,
            attention_probs_dropout_prob=dropout,
            attention_type="block_sparse",
            block_size=block_size,
            num_random_blocks=3,
            max_position_embeddings=max_positions,
        )
        return BigBirdModel(config, add_pooling_layer=False)
    if name == "reformer":
        from transformers import ReformerConfig, ReformerModel

        rows, cols = axial_shape(max_positions)
        if window <= 0 or max_positions % window:
            raise ValueError(
                f"the Reformer's chunk length (window={window}) must divide its sequence "
                f"length (max_positions={max_positions})"
            )
        config = ReformerConfig(
            **common,
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
        return ReformerModel(config)
    raise ValueError(f"unknown encoder {name!r}; valid: {', '.join(ENCODERS)}")
