from unittest import mock

import pytest
import torch
from transformers import BertModel

from seqseg_lib.models import Seq2Seg, Seq2SegConfig, UNet, UNetConfig
from seqseg_lib.models.blocks import patchify


def num_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_seq2seg_has_the_reports_parameter_count():
    count = num_parameters(Seq2Seg())
    assert abs(count - 50.8e6) / 50.8e6 < 0.005, count  # Table 1


def test_unet_has_the_reports_parameter_count():
    count = num_parameters(UNet())
    assert abs(count - 7.8e6) / 7.8e6 < 0.01, count  # Table 1


def test_skip_and_no_skip_have_the_same_parameters():
    assert num_parameters(Seq2Seg(Seq2SegConfig(skip=False))) == num_parameters(Seq2Seg())


def small_seq2seg(**kwargs) -> Seq2Seg:
    args = dict(num_classes=5, patch_size=8, hidden_dim=32, num_layers=2, num_heads=2, ffn_dim=64)
    return Seq2Seg(Seq2SegConfig(**(args | kwargs)))


@pytest.mark.parametrize("skip", [True, False])
def test_seq2seg_shapes(skip):
    model = small_seq2seg(skip=skip).eval()
    assert model(torch.randn(2, 3, 32, 48)).shape == (2, 5, 32, 48)


def test_skip_changes_the_output():
    torch.manual_seed(0)
    with_skip = small_seq2seg(skip=True).eval()
    without = small_seq2seg(skip=False).eval()
    without.load_state_dict(with_skip.state_dict())
    images = torch.randn(1, 3, 16, 16)
    assert not torch.allclose(with_skip(images), without(images))


def test_skip_sums_the_embedding_output_and_every_layer():
    torch.manual_seed(0)
    model = small_seq2seg(skip=True).eval()
    seen = []
    model.head.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    images = torch.randn(1, 3, 16, 16)
    model(images)
    patches, _ = patchify(images, 8)  # (1, 4, 192)
    embedded = model.patch_embed(patches)
    out = BertModel.forward(model.encoder, inputs_embeds=embedded, output_hidden_states=True)
    assert len(out.hidden_states) == 3  # embeddings + 2 layers
    expected = sum(out.hidden_states).transpose(1, 2).reshape(1, 32, 2, 2)
    torch.testing.assert_close(seen[0], expected)


def test_unet_shapes():
    assert UNet(UNetConfig(num_classes=7, base_width=4))(torch.randn(2, 3, 32, 48)).shape == (
        2,
        7,
        32,
        48,
    )


@pytest.mark.parametrize(
    "model", [small_seq2seg(), UNet(UNetConfig(base_width=4))], ids=["seq2seg", "unet"]
)
def test_sizes_not_multiple_of_the_patch_are_refused(model):
    with pytest.raises(ValueError, match="multiples of"):
        model(torch.randn(1, 3, 30, 48))


def test_too_many_patches_are_refused():
    model = small_seq2seg(max_positions=16)
    with pytest.raises(ValueError, match="position embeddings"):
        model(torch.randn(1, 3, 40, 40))  # 25 patches


def test_seq2seg_attends_through_sdpa_and_has_no_word_table():
    model = small_seq2seg().eval()  # 2 layers
    sdpa = torch.nn.functional.scaled_dot_product_attention
    with mock.patch.object(
        torch.nn.functional, "scaled_dot_product_attention", side_effect=sdpa
    ) as calls:
        model(torch.randn(1, 3, 16, 16))
    assert calls.call_count == 2, "one fused attention call per layer"
    assert model.encoder.embeddings.word_embeddings.num_embeddings == 1
    assert model.encoder.config.max_position_embeddings == 512


# Seeded regressions: the output of a fixed model on a fixed input. The constants were
# computed once with torch 2.13.0 (CPU); a change means the model's computation changed.
@torch.no_grad()
def seeded_output(model_fn) -> torch.Tensor:
    torch.manual_seed(0)
    model = model_fn().eval()
    return model(torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)))


def test_seq2seg_seeded_regression():
    out = seeded_output(small_seq2seg)
    stats = torch.tensor([out.mean(), out.std(), out[0, 0, 0, 0]])
    torch.testing.assert_close(stats, SEQ2SEG_REFERENCE, atol=1e-4, rtol=1e-4)


def test_unet_seeded_regression():
    out = seeded_output(lambda: UNet(UNetConfig(num_classes=5, base_width=4)))
    stats = torch.tensor([out.mean(), out.std(), out[0, 0, 0, 0]])
    torch.testing.assert_close(stats, UNET_REFERENCE, atol=1e-4, rtol=1e-4)


SEQ2SEG_REFERENCE = torch.tensor([-0.002663, 0.539106, 0.740175])
UNET_REFERENCE = torch.tensor([-0.094652, 0.290355, -0.317763])


@pytest.mark.parametrize(
    "settings",
    [
        {"attention": "sdpa"},
        {"attention": "performer", "performer_features": 8},
        {"encoder": "longformer", "window": 8},
        {"encoder": "bigbird", "block_size": 4},
        {"encoder": "reformer", "max_positions": 16, "window": 8},
    ],
    ids=lambda settings: "-".join(str(value) for value in settings.values()),
)
def test_each_encoder_is_initialised_as_transformers_own_model(settings):
    """Seq2Seg's encoders are ``transformers``' classes with their own ``forward``: under one
    seed, their weights (names, values) and the generator's next draw are those of the
    ``transformers`` class they extend, so the same seed gives the same initial weights."""
    import transformers

    from seqseg_lib.models.encoders import build_bert_encoder
    from seqseg_lib.models.seq2seg import build_encoder

    config = Seq2SegConfig(**({"hidden_dim": 16, "num_layers": 2, "num_heads": 2} | settings))
    torch.manual_seed(0)
    encoder = build_encoder(config)
    after_ours = torch.rand(1)
    torch.manual_seed(0)
    if config.encoder == "bert":
        sizes = (16, 2, 2, config.ffn_dim, config.max_positions, config.dropout)
        plain = build_bert_encoder(*sizes, config.attention, True, config.performer_features)
    else:
        mro = type(encoder).__mro__
        base = next(cls for cls in mro if cls.__module__.startswith("transformers."))
        pooling = {} if config.encoder == "reformer" else {"add_pooling_layer": False}
        plain = base(encoder.config, **pooling)
    after_plain = torch.rand(1)
    assert isinstance(encoder, transformers.PreTrainedModel)
    assert list(encoder.state_dict()) == list(plain.state_dict())
    for name, value in encoder.state_dict().items():
        assert torch.equal(value, plain.state_dict()[name]), name
    assert torch.equal(after_ours, after_plain)


def test_every_encoder_name_builds_and_returns_one_state_per_token():
    from seqseg_lib.models.seq2seg import ENCODERS

    for name in ENCODERS:
        extra = {"max_positions": 4, "window": 4} if name == "reformer" else {}
        model = small_seq2seg(encoder=name, **extra).eval()
        assert model(torch.randn(1, 3, 16, 16)).shape == (1, 5, 16, 16), name
