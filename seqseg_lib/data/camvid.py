"""CamVid (Brostow et al., 2008) in the SegNet layout: ``train/`` with ``trainannot/``, etc.

Annotations are single-channel PNGs with class indices 0..10 and 11 for "Unlabelled",
which becomes ``IGNORE_INDEX``. ``root`` may also come from ``CAMVID_ROOT``, and may be a
folder of CamVid packed at one resize (``seqseg_lib.data.packed``, recognised by its manifest).
"""

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from seqseg_lib.data.cache import StreetFiles, stored
from seqseg_lib.data.io import (
    check_max_value,
    check_same_size,
    image_to_tensor,
    pair_files,
    read_png,
    resolve_root,
)
from seqseg_lib.data.labels import CAMVID, IGNORE_INDEX
from seqseg_lib.data.packed import (
    FORMAT,
    IMAGE_TYPES,
    KIND,
    MANIFEST,
    PackedItems,
    fingerprint,
    is_packed,
)

SPLITS = ("train", "val", "test")
VOID = 11


class CamVid(StreetFiles):
    """Items are dicts: ``image`` float32 [3, H, W] in [0, 1], ``labels`` int64 [H, W]
    (0..10, ``IGNORE_INDEX`` for void), ``name`` str. Same resize and crop as Cityscapes;
    ``num_images`` keeps the split's first images (None: all). The resized images and labels
    are cached on disk after their first decoding (``cache.ResizedItems``; ``cache_dir=False``
    turns that off). A packed ``root`` (``data.packed``) gives its items at the resize it was
    packed at (another resize is a ``ValueError``), through the same crop and flip.
    """

    label_space = CAMVID
    class_names = CAMVID.eval_names

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        split: str = "train",
        *,
        resize: tuple[int, int] | None = (140, 187),
        crop: tuple[int, int] | None = (128, 176),
        train: bool | None = None,
        hflip: bool = False,
        seed: int = 0,
        num_images: int | None = None,
        cache_dir: str | os.PathLike | None | bool = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown CamVid split {split!r}; valid: {', '.join(SPLITS)}")
        self.root = resolve_root(root, "CAMVID_ROOT", "CamVid")
        if is_packed(self.root):
            packed = PackedItems(self.root, split, resize, num_images)
            files = [(Path(f"{name}.png"),) for name in packed.names]  # item_name: the stem
            super().__init__("camvid", files, split, resize, crop, train, hflip, seed, False)
            self.items = packed
            return
        image_dir, label_dir = self.root / split, self.root / f"{split}annot"
        for folder in (image_dir, label_dir):
            if not folder.is_dir():
                raise ValueError(
                    f"{str(self.root)!r} is not a CamVid root (SegNet layout): "
                    f"the folder {folder.name}/ is missing"
                )
        images = {p.name: p for p in image_dir.glob("*.png")}
        labels = {p.name: p for p in label_dir.glob("*.png")}
        pairs = pair_files(images, labels, str(image_dir))[:num_images]
        files = [(images[k], labels[k]) for k in pairs]
        if not files:
            raise ValueError(f"no .png images found in {str(image_dir)!r}")
        super().__init__("camvid", files, split, resize, crop, train, hflip, seed, cache_dir)

    def decode(self, index: int) -> dict[str, torch.Tensor]:
        """Item ``index`` at the files' resolution, checked (void as ``IGNORE_INDEX``)."""
        image_path, label_path = self.files[index]
        image, labels = read_png(image_path, "RGB"), read_png(label_path)
        if labels.ndim != 2:
            raise ValueError(f"{str(label_path)!r} should be single-channel, got {labels.shape}")
        check_same_size(image, labels, image_path, label_path)
        check_max_value(labels, VOID, label_path, "class indices")
        labels = np.where(labels == VOID, IGNORE_INDEX, labels).astype(np.int64)
        return {"image": image_to_tensor(image), "labels": torch.from_numpy(labels)}


def pack_camvid(
    data_root: str | os.PathLike,
    out: str | os.PathLike,
    resize: tuple[int, int],
    splits: tuple[str, ...] = ("train", "val", "test"),
    image_type: str = "uint8",
) -> dict:
    """Write ``out/{split}.npz`` (``image`` [N, 3, H, W] of ``image_type``, ``labels``
    [N, H, W] uint8) and ``out/manifest.json`` for CamVid at ``data_root`` resized to
    ``resize``; returns the manifest."""
    if image_type not in IMAGE_TYPES:
        raise ValueError(f"image type {image_type!r}: expected one of {', '.join(IMAGE_TYPES)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "kind": KIND,
        "format": FORMAT,
        "resize": list(resize),
        "image_type": image_type,
        "source": str(Path(data_root).resolve()),
        "splits": {},
    }
    digests = []
    for split in splits:
        dataset = CamVid(data_root, split, resize=resize, crop=None, train=False, cache_dir=False)

        def item(index: int, dataset=dataset) -> dict[str, np.ndarray]:
            values = stored(dataset.items.resized(index))
            image = values["image"]
            if image_type == "uint8":
                image = image.mul(255).round_().clamp_(0, 255).to(torch.uint8)
            return {"image": image.numpy(), "labels": values["labels"].numpy()}

        with ThreadPoolExecutor(os.cpu_count()) as pool:  # decoding releases the GIL
            items = list(pool.map(item, range(len(dataset))))
        arrays = {key: np.stack([i[key] for i in items]) for key in ("image", "labels")}
        np.savez_compressed(out / f"{split}.npz", **arrays)
        names = [dataset.item_name(i) for i in range(len(dataset))]
        digests.append(fingerprint(dataset.files))
        manifest["splits"][split] = {"count": len(names), "names": names, "source": digests[-1]}
    manifest["fingerprint"] = hashlib.sha256("".join(digests).encode()).hexdigest()[:24]
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
