"""Hungarian U-Net (Sec. 4): a U-Net whose output channels are object queries.

    images [B, 3, H, W]
      -> (optional) + 2 channels of pixel coordinates                  (ours: CoordConv)
      -> UNetEncoder (``models.unet``)    features, the last (bottleneck) [B, 16w, H/16, W/16]
      -> (optional) BERT layers over the bottleneck's H/16 x W/16 positions       (Sec. 5)
      -> UNetDecoder with Q channels      pred_masks  [B, Q, H, W]      one mask per query
      class head                          pred_logits [B, Q, C + 1]     class of each query
        "pooled" (the report's): bottleneck -> average pool -> Linear
        "masked" (ours): the same, plus an MLP of the decoder features under each query's mask

"I instead output N_obj channels, one for each object query. To predict the class, I append
a linear layer to the output of the encoder" (Sec. 4). The masks and classes are matched to
the ground truth with the Hungarian algorithm (``seqseg_lib.matcher``); the last class,
index ``C``, is "no object". Sec. 5 proposes "adding a few BERT layers between the encoder and
the decoder": ``bottleneck_layers``.
"""

from dataclasses import dataclass

import torch
from torch import nn

from seqseg_lib import paper
from seqseg_lib.memory import Footprint
from seqseg_lib.models.blocks import MaskedClassHead, check_divisible, check_sequence_length
from seqseg_lib.models.unet import UNetDecoder, UNetEncoder

CLASS_HEADS = ("pooled", "masked")


@dataclass(frozen=True)
class HungarianUNetConfig:
    """The Hungarian U-Net's settings; the defaults are the report's (Sec. 4)."""

    num_queries: int = paper.PANOPTIC_QUERIES
    num_classes: int = 19  # Cityscapes trainIds; + 1 for no object
    base_width: int = 32  # the U-Net of Sec. 2 (Table 1)
    class_head: str = "pooled"  # Sec. 4; "masked" is ours: see ``MaskedClassHead``
    pool_size: tuple[int, int] = (1, 1)  # "pooled" head, our choice: see ``HungarianUNet``
    class_hidden: int = 256  # "masked" head: width of its hidden layer
    bottleneck_layers: int = 0  # BERT layers over the bottleneck (Sec. 5's proposal); 0: none
    bottleneck_heads: int = 8
    coordinates: bool = False  # ours: see ``add_coordinates``
    in_channels: int = 3

    def __post_init__(self) -> None:
        if self.class_head not in CLASS_HEADS:
            raise ValueError(
                f"unknown class_head {self.class_head!r}; valid: {', '.join(CLASS_HEADS)}"
            )
        if self.bottleneck_layers < 0:
            raise ValueError(f"bottleneck_layers must be >= 0, got {self.bottleneck_layers}")
        if self.bottleneck_layers and (16 * self.base_width) % self.bottleneck_heads:
            raise ValueError(
                f"the bottleneck's width 16 * base_width = {16 * self.base_width} must be a "
                f"multiple of bottleneck_heads={self.bottleneck_heads}"
            )

    def memory_footprint(self) -> Footprint:
        # the bottleneck's BERT layers are left out: their H/16 x W/16 tokens hold little
        # beside the U-Net's full-resolution feature maps
        return Footprint(
            num_classes=self.num_classes, base_width=self.base_width, num_queries=self.num_queries
        )


def add_coordinates(images: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, C + 2, H, W]: the row and column of every pixel, in [-1, 1]
    (CoordConv, Liu et al. 2018; SOLO's mask branch does the same).

    A U-Net is translation-equivariant: two identical cars give identical responses in every
    output channel, wherever they are, so a query channel cannot take one car and leave the
    other but through the image's borders. Coordinates let a query's mask depend on position,
    as DETR's object queries attend to positional encodings.
    """
    batch, _, height, width = images.shape
    rows = torch.linspace(-1, 1, height, device=images.device, dtype=images.dtype)
    cols = torch.linspace(-1, 1, width, device=images.device, dtype=images.dtype)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"))  # (2, H, W)
    return torch.cat([images, grid.expand(batch, -1, -1, -1)], dim=1)  # (B, C + 2, H, W)


class BottleneckTransformer(nn.Module):
    """BERT layers over the bottleneck's positions (Sec. 5): [B, D, h, w] -> [B, D, h, w].

    Every position is a token of width D = 16 * base_width with BERT's learnt position
    embedding (row-major), FFN 4D, no dropout; BERT's own residuals keep the convolutional
    features' path to the decoder.
    """

    def __init__(self, width: int, num_layers: int, num_heads: int) -> None:
        super().__init__()
        from seqseg_lib.models.encoders import build_bert_encoder  # transformers: when built

        self.encoder = build_bert_encoder(
            width, num_layers, num_heads, 4 * width, dropout=0.0, pooler=False
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        grid = features.shape[-2:]
        tokens = features.flatten(2).transpose(1, 2)  # (B, h*w, D)
        check_sequence_length(tokens.shape[1], self.encoder.config.max_position_embeddings)
        hidden = self.encoder(inputs_embeds=tokens).last_hidden_state  # (B, h*w, D)
        return hidden.transpose(1, 2).unflatten(2, grid).contiguous()  # (B, D, h, w)


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
    multiplies the head's weights by ``h * w``. ``class_head="masked"`` adds
    ``MaskedClassHead``'s term to this head's logits.
    """

    def __init__(self, config: HungarianUNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or HungarianUNetConfig()
        self.num_queries, self.num_classes = config.num_queries, config.num_classes
        in_channels = config.in_channels + 2 * config.coordinates
        self.encoder = UNetEncoder(in_channels, config.base_width)
        self.bottleneck = (
            BottleneckTransformer(
                self.encoder.out_channels, config.bottleneck_layers, config.bottleneck_heads
            )
            if config.bottleneck_layers
            else nn.Identity()
        )
        self.decoder = UNetDecoder(config.base_width, config.num_queries)
        self.pool = nn.AdaptiveAvgPool2d(tuple(config.pool_size))
        pooled = self.encoder.out_channels * config.pool_size[0] * config.pool_size[1]
        self.class_embed = nn.Linear(pooled, config.num_queries * (config.num_classes + 1))
        if config.class_head == "masked":
            self.class_head = MaskedClassHead(
                config.base_width, config.class_hidden, config.num_classes
            )

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        check_divisible(images, 16)
        if self.config.coordinates:
            images = add_coordinates(images)  # (B, 3 + 2, H, W)
        features = self.encoder(images)  # [(B, w, H, W), ..., (B, 16w, H/16, W/16)]
        features[-1] = self.bottleneck(features[-1])  # (B, 16w, H/16, W/16)
        decoded = self.decoder.expand(features)  # (B, w, H, W)
        # one query's mask contiguous in memory (the convolution writes channels last, queries
        # innermost): the matcher, the mask loss and the metrics read the masks query by query
        pred_masks = self.decoder.outc(decoded).contiguous()  # (B, Q, H, W)
        pooled = self.pool(features[-1]).flatten(1)  # (B, 16w * h * w)
        logits = self.class_embed(pooled)  # (B, Q * (C + 1))
        pred_logits = logits.view(-1, self.num_queries, self.num_classes + 1)  # (B, Q, C + 1)
        if self.config.class_head == "masked":
            pred_logits = pred_logits + self.class_head(decoded, pred_masks)  # (B, Q, C + 1)
        return {"pred_logits": pred_logits, "pred_masks": pred_masks}
