"""CamVid packed at one resize: a folder of arrays small enough to travel with the repository.

A GPU machine that receives only the working tree (tens of MB) cannot receive CamVid's PNGs
(180 MB; notebook 01's figures draw from the test split too). ``camvid.pack_camvid`` writes each
split's items after the resize of a profile (Sec. 2.2's resize before the crop; ``paper``:
140x187), in the stored types of the file cache (``cache.stored``: labels uint8, void as
``IGNORE_INDEX``), images either as uint8 (the default: rounded from the resize, a quarter of
float32's bytes) or float32 (exactly the resize), into ``{split}.npz`` plus ``manifest.json``
(``MANIFEST``: the kind, the resize, the image type, each split's item names, and a
fingerprint of the source files' contents).

``CamVid(root=folder)`` recognises such a folder by its manifest and reads its items instead of
the files; the crop, flip and their random draws are the same code as for the files, so a run
reads the same crops. With float32 images every item is bit-identical to the files'; with uint8
the labels and crop windows are, and each image pixel is the files' value rounded to the
nearest 1/255 (at most 0.5/255 from it).

    python -m seqseg_lib data pack-camvid --data-root PATH --profile paper --out FOLDER
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

MANIFEST = "manifest.json"
KIND = "camvid-packed"
FORMAT = 1
IMAGE_TYPES = ("uint8", "float32")


def is_packed(root: str | os.PathLike | None) -> bool:
    """Whether ``root`` is a folder that ``camvid.pack_camvid`` wrote."""
    if root is None:
        return False
    path = Path(root).expanduser() / MANIFEST
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("kind") == KIND
    except (json.JSONDecodeError, AttributeError):
        return False


def read_manifest(root: str | os.PathLike) -> dict:
    return json.loads((Path(root).expanduser() / MANIFEST).read_text())


def fingerprint(files) -> str:
    """A digest of the source files' names and contents (not their paths or times: the same
    data anywhere has the same fingerprint)."""
    digest = hashlib.sha256()
    for group in files:
        for path in group:
            digest.update(Path(path).name.encode() + b"\0")
            digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
    return digest.hexdigest()[:24]


class PackedItems:
    """A packed split's items after the resize: ``image`` float32 [3, H, W] in [0, 1] and
    ``labels`` int64 [H, W], as ``cache.ResizedItems`` gives them; ``num_images`` keeps the
    first ones."""

    def __init__(
        self, root: str | os.PathLike, split: str, resize, num_images: int | None = None
    ) -> None:
        root = Path(root).expanduser()
        manifest = read_manifest(root)
        if resize is None or tuple(manifest["resize"]) != tuple(resize):
            size = "x".join(map(str, manifest["resize"]))
            raise ValueError(
                f"{str(root)!r} holds CamVid packed at the resize {size}, not "
                f"{'the files size' if resize is None else 'x'.join(map(str, resize))}; pack it "
                "for this profile (python -m seqseg_lib data pack-camvid --profile ...)"
            )
        if split not in manifest["splits"]:
            raise ValueError(
                f"{str(root)!r} holds the packed CamVid splits {', '.join(manifest['splits'])}, "
                f"not {split!r}; pack it with --splits {split}"
            )
        self.names = manifest["splits"][split]["names"][:num_images]
        with np.load(root / f"{split}.npz") as arrays:
            self.arrays = {key: arrays[key][: len(self.names)] for key in ("image", "labels")}
        self.scale = 255.0 if self.arrays["image"].dtype == np.uint8 else None

    def __len__(self) -> int:
        return len(self.names)

    def prepare(self) -> None:
        """Nothing to build: the arrays are read when the split is opened."""

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = torch.from_numpy(np.array(self.arrays["image"][index])).to(torch.float32)
        if self.scale is not None:
            image = image.div_(self.scale)
        labels = torch.from_numpy(np.array(self.arrays["labels"][index])).to(torch.int64)
        return {"image": image, "labels": labels}
