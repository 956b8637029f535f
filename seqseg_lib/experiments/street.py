"""The street scenes every street experiment trains on (Seq2Seg, U-Net, the Hungarian U-Net
of Sec. 4): the configured dataset's train and validation splits."""

from torch.utils.data import Dataset

from seqseg_lib import paper
from seqseg_lib.config import Config
from seqseg_lib.data import build_dataset

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
