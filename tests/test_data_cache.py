"""The memory-mapped cache of resized real-dataset files, and rendered scenes shared with
DataLoader workers: the same items as without them, built once, rebuilt on change, safe when
built by two processes at once."""

import multiprocessing
import os
import time

import pytest
import torch
from torch.utils.data import DataLoader

from seqseg_lib.data import CamVid, Cityscapes, SyntheticCityscapes, cache, cityscapes, synthetic


@pytest.fixture(scope="module")
def cityscapes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes")
    scenes = SyntheticCityscapes(None, "train", num_images=5, size=(96, 192), seed=3)
    return scenes.write_cityscapes_layout(root)


def assert_same_items(a, b):
    assert len(a) == len(b)
    for index in range(len(a)):
        x, y = a[index], b[index]
        assert x.keys() == y.keys()
        for key in x:
            if isinstance(x[key], torch.Tensor):
                assert x[key].dtype == y[key].dtype and torch.equal(x[key], y[key]), key
            else:
                assert x[key] == y[key]


def reader(root, cache_dir, **kwargs):
    kwargs = {"resize": (70, 140), "crop": (64, 128), "cache_dir": cache_dir} | kwargs
    return Cityscapes(root, "train", **kwargs)


def test_cached_items_equal_decoded_ones(cityscapes_root, tmp_path):
    decoded = reader(cityscapes_root, False)
    cached = reader(cityscapes_root, tmp_path)
    for epoch in (0, 1):  # random crops of two epochs
        decoded.set_epoch(epoch)
        cached.set_epoch(epoch)
        assert_same_items(decoded, cached)
    (folder,) = tmp_path.iterdir()
    assert folder.name.startswith("cityscapes-")
    assert sorted(p.name for p in folder.iterdir()) == [
        "image.npy",
        "index.json",
        "instances.npy",
        "labels.npy",
    ]
    assert decoded.items.folder is None and not list(tmp_path.glob(".*"))  # no scratch left


def test_a_built_cache_is_read_without_decoding(cityscapes_root, tmp_path, monkeypatch):
    expected = [reader(cityscapes_root, tmp_path)[i] for i in range(2)]
    monkeypatch.setattr(cityscapes, "read_png", lambda *a: pytest.fail("decoded a file"))
    again = reader(cityscapes_root, tmp_path)
    assert_same_items(expected, [again[i] for i in range(2)])


def test_a_changed_file_or_resize_rebuilds(cityscapes_root, tmp_path):
    root = tmp_path / "copy"
    SyntheticCityscapes(None, "train", num_images=2, size=(96, 192)).write_cityscapes_layout(root)
    before = reader(root, tmp_path / "cache")[0]["image"]
    reader(root, tmp_path / "cache", resize=(80, 160))[0]
    assert len(list((tmp_path / "cache").iterdir())) == 2  # one folder per resize
    # another image under the same name, with a new modification time
    image = next((root / "leftImg8bit").rglob("*_000000_leftImg8bit.png"))
    other = next((cityscapes_root / "leftImg8bit").rglob("*_000003_leftImg8bit.png"))
    image.write_bytes(other.read_bytes())
    os.utime(image, ns=(time.time_ns(), time.time_ns() + 10**9))
    after = reader(root, tmp_path / "cache")[0]["image"]
    assert not torch.equal(before, after)
    assert torch.equal(after, reader(root, False)[0]["image"])
    assert len(list((tmp_path / "cache").iterdir())) == 3


def _prepare(args):
    root, cache_dir = args
    dataset = reader(root, cache_dir)
    dataset.prepare()
    return dataset[1]["image"].sum().item()


def test_two_processes_building_at_once_agree(cityscapes_root, tmp_path):
    with multiprocessing.get_context("spawn").Pool(2) as pool:  # two separate processes
        sums = pool.map(_prepare, [(cityscapes_root, tmp_path)] * 2)
    assert sums[0] == sums[1] == reader(cityscapes_root, False)[1]["image"].sum().item()
    assert len(list(tmp_path.iterdir())) == 1  # one folder, no scratch left behind
    # a builder that loses the race drops its own copy and reads the winner's
    late = reader(cityscapes_root, tmp_path)
    late.items.build()
    assert len(list(tmp_path.iterdir())) == 1


def test_cache_off_and_unwritable_folders_decode_every_item(cityscapes_root, tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, "off")
    assert reader(cityscapes_root, None).items.folder is None
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "env"))
    assert reader(cityscapes_root, None).items.folder.parent == tmp_path / "env"
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    dataset = reader(cityscapes_root, blocked)
    with pytest.warns(UserWarning, match="cannot write the data cache .*SEQSEG_CACHE"):
        item = dataset[0]
    assert torch.equal(item["image"], reader(cityscapes_root, False)[0]["image"])


def test_camvid_cached_items_equal_decoded_ones(camvid_root, tmp_path):
    decoded = CamVid(camvid_root, "val", num_images=3, cache_dir=False)
    cached = CamVid(camvid_root, "val", num_images=3, cache_dir=tmp_path)
    cached.prepare()
    assert_same_items(decoded, cached)
    assert cached.items.arrays["labels"].dtype.name == "uint8"


def test_prepared_scenes_are_shared_with_workers_not_rendered_again(monkeypatch):
    geometry = {"num_images": 20, "size": (64, 128), "resize": (70, 140), "crop": (64, 128)}
    plain = SyntheticCityscapes(None, "train", **geometry)
    shared = SyntheticCityscapes(None, "train", **geometry)
    shared.prepare()
    assert_same_items(plain, shared)
    monkeypatch.setattr(synthetic, "render_scene", lambda *a: pytest.fail("rendered again"))
    loader = DataLoader(
        shared,
        batch_size=5,
        num_workers=2,
        multiprocessing_context="fork",
        collate_fn=lambda items: torch.stack([i["image"] for i in items]),
    )
    batches = list(loader)
    assert torch.equal(torch.cat(batches), torch.stack([plain[i]["image"] for i in range(20)]))


def test_a_cache_first_built_inside_a_dataloader_worker(cityscapes_root, tmp_path):
    """A worker (forked) that finds no cache builds it on its own thread, not a thread pool."""
    dataset = reader(cityscapes_root, tmp_path, train=False)
    loader = DataLoader(
        dataset,
        batch_size=5,
        num_workers=1,
        multiprocessing_context="fork",
        collate_fn=lambda items: torch.stack([i["image"] for i in items]),
    )
    (batch,) = list(loader)
    expected = reader(cityscapes_root, False, train=False)
    assert torch.equal(batch, torch.stack([expected[i]["image"] for i in range(5)]))
    assert len(list(tmp_path.iterdir())) == 1
