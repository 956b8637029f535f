"""The networks. Each file holds one model, its settings dataclass and its own parts, and reads
top to bottom; ``blocks.py`` holds what several models share, ``encoders.py`` the Transformer
encoders (``transformers``' models), ``performer.py`` FAVOR+ attention."""

from seqseg_lib.models.blocks import count_parameters
from seqseg_lib.models.eomt import EomtSegmenter, EomtSegmenterConfig
from seqseg_lib.models.hungarian_unet import HungarianUNet, HungarianUNetConfig
from seqseg_lib.models.seq2seg import Seq2Seg, Seq2SegConfig
from seqseg_lib.models.seq2seg_instance import Seq2SegInstance, Seq2SegInstanceConfig
from seqseg_lib.models.unet import UNet, UNetConfig

__all__ = [
    "EomtSegmenter",
    "EomtSegmenterConfig",
    "HungarianUNet",
    "HungarianUNetConfig",
    "Seq2Seg",
    "Seq2SegConfig",
    "Seq2SegInstance",
    "Seq2SegInstanceConfig",
    "UNet",
    "UNetConfig",
    "count_parameters",
]
