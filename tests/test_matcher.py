import itertools

import pytest
import torch

from seqseg_lib.matcher import HungarianMatcher, dice_cost


def random_outputs(batch: int, queries: int, size: int = 8, classes: int = 10, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return {
        "pred_logits": torch.randn(batch, queries, classes + 1, generator=generator),
        "pred_masks": torch.randn(batch, queries, size, size, generator=generator),
    }


def random_targets(counts: list[int], size: int = 8, classes: int = 10, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    return [
        {
            "labels": torch.randint(0, classes, (n,), generator=generator),
            "masks": torch.rand(n, size, size, generator=generator) > 0.5,
        }
        for n in counts
    ]


def brute_force_minimum(cost: torch.Tensor) -> float:
    """Least total cost over all injective assignments of the smaller side: [Q, T] -> float."""
    queries, targets = cost.shape
    if targets <= queries:
        choices = itertools.permutations(range(queries), targets)
        return min(sum(float(cost[q, t]) for t, q in enumerate(c)) for c in choices)
    choices = itertools.permutations(range(targets), queries)
    return min(sum(float(cost[q, t]) for q, t in enumerate(c)) for c in choices)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("queries", [1, 3, 6])
@pytest.mark.parametrize("num_targets", [1, 4, 6])
def test_matched_cost_is_the_brute_force_minimum(seed, queries, num_targets):
    matcher = HungarianMatcher()
    outputs = random_outputs(1, queries, seed=seed)
    targets = random_targets([num_targets], seed=seed + 100)
    cost = matcher.cost_matrix(outputs, targets)[0]  # (Q, T)
    ((src, tgt),) = matcher(outputs, targets)
    assert len(src) == len(tgt) == min(queries, num_targets)
    assert len(set(src.tolist())) == len(src) and len(set(tgt.tolist())) == len(tgt)
    total = float(cost[src, tgt].sum())
    assert total == pytest.approx(brute_force_minimum(cost), abs=1e-5)


def test_batched_matching_equals_per_image_matching():
    matcher = HungarianMatcher()
    outputs = random_outputs(4, 6, seed=3)
    targets = random_targets([2, 0, 4, 6], seed=4)
    batched = matcher(outputs, targets)
    for b in range(4):
        single = {k: v[b : b + 1] for k, v in outputs.items()}
        ((src, tgt),) = matcher(single, [targets[b]])
        assert torch.equal(batched[b][0], src) and torch.equal(batched[b][1], tgt)


def test_images_without_targets_give_empty_int64_indices():
    matcher = HungarianMatcher()
    for counts in ([0, 0], [0, 3]):
        indices = matcher(random_outputs(2, 6), random_targets(counts))
        src, tgt = indices[0]
        assert src.numel() == tgt.numel() == 0
        assert src.dtype == tgt.dtype == torch.int64


def test_permuting_targets_permutes_the_returned_target_indices():
    matcher = HungarianMatcher()
    outputs = random_outputs(1, 6, seed=5)
    targets = random_targets([5], seed=6)
    permutation = torch.tensor([3, 0, 4, 1, 2])
    permuted = [{k: v[permutation] for k, v in targets[0].items()}]
    ((src, tgt),) = matcher(outputs, targets)
    ((src_p, tgt_p),) = matcher(outputs, permuted)
    assert torch.equal(src, src_p)
    assert torch.equal(permutation[tgt_p], tgt)  # same query, same original target


def test_non_finite_outputs_do_not_crash():
    matcher = HungarianMatcher()
    outputs = random_outputs(2, 6)
    outputs["pred_logits"][0, 0] = float("nan")
    outputs["pred_masks"][0, 1] = float("inf")
    outputs["pred_masks"][1] = float("nan")
    indices = matcher(outputs, random_targets([3, 2]))
    assert [len(src) for src, _ in indices] == [3, 2]


def test_low_resolution_predictions_are_upsampled_to_the_targets():
    """A 4x4 prediction whose bilinear upsampling is the target matches it at no Dice cost."""
    target = torch.zeros(1, 8, 8, dtype=torch.bool)
    target[0, :4, :4] = True
    masks = torch.full((1, 2, 4, 4), -50.0)
    masks[0, 1, :2, :2] = 50.0  # query 1 covers the top-left quarter
    outputs = {"pred_logits": torch.zeros(1, 2, 11), "pred_masks": masks}
    matcher = HungarianMatcher(cost_class=0.0, cost_dice=1.0)
    ((src, tgt),) = matcher(outputs, [{"labels": torch.tensor([0]), "masks": target}])
    assert src.tolist() == [1] and tgt.tolist() == [0]


def test_mask_size_compares_both_sides_at_that_resolution():
    matcher = HungarianMatcher(mask_size=(4, 2))
    outputs = random_outputs(1, 3, size=16)
    targets = random_targets([2], size=32)
    assert matcher.cost_matrix(outputs, targets).shape == (1, 3, 2)
    assert len(matcher(outputs, targets)[0][0]) == 2


def test_dice_cost_by_hand():
    pred = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    target = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    # 1 - (2 * overlap + 1) / (|p| + |t| + 1): overlap 1 -> 1 - 3/4, overlap 0 -> 1 - 1/5
    assert dice_cost(pred, target)[0].tolist() == pytest.approx([0.25, 0.8])


def test_negative_weights_are_refused():
    with pytest.raises(ValueError, match="cost_class"):
        HungarianMatcher(cost_class=-1.0)


def test_cost_blocks_equal_every_query_against_each_image_s_targets():
    """Image b's columns of the batched cost are its queries against its own targets,
    computed pair by pair from the definition; padding columns are never read."""
    matcher = HungarianMatcher(mask_size=(4, 8))
    outputs = random_outputs(3, 5, size=8, seed=7)
    targets = random_targets([2, 0, 4], size=16, seed=8)
    cost = matcher.cost_matrix(outputs, targets)
    assert cost.shape == (3, 5, 4)
    for b, target in enumerate(targets):
        probs = outputs["pred_logits"][b].softmax(-1)
        for q in range(5):
            mask = torch.nn.functional.interpolate(
                outputs["pred_masks"][b, q][None, None], size=(4, 8), mode="bilinear"
            ).sigmoid()
            for t, label in enumerate(target["labels"].tolist()):
                goal = torch.nn.functional.interpolate(
                    target["masks"][t][None, None].float(), size=(4, 8), mode="bilinear"
                )
                dice = 1 - (2 * (mask * goal).sum() + 1) / (mask.sum() + goal.sum() + 1)
                expected = 0.1 * -probs[q, label] + dice
                assert float(cost[b, q, t]) == pytest.approx(float(expected), abs=1e-5)


def test_the_batched_per_image_costs_equal_the_block_taken_ones():
    """CUDA's batched product and the CPU's every-query-against-every-target blocks give the
    same costs (to float rounding) and the same padding layout."""
    from seqseg_lib.matcher import image_dice_costs

    generator = torch.Generator().manual_seed(9)
    pred = torch.rand(3, 4, 50, generator=generator)
    sizes = [2, 0, 5]
    target = (torch.rand(sum(sizes), 50, generator=generator) > 0.5).float()
    batched = image_dice_costs(pred, target, sizes, batched=True)
    blocks = image_dice_costs(pred, target, sizes, batched=False)
    assert batched.shape == blocks.shape == (3, 4, 5)
    for b, size in enumerate(sizes):
        torch.testing.assert_close(batched[b, :, :size], blocks[b, :, :size])


def test_only_the_hungarian_u_net_batches_its_matching_on_a_cpu():
    """Scattered MNIST keeps every query against every target on a CPU (the rounding its
    ``cpu`` results were trained with); the Hungarian U-Net batches on every device."""
    from seqseg_lib.experiments import build_config, build_criterion

    assert build_criterion(build_config("hungarian-unet", "smoke")).matcher.batched is True
    assert build_criterion(build_config("mnist-easy", "smoke")).matcher.batched is None
