"""SyntheticCityscapes: procedural street scenes in the Cityscapes label space, no download.

The project's default dataset, so that every experiment runs without the real Cityscapes
(Sec. 2.2 trains on it). The scenes are drawn by ``synthetic_scenes.render_scene``; this
module makes them a dataset with Cityscapes' items, splits, resize and crop.
"""

import hashlib
import json
import multiprocessing
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from seqseg_lib.data.cache import default_cache_dir, load_arrays, store_arrays
from seqseg_lib.data.io import image_to_tensor
from seqseg_lib.data.labels import CITYSCAPES
from seqseg_lib.data.synthetic_scenes import LABEL_COLOURS, render_scene
from seqseg_lib.data.transforms import item_generator, resize_and_crop

SPLITS = ("train", "val", "test")
DEFAULT_NUM_IMAGES = {"train": 600, "val": 150, "test": 150}
SCENES_FORMAT = 1  # bump when what the cache of rendered scenes stores changes


class SyntheticCityscapes(Dataset):
    """Procedural street scenes with Cityscapes labelIds; the project's default dataset.

    Items are dicts like ``Cityscapes``'s: ``image`` float32 [3, H, W] in [0, 1], ``labels``
    int64 [H, W] (labelIds 0..33), ``instances`` int64 [H, W] (labelId * 1000 + k for
    things, k = 0, 1, ... per class and image; the labelId elsewhere), ``name`` str.

    Scene ``index`` of ``split`` depends only on ``(seed, split, index)`` and is generated at
    ``size`` (H, W) once, then cached. Sec. 2.2's transform follows: resize to ``resize``,
    then a random (``train``, default for the train split) or centre crop of ``crop``; the
    random crop is drawn from ``item_generator(seed, epoch, index)``, so ``set_epoch``
    changes crops but never scenes; ``hflip`` adds random horizontal flips of training crops.
    ``resize=None, crop=None`` returns the scene at ``size``.

    Each scene is kept after its resize (0.5 MB at 140x280). ``prepare()`` renders them all at
    once into one tensor per key: DataLoader workers, forked afterwards, then read the scenes
    from the parent's pages (copy-on-write, never written) instead of each rendering its own.
    """

    label_space = CITYSCAPES
    class_names = CITYSCAPES.eval_names

    def __init__(
        self,
        root: None = None,
        split: str = "train",
        *,
        num_images: int | None = None,
        size: tuple[int, int] = (256, 512),
        seed: int = 0,
        resize: tuple[int, int] | None = (140, 280),
        crop: tuple[int, int] | None = (128, 256),
        train: bool | None = None,
        hflip: bool = False,
    ) -> None:
        if root is not None:
            raise ValueError(
                f"synthetic scenes are generated, not read: root must be None, got {root!r}"
            )
        if split not in SPLITS:
            raise ValueError(f"unknown synthetic split {split!r}; valid: {', '.join(SPLITS)}")
        num_images = DEFAULT_NUM_IMAGES[split] if num_images is None else num_images
        if num_images < 0:
            raise ValueError(f"num_images must be >= 0, got {num_images}")
        if len(size) != 2 or min(size) < 16:
            raise ValueError(f"size must be (height, width), both >= 16, got {size}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.split, self.num_images, self.seed = split, int(num_images), int(seed)
        self.size = (int(size[0]), int(size[1]))
        self.resize, self.crop = resize, crop
        self.train = split == "train" if train is None else train
        self.hflip = hflip
        self.epoch = 0
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._resized_cache: dict[int, dict[str, torch.Tensor]] = {}
        self._stacked: dict[str, torch.Tensor] | None = None  # filled by ``prepare``

    def prepare(
        self, processes: int | None = None, cache_dir: str | Path | None | bool = None
    ) -> None:
        """Render and resize every scene now, into one tensor per key (see the class), on
        ``processes`` processes (default: every core; scenes are independent, and rendering
        is single-threaded numpy), or read them from the cache of rendered scenes.

        The cache (in ``cache_dir``, default ``data.cache.default_cache_dir()``:
        ``$SEQSEG_CACHE``, ``off`` for none) holds one folder per split, seed, number of
        scenes, size and resize, and version of the renderer's source: the first process that
        renders a split writes it (atomically), every later one, a notebook's next run or
        another torchrun process, memory-maps it. A cache that cannot be written leaves the
        scenes rendered in memory."""
        if self._stacked is not None or not self.num_images:
            return
        folder = self.cache_folder(cache_dir)
        arrays = load_arrays(folder) if folder is not None else None
        if arrays is None:
            self._render_all(processes)
            if folder is not None:
                try:
                    store_arrays(folder, {k: v.numpy() for k, v in self._stacked.items()})
                except OSError as error:
                    warnings.warn(
                        f"cannot write the cache of rendered scenes {str(folder)!r} ({error})",
                        stacklevel=2,
                    )
            return
        with warnings.catch_warnings():  # read-only pages: nothing ever writes to them
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            self._stacked = {key: torch.from_numpy(array) for key, array in arrays.items()}

    def cache_folder(self, cache_dir: str | Path | None | bool = None) -> Path | None:
        """Where the rendered scenes of this split are cached (None: no cache; ``cache_dir``
        False: none)."""
        if cache_dir is False:  # no cache, as for ``data.cache.ResizedItems``
            return None
        cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
        if cache_dir is None:
            return None
        renderer = hashlib.sha256()
        for module in (__file__, render_scene.__code__.co_filename):
            renderer.update(Path(module).read_bytes())
        key = [
            SCENES_FORMAT,
            self.split,
            self.seed,
            self.num_images,
            list(self.size),
            None if self.resize is None else list(self.resize),
            renderer.hexdigest(),
        ]
        digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:24]
        return cache_dir / f"synthetic-{self.split}-{digest}"

    def _render_all(self, processes: int | None) -> None:
        first = self._resized_compact(0)
        stacked = {
            key: torch.empty((self.num_images, *value.shape), dtype=value.dtype)
            for key, value in first.items()
        }
        processes = min(processes or os.cpu_count() or 1, self.num_images)
        missing = [i for i in range(self.num_images) if i not in self._resized_cache]
        if processes > 1 and len(missing) >= 8 * processes:  # else not worth the forks
            global _PREPARING
            _PREPARING = self  # what the forked processes render from
            try:
                context = multiprocessing.get_context("fork")
                # one thread per process, as in DataLoader workers (forked OpenMP pools hang)
                with context.Pool(processes, torch.set_num_threads, (1,)) as pool:
                    rendered = pool.imap(_render_compact, missing, chunksize=8)
                    for index, item in zip(missing, rendered):
                        self._resized_cache[index] = {
                            k: torch.from_numpy(v) for k, v in item.items()
                        }
            finally:
                _PREPARING = None
        for index in range(self.num_images):
            for key, value in self._resized_compact(index).items():
                stacked[key][index] = value
            self._resized_cache.pop(index, None)
        self._stacked = stacked

    def set_epoch(self, epoch: int) -> None:
        """Select the random crops of ``epoch``; the scenes stay the same."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_images

    def scene(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scene ``index`` at ``size``: image uint8 [H, W, 3], labelIds uint8 [H, W],
        instanceIds uint16 [H, W]. Cached; treat the arrays as read-only."""
        if not -self.num_images <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} images")
        index %= self.num_images
        if index not in self._cache:
            rng = np.random.default_rng([self.seed, SPLITS.index(self.split), index])
            image, labels, instances = render_scene(rng, *self.size)
            self._cache[index] = (image, labels, instances.astype(np.uint16))
        return self._cache[index]

    def __getitem__(self, index: int) -> dict:
        if not -self.num_images <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} images")
        index %= self.num_images
        sample = self._resized(index)
        generator = item_generator(self.seed, self.epoch, index) if self.train else None
        sample = resize_and_crop(sample, None, self.crop, generator, self.hflip)
        # its own memory: the scenes may be the cache's read-only pages
        sample["image"] = sample["image"].clone()
        return sample | {"name": f"synthetic_{self.split}_{index:06d}"}

    def _resized(self, index: int) -> dict[str, torch.Tensor]:
        """Scene ``index`` after the (deterministic) resize, label maps as int64."""
        compact = self._resized_compact(index)
        return {
            "image": compact["image"],
            "labels": compact["labels"].long(),
            "instances": compact["instances"].long(),
        }

    def _resized_compact(self, index: int) -> dict[str, torch.Tensor]:
        """Scene ``index`` after the resize, cached compactly (labels uint8, instances int32):
        training only re-draws the crop, so each scene is rendered and resized once."""
        if self._stacked is not None:
            return {key: value[index] for key, value in self._stacked.items()}
        if index not in self._resized_cache:
            image, labels, instances = self.scene(index)
            sample = {
                "image": image_to_tensor(image),
                "labels": torch.from_numpy(labels.astype(np.int64)),
                "instances": torch.from_numpy(instances.astype(np.int64)),
            }
            sample = resize_and_crop(sample, self.resize, None, None)
            self._resized_cache[index] = {
                "image": sample["image"],
                "labels": sample["labels"].to(torch.uint8),
                "instances": sample["instances"].to(torch.int32),
            }
            if self.resize is not None:
                del self._cache[index]  # keep one copy per scene
        return self._resized_cache[index]

    def write_cityscapes_layout(self, root: str | os.PathLike, city: str = "synthville") -> Path:
        """Write every scene of this split at ``size`` (no resize or crop) as Cityscapes files.

        ``root/leftImg8bit/{split}/{city}/{city}_000000_{i:06d}_leftImg8bit.png`` (RGB) and,
        under ``root/gtFine/{split}/{city}/``, ``..._gtFine_labelIds.png`` (8-bit),
        ``..._gtFine_instanceIds.png`` (16-bit) and ``..._gtFine_color.png`` (RGB). Returns
        ``root``, ready for ``Cityscapes(root, split)``.
        """
        if not city or "_" in city or "/" in city or "\\" in city:
            raise ValueError(f"city must be a non-empty name without '_' or slashes, got {city!r}")
        root = Path(root)
        image_dir = root / "leftImg8bit" / self.split / city
        label_dir = root / "gtFine" / self.split / city
        image_dir.mkdir(parents=True, exist_ok=True)
        label_dir.mkdir(parents=True, exist_ok=True)
        for index in range(len(self)):
            image, labels, instances = self.scene(index)
            stem = f"{city}_000000_{index:06d}"
            Image.fromarray(image).save(image_dir / f"{stem}_leftImg8bit.png")
            Image.fromarray(labels).save(label_dir / f"{stem}_gtFine_labelIds.png")
            Image.fromarray(instances).save(label_dir / f"{stem}_gtFine_instanceIds.png")
            Image.fromarray(LABEL_COLOURS[labels]).save(label_dir / f"{stem}_gtFine_color.png")
        return root


_PREPARING: SyntheticCityscapes | None = None


def _render_compact(index: int) -> dict[str, np.ndarray]:
    """Scene ``index`` of the dataset being prepared, resized, as arrays (in a forked process:
    arrays travel back pickled, never through shared-memory file descriptors)."""
    return {key: value.numpy() for key, value in _PREPARING._resized_compact(index).items()}
