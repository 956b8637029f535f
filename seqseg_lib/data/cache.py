"""A one-time cache of a dataset split's resized images and label maps, memory-mapped.

Decoding a 2048x1024 Cityscapes PNG and resizing it costs tens of milliseconds, more than a
whole ``paper`` training step on a GPU; the resize of Sec. 2.2 is deterministic, so it is done
once. ``ResizedItems`` holds a reader's items after the resize: the first ``prepare()`` (or
item) decodes every file of the split on all cores and writes one ``.npy`` array per key
(``image`` float32 [N, 3, H, W], label maps [N, H, W] in their smallest integer type); later
processes, and DataLoader workers, memory-map them and share the pages.

- Key: the reader, the resize, and each source file's absolute path, size and modification
  time. A changed file or resize is another key, so another folder: the cache is rebuilt.
- Safe when processes build it at once: each writes a private folder and renames it into
  place; the first rename wins and the others drop theirs. A folder is only ever seen whole.
- Where: ``$SEQSEG_CACHE``, else ``$XDG_CACHE_HOME/seqseg``, else ``~/.cache/seqseg``.
  ``SEQSEG_CACHE=off`` (or ``cache_dir=False``) decodes every item at every access.
"""

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from seqseg_lib.data.transforms import item_generator, resize_and_crop

CACHE_ENV = "SEQSEG_CACHE"
FORMAT = 1  # bump when what is stored changes
# label maps are stored in the smallest type that holds them; items give them as int64
STORED_TYPES = {"labels": torch.uint8, "instances": torch.int32}


def default_cache_dir() -> Path | None:
    """``$SEQSEG_CACHE`` (``off``: None), else the user's cache folder."""
    value = os.environ.get(CACHE_ENV)
    if value == "off":
        return None
    if value:
        return Path(value)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "seqseg"


def cache_key(kind: str, files: Sequence[Sequence[Path]], resize: tuple[int, int]) -> str:
    """A digest of the reader, the resize and every source file's path, size and mtime."""
    digest = hashlib.sha256(json.dumps([kind, FORMAT, list(resize)]).encode())
    for group in files:
        for path in group:
            stat = os.stat(path)
            digest.update(f"{Path(path).resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


class ResizedItems:
    """Items ``decode(index)`` (a dict of [3, H, W] ``image`` and [H, W] label maps) after the
    resize to ``resize``, read from the cache in ``cache_dir`` (None: the default folder,
    False: no cache, every access decodes).

    ``files[index]`` lists the source files of item ``index``: they key the cache.
    """

    def __init__(
        self,
        kind: str,
        files: Sequence[Sequence[Path]],
        resize: tuple[int, int],
        decode: Callable[[int], dict[str, torch.Tensor]],
        cache_dir: str | os.PathLike | None | bool = None,
    ) -> None:
        self.kind, self.files, self.resize, self.decode = kind, files, tuple(resize), decode
        if cache_dir is None or cache_dir is True:
            cache_dir = default_cache_dir()
        self.folder = None
        if cache_dir and len(files):
            self.folder = Path(cache_dir) / f"{kind}-{cache_key(kind, files, self.resize)}"
        self.arrays: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.folder is not None and self.arrays is None:
            self.prepare()
        if self.arrays is None:
            return self.resized(index)
        return {
            key: torch.from_numpy(np.array(array[index])).to(
                torch.float32 if key == "image" else torch.int64
            )
            for key, array in self.arrays.items()
        }

    def resized(self, index: int) -> dict[str, torch.Tensor]:
        """Item ``index`` decoded and resized (no cache)."""
        return resize_and_crop(self.decode(index), self.resize, None, None)

    def prepare(self) -> None:
        """Open the cache, building it first if no process has (on every core). A folder that
        cannot be written leaves the items uncached, with a warning."""
        if self.folder is None or self.arrays is not None:
            return
        if not self.folder.is_dir():
            try:
                self.build()
            except OSError as error:
                warnings.warn(
                    f"cannot write the data cache {str(self.folder)!r} ({error}); decoding "
                    f"every item instead (set {CACHE_ENV} to a writable folder, or to off)",
                    stacklevel=2,
                )
                self.folder = None
                return
        index = json.loads((self.folder / "index.json").read_text())
        self.arrays = {key: np.load(self.folder / f"{key}.npy", mmap_mode="r") for key in index}

    def build(self) -> None:
        """Write the cache of every resized item into its folder, through a scratch folder
        renamed into place: a process that loses the race to another drops its own copy."""
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{self.folder.name}.", dir=self.folder.parent))
        try:
            first = stored(self.resized(0))
            arrays = {
                key: np.lib.format.open_memmap(
                    scratch / f"{key}.npy",
                    mode="w+",
                    dtype=value.numpy().dtype,
                    shape=(len(self), *value.shape),
                )
                for key, value in first.items()
            }

            def write(index: int) -> None:
                item = first if index == 0 else stored(self.resized(index))
                for key, array in arrays.items():
                    array[index] = item[key].numpy()

            if get_worker_info() is None:
                with ThreadPoolExecutor(os.cpu_count()) as pool:  # decoding releases the GIL
                    list(pool.map(write, range(len(self))))
            else:  # in a DataLoader worker (forked): new threads may not run torch operations
                for index in range(len(self)):
                    write(index)
            for array in arrays.values():
                array.flush()
            (scratch / "index.json").write_text(json.dumps(list(arrays)))
            os.rename(scratch, self.folder)  # atomic; fails if another process got there first
        except OSError:
            if not self.folder.is_dir():
                raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def store_arrays(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as ``folder/{key}.npy`` and an index, into a private folder renamed into
    place: ``folder`` is only ever seen whole, and when several processes write it at once the
    first rename wins. Raises ``OSError`` when the folder cannot be written."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for key, array in arrays.items():
            np.save(scratch / f"{key}.npy", array)
        (scratch / "index.json").write_text(json.dumps(list(arrays)))
        os.rename(scratch, folder)  # atomic; fails if another process got there first
    except OSError:
        if not folder.is_dir():
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def load_arrays(folder: Path) -> dict[str, np.ndarray] | None:
    """The arrays ``store_arrays`` wrote in ``folder``, memory-mapped read-only; None when
    there is no such folder."""
    if not (folder / "index.json").is_file():
        return None
    index = json.loads((folder / "index.json").read_text())
    return {key: np.load(folder / f"{key}.npy", mmap_mode="r") for key in index}


def stored(item: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``item`` in the cache's types: ``image`` float32, label maps in ``STORED_TYPES``."""
    out = {}
    for key, value in item.items():
        kind = torch.float32 if key == "image" else STORED_TYPES[key]
        if kind != torch.float32 and value.numel() and int(value.max()) > torch.iinfo(kind).max:
            raise ValueError(f"{key} values up to {int(value.max())} do not fit {kind}")
        out[key] = value.to(kind).contiguous()
    return out


class StreetFiles(Dataset):
    """A real dataset's split read from files (``files[index]``: an item's source files, the
    image first), with Sec. 2.2's transform: resize to ``resize`` (cached by
    ``ResizedItems``), then a random (``train``, default for the train split) or centre crop
    of ``crop``, flipped at random with ``hflip``; ``resize=None, crop=None`` gives the files'
    content at full resolution. A subclass lists the files, then calls ``__init__``, and reads
    one item in ``decode``.

    Items are dicts of ``image`` float32 [3, H, W] in [0, 1], label maps int64 [H, W] and
    ``name``, the item's ``item_name``."""

    def __init__(
        self,
        kind: str,
        files: Sequence[Sequence[Path]],
        split: str,
        resize: tuple[int, int] | None,
        crop: tuple[int, int] | None,
        train: bool | None,
        hflip: bool,
        seed: int,
        cache_dir: str | os.PathLike | None | bool,
    ) -> None:
        self.files, self.split, self.resize, self.crop, self.seed = files, split, resize, crop, seed
        self.train = split == "train" if train is None else train
        self.hflip = hflip
        self.epoch = 0
        self.items = None
        if resize is not None:
            self.items = ResizedItems(kind, files, resize, self.decode, cache_dir)

    def decode(self, index: int) -> dict[str, torch.Tensor]:
        """Item ``index`` at the files' resolution, checked."""
        raise NotImplementedError

    def item_name(self, index: int) -> str:
        return self.files[index][0].stem

    def prepare(self) -> None:
        """Build or open the cache of resized items now (before DataLoader workers start)."""
        if self.items is not None:
            self.items.prepare()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        sample = self.decode(index) if self.items is None else self.items[index]
        generator = item_generator(self.seed, self.epoch, index) if self.train else None
        sample = resize_and_crop(sample, None, self.crop, generator, self.hflip)
        return sample | {"name": self.item_name(index)}
