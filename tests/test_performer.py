"""FAVOR+ attention (``seqseg_lib.models.performer``) against exact softmax attention, and
Seq2Seg with it."""

import pytest
import torch

from seqseg_lib.experiments import build_config, build_model
from seqseg_lib.models.performer import favor_attention, orthogonal_gaussian


def exact_attention(query, key, value):
    weights = (query @ key.transpose(-2, -1) / query.shape[-1] ** 0.5).softmax(-1)
    return weights @ value


def test_the_estimate_approaches_softmax_attention_as_features_grow():
    """Relative error of FAVOR+ against exact attention, averaged over 4 draws of the
    features: it falls as the number of features grows, to under 5% at 4,096."""
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(2, 2, 64, 16, generator=generator) * 0.5 for _ in range(3))
    exact = exact_attention(query, key, value)

    def error(features: int) -> float:
        errors = []
        for draw in range(4):
            projection = orthogonal_gaussian(features, 16, torch.Generator().manual_seed(draw))
            estimate = favor_attention(query, key, value, projection)
            errors.append(float((estimate - exact).norm() / exact.norm()))
        return sum(errors) / len(errors)

    errors = {features: error(features) for features in (16, 256, 4096)}
    assert errors[16] > errors[256] > errors[4096], errors
    assert errors[4096] < 0.05, errors


def test_orthogonal_features_are_orthogonal_within_a_block():
    projection = orthogonal_gaussian(40, 16, torch.Generator().manual_seed(0))
    assert projection.shape == (40, 16)
    block = projection[:16] / projection[:16].norm(dim=1, keepdim=True)
    torch.testing.assert_close(block @ block.T, torch.eye(16), atol=1e-5, rtol=0)


def test_seq2seg_trains_with_performer_attention():
    """Seq2Seg with ``attention="performer"``: the same parameters as with SDPA, its features
    a buffer of each layer (in the state dict), a forward and backward pass."""
    torch.manual_seed(0)
    config = build_config("seq2seg", "smoke", model={"attention": "performer"})
    model = build_model(config)
    reference = build_model(build_config("seq2seg", "smoke"))
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    buffers = [k for k in model.state_dict() if k.endswith("performer_projection")]
    assert len(buffers) == config.model.num_layers
    images = torch.randn(2, 3, *config.crop)
    logits = model(images)
    assert logits.shape == (2, config.model.num_classes, *config.crop)
    logits.mean().backward()
    assert all(p.grad is not None for p in model.encoder.encoder.parameters())


def test_an_unknown_attention_is_refused():
    with pytest.raises(ValueError, match="performer"):
        build_config("seq2seg", "smoke", model={"attention": "linear"})


@pytest.mark.parametrize(
    "model",
    [
        {"encoder": "longformer", "window": 8},
        {"encoder": "bigbird", "block_size": 4},
        {"encoder": "reformer", "window": 8, "max_positions": 32},
        {"encoder": "longformer", "window": 8, "skip": False},
    ],
    ids=["longformer", "bigbird", "reformer", "longformer-noskip"],
)
def test_seq2seg_trains_with_an_efficient_transformer(model):
    """Sec. 2.4's efficient Transformers as Seq2Seg's encoder (``transformers``' own models,
    at BERT's sizes): a forward and backward pass at the ``smoke`` size (32 tokens)."""
    torch.manual_seed(0)
    config = build_config("seq2seg", "smoke", model=model)
    net = build_model(config)
    logits = net(torch.randn(2, 3, *config.crop))
    assert logits.shape == (2, config.model.num_classes, *config.crop)
    logits.mean().backward()
    assert net.patch_embed.weight.grad.abs().sum() > 0


def test_efficient_encoders_refuse_settings_they_cannot_take():
    with pytest.raises(ValueError, match="unknown encoder 'linformer'"):
        build_config("seq2seg", "smoke", model={"encoder": "linformer"})
    with pytest.raises(ValueError, match="skip=False has no counterpart"):
        build_config("seq2seg-noskip", "smoke", model={"encoder": "reformer"})
    with pytest.raises(ValueError, match="BERT's"):
        build_config("seq2seg", "smoke", model={"encoder": "bigbird", "attention": "eager"})
    reformer = build_config("seq2seg", "smoke", model={"encoder": "reformer", "window": 8})
    with pytest.raises(ValueError, match="max_positions=512 tokens, the image gives 32"):
        build_model(reformer)(torch.randn(1, 3, *reformer.crop))
