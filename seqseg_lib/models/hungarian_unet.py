"""Hungarian U-Net (Sec. 4): a U-Net whose output channels are object queries.

    images [B, 3, H, W]
      -> UNetEncoder                      features, the last (bottleneck) [B, 16w, H/16, W/16]
      -> UNetDecoder with Q channels      pred_masks  [B, Q, H, W]      one mask per query
      bottleneck -> pool -> Linear        pred_logits [B, Q, C + 1]     class of each query

"I instead output N_obj channels, one for each object query. To predict the class, I append
a linear layer to the output of the encoder" (Sec. 4). The masks and classes are matched to
the ground truth with the Hungarian algorithm (``seqseg_lib.matcher``); the last class,
index ``C``, is "no object".
"""

from dataclasses import dataclass

import torch
from torch import nn

from seqseg_lib.models.unet import UNetDecoder, UNetEncoder, check_divisible


@dataclass(frozen=True)
class HungarianUNetConfig:
    """The Hungarian U-Net's settings; the defaults are the report's (Sec. 4)."""

    num_queries: int = 100  # N_obj, Sec. 4
    num_classes: int = 19  # Cityscapes trainIds; + 1 for no object
    base_width: int = 32  # the U-Net of Sec. 2 (Table 1)
    pool_size: tuple[int, int] = (1, 1)  # our choice: see ``HungarianUNet``
    in_channels: int = 3


class HungarianUNet(nn.Module):
    """``forward(images [B, 3, H, W]) -> {"pred_logits": [B, Q, C + 1], "pred_masks": [B, Q,
    H, W]}``; ``pred_masks`` are logits (apply a sigmoid for probabilities). H and W must be
    multiples of 16.

    How the encoder output reaches the linear layer is not stated in the report. We average
    the bottleneck over space (``pool_size=(1, 1)``, global average pooling), so the class
    head is ``Linear(16 * base_width, Q * (C + 1))``: 512 * 2000 + 2000 = 1.03M parameters at
    the defaults, 8.79M for the whole model (U-Net of Table 1: 7.8M). Flattening the whole
    bottleneck instead (512 x 8 x 16 at 128x256) would take 131M parameters, and its size
    would depend on the crop. ``pool_size=(h, w)`` keeps a coarse grid of the bottleneck
    (adaptive average pooling) so each query's class can depend on where things are; it
    multiplies the head's weights by ``h * w``.
    """

    def __init__(self, config: HungarianUNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or HungarianUNetConfig()
        self.num_queries, self.num_classes = config.num_queries, config.num_classes
        self.encoder = UNetEncoder(config.in_channels, config.base_width)
        self.decoder = UNetDecoder(config.base_width, config.num_queries)
        self.pool = nn.AdaptiveAvgPool2d(tuple(config.pool_size))
        pooled = self.encoder.out_channels * config.pool_size[0] * config.pool_size[1]
        self.class_embed = nn.Linear(pooled, config.num_queries * (config.num_classes + 1))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        check_divisible(images, 16)
        features = self.encoder(images)  # [(B, w, H, W), ..., (B, 16w, H/16, W/16)]
        pred_masks = self.decoder(features)  # (B, Q, H, W)
        pooled = self.pool(features[-1]).flatten(1)  # (B, 16w * h * w)
        logits = self.class_embed(pooled)  # (B, Q * (C + 1))
        pred_logits = logits.view(-1, self.num_queries, self.num_classes + 1)  # (B, Q, C + 1)
        return {"pred_logits": pred_logits, "pred_masks": pred_masks}
