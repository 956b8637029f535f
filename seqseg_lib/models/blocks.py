"""The blocks the models share, so that no model file imports another: U-Net's encoder and
decoder (and their convolution blocks), the BERT encoder built from a config, patchify, the
checks on image sizes and sequence lengths, and the masked class head of the set-prediction
models.
"""

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from seqseg_lib.models import performer

if TYPE_CHECKING:
    from transformers import BertModel


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
        self.outc = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.outc(self.expand(features))  # (B, out_channels, H, W)

    def expand(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The features of the last level, before the 1x1 output convolution: [B, w, H, W]."""
        x = features[-1]
        for up, skip in zip(self.ups, reversed(features[:-1])):
            x = up(x, skip)
        return x


def check_divisible(images: torch.Tensor, factor: int) -> None:
    """Raise ``ValueError`` unless ``images`` is [B, C, H, W] with H, W multiples of factor."""
    if images.dim() != 4:
        raise ValueError(f"expected images of shape [B, C, H, W], got {tuple(images.shape)}")
    height, width = images.shape[-2:]
    if height % factor or width % factor:
        raise ValueError(
            f"image height and width must be multiples of {factor}, got {height}x{width}"
        )


def build_bert_encoder(
    hidden_dim: int,
    num_layers: int,
    num_heads: int,
    ffn_dim: int,
    max_positions: int = 512,
    dropout: float = 0.1,
    attention: str = "sdpa",
    pooler: bool = True,
    performer_features: int = 256,
) -> "BertModel":
    """A Hugging Face BERT encoder fed through ``inputs_embeds``: a vocabulary of 1 (the word
    table would be unused), SDPA attention (or ``attention="eager"``, or ``"performer"``:
    FAVOR+ with ``performer_features`` random features per head, ``models.performer``), BERT's
    pooler kept (as in the report's ``BertModel``; it is unused and its 0.6M parameters count
    in Table 1's 50.8M; ``pooler=False`` leaves it out).

    ``transformers`` is imported here, when a model is built, rather than with the module: its
    import takes seconds that a command that builds no encoder (U-Net, ``names``) should not
    pay."""
    from transformers import BertConfig, BertModel

    if attention == performer.NAME:
        performer.register()
    config = BertConfig(
        vocab_size=1,
        hidden_size=hidden_dim,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=ffn_dim,
        max_position_embeddings=max_positions,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        attn_implementation=attention,
    )
    model = BertModel(config, add_pooling_layer=pooler)
    if attention == performer.NAME:  # each layer's features, drawn from the model's seed
        seed = int(torch.randint(0, 2**31 - 1, (1,)))
        performer.add_projections(model, performer_features, seed)
    return model


def patchify(images: torch.Tensor, patch_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Split [B, C, H, W] into row-major flattened patches [B, N, C s^2]; also return the grid."""
    check_divisible(images, patch_size)
    batch, channels, height, width = images.shape
    rows, cols = height // patch_size, width // patch_size
    patches = images.reshape(batch, channels, rows, patch_size, cols, patch_size)
    patches = patches.permute(0, 2, 4, 1, 3, 5)  # (B, H/s, W/s, C, s, s)
    return patches.reshape(batch, rows * cols, channels * patch_size**2), (rows, cols)


def check_sequence_length(length: int, max_positions: int) -> None:
    """Raise ``ValueError`` when a sequence needs more position embeddings than exist."""
    if length > max_positions:
        raise ValueError(
            f"the image gives {length} tokens but the encoder has only {max_positions} "
            "position embeddings: use smaller images, a larger patch_size or max_positions"
        )


class MaskedClassHead(nn.Module):
    """A term of each query's class logits from the decoder features under its own mask (our
    choice).

    ``forward(features [B, w, H, W], mask_logits [B, Q, H, W]) -> [B, Q, C + 1]``: the
    features averaged with the query's mask probabilities as weights (features on a coarser
    grid that divides the mask's: weighed by the mask's mean over each of their cells), then
    a one-hidden-layer MLP shared by all queries. The report's head reads the whole image's
    bottleneck, so a query's class cannot depend on where its mask is; this term is a
    function of what the mask covers. It is added to the report's head rather than replacing
    it: alone, all queries start with near-identical masks and so identical classes, and it
    learnt far more slowly (validation class loss 1.07 against 0.21 after 6 epochs of the
    ``cpu`` profile, PQ 0). The weights are detached: the class loss trains the features, not
    the masks.
    """

    def __init__(self, in_channels: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_channels, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes + 1),
        )

    def forward(self, features: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
        weights = mask_logits.detach().float().sigmoid()  # (B, Q, H, W)
        if weights.shape[-2:] != features.shape[-2:]:  # features on a coarser grid (h, w)
            # each feature cell weighed by the mean of the mask over it: the same average as
            # with the features upsampled to the mask (nearest), without upsampling them
            weights = F.adaptive_avg_pool2d(weights, features.shape[-2:])  # (B, Q, h, w)
        pooled = torch.einsum("bqhw,bchw->bqc", weights, features.float())  # (B, Q, w)
        pooled = pooled / weights.sum((-2, -1)).clamp(min=1e-6)[..., None]  # (B, Q, w)
        return self.mlp(pooled.to(features.dtype))  # (B, Q, C + 1)


def count_parameters(model: nn.Module) -> int:
    """Parameters of ``model``, trainable or not (the report's counts include them all)."""
    return sum(p.numel() for p in model.parameters())
