"""Hungarian U-Net (Sec. 4): output contract, parameter count, both heads trained."""

import pytest
import torch

from seqseg_lib.data.synthetic import SyntheticCityscapes
from seqseg_lib.data.targets import collate_panoptic
from seqseg_lib.engine import weighted_total
from seqseg_lib.experiments import build_config, build_criterion, config_from_dict
from seqseg_lib.models import HungarianUNet, HungarianUNetConfig, UNet, UNetConfig


def num_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_count_is_the_unet_plus_a_linear_class_head():
    model = HungarianUNet()
    head = 512 * 100 * 20 + 100 * 20  # Linear(16 * base_width, Q * (C + 1))
    assert num_parameters(model.class_embed) == head == 1_026_000
    # the U-Net of Table 1 with 100 output channels instead of 34
    unet = num_parameters(UNet(UNetConfig(num_classes=100)))
    assert num_parameters(model) == unet + head == 8_792_308


def test_pool_size_multiplies_the_head():
    model = HungarianUNet(
        HungarianUNetConfig(num_queries=10, num_classes=4, base_width=4, pool_size=(2, 4))
    )
    assert num_parameters(model.class_embed) == 64 * 8 * 50 + 50


@pytest.mark.parametrize("pool_size", [(1, 1), (2, 4)])
def test_output_shapes(pool_size):
    model = HungarianUNet(
        HungarianUNetConfig(num_queries=7, num_classes=19, base_width=4, pool_size=pool_size)
    ).eval()
    outputs = model(torch.randn(2, 3, 32, 64))
    assert set(outputs) == {"pred_logits", "pred_masks"}
    assert outputs["pred_logits"].shape == (2, 7, 20)
    assert outputs["pred_masks"].shape == (2, 7, 32, 64)


def test_rejects_sizes_that_are_not_multiples_of_16():
    with pytest.raises(ValueError, match="multiples of 16"):
        HungarianUNet(HungarianUNetConfig(base_width=4))(torch.randn(1, 3, 24, 64))


def test_both_heads_receive_gradients():
    torch.manual_seed(0)
    model = HungarianUNet(HungarianUNetConfig(num_queries=5, base_width=4))
    outputs = model(torch.randn(2, 3, 32, 32))
    (outputs["pred_logits"].logsumexp(-1).sum() + outputs["pred_masks"].sigmoid().sum()).backward()
    for name in ("class_embed.weight", "decoder.outc.weight", "encoder.inc.0.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_queries_are_independent_of_the_batch():
    torch.manual_seed(0)
    model = HungarianUNet(HungarianUNetConfig(num_queries=5, base_width=4)).eval()
    images = torch.randn(3, 3, 32, 32)
    batched = model(images)
    single = model(images[1:2])
    for key in batched:
        torch.testing.assert_close(batched[key][1:2], single[key], rtol=1e-4, atol=1e-5)


# -- the hungarian-unet experiment -----------------------------------------------------------
@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
def test_presets_survive_the_json_round_trip_and_build_the_criterion(profile):
    config = build_config("hungarian-unet", profile)
    assert config.dataset == "synthetic"
    restored = config_from_dict(config.to_dict())  # as read back from config.json
    assert restored.differences(config) == []
    criterion = build_criterion(restored)
    assert criterion.weight_dict == {"loss_ce": 0.1, "loss_dice": 1.0}  # Sec. 3.3
    assert float(criterion.empty_weight[-1]) == 0.5 and len(criterion.empty_weight) == 20
    if profile == "paper":
        assert criterion.matcher.mask_size == (32, 64)  # Sec. 4
        assert config.model.num_queries == 100 and config.batch_size == 24
        assert config.lr_milestones == ((10, 5e-4), (20, 1e-4))


def test_a_few_steps_on_one_batch_lower_the_hungarian_loss():
    config = build_config("hungarian-unet", "smoke")
    dataset = SyntheticCityscapes(
        None, "train", num_images=2, resize=config.resize, crop=config.crop
    )
    images, targets = collate_panoptic([dataset[i] for i in range(2)])
    torch.manual_seed(0)
    model, criterion = HungarianUNet(config.model), build_criterion(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    totals = []
    for _ in range(5):
        losses = criterion(model(images), targets)
        total = weighted_total(losses, criterion.weight_dict)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(float(total.detach()))
    assert totals[-1] < totals[0], totals


def test_masked_class_head_follows_the_masks():
    torch.manual_seed(0)
    config = HungarianUNetConfig(num_queries=3, num_classes=4, base_width=4, class_head="masked")
    model = HungarianUNet(config).eval()
    features = torch.randn(1, 4, 16, 16)
    left, right = torch.full((1, 3, 16, 16), -20.0), torch.full((1, 3, 16, 16), -20.0)
    left[..., :8], right[..., 8:] = 20.0, 20.0
    on_left, on_right = model.class_head(features, left), model.class_head(features, right)
    assert on_left.shape == (1, 3, 5)
    assert not torch.allclose(on_left, on_right)  # the class depends on where the mask is
    # the mask-weighted mean of the features, then the MLP
    expected = model.class_head.mlp(features[..., :8].mean((-2, -1))[:, None].expand(1, 3, 4))
    torch.testing.assert_close(on_left, expected, atol=1e-4, rtol=1e-4)


def test_masked_class_head_adds_to_the_reports_and_leaves_masks_to_the_mask_loss():
    torch.manual_seed(0)
    config = HungarianUNetConfig(num_queries=5, base_width=4, class_head="masked")
    model = HungarianUNet(config)
    outputs = model(torch.randn(2, 3, 32, 32))
    outputs["pred_logits"].logsumexp(-1).sum().backward()
    grads = dict(model.named_parameters())
    for name in ("class_embed.weight", "class_head.mlp.0.weight"):
        assert grads[name].grad.abs().sum() > 0, name
    assert grads["decoder.outc.weight"].grad is None  # detached mask weights


def test_bert_layers_in_the_bottleneck():
    config = HungarianUNetConfig(num_queries=4, base_width=4, bottleneck_layers=2)
    model = HungarianUNet(config).eval()
    assert len(model.bottleneck.encoder.encoder.layer) == 2
    assert model.bottleneck.encoder.pooler is None  # nothing unused
    outputs = model(torch.randn(2, 3, 32, 64))
    assert outputs["pred_masks"].shape == (2, 4, 32, 64)
    features = torch.randn(2, 64, 2, 4)
    assert not torch.allclose(model.bottleneck(features), features)
    plain = HungarianUNet(HungarianUNetConfig(num_queries=4, base_width=4))
    width = 64  # 16 * base_width: 4 D^2 + 2 D 4D weights and biases, LayerNorms, positions
    assert num_parameters(model) - num_parameters(plain) > 2 * 12 * width**2


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"class_head": "linear"}, "unknown class_head 'linear'; valid: pooled, masked"),
        ({"bottleneck_layers": -1}, "bottleneck_layers must be >= 0"),
        ({"bottleneck_layers": 1, "bottleneck_heads": 3}, "multiple of bottleneck_heads=3"),
    ],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        HungarianUNetConfig(base_width=4, **settings)


def test_coordinate_channels_tell_positions_apart():
    from seqseg_lib.models.hungarian_unet import add_coordinates

    images = torch.zeros(2, 3, 4, 8)
    extended = add_coordinates(images)
    assert extended.shape == (2, 5, 4, 8)
    assert extended[0, 3, :, 0].tolist() == pytest.approx([-1, -1 / 3, 1 / 3, 1])  # rows
    assert extended[1, 4, 0, [0, -1]].tolist() == [-1.0, 1.0]  # columns
    torch.manual_seed(0)
    config = HungarianUNetConfig(num_queries=2, base_width=4, coordinates=True)
    model = HungarianUNet(config).eval()
    assert model.encoder.inc[0].in_channels == 5
    blank = torch.zeros(1, 3, 32, 32)
    with torch.no_grad():
        masks = model(blank)["pred_masks"]
        model.encoder.inc[0].weight[:, 3:] = 0  # the coordinates cut off
        assert not torch.allclose(model(blank)["pred_masks"], masks)
