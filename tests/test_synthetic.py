"""SyntheticCityscapes: shapes, determinism, label and instance encoding, crops, and the
round trip through the official Cityscapes layout."""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seqseg_lib.data.cityscapes import Cityscapes
from seqseg_lib.data.labels import CITYSCAPES, IGNORE_INDEX
from seqseg_lib.data.synthetic import SyntheticCityscapes
from seqseg_lib.data.synthetic_scenes import THING_IDS

SMALL = (128, 256)
REPO = Path(__file__).resolve().parents[1]


def raw(split: str = "train", num_images: int = 4, size=SMALL, **kwargs) -> SyntheticCityscapes:
    """Scenes as generated: no resize, no crop."""
    return SyntheticCityscapes(
        None, split, num_images=num_images, size=size, resize=None, crop=None, **kwargs
    )


def test_item_shapes_dtypes_and_ranges():
    item = SyntheticCityscapes(None, "train", num_images=2, size=SMALL)[1]
    assert item["image"].shape == (3, 128, 256) and item["image"].dtype == torch.float32
    assert 0 <= item["image"].min() and item["image"].max() <= 1
    for key in ("labels", "instances"):
        assert item[key].shape == (128, 256) and item[key].dtype == torch.int64
    assert item["name"] == "synthetic_train_000001"


def test_lengths_and_user_errors():
    assert len(SyntheticCityscapes(None, "train")) == 600
    assert len(SyntheticCityscapes(None, "val")) == 150
    assert len(SyntheticCityscapes(None, "val", num_images=7)) == 7
    with pytest.raises(ValueError, match="valid: train, val, test"):
        SyntheticCityscapes(None, "training")
    with pytest.raises(ValueError, match="num_images"):
        SyntheticCityscapes(None, "train", num_images=-1)
    with pytest.raises(IndexError):
        raw(num_images=2)[2]


def test_deterministic_across_instances():
    first, second = raw(num_images=2), raw(num_images=2)
    for index in range(2):
        a, b = first[index], second[index]
        for key in ("image", "labels", "instances"):
            assert torch.equal(a[key], b[key]), key


def _digest(dataset: SyntheticCityscapes, index: int) -> str:
    return hashlib.sha256(b"".join(a.tobytes() for a in dataset.scene(index))).hexdigest()


def test_deterministic_across_processes():
    code = (
        "from seqseg_lib.data.synthetic import SyntheticCityscapes as S; import hashlib; "
        "d = S(None, 'val', num_images=4, size=(64, 128), seed=3); "
        "print(hashlib.sha256(b''.join(a.tobytes() for a in d.scene(3))).hexdigest())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    here = SyntheticCityscapes(None, "val", num_images=4, size=(64, 128), seed=3)
    assert out.stdout.strip() == _digest(here, 3)


def test_splits_and_seeds_give_different_scenes():
    train, val, other_seed = raw("train", 1), raw("val", 1), raw("train", 1, seed=1)
    assert _digest(train, 0) != _digest(val, 0)
    assert _digest(train, 0) != _digest(other_seed, 0)
    assert _digest(train, 0) != _digest(raw("train", 2), 1)


def test_labels_and_instance_encoding():
    dataset = raw(num_images=6)
    for index in range(len(dataset)):
        labels, instances = dataset[index]["labels"], dataset[index]["instances"]
        assert 0 <= labels.min() and labels.max() <= 33
        thing = torch.from_numpy(np.isin(labels.numpy(), list(THING_IDS)))
        assert torch.equal(instances[~thing], labels[~thing])
        assert (instances[thing] >= 1000).all()
        assert torch.equal(instances[thing] // 1000, labels[thing])
        for label in np.unique(labels[thing].numpy()):  # k = 0, 1, 2, ... per class
            ks = np.unique(instances[labels == int(label)].numpy() % 1000)
            assert np.array_equal(ks, np.arange(len(ks))), (index, label)


def test_scenes_are_rich():
    dataset = raw(num_images=10)
    classes, cars = [], []
    for index in range(len(dataset)):  # numpy: torch.unique's first call takes seconds
        labels, instances = (dataset[index][key].numpy() for key in ("labels", "instances"))
        classes.append(len(np.unique(labels)))
        cars.append(len(np.unique(instances[labels == 26])))
    assert np.mean(classes) >= 6, classes
    assert np.mean(np.array(cars) >= 2) >= 0.7, cars


def test_set_epoch_changes_crops_not_scenes():
    dataset = SyntheticCityscapes(None, "train", num_images=1, size=SMALL)  # resize, random crop
    scene = [a.copy() for a in dataset.scene(0)]
    crops = []
    for epoch in range(4):
        dataset.set_epoch(epoch)
        crops.append(dataset[0]["image"])
        assert crops[-1].shape == (3, 128, 256)
    assert any(not torch.equal(crops[0], crop) for crop in crops[1:])
    assert all(np.array_equal(a, b) for a, b in zip(scene, dataset.scene(0)))
    dataset.set_epoch(0)
    assert torch.equal(dataset[0]["image"], crops[0])  # crops depend on the epoch only


def test_validation_crops_are_centred_and_fixed():
    dataset = SyntheticCityscapes(None, "val", num_images=1, size=SMALL)
    first = dataset[0]["image"]
    dataset.set_epoch(5)
    assert torch.equal(dataset[0]["image"], first)


def test_no_resize_no_crop_gives_generated_size():
    item = raw(num_images=1, size=(96, 160))[0]
    assert item["image"].shape == (3, 96, 160) and item["labels"].shape == (96, 160)


def test_write_cityscapes_layout_round_trip(tmp_path):
    dataset = raw("val", num_images=2)
    root = dataset.write_cityscapes_layout(tmp_path / "cityscapes")
    assert root == tmp_path / "cityscapes"
    left, gt = root / "leftImg8bit/val/synthville", root / "gtFine/val/synthville"
    for index in range(2):
        item, stem = dataset[index], f"synthville_000000_{index:06d}"
        image = np.array(Image.open(left / f"{stem}_leftImg8bit.png"))
        labels = np.array(Image.open(gt / f"{stem}_gtFine_labelIds.png"))
        with Image.open(gt / f"{stem}_gtFine_instanceIds.png") as file:
            assert file.mode == "I;16"
            instances = np.array(file)
        colour = np.array(Image.open(gt / f"{stem}_gtFine_color.png"))
        assert image.dtype == np.uint8 and labels.dtype == np.uint8
        assert torch.equal(torch.from_numpy(image).permute(2, 0, 1).float() / 255, item["image"])
        assert np.array_equal(labels, item["labels"].numpy())
        assert np.array_equal(instances.astype(np.int64), item["instances"].numpy())
        assert colour.shape == (*SMALL, 3)
        assert tuple(colour[labels == 7][0]) == (128, 64, 128)  # road in the official colours
    reread = Cityscapes(root, "val", resize=None, crop=None)  # the real-data reader agrees
    assert len(reread) == 2
    for key in ("image", "labels", "instances"):
        assert torch.equal(reread[1][key], dataset[1][key]), key
    with pytest.raises(ValueError, match="city"):
        dataset.write_cityscapes_layout(tmp_path, city="synth_ville")


def test_majority_class_predictor_is_weak():
    """A constant prediction of the most frequent trainId scores well under 60% (Sec. 2.2's
    pixel accuracy over the 19 evaluated classes, ignoring 255)."""
    dataset = SyntheticCityscapes(None, "train", num_images=20, resize=None, crop=None)
    counts = np.zeros(CITYSCAPES.num_eval_classes, np.int64)
    for index in range(len(dataset)):
        ids = CITYSCAPES.to_eval(dataset[index]["labels"]).numpy()
        counts += np.bincount(ids[ids != IGNORE_INDEX], minlength=len(counts))
    accuracy = counts.max() / counts.sum()
    name = CITYSCAPES.eval_names[int(counts.argmax())]
    print(f"majority class {name!r}: pixel accuracy {accuracy:.3f}")
    assert accuracy < 0.5


def test_rendered_scenes_are_cached_once_and_read_back_identical(tmp_path):
    """The first ``prepare`` renders and writes the split; a second dataset (another process,
    a notebook's next run) reads it back instead of rendering, item for item the same."""
    from seqseg_lib.data import synthetic

    first = SyntheticCityscapes(
        None, "train", num_images=6, size=(64, 128), resize=(36, 72), crop=(32, 64)
    )
    first.prepare(processes=1, cache_dir=tmp_path)
    folder = first.cache_folder(tmp_path)
    assert folder.is_dir() and (folder / "image.npy").is_file()
    second = SyntheticCityscapes(
        None, "train", num_images=6, size=(64, 128), resize=(36, 72), crop=(32, 64)
    )
    rendered = []
    original = synthetic.SyntheticCityscapes._render_all
    synthetic.SyntheticCityscapes._render_all = lambda self, p: rendered.append(p)
    try:
        second.prepare(cache_dir=tmp_path)
    finally:
        synthetic.SyntheticCityscapes._render_all = original
    assert rendered == []  # read, not rendered
    for index in range(6):
        a, b = first[index], second[index]
        for key in ("image", "labels", "instances"):
            assert torch.equal(a[key], b[key]), (index, key)
    b["image"].mul_(0)  # an item's image is its own, writable memory
    other = SyntheticCityscapes(None, "train", num_images=6, size=(64, 128), seed=1)
    assert other.cache_folder(tmp_path) != folder  # another seed, another folder
