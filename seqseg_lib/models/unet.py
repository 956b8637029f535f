"""U-Net (Ronneberger et al., 2015), the convolutional baseline of Sec. 2 (Table 1: 7.8M).

Four downsamplings; each level is two 3x3 conv + BatchNorm + ReLU; transposed-convolution
upsampling; skip connections by concatenation. ``base_width=32`` gives 7.76M parameters
with 34 output classes.
"""

from dataclasses import dataclass

import torch
from torch import nn

from seqseg_lib.models.blocks import UNetDecoder, UNetEncoder, check_divisible


@dataclass(frozen=True)
class UNetConfig:
    """U-Net's settings; the defaults give Table 1's 7.8M parameters (7.76M)."""

    num_classes: int = 34  # Cityscapes labelIds
    base_width: int = 32  # channels of the first level, doubled at each of the four below
    in_channels: int = 3


class UNet(nn.Module):
    """Semantic segmentation U-Net: ``forward(images [B, 3, H, W]) -> logits [B, C, H, W]``.

    H and W must be multiples of 16 (four poolings).
    """

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or UNetConfig()
        self.encoder = UNetEncoder(config.in_channels, config.base_width)
        self.decoder = UNetDecoder(config.base_width, config.num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_divisible(images, 16)
        return self.decoder(self.encoder(images))
