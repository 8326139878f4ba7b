"""The pix2pix networks (Isola et al. 2017): a U-Net generator with skips and a PatchGAN.

The generator has the shape of pytorch-CycleGAN-and-pix2pix's ``UnetGenerator``: ``num_downs``
4x4 stride-2 convolutions down to a 1x1 bottleneck (for a 2**num_downs input), the mirror
image of transposed convolutions up, encoder features concatenated on every level, dropout on
the decoder levels between the innermost and the four outermost ones (three for 256 px), and
normal(0, 0.02) initialisation. It is written as two flat lists of levels instead of the
original's nested blocks, so it reads top to bottom. Two options make it a fast restorer:
``pixel_unshuffle=2`` folds 2x2 pixels into channels before the U-Net (4x fewer positions,
much faster CPU steps, see DATA.md) and ``residual=True`` predicts a correction to the input.

Any input size works: ``forward`` mirror-pads to a multiple of ``size_divisor`` and crops back.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from .blocks import NORMS, ConvNormLeaky, StridedDown, StridedUp, conv_nd, maybe_spectral_norm
from .descriptor import Descriptor, Port

FINAL_ACTS = ("tanh", "none")


def num_downs_for(size: int, pixel_unshuffle: int = 1) -> int:
    """The number of stride-2 levels that brings a ``size`` px side down to a 1x1 bottleneck
    (rounding down: never below 1x1). 256 -> 8 and 128 -> 7, as pix2pix's unet_256/unet_128."""
    if size < 1 or pixel_unshuffle < 1:
        raise ValueError(f"size and pixel_unshuffle must be positive, got {size}, {pixel_unshuffle}")
    return max(1, (size // pixel_unshuffle).bit_length() - 1)


def init_pix2pix_weights(model: nn.Module, gain: float = 0.02) -> None:
    """pix2pix's ``init_type='normal'``: conv weights ~ N(0, gain), batch-norm scales ~ N(1, gain),
    biases 0. Spectral-normalised convs get the init on their unnormalised weight."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Conv3d, nn.ConvTranspose3d)):
            weight = (m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight")
                      else m.weight)
            nn.init.normal_(weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS}")


@dataclass(frozen=True)
class Pix2PixConfig:
    """Everything needed to rebuild a U-Net generator; saved as JSON beside its weights."""

    in_channels: int = 3
    out_channels: int = 3
    base_channels: int = 64  # channels of the outermost level, doubled per level
    num_downs: int = 8  # stride-2 levels; 8 takes 256 px to 1x1 (see num_downs_for)
    norm: str = "batch"  # "batch" (pix2pix), "instance", "group" or "none"
    dropout: float = 0.5  # on the decoder levels between the innermost and the outer four
    max_channels: int = 512  # width cap (pix2pix: 8 x base)
    pixel_unshuffle: int = 1  # 2: fold 2x2 pixels into channels at the input, unfold at the output
    residual: bool = False  # output = input + net(input); needs in_channels == out_channels
    final_act: str = "tanh"  # "tanh" (images in [-1, 1]) or "none"
    init: str = "pix2pix"  # "pix2pix": N(0, 0.02); "default": PyTorch's (Kaiming) initialisation

    def __post_init__(self) -> None:
        _check_norm(self.norm)
        if self.init not in ("pix2pix", "default"):
            raise ValueError(f"init must be 'pix2pix' or 'default', not {self.init!r}")
        if self.final_act not in FINAL_ACTS:
            raise ValueError(f"unknown final_act {self.final_act!r}; choose one of {FINAL_ACTS}")
        if self.num_downs < 1 or self.base_channels < 1 or self.pixel_unshuffle < 1:
            raise ValueError("num_downs, base_channels and pixel_unshuffle must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout}")
        if self.residual and self.in_channels != self.out_channels:
            raise ValueError("residual=True needs in_channels == out_channels")

    @property
    def size_divisor(self) -> int:
        """Input sides are padded to a multiple of this inside ``forward``."""
        return 2**self.num_downs * self.pixel_unshuffle

    def to_dict(self) -> dict:
        return asdict(self)


class UNetGenerator(nn.Module):
    """pix2pix U-Net generator; images in [-1, 1], any size (padded to ``size_divisor``)."""

    def __init__(self, config: Pix2PixConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = config or Pix2PixConfig(**overrides)
        n, folded = c.num_downs, c.pixel_unshuffle**2
        cin, cout = c.in_channels * folded, c.out_channels * folded
        widths = [min(c.base_channels * 2**j, c.max_channels) for j in range(n)]
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()  # ups[j] takes level j back to the resolution of level j - 1
        for j in range(n):
            outer, inner = j == 0, j == n - 1
            # pix2pix: no norm on the outermost conv (it sees the image) nor on the innermost
            # (a 1x1 map, where batch/instance statistics degenerate).
            self.downs.append(StridedDown(cin if outer else widths[j - 1], widths[j],
                                          norm="none" if outer or inner else c.norm, act=not inner))
            dropout = c.dropout if 4 <= j <= n - 2 else 0.0
            self.ups.append(StridedUp(widths[j] if inner else 2 * widths[j], cout if outer else widths[j - 1],
                                      norm="none" if outer else c.norm, dropout=dropout,
                                      bias=True if outer else None))
        if c.init == "pix2pix":
            init_pix2pix_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        x, pads = _pad_to_multiple(x, c.size_divisor)
        h = F.pixel_unshuffle(x, c.pixel_unshuffle) if c.pixel_unshuffle > 1 else x
        skips = []
        for down in self.downs:
            h = down(h)
            skips.append(h)
        h = self.ups[-1](skips.pop())
        for j in range(c.num_downs - 2, -1, -1):
            h = self.ups[j](torch.cat([skips[j], h], dim=1))
        if c.pixel_unshuffle > 1:
            h = F.pixel_shuffle(h, c.pixel_unshuffle)
        if c.final_act == "tanh":
            h = torch.tanh(h)
        if c.residual:
            h = x + h
        return _crop(h, pads)


def _pad_to_multiple(x: torch.Tensor, m: int) -> tuple[torch.Tensor, list[int]]:
    """Mirror-pad H and W to a multiple of ``m`` (replicate where the image is too small to
    mirror); returns the padded tensor and F.pad's [left, right, top, bottom]."""
    pads: list[int] = []
    for s in (x.shape[-1], x.shape[-2]):
        extra = (-s) % m
        pads += [extra // 2, extra - extra // 2]
    if any(pads):
        mode = "reflect" if min(x.shape[-2:]) > max(pads) else "replicate"
        x = F.pad(x, pads, mode=mode)
    return x, pads


def _crop(x: torch.Tensor, pads: list[int]) -> torch.Tensor:
    left, right, top, bottom = pads
    return x[..., top:x.shape[-2] - bottom, left:x.shape[-1] - right]


# ---------------------------------------------------------------------------------------------
# PatchGAN


def receptive_field(n_layers: int) -> int:
    """Side of the input patch one PatchGAN output sees: 70 for n_layers=3 (pix2pix's 70x70),
    34 for 2, 16 for 1. Two 4x4 stride-1 convs (7 px), then each stride-2 4x4 conv maps r to 2r+2."""
    r = 7
    for _ in range(n_layers):
        r = 2 * r + 2
    return r


@dataclass(frozen=True)
class PatchGANConfig:
    """Everything needed to rebuild a PatchGAN discriminator."""

    in_channels: int = 6  # conditional: input and output images concatenated
    base_channels: int = 64
    n_layers: int = 3  # stride-2 convs; 3 gives the 70x70 receptive field
    norm: str = "batch"  # "batch" (pix2pix), "instance", "group" or "none"
    spectral_norm: bool = False  # on every conv (Miyato et al. 2018)

    def __post_init__(self) -> None:
        _check_norm(self.norm)
        if self.n_layers < 1 or self.base_channels < 1 or self.in_channels < 1:
            raise ValueError("n_layers, base_channels and in_channels must be positive")

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.n_layers)

    def to_dict(self) -> dict:
        return asdict(self)


def patch_trunk(in_channels: int, base: int, n_layers: int, norm: str, sn: bool) -> tuple[list[nn.Module], int]:
    """The PatchGAN's conv layers before its logits (``n_layers`` stride-2, one stride-1; no
    norm on the image) and their output width; shared by the AC-PatchGAN of the colorizer."""
    layers: list[nn.Module] = [ConvNormLeaky(in_channels, base, 2, "none", sn)]
    mult = 1
    for i in range(1, n_layers):
        prev, mult = mult, min(2**i, 8)
        layers.append(ConvNormLeaky(base * prev, base * mult, 2, norm, sn))
    prev, mult = mult, min(2**n_layers, 8)
    layers.append(ConvNormLeaky(base * prev, base * mult, 1, norm, sn))
    return layers, base * mult


class PatchDiscriminator(nn.Module):
    """pix2pix's NLayerDiscriminator: a map of real/fake logits, one per overlapping patch."""

    def __init__(self, config: PatchGANConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = config or PatchGANConfig(**overrides)
        layers, width = patch_trunk(c.in_channels, c.base_channels, c.n_layers, c.norm, c.spectral_norm)
        layers.append(maybe_spectral_norm(conv_nd(2)(width, 1, 4, stride=1, padding=1), c.spectral_norm))
        self.model = nn.Sequential(*layers)
        init_pix2pix_weights(self)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (N, 1, h, w); ``condition`` (the generator's input) is concatenated in front
        of ``x``, as pix2pix's ``cat((real_A, fake_B), 1)``."""
        if condition is not None:
            x = torch.cat([condition, x], dim=1)
        return self.model(x)


PRESETS: dict[str, Pix2PixConfig] = {
    "tiny": Pix2PixConfig(base_channels=8, num_downs=4, max_channels=32),
    # Isola et al. 2017 / pix2pix's unet_256: 54.4 M parameters.
    "default": Pix2PixConfig(),
    "paper": Pix2PixConfig(),
}

PATCHGAN_PRESETS: dict[str, PatchGANConfig] = {
    "tiny": PatchGANConfig(base_channels=8, n_layers=2),
    # Spectral norm instead of batch norm: steadier with the small batches of CPU training.
    "restorer": PatchGANConfig(base_channels=32, n_layers=3, norm="none", spectral_norm=True),
    "restorer-wide": PatchGANConfig(base_channels=32, n_layers=3, norm="none", spectral_norm=True),
    "tiny-restorer": PatchGANConfig(base_channels=8, n_layers=2, norm="none", spectral_norm=True),
    # pix2pix's 70x70 PatchGAN: 2.77 M parameters.
    "default": PatchGANConfig(),
    "paper": PatchGANConfig(),
}


def image_inputs(c, side: int | None) -> tuple[Port, ...]:
    """An image-to-image generator's one input: a picture in [-1, 1], sides padded inside
    ``forward`` to ``size_divisor`` (exported at multiples of it)."""
    m = c.size_divisor
    return (Port("input", c.in_channels, "[-1, 1]", multiple=m, note=f"sides multiples of {m} with --dynamic"),)


def patch_inputs(c, side: int | None) -> tuple[Port, ...]:
    """A PatchGAN's input: the condition and the image, concatenated."""
    return (Port("input", c.in_channels, "[-1, 1]", multiple=2 ** c.n_layers),)


DESCRIPTORS = (
    Descriptor("UNetGenerator", Pix2PixConfig, UNetGenerator, kind="image-to-image", inputs=image_inputs,
               presets=PRESETS, variants={"tiny-unshuffle": Pix2PixConfig(base_channels=8, num_downs=3, max_channels=32,
                                                                          pixel_unshuffle=2, residual=True)}),
    Descriptor("PatchDiscriminator", PatchGANConfig, PatchDiscriminator, kind="discriminator", inputs=patch_inputs,
               output="score", output_range="logits", presets=PATCHGAN_PRESETS),
)

