"""Cityscapes (Cordts et al., 2016), fine annotations, read from the official layout.

    root/leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
    root/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png
    root/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_instanceIds.png

``root`` may also come from ``CITYSCAPES_DATASET``, the variable cityscapesscripts uses.
"""

import os
from pathlib import Path

import numpy as np
import torch

from seqseg_lib.data.cache import StreetFiles
from seqseg_lib.data.io import (
    check_max_value,
    check_same_size,
    image_to_tensor,
    pair_files,
    read_png,
    resolve_root,
)
from seqseg_lib.data.labels import CITYSCAPES

SPLITS = ("train", "val", "test")


class Cityscapes(StreetFiles):
    """Items are dicts: ``image`` float32 [3, H, W] in [0, 1], ``labels`` int64 [H, W]
    (labelIds 0..33; the table's -1, license plate, is not written in the files),
    ``instances`` int64 [H, W] (labelId * 1000 + k for things, the labelId elsewhere),
    ``name`` str.

    Sec. 2.2's transform: resize to ``resize``, then a random (``train``) or centre crop of
    ``crop``. ``resize=None, crop=None`` returns the files' content at full resolution.
    ``num_images`` keeps the split's first images (None: all). The resized images and labels
    are cached on disk after their first decoding (``cache.ResizedItems``; ``cache_dir=False``
    turns that off).
    """

    label_space = CITYSCAPES
    class_names = CITYSCAPES.eval_names

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        split: str = "train",
        *,
        resize: tuple[int, int] | None = (140, 280),
        crop: tuple[int, int] | None = (128, 256),
        train: bool | None = None,
        hflip: bool = False,
        seed: int = 0,
        num_images: int | None = None,
        cache_dir: str | os.PathLike | None | bool = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown Cityscapes split {split!r}; valid: {', '.join(SPLITS)}")
        self.root = check_cityscapes_root(resolve_root(root, "CITYSCAPES_DATASET", "Cityscapes"))
        files = list_split(self.root, split)[:num_images]
        super().__init__("cityscapes", files, split, resize, crop, train, hflip, seed, cache_dir)

    def item_name(self, index: int) -> str:
        return self.files[index][0].name.removesuffix("_leftImg8bit.png")

    def decode(self, index: int) -> dict[str, torch.Tensor]:
        """Item ``index`` at the files' resolution, checked."""
        image_path, label_path, instance_path = self.files[index]
        image = read_png(image_path, "RGB")
        labels = read_png(label_path)
        instances = read_png(instance_path).astype(np.int64)
        check_same_size(image, labels, image_path, label_path)
        check_same_size(image, instances, image_path, instance_path)
        check_max_value(labels, 33, label_path, "labelIds")
        return {
            "image": image_to_tensor(image),
            "labels": torch.from_numpy(labels.astype(np.int64)),
            "instances": torch.from_numpy(instances),
        }


def check_cityscapes_root(root: Path) -> Path:
    """The folder holding ``leftImg8bit/`` and ``gtFine/``, with hints for common mistakes."""
    if (root / "leftImg8bit").is_dir() and (root / "gtFine").is_dir():
        return root
    if root.name in ("gtFine", "leftImg8bit"):
        raise ValueError(
            f"Cityscapes root {str(root)!r} points at {root.name}/; "
            f"pass its parent {str(root.parent)!r}, which holds leftImg8bit/ and gtFine/"
        )
    raise ValueError(
        f"{str(root)!r} is not a Cityscapes root: expected the folders leftImg8bit/ and gtFine/ "
        f"in it, found {sorted(p.name for p in root.iterdir())[:8]}"
    )


def list_split(root: Path, split: str) -> list[tuple[Path, Path, Path]]:
    """(image, labelIds, instanceIds) paths of a split, sorted by name."""
    image_dir, label_dir = root / "leftImg8bit" / split, root / "gtFine" / split
    for folder in (image_dir, label_dir):
        if not folder.is_dir():
            raise ValueError(f"Cityscapes split folder {str(folder)!r} is missing")
    files = []
    for city in sorted(p.name for p in image_dir.iterdir() if p.is_dir()):
        if not (label_dir / city).is_dir():
            raise ValueError(f"city folder {str(label_dir / city)!r} is missing")
        images = {
            p.name.removesuffix("_leftImg8bit.png"): p
            for p in (image_dir / city).glob("*_leftImg8bit.png")
        }
        labels = {
            p.name.removesuffix("_gtFine_labelIds.png"): p
            for p in (label_dir / city).glob("*_gtFine_labelIds.png")
        }
        for key in pair_files(images, labels, str(image_dir / city)):
            instance_path = label_dir / city / f"{key}_gtFine_instanceIds.png"
            if not instance_path.is_file():
                raise ValueError(f"instance file {str(instance_path)!r} is missing")
            files.append((images[key], labels[key], instance_path))
    if not files:
        raise ValueError(f"no *_leftImg8bit.png images found under {str(image_dir)!r}")
    return files
