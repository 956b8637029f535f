"""Label spaces: which integer means which class, for training and for evaluation.

A dataset's ``labels`` hold *training* ids (what the model predicts, ``num_classes``
channels); ``eval_lut`` maps them to the ids that metrics are computed over, with
``IGNORE_INDEX`` for pixels that take no part.
"""

import functools
from dataclasses import dataclass

import torch
from cityscapesscripts.helpers.labels import labels as _cityscapes_labels

IGNORE_INDEX = 255


@dataclass(frozen=True)
class LabelSpace:
    """Classes of a dataset.

    ``num_classes`` training ids ``0..num_classes-1``; ``eval_lut[train_id]`` gives the
    evaluation id (``0..len(eval_names)-1``) or ``IGNORE_INDEX``; ``palette[eval_id]``
    is its RGB colour; ``thing_eval_ids`` are the classes with instances.
    """

    name: str
    num_classes: int
    eval_lut: tuple[int, ...]
    eval_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    thing_eval_ids: tuple[int, ...] = ()

    @property
    def num_eval_classes(self) -> int:
        return len(self.eval_names)

    def to_eval(self, labels: torch.Tensor) -> torch.Tensor:
        """Map training ids to evaluation ids; ``IGNORE_INDEX`` stays ignored."""
        return eval_table(self.eval_lut, labels.device)[labels.clamp(0, 255).long()]


@functools.cache
def eval_table(eval_lut: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """``eval_lut`` as a 256-entry int64 lookup table on ``device`` (``IGNORE_INDEX`` past its
    end), built once per device: a training step's lookups copy nothing to the device."""
    table = torch.full((256,), IGNORE_INDEX, dtype=torch.long)
    table[: len(eval_lut)] = torch.tensor(eval_lut)
    return table.to(device)


def _cityscapes() -> LabelSpace:
    """The 34 labelIds (Sec. 2.2's output channels), evaluated on the 19 trainIds.

    The table comes from ``cityscapesscripts``. ``license plate`` (id -1) never appears
    in the ``*_labelIds.png`` files; the readers map any value above 33 to
    ``IGNORE_INDEX``.
    """
    by_id = {label.id: label for label in _cityscapes_labels if label.id >= 0}
    assert sorted(by_id) == list(range(34)), "cityscapesscripts label table changed"
    train = sorted({label.trainId for label in by_id.values() if 0 <= label.trainId < 255})
    names = {label.trainId: label.name for label in by_id.values() if label.trainId in train}
    colours = {label.trainId: label.color for label in by_id.values() if label.trainId in train}
    things = tuple(
        label.trainId for label in by_id.values() if label.hasInstances and label.trainId in train
    )
    return LabelSpace(
        name="cityscapes",
        num_classes=34,
        eval_lut=tuple(
            by_id[i].trainId if 0 <= by_id[i].trainId < 255 else IGNORE_INDEX for i in range(34)
        ),
        eval_names=tuple(names[t] for t in train),
        palette=tuple(tuple(colours[t]) for t in train),
        thing_eval_ids=tuple(sorted(things)),
    )


CITYSCAPES = _cityscapes()

# SegNet's CamVid: 11 classes, 11 = "Unlabelled" (ignored). Colours from the SegNet tutorial.
CAMVID = LabelSpace(
    name="camvid",
    num_classes=11,
    eval_lut=tuple(range(11)),
    eval_names=(
        "sky",
        "building",
        "pole",
        "road",
        "pavement",
        "tree",
        "sign symbol",
        "fence",
        "car",
        "pedestrian",
        "bicyclist",
    ),
    palette=(
        (128, 128, 128),
        (128, 0, 0),
        (192, 192, 128),
        (128, 64, 128),
        (60, 40, 222),
        (128, 128, 0),
        (192, 128, 128),
        (64, 64, 128),
        (64, 0, 128),
        (64, 64, 0),
        (0, 128, 192),
    ),
)

# Cityscapes labelIds by name, for code that draws or reads specific classes.
CITYSCAPES_IDS = {label.name: label.id for label in _cityscapes_labels if label.id >= 0}
