from dataclasses import replace

import pytest
import torch

from seqseg_lib.models import Seq2SegInstance, Seq2SegInstanceConfig

SMALL = Seq2SegInstanceConfig(hidden_dim=32, num_layers=2, num_heads=2, ffn_dim=64)


def test_the_reports_configuration():
    model = Seq2SegInstance()
    config = model.encoder.config
    assert (config.num_hidden_layers, config.hidden_size) == (4, 512)  # Sec. 3.3
    assert (config.intermediate_size, config.num_attention_heads) == (2048, 8)  # Sec. 3.3
    assert model.num_queries == 6  # Sec. 3.3
    assert model.class_head.out_features == 11  # 10 digits + no object
    assert sum(p.numel() for p in model.parameters()) == 13_704_203


def test_output_shapes():
    model = Seq2SegInstance(SMALL).eval()
    outputs = model(torch.rand(3, 1, 64, 64))
    assert outputs["pred_logits"].shape == (3, 6, 11)
    assert outputs["pred_masks"].shape == (3, 6, 32, 32)
    other = Seq2SegInstance(replace(SMALL, num_queries=4, mask_size=16, patch_size=16)).eval()
    outputs = other(torch.rand(1, 1, 64, 64))
    assert outputs["pred_masks"].shape == (1, 4, 16, 16)


def test_queries_see_the_image():
    model = Seq2SegInstance(SMALL).eval()
    images = torch.zeros(2, 1, 64, 64)
    images[1, 0, 10:30, 10:30] = 1.0
    with torch.no_grad():
        outputs = model(images)
    assert not torch.allclose(outputs["pred_masks"][0], outputs["pred_masks"][1])


def test_too_long_sequences_are_refused():
    model = Seq2SegInstance(replace(SMALL, patch_size=2, max_positions=512))
    with pytest.raises(ValueError, match="position embeddings"):
        model(torch.rand(1, 1, 64, 64))  # 1024 patches + 6 queries


def test_seeded_regression():
    """Constants computed once with this seed; they catch unintended changes to the model."""
    torch.manual_seed(0)
    model = Seq2SegInstance(SMALL).eval()
    images = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        outputs = model(images)
    assert float(outputs["pred_logits"].sum()) == pytest.approx(7.458118, abs=1e-3)
    assert float(outputs["pred_masks"].sum()) == pytest.approx(125.888718, abs=1e-2)
    expected = [-1.450769, 1.181082, 0.168526, -0.161775]
    assert outputs["pred_logits"][0, 0, :4].tolist() == pytest.approx(expected, abs=1e-4)


def test_dot_product_mask_head_shapes_and_subgrid():
    dot = replace(SMALL, mask_head="dot", mask_dim=8)
    model = Seq2SegInstance(dot).eval()
    assert model.mask_head.subgrid == 4  # 32 * 8 / 64: a 4x4 grid of cells in each 8x8 patch
    outputs = model(torch.rand(3, 1, 64, 64))
    assert outputs["pred_masks"].shape == (3, 6, 32, 32)
    heatmap = Seq2SegInstance(replace(dot, mask_size=8)).eval()  # r = 1: the patch grid
    assert heatmap.mask_head.subgrid == 1
    assert heatmap(torch.rand(1, 1, 64, 64))["pred_masks"].shape == (1, 6, 8, 8)


def test_dot_product_masks_are_query_embedding_times_cell_embedding():
    torch.manual_seed(0)
    model = Seq2SegInstance(replace(SMALL, mask_head="dot", mask_dim=8)).eval()
    head = model.mask_head
    queries, patches = torch.randn(1, 2, 32), torch.randn(1, 64, 32)  # 8x8 patches of 8x8
    masks = head(queries, patches, (8, 8))  # (1, 2, 32, 32)
    # pixel (y, x) lies in patch (y // 4, x // 4), cell (y % 4, x % 4) of its 4x4 grid
    y, x = 13, 22
    patch, cell = (y // 4) * 8 + x // 4, (y % 4) * 4 + x % 4
    cells = head.patch_proj(patches[0, patch]).view(4 * 4, 8)  # (r*r, E)
    expected = head.query_proj(queries[0]) @ cells[cell]  # (2,)
    torch.testing.assert_close(masks[0, :, y, x], expected, atol=1e-5, rtol=1e-5)


def test_bad_mask_head_settings_are_refused():
    with pytest.raises(ValueError, match="unknown mask_head 'conv'"):
        replace(SMALL, mask_head="conv")
    with pytest.raises(ValueError, match="mask_size .30. to be a multiple of the patch grid"):
        replace(SMALL, mask_head="dot", mask_size=30)
    with pytest.raises(ValueError, match="unknown class_head 'pooled'; valid: linear, masked"):
        replace(SMALL, class_head="pooled")


def test_masked_class_head_reads_the_patches_under_each_querys_mask():
    torch.manual_seed(0)
    model = Seq2SegInstance(replace(SMALL, class_head="masked", mask_size=8)).eval()
    images = torch.rand(1, 1, 64, 64)
    captured = {}
    model.encoder.register_forward_hook(
        lambda module, args, output: captured.update(hidden=output.last_hidden_state)
    )
    with torch.no_grad():
        outputs = model(images)
    queries, patches = captured["hidden"][0, :6], captured["hidden"][0, 6:]  # (6|64, 32)
    # mask_size 8 is the patch grid: each mask cell weighs one patch's hidden state
    weights = outputs["pred_masks"][0].sigmoid().flatten(1)  # (6, 64)
    pooled = weights @ patches / weights.sum(1, keepdim=True)  # (6, 32)
    expected = model.class_head(queries) + model.masked_class_head.mlp(pooled)
    torch.testing.assert_close(outputs["pred_logits"][0], expected, atol=1e-4, rtol=1e-4)


def test_masked_class_head_trains_features_not_masks():
    torch.manual_seed(0)
    model = Seq2SegInstance(replace(SMALL, class_head="masked", mask_head="dot", mask_dim=8))
    outputs = model(torch.rand(2, 1, 64, 64))
    outputs["pred_logits"].logsumexp(-1).sum().backward()
    grads = dict(model.named_parameters())
    for name in ("class_head.weight", "masked_class_head.mlp.0.weight", "patch_embed.weight"):
        assert grads[name].grad.abs().sum() > 0, name
    assert grads["mask_head.query_proj.weight"].grad is None  # detached mask weights


def test_masked_class_head_on_the_patch_grid_equals_upsampled_patches():
    torch.manual_seed(0)
    model = Seq2SegInstance(replace(SMALL, class_head="masked")).eval()  # masks 32x32, grid 8x8
    features, masks = torch.randn(2, 32, 8, 8), torch.randn(2, 6, 32, 32)
    upsampled = features.repeat_interleave(4, -2).repeat_interleave(4, -1)  # (2, 32, 32, 32)
    torch.testing.assert_close(
        model.masked_class_head(features, masks),
        model.masked_class_head(upsampled, masks),
        atol=1e-4,
        rtol=1e-4,
    )
