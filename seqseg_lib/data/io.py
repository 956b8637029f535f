"""Reading image files with errors that name the file and say what was expected."""

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def resolve_root(root: str | os.PathLike | None, env_var: str, dataset: str) -> Path:
    """``root``, else the environment variable ``env_var``; it must be an existing folder."""
    if root is None:
        root = os.environ.get(env_var)
        if not root:
            raise ValueError(
                f"no {dataset} root given: pass root=... (--data-root) or set {env_var}"
            )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise ValueError(f"{dataset} root {str(path)!r} does not exist or is not a folder")
    return path


def read_png(path: Path, mode: str | None = None) -> np.ndarray:
    """Decode an image file fully; a truncated or corrupt file raises ``ValueError`` naming it."""
    try:
        with Image.open(path) as image:
            image.load()
            if mode is not None and image.mode != mode:
                image = image.convert(mode)
            return np.array(image)
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"cannot read image {str(path)!r}: {error}") from None


def image_to_tensor(array: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] -> float32 [3, H, W] in [0, 1]."""
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(255)


def check_same_size(image: np.ndarray, label: np.ndarray, image_path: Path, label_path: Path):
    if image.shape[:2] != label.shape[:2]:
        raise ValueError(
            f"image {str(image_path)!r} is {image.shape[1]}x{image.shape[0]} but its label "
            f"{str(label_path)!r} is {label.shape[1]}x{label.shape[0]} (expected the same size)"
        )


def check_max_value(array: np.ndarray, maximum: int, path: Path, what: str) -> None:
    if array.size and int(array.max()) > maximum:
        bad = sorted({int(v) for v in np.unique(array) if v > maximum})[:10]
        raise ValueError(f"{str(path)!r} holds {what} {bad}, outside the expected 0..{maximum}")


def pair_files(images: dict[str, Path], labels: dict[str, Path], where: str) -> list[str]:
    """Keys present in both; an image without a label (or the reverse) is an error."""
    missing_labels = sorted(set(images) - set(labels))
    missing_images = sorted(set(labels) - set(images))
    if missing_labels:
        path = images[missing_labels[0]]
        raise ValueError(
            f"{len(missing_labels)} image(s) in {where} have no label file, e.g. {str(path)!r}"
        )
    if missing_images:
        path = labels[missing_images[0]]
        raise ValueError(
            f"{len(missing_images)} label file(s) in {where} have no image, e.g. {str(path)!r}"
        )
    return sorted(images)
