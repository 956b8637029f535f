"""Dataset readers on generated files: Cityscapes layout, CamVid, and every bad input."""

import shutil

import numpy as np
import pytest
import torch
from cityscapesscripts.helpers.labels import id2label
from PIL import Image

from seqseg_lib.data import CamVid, Cityscapes, build_dataset
from seqseg_lib.data.labels import CITYSCAPES, IGNORE_INDEX
from seqseg_lib.data.synthetic import SyntheticCityscapes

SIZE = (64, 128)


@pytest.fixture(scope="module")
def cityscapes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes")
    for split in ("train", "val"):
        data = SyntheticCityscapes(None, split, num_images=3, size=SIZE, resize=None, crop=None)
        data.write_cityscapes_layout(root)
    return root


@pytest.fixture
def root_copy(cityscapes_root, tmp_path):
    return shutil.copytree(cityscapes_root, tmp_path / "cityscapes")


def files(root, pattern):
    return sorted(root.rglob(pattern))


def test_reader_returns_the_files_content(cityscapes_root):
    reference = SyntheticCityscapes(None, "val", num_images=3, size=SIZE, resize=None, crop=None)
    data = Cityscapes(cityscapes_root, "val", resize=None, crop=None)
    assert len(data) == 3
    item = data[0]
    assert item["image"].shape == (3, *SIZE) and item["image"].dtype == torch.float32
    assert item["labels"].dtype == torch.int64 and item["instances"].dtype == torch.int64
    for key in ("image", "labels", "instances"):
        assert torch.equal(item[key], reference[0][key]), key


def test_label_mapping_agrees_with_cityscapesscripts(cityscapes_root):
    item = Cityscapes(cityscapes_root, "train", resize=None, crop=None)[1]
    expected = np.vectorize(lambda i: id2label[int(i)].trainId)(item["labels"].numpy())
    expected[(expected == -1) | (expected == 255)] = IGNORE_INDEX
    assert np.array_equal(CITYSCAPES.to_eval(item["labels"]).numpy(), expected)


def test_instances_decode_to_their_class(cityscapes_root):
    item = Cityscapes(cityscapes_root, "train", resize=None, crop=None)[0]
    instances, labels = item["instances"], item["labels"]
    things = instances >= 1000
    assert things.any()
    assert torch.equal(instances[things] // 1000, labels[things])
    assert all(id2label[int(i)].hasInstances for i in (instances[things] // 1000).unique())
    assert torch.equal(instances[~things], labels[~things])


def test_default_transform_is_resize_then_crop(cityscapes_root):
    train = Cityscapes(cityscapes_root, "train", resize=(70, 140), crop=(64, 128))
    val = Cityscapes(cityscapes_root, "val", resize=(70, 140), crop=(64, 128))
    assert train[0]["image"].shape == (3, 64, 128)
    assert torch.equal(val[0]["labels"], val[0]["labels"])  # centre crop: fixed
    crops = set()
    for epoch in range(6):
        train.set_epoch(epoch)
        crops.add(train[0]["labels"].sum().item())
    assert len(crops) > 1  # random crops differ between epochs


def test_root_from_the_environment(cityscapes_root, monkeypatch):
    monkeypatch.setenv("CITYSCAPES_DATASET", str(cityscapes_root))
    assert len(Cityscapes(None, "val")) == 3
    assert len(build_dataset("cityscapes", None, "val", num_images=2, resize=None, crop=None)) == 2


def test_camvid_from_the_shared_copy(camvid_root):
    train = CamVid(camvid_root, "train")
    assert len(train) == 367 and len(CamVid(camvid_root, "val")) == 101
    item = CamVid(camvid_root, "val", resize=None, crop=None)[0]
    assert item["image"].shape == (3, 360, 480)
    values = set(item["labels"].unique().tolist())
    assert values <= set(range(11)) | {IGNORE_INDEX}
    assert train[0]["image"].shape == (3, 128, 176)


def make_camvid(root, label_value=3):
    for split in ("train", "trainannot"):
        (root / split).mkdir(parents=True)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / "train" / "a.png")
    Image.fromarray(np.full((16, 16), label_value, np.uint8)).save(root / "trainannot" / "a.png")
    return root


def test_camvid_void_becomes_ignore(tmp_path):
    item = CamVid(make_camvid(tmp_path, 11), "train", resize=None, crop=None)[0]
    assert (item["labels"] == IGNORE_INDEX).all()


# -- bad input: each error names the file or parameter and what was expected --------------


def test_missing_root(tmp_path, monkeypatch):
    monkeypatch.delenv("CITYSCAPES_DATASET", raising=False)
    with pytest.raises(ValueError, match="CITYSCAPES_DATASET"):
        Cityscapes(None, "train")
    with pytest.raises(ValueError, match="does not exist"):
        Cityscapes(tmp_path / "nowhere", "train")


def test_root_of_another_dataset(tmp_path, cityscapes_root):
    with pytest.raises(ValueError, match="not a Cityscapes root: expected the folders"):
        Cityscapes(make_camvid(tmp_path / "camvid"), "train")
    with pytest.raises(ValueError, match="not a CamVid root.*train/ is missing"):
        CamVid(cityscapes_root, "train")


def test_root_pointing_at_gtfine(cityscapes_root):
    with pytest.raises(ValueError, match="points at gtFine/; pass its parent"):
        Cityscapes(cityscapes_root / "gtFine", "train")


def test_missing_split_or_city(root_copy):
    with pytest.raises(ValueError, match="unknown Cityscapes split 'training'"):
        Cityscapes(root_copy, "training")
    shutil.rmtree(root_copy / "gtFine" / "val")
    with pytest.raises(ValueError, match=r"split folder .*gtFine/val' is missing"):
        Cityscapes(root_copy, "val")
    shutil.rmtree(root_copy / "gtFine" / "train" / "synthville")
    with pytest.raises(ValueError, match=r"city folder .*synthville' is missing"):
        Cityscapes(root_copy, "train")


def test_image_without_label_and_label_without_image(root_copy):
    files(root_copy / "gtFine" / "train", "*_labelIds.png")[0].unlink()
    with pytest.raises(ValueError, match="have no label file, e.g. .*_leftImg8bit.png"):
        Cityscapes(root_copy, "train")
    files(root_copy / "leftImg8bit" / "val", "*.png")[0].unlink()
    with pytest.raises(ValueError, match="have no image, e.g. .*_labelIds.png"):
        Cityscapes(root_copy, "val")


def test_truncated_png_names_the_file(root_copy):
    path = files(root_copy / "leftImg8bit" / "train", "*.png")[0]
    path.write_bytes(path.read_bytes()[:200])
    data = Cityscapes(root_copy, "train")
    with pytest.raises(ValueError, match=f"cannot read image '{path}'"):
        data[0]


def test_image_and_label_of_different_sizes(root_copy):
    path = files(root_copy / "gtFine" / "train", "*_labelIds.png")[0]
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(path)
    with pytest.raises(ValueError, match="is 128x64 but its label .* is 10x10"):
        Cityscapes(root_copy, "train")[0]


def test_label_values_outside_the_table(root_copy, tmp_path):
    path = files(root_copy / "gtFine" / "train", "*_labelIds.png")[0]
    Image.fromarray(np.full(SIZE, 40, np.uint8)).save(path)
    with pytest.raises(ValueError, match=r"holds labelIds \[40\], outside the expected 0..33"):
        Cityscapes(root_copy, "train")[0]
    with pytest.raises(ValueError, match=r"holds class indices \[12\], outside the expected 0..11"):
        CamVid(make_camvid(tmp_path / "camvid", 12), "train")[0]


def test_crop_larger_than_the_image(cityscapes_root):
    with pytest.raises(ValueError, match="crop"):
        Cityscapes(cityscapes_root, "val", resize=None, crop=(128, 256))[0]
