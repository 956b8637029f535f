"""Panoptic targets, post-processing, panoptic quality and redundancy (Sec. 4).

Panoptic quality is checked against the official Cityscapes evaluation
(``cityscapesscripts``: ground truth converted by ``createPanopticImgs.convert2panoptic``
from the instanceIds files, scored by ``evalPanopticSemanticLabeling.evaluatePanoptic``) and
against ``torchmetrics.detection.PanopticQuality`` where the two definitions agree.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from cityscapesscripts.helpers.labels import labels as cs_labels
from PIL import Image

from seqseg_lib.data.cityscapes import Cityscapes
from seqseg_lib.data.labels import CITYSCAPES, CITYSCAPES_IDS, IGNORE_INDEX
from seqseg_lib.data.targets import collate_panoptic, gt_segments, panoptic_targets
from seqseg_lib.panoptic import (
    PanopticEvaluator,
    panoptic_inference,
    panoptic_quality,
    pq_stats,
    redundancy_stats,
    semantic_from_panoptic,
    summarize_pq,
)

ID = CITYSCAPES_IDS
TRAIN = {name: i for i, name in enumerate(CITYSCAPES.eval_names)}
LABEL_ID_OF_TRAIN_ID = {
    label.trainId: label.id for label in cs_labels if not label.ignoreInEval and label.id >= 0
}
NUM_CLASSES = 19


# -- fixtures --------------------------------------------------------------------------------
def hand_scene() -> tuple[np.ndarray, np.ndarray]:
    """20x40 labelIds and instanceIds: sky, building (two pieces), vegetation, road, two
    cars, a person, a crowd of cars (instance value 26) and void (labelId 0)."""
    labels = np.full((20, 40), ID["road"], np.uint8)
    labels[0:6] = ID["sky"]
    labels[6:10, 0:20] = ID["building"]
    labels[6:10, 20:40] = ID["vegetation"]
    labels[2:4, 30:34] = ID["building"]  # a second piece, not touching the first
    instances = labels.astype(np.uint16)
    for (rows, cols), label, value in [
        ((slice(11, 16), slice(2, 10)), ID["car"], 26000),
        ((slice(12, 17), slice(12, 20)), ID["car"], 26001),
        ((slice(4, 15), slice(24, 27)), ID["person"], 24000),
        ((slice(14, 19), slice(30, 38)), ID["car"], ID["car"]),  # crowd: no instance id
        ((slice(17, 20), slice(0, 6)), ID["unlabeled"], 0),  # void
    ]:
        labels[rows, cols], instances[rows, cols] = label, value
    return labels, instances


def write_layout(root: Path, scenes: list[tuple[np.ndarray, np.ndarray]]) -> list[str]:
    """Cityscapes files for ``scenes`` in ``root/{leftImg8bit,gtFine}/val/city``; their names."""
    image_dir, label_dir = root / "leftImg8bit/val/city", root / "gtFine/val/city"
    image_dir.mkdir(parents=True), label_dir.mkdir(parents=True)
    names = []
    for i, (labels, instances) in enumerate(scenes):
        name = f"city_000000_{i:06d}"
        image = np.zeros((*labels.shape, 3), np.uint8)
        Image.fromarray(image).save(image_dir / f"{name}_leftImg8bit.png")
        Image.fromarray(labels.astype(np.uint8)).save(label_dir / f"{name}_gtFine_labelIds.png")
        Image.fromarray(instances.astype(np.uint16)).save(
            label_dir / f"{name}_gtFine_instanceIds.png"
        )
        names.append(name)
    return names


def read_items(root: Path) -> list[dict]:
    dataset = Cityscapes(root, "val", resize=None, crop=None)
    return [dataset[i] for i in range(len(dataset))]


@pytest.fixture(scope="module")
def hand_items(tmp_path_factory) -> list[dict]:
    root = tmp_path_factory.mktemp("hand")
    write_layout(root, [hand_scene()])
    return read_items(root)


# -- targets ---------------------------------------------------------------------------------
def test_targets_split_things_merge_stuff_and_ignore_void_and_crowd(hand_items):
    labels, instances = hand_items[0]["labels"], hand_items[0]["instances"]
    target = panoptic_targets(labels, instances)
    assert target["labels"].dtype == torch.int64 and target["masks"].dtype == torch.bool
    classes = sorted(target["labels"].tolist())
    expected = ["road", "building", "vegetation", "sky", "person", "car", "car"]
    assert classes == sorted(TRAIN[name] for name in expected)
    masks = {}
    for label, mask in zip(target["labels"].tolist(), target["masks"]):
        masks.setdefault(CITYSCAPES.eval_names[label], []).append(mask)
    car_a, car_b = sorted(masks["car"], key=lambda m: int(m.nonzero()[0, 1]))
    assert torch.equal(car_a, torch.from_numpy(instances.numpy() == 26000))
    assert torch.equal(car_b, torch.from_numpy(instances.numpy() == 26001))
    (building,) = masks["building"]  # the two pieces merged
    assert torch.equal(building, labels == ID["building"])
    covered = target["masks"].sum(0)
    assert int(covered.max()) == 1, "segments must be disjoint"
    crowd = (labels == ID["car"]) & (instances < 1000)
    void = labels == ID["unlabeled"]
    assert crowd.sum() == 40 and void.sum() == 18
    assert torch.equal(covered == 0, crowd | void)


def test_targets_of_synthetic_scenes_have_one_segment_per_instance(tmp_path):
    from seqseg_lib.data.synthetic import SyntheticCityscapes

    SyntheticCityscapes(None, "val", num_images=2, size=(64, 128)).write_cityscapes_layout(tmp_path)
    for item in read_items(tmp_path):
        labels, instances = item["labels"], item["instances"]
        target = panoptic_targets(labels, instances)
        semantic = CITYSCAPES.to_eval(labels)
        things = torch.isin(semantic, torch.tensor(CITYSCAPES.thing_eval_ids))
        num_instances = instances[things & (instances >= 1000)].unique().numel()
        num_stuff = semantic[~things & (semantic != IGNORE_INDEX)].unique().numel()
        assert num_instances > 0
        assert len(target["labels"]) == num_instances + num_stuff
        assert torch.equal(target["masks"].any(0), semantic != IGNORE_INDEX)
        for label, mask in zip(target["labels"], target["masks"]):
            assert (semantic[mask] == label).all()
            if int(label) in CITYSCAPES.thing_eval_ids:
                assert instances[mask].unique().numel() == 1


def test_targets_of_a_void_crop_are_empty_with_the_right_shapes():
    labels = torch.zeros(4, 6, dtype=torch.long)
    target = panoptic_targets(labels, labels.clone())
    assert target["labels"].shape == (0,) and target["labels"].dtype == torch.int64
    assert target["masks"].shape == (0, 4, 6) and target["masks"].dtype == torch.bool


def test_collate_panoptic(hand_items):
    images, targets = collate_panoptic(hand_items * 2)
    assert images.shape == (2, 3, 20, 40) and len(targets) == 2
    assert set(targets[0]) == {"labels", "masks", "semantic", "instances"}
    assert targets[0]["semantic"].shape == (20, 40)
    assert int(targets[0]["semantic"][18, 1]) == IGNORE_INDEX
    assert int(targets[0]["semantic"][0, 0]) == TRAIN["sky"]


# -- post-processing -------------------------------------------------------------------------
def outputs_for(target: dict, num_queries: int = 10, strength: float = 10.0) -> tuple:
    """pred_logits [Q, 20] and pred_masks [Q, H, W] predicting ``target`` exactly: query i
    is segment i, the rest say no object."""
    n, (h, w) = len(target["labels"]), target["masks"].shape[-2:]
    logits = torch.zeros(num_queries, NUM_CLASSES + 1)
    logits[n:, NUM_CLASSES] = strength
    logits[torch.arange(n), target["labels"]] = strength
    masks = torch.full((num_queries, h, w), -strength)
    masks[:n][target["masks"]] = strength
    return logits, masks


def test_panoptic_inference_keeps_confident_queries_and_merges_stuff():
    logits = torch.full((5, NUM_CLASSES + 1), -10.0)
    masks = torch.full((5, 4, 8), -5.0)
    logits[0, TRAIN["car"]] = 3.0  # confident car, left half
    masks[0, :, :4] = 5.0
    logits[1, TRAIN["road"]] = 1.0  # confident road, right half
    masks[1, :, 4:] = 5.0
    logits[2, NUM_CLASSES] = 5.0  # no object: its mask is ignored
    masks[2] = 8.0
    logits[3, :] = 0.0  # low confidence: argmax person at 1/20
    logits[3, TRAIN["person"]] = 0.1
    masks[3] = 8.0
    logits[4, TRAIN["road"]] = 0.5  # second road query, 2 pixels: merged with query 1
    masks[4, 3, 4:6] = 9.0  # query 1 keeps 14 of its 16 pixels (>= 0.8)
    segment_map, segments = panoptic_inference(logits, masks)
    assert [s["category_id"] for s in segments] == [TRAIN["car"], TRAIN["road"]]
    assert [s["isthing"] for s in segments] == [True, False]
    assert [s["query"] for s in segments] == [0, 1]
    assert [s["id"] for s in segments] == [1, 2]
    assert segments[0]["score"] > segments[1]["score"] > 0.5
    assert (segment_map[:, :4] == 1).all() and (segment_map[:, 4:] == 2).all()
    assert [s["area"] for s in segments] == [16, 16]
    semantic = semantic_from_panoptic(segment_map, segments)
    assert (semantic[:, :4] == TRAIN["car"]).all() and (semantic[:, 4:] == TRAIN["road"]).all()


def test_panoptic_inference_drops_mostly_hidden_queries_and_leaves_void():
    logits = torch.full((2, NUM_CLASSES + 1), -10.0)
    logits[0, TRAIN["car"]], logits[1, TRAIN["car"]] = 4.0, 2.0
    masks = torch.full((2, 4, 8), -5.0)
    masks[0, :, :6] = 5.0  # wins over query 1 everywhere they overlap
    masks[1, :, 2:7] = 5.0  # keeps 4 of its 20 pixels (< 0.8): dropped, its column void
    segment_map, segments = panoptic_inference(logits, masks)
    assert [s["query"] for s in segments] == [0]
    assert (segment_map[:, :6] == 1).all() and (segment_map[:, 6:] == 0).all()
    semantic = semantic_from_panoptic(segment_map, segments)
    assert (semantic[:, 6:] == IGNORE_INDEX).all()
    empty_map, none = panoptic_inference(torch.zeros(3, NUM_CLASSES + 1), masks[:1].expand(3, 4, 8))
    assert none == [] and not empty_map.any()


def test_panoptic_inference_reproduces_a_target(hand_items):
    item = hand_items[0]
    target = panoptic_targets(item["labels"], item["instances"])
    segment_map, segments = panoptic_inference(*outputs_for(target))
    assert len(segments) == len(target["labels"])
    for segment in segments:
        mask = target["masks"][segment["query"]]
        assert torch.equal(segment_map == segment["id"], mask)
        assert segment["category_id"] == int(target["labels"][segment["query"]])


# -- panoptic quality against the official evaluation ----------------------------------------
class Prediction:
    """A predicted segment map built from the ground truth, then edited."""

    def __init__(self, labels: torch.Tensor, instances: torch.Tensor) -> None:
        semantic = CITYSCAPES.to_eval(labels)
        index, categories, iscrowd = gt_segments(semantic, instances, CITYSCAPES.thing_eval_ids)
        self.map = torch.where(iscrowd[(index - 1).clamp(min=0)], 0, index)  # crowd -> void
        self.categories = categories.tolist()

    @property
    def segments(self) -> list[dict]:
        return [{"id": i + 1, "category_id": c} for i, c in enumerate(self.categories)]

    def paint(self, rows: slice, cols: slice, category: str | int | None) -> None:
        """A new segment of ``category`` (void if None) over the rectangle."""
        if category is None:
            self.map[rows, cols] = 0
            return
        self.categories.append(TRAIN.get(category, category))
        self.map[rows, cols] = len(self.categories)

    def relabel(self, region: torch.Tensor, segment_id: int) -> None:
        self.map[region] = segment_id

    def segment_at(self, row: int, col: int) -> int:
        return int(self.map[row, col])


def rect(rows: slice, cols: slice, shape=(20, 40)) -> torch.Tensor:
    region = torch.zeros(shape, dtype=torch.bool)
    region[rows, cols] = True
    return region


def hand_predictions(labels: torch.Tensor, instances: torch.Tensor) -> dict[str, Prediction]:
    """Edits of the hand scene's ground truth, each testing one rule of the evaluation."""
    scenarios = {name: Prediction(labels, instances) for name in HAND_SCENARIOS}
    missed = scenarios["missed_instance"]
    missed.relabel(instances == 24000, missed.segment_at(8, 30))  # person -> vegetation
    scenarios["false_positive"].paint(slice(0, 3), slice(5, 12), "car")  # a car in the sky
    scenarios["stuff_partly_wrong"].paint(slice(17, 20), slice(6, 40), "sidewalk")
    void_crowd = scenarios["on_void_and_crowd"]
    void_crowd.paint(slice(14, 19), slice(30, 38), "car")  # all on the crowd: ignored
    void_crowd.paint(slice(16, 20), slice(0, 4), "person")  # 12 of 16 pixels void: ignored
    # car A grows by 24 pixels, 6 of them void: IoU 40 / (64 + 40 - 40 - 6), still a match
    void_crowd.relabel(rect(slice(16, 20), slice(4, 10)), void_crowd.segment_at(12, 5))
    merged = scenarios["merged_cars_iou_exactly_half"]  # 40 / 80: not > 0.5
    merged.relabel(instances == 26001, merged.segment_at(12, 5))
    wrong = scenarios["wrong_class"]
    wrong.categories[wrong.segment_at(13, 15) - 1] = TRAIN["truck"]
    return scenarios


HAND_SCENARIOS = (
    "perfect",
    "missed_instance",
    "false_positive",
    "stuff_partly_wrong",
    "on_void_and_crowd",
    "merged_cars_iou_exactly_half",
    "wrong_class",
)


def random_prediction(labels, instances, generator: torch.Generator, void: bool = True):
    """Ground truth with random rectangles painted: new segments, existing segments, void."""
    prediction = Prediction(labels, instances)
    height, width = labels.shape

    def draw(n: int) -> int:
        return int(torch.randint(n, (1,), generator=generator))

    for _ in range(12):
        top, left = draw(height), draw(width)
        rows = slice(top, top + 1 + draw(height // 2))
        cols = slice(left, left + 1 + draw(width // 3))
        choice = draw(3 if void else 2)
        if choice == 0:
            prediction.paint(rows, cols, draw(NUM_CLASSES))
        elif choice == 1:
            prediction.map[rows, cols] = draw(len(prediction.categories)) + 1
        else:
            prediction.paint(rows, cols, None)
    return prediction


def official_pq(root: Path, names: list[str], predictions: list[Prediction], out: Path) -> dict:
    """Run cityscapesscripts' conversion of the ground truth and its panoptic evaluation."""
    from cityscapesscripts.evaluation.evalPanopticSemanticLabeling import evaluatePanoptic
    from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic

    gt_dir = out / "gt"
    gt_dir.mkdir(parents=True)
    convert2panoptic(str(root / "gtFine"), str(gt_dir), setNames=["val"])
    pred_dir = out / "pred"
    pred_dir.mkdir()
    annotations = []
    for name, prediction in zip(names, predictions):
        ids = prediction.map.numpy().astype(np.uint32)
        rgb = np.stack([ids % 256, ids // 256 % 256, ids // 256**2], -1).astype(np.uint8)
        Image.fromarray(rgb).save(pred_dir / f"{name}.png")
        present = set(np.unique(ids).tolist())
        segments = [  # the official evaluation wants exactly the segments in the PNG
            {"id": s["id"], "category_id": LABEL_ID_OF_TRAIN_ID[s["category_id"]]}
            for s in prediction.segments
            if s["id"] in present
        ]
        annotations.append(
            {"image_id": name, "file_name": f"{name}.png", "segments_info": segments}
        )
    (out / "pred.json").write_text(json.dumps({"annotations": annotations}))
    return evaluatePanoptic(
        str(gt_dir / "cityscapes_panoptic_val.json"),
        str(gt_dir / "cityscapes_panoptic_val"),
        str(out / "pred.json"),
        str(pred_dir),
        str(out / "results.json"),
    )


def assert_same_as_official(ours: dict, official: dict) -> float:
    """Every overall, things, stuff and per-class value equal to 1e-6; the largest difference."""
    worst = 0.0
    for suffix, group in (("", "All"), ("_things", "Things"), ("_stuff", "Stuff")):
        for name in ("pq", "sq", "rq"):
            worst = max(worst, abs(ours[name + suffix] - official[group][name]))
    for train_id, label_id in LABEL_ID_OF_TRAIN_ID.items():
        for name in ("pq", "sq", "rq"):
            value = ours[f"{name}_per_class"][train_id]
            reference = official["per_class"][label_id][name]
            if math.isnan(value):  # left out of the means; the official table says 0
                assert reference == 0.0
            else:
                worst = max(worst, abs(value - reference))
    assert worst < 1e-6, worst
    return worst


def test_pq_matches_the_official_evaluation_on_hand_made_cases(hand_items, tmp_path):
    labels, instances = hand_items[0]["labels"], hand_items[0]["instances"]
    scenarios = hand_predictions(labels, instances)
    scene = hand_scene()
    names = write_layout(tmp_path / "data", [scene] * len(scenarios))
    official = official_pq(tmp_path / "data", names, list(scenarios.values()), tmp_path / "all")
    evaluator_stats = None
    results = {}
    for name, prediction in scenarios.items():
        stats = pq_stats(prediction.map, prediction.segments, CITYSCAPES.to_eval(labels), instances)
        results[name] = panoptic_quality(prediction.map, prediction.segments, labels, instances)
        if evaluator_stats is None:
            evaluator_stats = stats
        else:
            evaluator_stats = {k: evaluator_stats[k] + stats[k] for k in stats}
    assert_same_as_official(summarize_pq(evaluator_stats, CITYSCAPES.thing_eval_ids), official)
    assert results["perfect"]["pq"] == 1.0
    car, person = TRAIN["car"], TRAIN["person"]
    assert results["missed_instance"]["pq_per_class"][person] == 0.0  # one false negative
    assert results["false_positive"]["rq_per_class"][car] == pytest.approx(2 / 2.5)
    assert results["on_void_and_crowd"]["rq_per_class"][car] == 1.0  # no false positive
    assert results["on_void_and_crowd"]["rq_per_class"][person] == 1.0
    assert results["on_void_and_crowd"]["sq_per_class"][car] < 1.0
    assert results["merged_cars_iou_exactly_half"]["pq_per_class"][car] == 0.0
    assert 0.5 < results["stuff_partly_wrong"]["sq_per_class"][TRAIN["road"]] < 1.0
    assert results["stuff_partly_wrong"]["pq_per_class"][TRAIN["sidewalk"]] == 0.0


def test_pq_matches_the_official_evaluation_per_image(hand_items, tmp_path):
    labels, instances = hand_items[0]["labels"], hand_items[0]["instances"]
    scenarios = hand_predictions(labels, instances)
    names = write_layout(tmp_path / "data", [hand_scene()])
    for name in ("missed_instance", "on_void_and_crowd", "merged_cars_iou_exactly_half"):
        prediction = scenarios[name]
        official = official_pq(tmp_path / "data", names, [prediction], tmp_path / name)
        ours = panoptic_quality(prediction.map, prediction.segments, labels, instances)
        assert_same_as_official(ours, official)


def synthetic_scenes(num_images: int, crowd: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """48x96 synthetic scenes; with ``crowd``, every third instance becomes a crowd region
    (its pixels keep their class but lose their instance id, as Cityscapes' groups)."""
    from seqseg_lib.data.synthetic import SyntheticCityscapes

    dataset = SyntheticCityscapes(None, "val", num_images=num_images, size=(48, 96))
    scenes = []
    for index in range(num_images):
        _, labels, instances = dataset.scene(index)
        instances = instances.copy()
        if crowd:
            for value in np.unique(instances[instances >= 1000])[::3]:
                instances[instances == value] = value // 1000
        scenes.append((labels, instances))
    return scenes


def sum_stats(items: list[dict], predictions: list[Prediction]) -> dict[str, torch.Tensor]:
    total = None
    for item, prediction in zip(items, predictions):
        semantic = CITYSCAPES.to_eval(item["labels"])
        stats = pq_stats(prediction.map, prediction.segments, semantic, item["instances"])
        total = stats if total is None else {n: total[n] + stats[n] for n in stats}
    return total


def test_pq_matches_the_official_evaluation_on_random_edits_of_synthetic_scenes(tmp_path):
    names = write_layout(tmp_path, synthetic_scenes(8, crowd=True))
    items = read_items(tmp_path)
    crowd = [(i["instances"] < 1000) & (i["instances"] >= 24) for i in items]
    assert sum(int(c.sum()) for c in crowd) > 0, "the fixture must hold crowd regions"
    generator = torch.Generator().manual_seed(0)
    predictions = [random_prediction(i["labels"], i["instances"], generator) for i in items]
    official = official_pq(tmp_path, names, predictions, tmp_path / "eval")
    stats = sum_stats(items, predictions)
    assert int(stats["tp"].sum()) > 50 and int(stats["fp"].sum()) > 20
    assert_same_as_official(summarize_pq(stats, CITYSCAPES.thing_eval_ids), official)


# -- panoptic quality against torchmetrics ---------------------------------------------------
def merge_stuff(prediction: Prediction) -> Prediction:
    """One segment per stuff class (torchmetrics keys stuff segments by class alone)."""
    first = {}
    for i, category in enumerate(prediction.categories, start=1):
        if category not in CITYSCAPES.thing_eval_ids:
            target = first.setdefault(category, i)
            prediction.map[prediction.map == i] = target
    return prediction


def test_pq_matches_torchmetrics_without_crowd_or_predicted_void():
    """torchmetrics has no crowd regions and treats predicted void differently (it removes it
    from the union and excuses mostly-void ground truth), so compare where neither occurs."""
    from torchmetrics.detection import PanopticQuality

    things = list(CITYSCAPES.thing_eval_ids)
    stuffs = [c for c in range(NUM_CLASSES) if c not in things]
    metric = PanopticQuality(things, stuffs, return_sq_and_rq=True, return_per_class=True)
    generator = torch.Generator().manual_seed(1)
    items = [
        {"labels": torch.from_numpy(labels.astype(np.int64)), "instances": torch.from_numpy(ins)}
        for labels, ins in synthetic_scenes(3, crowd=False)
    ]
    predictions = []
    for item in items:
        prediction = random_prediction(item["labels"], item["instances"], generator, void=False)
        prediction.map[prediction.map == 0] = 1  # gt void: any segment
        predictions.append(merge_stuff(prediction))
        pred_cat = torch.tensor([0, *prediction.categories])[prediction.map]
        semantic = CITYSCAPES.to_eval(item["labels"])
        target = torch.stack([semantic, item["instances"].long()], -1)
        metric.update(torch.stack([pred_cat, prediction.map], -1)[None], target[None])
    order = sorted(things) + sorted(stuffs)  # torchmetrics' class order
    stats = sum_stats(items, predictions)
    assert torch.equal(metric.true_positives.long(), stats["tp"][order])
    assert torch.equal(metric.false_positives.long(), stats["fp"][order])
    assert torch.equal(metric.false_negatives.long(), stats["fn"][order])
    assert torch.allclose(
        metric.iou_sum, stats["iou"][order], rtol=0, atol=1e-6
    )  # float32 IoUs there
    ours = summarize_pq(stats, CITYSCAPES.thing_eval_ids)
    reference = metric.compute()  # (classes, [pq, sq, rq])
    for row, category in enumerate(order):
        for column, name in enumerate(("pq", "sq", "rq")):
            value, expected = ours[f"{name}_per_class"][category], float(reference[row, column])
            assert (math.isnan(value) and expected == 0.0) or abs(value - expected) < 1e-6


# -- redundancy ------------------------------------------------------------------------------
def test_redundancy_counts_confident_duplicates():
    masks = torch.zeros(3, 8, 16, dtype=torch.bool)
    masks[0, 2:6, 0:5] = True  # car A, 20 pixels
    masks[1, 2:6, 8:12] = True  # car B, 16 pixels
    masks[2, 6:] = True  # road
    target = {"labels": torch.tensor([TRAIN["car"], TRAIN["car"], TRAIN["road"]]), "masks": masks}
    logits = torch.full((8, NUM_CLASSES + 1), -10.0)
    pred = torch.full((8, 8, 16), -5.0)
    for query, category, region in [
        (0, "car", masks[0]),  # car A
        (1, "car", rect(slice(2, 6), slice(0, 4), (8, 16))),  # car A again, IoU 16/20
        (2, "car", masks[1]),  # car B
        (3, "road", masks[2]),  # road
        (4, "person", masks[0]),  # wrong class on car A: confident, no match
        (5, "car", torch.zeros(8, 16, dtype=torch.bool)),  # empty mask: not confident
    ]:
        logits[query, TRAIN[category]] = 5.0
        pred[query][region] = 5.0
    logits[6, NUM_CLASSES] = 5.0  # no object on car B
    pred[6][masks[1]] = 5.0
    logits[7] = 0.0  # low confidence on car B
    pred[7][masks[1]] = 5.0
    stats = redundancy_stats(logits, pred, target)
    expected = {"confident": 5, "gt_segments": 3, "matches": 4, "matched_gt": 3, "duplicates": 1}
    assert {k: stats[k] for k in expected} == expected


# -- evaluator -------------------------------------------------------------------------------
def test_evaluator_scores_a_perfect_prediction_and_round_trips_its_state(hand_items, tmp_path):
    from seqseg_lib.data.synthetic import SyntheticCityscapes

    dataset = SyntheticCityscapes(None, "val", num_images=2, resize=(36, 72), crop=(32, 64))
    for items in (hand_items, [dataset[0], dataset[1]]):
        _, targets = collate_panoptic(items)
        outputs = [outputs_for(t, num_queries=40) for t in targets]
        outputs = {
            "pred_logits": torch.stack([o[0] for o in outputs]),
            "pred_masks": torch.stack([o[1] for o in outputs]),
        }
        evaluator = PanopticEvaluator()
        evaluator.update(outputs, targets)
        results = evaluator.compute()
        assert results["pq"] == results["sq"] == results["rq"] == 1.0
        # crowd pixels count in the semantic scores (as for U-Net), but no query learns them
        semantic = torch.stack([t["semantic"] for t in targets])
        instances = torch.stack([t["instances"] for t in targets])
        things = torch.isin(semantic, torch.tensor(CITYSCAPES.thing_eval_ids))
        crowd, valid = int((things & (instances < 1000)).sum()), int((semantic != 255).sum())
        assert results["accuracy"] == pytest.approx(1 - crowd / valid)
        assert results["miou"] == 1.0 or crowd > 0
        assert results["redundancy"] == 1.0 and results["duplicates_per_image"] == 0.0
        num_segments = sum(len(t["labels"]) for t in targets) / len(targets)
        assert results["segments_per_image"] == results["confident_per_image"] == num_segments
    torch.save(evaluator.state_dict(), tmp_path / "state.pt")
    restored = PanopticEvaluator()
    restored.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert json.dumps(restored.compute()) == json.dumps(results)
    light = PanopticEvaluator(light=True)
    light.update(outputs, targets)
    assert "pq" not in light.compute() and light.compute()["miou"] == 1.0


def test_evaluator_resizes_low_resolution_masks(hand_items):
    _, targets = collate_panoptic(hand_items)
    logits, masks = outputs_for(targets[0])
    low = masks[None, :, ::2, ::2]  # (1, Q, 10, 20)
    evaluator = PanopticEvaluator()
    evaluator.update({"pred_logits": logits[None], "pred_masks": low}, targets)
    assert 0.5 < evaluator.compute()["accuracy"] <= 1.0
