"""Datasets: one file per dataset. ``build_dataset`` picks one by name."""

from torch.utils.data import Dataset

from seqseg_lib.data.camvid import CamVid
from seqseg_lib.data.cityscapes import Cityscapes
from seqseg_lib.data.labels import CAMVID, CITYSCAPES, IGNORE_INDEX, LabelSpace

SEMANTIC_DATASETS = ("synthetic", "cityscapes", "camvid")


def build_dataset(
    name: str,
    root: str | None,
    split: str,
    limit: int | None = None,
    **kwargs,
) -> Dataset:
    """A semantic dataset by name; ``limit`` keeps its first items (all for the synthetic one,
    whose size is the limit)."""
    if name == "synthetic":
        from seqseg_lib.data.synthetic import SyntheticCityscapes

        return SyntheticCityscapes(split, num_images=limit, **kwargs)
    if name == "cityscapes":
        return Cityscapes(root, split, limit=limit, **kwargs)
    if name == "camvid":
        return CamVid(root, split, limit=limit, **kwargs)
    raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(SEMANTIC_DATASETS)}")


__all__ = [
    "CAMVID",
    "CITYSCAPES",
    "IGNORE_INDEX",
    "CamVid",
    "Cityscapes",
    "LabelSpace",
    "build_dataset",
]
