"""The networks. Each file holds one model and reads top to bottom."""

from seqseg_lib.models.seq2seg import Seq2Seg
from seqseg_lib.models.unet import UNet

__all__ = ["Seq2Seg", "UNet"]
