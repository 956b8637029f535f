"""CamVid packed at one resize (``data.packed``): a run reads the same items as from the files,
crops and flips included under the same seed; with uint8 images each pixel is the files' value
rounded to 1/255."""

import numpy as np
import pytest
import torch
from PIL import Image

from seqseg_lib.__main__ import main
from seqseg_lib.data import CamVid
from seqseg_lib.data.camvid import pack_camvid
from seqseg_lib.data.packed import is_packed

RESIZE, CROP = (24, 32), (16, 24)


@pytest.fixture(scope="module")
def fake_camvid(tmp_path_factory):
    """A CamVid tree (SegNet layout) of random 36x48 frames, void (11) among the labels."""
    root = tmp_path_factory.mktemp("camvid")
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 3)):
        (root / split).mkdir()
        (root / f"{split}annot").mkdir()
        for index in range(count):
            image = rng.integers(0, 256, (36, 48, 3), dtype=np.uint8)
            labels = rng.integers(0, 12, (36, 48), dtype=np.uint8)
            Image.fromarray(image).save(root / split / f"f{index:03d}.png")
            Image.fromarray(labels).save(root / f"{split}annot" / f"f{index:03d}.png")
    return root


def readers(files_root, packed_root, split, **kwargs):
    kwargs = {"resize": RESIZE, "crop": CROP, "hflip": True, "seed": 5} | kwargs
    files = CamVid(files_root, split, cache_dir=False, **kwargs)
    return files, CamVid(packed_root, split, **kwargs)


def compare(files, packed, indices, exact: bool) -> None:
    assert len(files) == len(packed)
    for epoch in (0, 3):  # other crops and flips each epoch
        files.set_epoch(epoch)
        packed.set_epoch(epoch)
        for index in indices:
            a, b = files[index], packed[index]
            assert a["name"] == b["name"]
            assert a["labels"].dtype == b["labels"].dtype == torch.int64
            assert torch.equal(a["labels"], b["labels"])
            assert a["image"].dtype == b["image"].dtype == torch.float32
            if exact:
                assert torch.equal(a["image"], b["image"])
            else:
                rounded = a["image"].mul(255).round().div(255)
                assert torch.equal(rounded, b["image"])
                assert (a["image"] - b["image"]).abs().max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("image_type", ["float32", "uint8"])
def test_packed_items_equal_the_files(fake_camvid, tmp_path, image_type):
    packed_root = tmp_path / "packed"
    manifest = pack_camvid(fake_camvid, packed_root, RESIZE, ("train", "val"), image_type)
    assert is_packed(packed_root) and not is_packed(fake_camvid)
    assert manifest["resize"] == list(RESIZE)
    assert manifest["splits"]["train"]["count"] == 4
    for split, indices in (("train", [0, 2, 3]), ("val", [0, 1, 2])):
        files, packed = readers(fake_camvid, packed_root, split)
        compare(files, packed, indices, exact=image_type == "float32")
    files, packed = readers(fake_camvid, packed_root, "train", num_images=2)
    assert len(packed) == 2
    compare(files, packed, [1], exact=image_type == "float32")


def test_packed_folder_refuses_another_resize_or_split(fake_camvid, tmp_path):
    pack_camvid(fake_camvid, tmp_path, RESIZE, ("train",))
    with pytest.raises(ValueError, match="packed at the resize 24x32, not 12x16"):
        CamVid(tmp_path, "train", resize=(12, 16), crop=None)
    with pytest.raises(ValueError, match="not 'val'; pack it with --splits val"):
        CamVid(tmp_path, "val", resize=RESIZE, crop=CROP)


def test_the_source_fingerprint_follows_the_contents(fake_camvid, tmp_path):
    first = pack_camvid(fake_camvid, tmp_path / "a", RESIZE, ("val",))
    again = pack_camvid(fake_camvid, tmp_path / "b", RESIZE, ("val",))
    assert first["fingerprint"] == again["fingerprint"]
    changed = tmp_path / "changed"
    for folder in ("val", "valannot"):
        (changed / folder).mkdir(parents=True)
        for path in (fake_camvid / folder).iterdir():
            (changed / folder / path.name).write_bytes(path.read_bytes())
    labels = np.array(Image.open(changed / "valannot" / "f000.png"))
    Image.fromarray((labels + 1) % 11).save(changed / "valannot" / "f000.png")
    other = pack_camvid(changed, tmp_path / "c", RESIZE, ("val",))
    assert other["fingerprint"] != first["fingerprint"]


def test_real_camvid_packed_at_paper_reads_as_the_files(camvid_root, tmp_path, capsys):
    out = tmp_path / "packed"
    argv = ["data", "pack-camvid", "--data-root", str(camvid_root), "--out", str(out)]
    assert main(argv + ["--profile", "paper"]) == 0
    assert (
        "CamVid at 140x187 (train 367, val 101, test 233 images, uint8)" in capsys.readouterr().out
    )
    size = sum(p.stat().st_size for p in out.iterdir())
    assert size < 45e6  # travels with the repository (64 MiB in all)
    kwargs = {"resize": (140, 187), "crop": (128, 176)}
    for split, indices in (("train", [0, 100, 366]), ("val", [0, 50, 100]), ("test", [0, 232])):
        files, packed = readers(camvid_root, out, split, **kwargs)
        compare(files, packed, indices, exact=False)
