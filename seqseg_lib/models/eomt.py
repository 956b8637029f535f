"""The field's answer to Sec. 3.5: EoMT (Kerssies et al., CVPR 2025, "Your ViT is secretly an
image segmentation model"), as ``transformers`` ships it, behind our outputs.

EoMT feeds a plain ViT's patches through its first blocks, then prepends learnable queries
for its last ``num_blocks`` blocks, where each query attends only to the patches under its
own current mask (masked attention); every such block and the last one predict a class per
query and a mask per query as the dot product of the query with upsampled patch features
(Sec. 3.5's proposal, at 4x the patch grid after two 2x upscale blocks).

``EomtSegmenter`` builds ``transformers.EomtForUniversalSegmentation`` from a small config
(random weights: nothing is downloaded) and adapts only its interface:

- inputs: our normalised [B, 3, H, W] images, square, of ``image_size``;
- outputs: ``{"pred_logits": [B, Q, C + 1], "pred_masks": [B, Q, 4H/P, 4W/P]}`` of its last
  block, as our matcher, criteria and evaluators read them, and ``"aux_outputs"``: the
  predictions of each masked block before it, which its own loss supervises
  (``losses.EomtCriterion``, HF's ``EomtLoss``).

HF computes those intermediate predictions inside ``forward`` and keeps them only to compute
its loss when it is given the labels; the wrapper records them as the model makes them (by
wrapping the instance's ``predict``) so that the loss can run in our criterion, beside the
engine's other losses. The attention masks' annealing (EoMT anneals the probability of masked
attention from 1 to 0 during training so that inference needs none) is left out, as HF leaves
it to the training loop: the masks stay on, in training and inference alike.
"""

from dataclasses import dataclass

import torch
from torch import nn

from seqseg_lib.memory import EncoderFootprint, Footprint


@dataclass(frozen=True)
class EomtSegmenterConfig:
    """EoMT's network, ours where it differs from HF's defaults (a ViT-L at 640x640): a small
    ViT matched to our transformer (width, depth, heads, FFN 4x, patch). Its loss's settings
    are ``losses.EomtLossConfig``."""

    num_classes: int = 19  # Cityscapes trainIds; EoMT adds "no object"
    num_queries: int = 100
    hidden_dim: int = 256
    num_layers: int = 4
    num_heads: int = 4
    image_size: int = 128
    patch_size: int = 8
    num_blocks: int = 2  # the last blocks, where the queries join
    num_register_tokens: int = 4  # HF's default

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size ({self.image_size}) must be a multiple of patch_size "
                f"({self.patch_size})"
            )
        if not 1 <= self.num_blocks <= self.num_layers:
            raise ValueError(
                f"num_blocks must be between 1 and num_layers ({self.num_layers}), got "
                f"{self.num_blocks}"
            )

    @property
    def ffn_dim(self) -> int:
        return 4 * self.hidden_dim  # ViT's MLP ratio

    def memory_footprint(self) -> Footprint:
        sizes = (self.num_layers, self.num_heads, self.hidden_dim, self.ffn_dim, self.patch_size)
        # its masked blocks build a float mask of every head's [N, N] scores: as many values
        # as eager attention's scores
        encoder = EncoderFootprint(
            *sizes, extra_tokens=self.num_queries, holds_attention_scores=True
        )
        queries, size = self.num_queries, self.image_size
        return Footprint(self.num_classes, encoder, num_queries=queries, image_size=size)

    def to_hf(self, **loss: float):
        """The ``transformers.EomtConfig`` of these settings, with the loss's (``loss``:
        ``EomtConfig``'s names, HF's defaults for those not given)."""
        from transformers import EomtConfig

        return EomtConfig(
            hidden_size=self.hidden_dim,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            mlp_ratio=4,
            image_size=self.image_size,
            patch_size=self.patch_size,
            num_queries=self.num_queries,
            num_blocks=self.num_blocks,
            num_register_tokens=self.num_register_tokens,
            num_labels=self.num_classes,
            **loss,
        )


class EomtSegmenter(nn.Module):
    """``forward(images [B, 3, S, S]) -> {"pred_logits": [B, Q, C + 1], "pred_masks":
    [B, Q, 4S/P, 4S/P], "aux_outputs": [...]}`` (P the patch size): HF's
    ``EomtForUniversalSegmentation`` with our inputs and outputs (module docstring)."""

    def __init__(self, config: EomtSegmenterConfig | None = None) -> None:
        super().__init__()
        from transformers import EomtForUniversalSegmentation

        self.config = config = config or EomtSegmenterConfig()
        self.num_queries, self.num_classes = config.num_queries, config.num_classes
        self.eomt = EomtForUniversalSegmentation(config.to_hf())

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        size = self.config.image_size
        if tuple(images.shape[-2:]) != (size, size):
            raise ValueError(
                f"EoMT takes square images of its image_size, {size}x{size}; got "
                f"{tuple(images.shape[-2:])} (train it on square crops)"
            )
        predictions = []  # (mask logits, class logits) of each masked block, then the last
        predict = self.eomt.predict

        def recording(hidden_states: torch.Tensor):
            predictions.append(predict(hidden_states))
            return predictions[-1]

        self.eomt.predict = recording  # the instance's attribute, over the class's method
        try:
            self.eomt(pixel_values=images)
        finally:
            del self.eomt.predict
        (masks, logits), earlier = predictions[-1], predictions[:-1]
        return {
            "pred_logits": logits,
            "pred_masks": masks,
            "aux_outputs": [{"pred_logits": c, "pred_masks": m} for m, c in earlier],
        }
