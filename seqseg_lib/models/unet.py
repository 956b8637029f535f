"""U-Net (Ronneberger et al., 2015), the convolutional baseline of Sec. 2 (Table 1: 7.8M).

    images [B, 3, H, W]
      -> DoubleConv                        [B, w, H, W]            w = base_width
      -> 4 x Down (max pool, DoubleConv)   [B, 16w, H/16, W/16]    the bottleneck
      -> 4 x Up (transposed conv, concatenation with the skip, DoubleConv)
                                           [B, w, H, W]
      -> OutConv (1x1)                     [B, C, H, W]

Four downsamplings; each level is two 3x3 conv + BatchNorm + ReLU; transposed-convolution
upsampling; skip connections by concatenation. ``base_width=32`` gives 7.76M parameters with
34 output classes. The Hungarian U-Net (Sec. 4) reuses ``UNetEncoder`` and ``UNetDecoder``.
"""

from dataclasses import dataclass

import torch
from torch import nn

from seqseg_lib.memory import Footprint
from seqseg_lib.models.blocks import check_divisible


@dataclass(frozen=True)
class UNetConfig:
    """U-Net's settings; the defaults give Table 1's 7.8M parameters (7.76M)."""

    num_classes: int = 34  # Cityscapes labelIds
    base_width: int = 32  # channels of the first level, doubled at each of the four below
    in_channels: int = 3

    def memory_footprint(self) -> Footprint:
        return Footprint(num_classes=self.num_classes, base_width=self.base_width)


class DoubleConv(nn.Sequential):
    """(3x3 conv => BN => ReLU) x 2."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class Down(nn.Sequential):
    """2x2 max pooling, then a double convolution."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))


class Up(nn.Module):
    """2x2 transposed convolution, concatenation with the skip, double convolution."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2)
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)  # (B, in_channels / 2, H, W): the skip's resolution and width
        return self.conv(torch.cat([skip, x], dim=1))  # (B, out_channels, H, W)


class OutConv(nn.Conv2d):
    """The 1x1 convolution from the last level's features to one map per output channel."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 1)


class UNetEncoder(nn.Module):
    """The contracting path. Returns the features of every level, finest first."""

    def __init__(self, in_channels: int, base_width: int) -> None:
        super().__init__()
        widths = [base_width * 2**i for i in range(5)]  # 32, 64, 128, 256, 512
        self.inc = DoubleConv(in_channels, widths[0])
        self.downs = nn.ModuleList(Down(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = [self.inc(x)]
        for down in self.downs:
            features.append(down(features[-1]))
        return features  # [(B, w, H, W), ..., (B, 16w, H/16, W/16)]


class UNetDecoder(nn.Module):
    """The expanding path, from the encoder's features to ``out_channels`` maps."""

    def __init__(self, base_width: int, out_channels: int) -> None:
        super().__init__()
        widths = [base_width * 2**i for i in range(5)]
        self.ups = nn.ModuleList(Up(widths[i + 1], widths[i]) for i in reversed(range(4)))
        self.outc = OutConv(widths[0], out_channels)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.outc(self.expand(features))  # (B, out_channels, H, W)

    def expand(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The features of the last level, before the 1x1 output convolution: [B, w, H, W]."""
        x = features[-1]
        for up, skip in zip(self.ups, reversed(features[:-1])):
            x = up(x, skip)
        return x


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
