"""The U-Net of Ronneberger et al. (2015) and its variants, in 2D and 3D.

``kind`` picks the level block and what happens on the skips:

- ``plain``: two 3x3 conv + ReLU per level (the paper);
- ``residual``: residual blocks with a 1x1 projection shortcut;
- ``attention``: plain levels with additive attention gates on the skips (Oktay 2018);
- ``multires``: MultiRes blocks and residual paths on the skips (Ibtehaz & Rahman 2020).

With ``padding="valid"`` the network reproduces the paper's tile arithmetic (572 -> 388);
with ``"same"`` (the default) the output has the input's size, inputs of any size being
mirror-padded to a multiple of ``2**depth`` inside ``forward`` and cropped back.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .descriptor import Descriptor, Port
from .blocks import NORMS, AttentionGate, DoubleConv, Down, MultiResBlock, ResidualBlock, ResPath, Up, conv_nd

KINDS = ("plain", "residual", "attention", "multires")


@dataclass(frozen=True)
class UNetConfig:
    """Everything needed to rebuild a U-Net; saved as JSON beside its weights."""

    in_channels: int = 1
    out_channels: int = 2  # classes (logits); 1 for a single sigmoid map
    base_channels: int = 64  # channels of the first level, doubled at every level
    depth: int = 4  # number of 2x2 poolings (the paper: 4, so 64 -> 1024)
    dims: int = 2  # 2 for images, 3 for volumes
    kind: str = "plain"
    padding: str = "same"  # "same" or "valid" (the paper)
    norm: str = "batch"  # "none" (the paper), "batch", "instance" or "group"
    dropout: float = 0.0  # dropout at the bottom of the contracting path (the paper: 0.5)
    multires_alpha: float = 1.67

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown U-Net kind {self.kind!r}; choose one of {KINDS}")
        if self.dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, not {self.dims}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; choose one of {NORMS}")
        if self.padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', not {self.padding!r}")
        if self.depth < 1 or self.base_channels < 1:
            raise ValueError("depth and base_channels must be positive")

    def to_dict(self) -> dict:
        return asdict(self)

    def output_size(self, size: int) -> int:
        """Output side length for an input side of ``size`` (equal for ``same``).

        Raises ValueError for a valid-padding size that does not tile exactly."""
        if self.padding == "same":
            return size
        # Each level block of plain/attention/residual loses 4 px (two 3x3 convs);
        # a MultiRes block loses 6 (three chained 3x3 convs).
        loss = 6 if self.kind == "multires" else 4
        s = size
        for _ in range(self.depth):
            s -= loss
            if s <= 0 or s % 2:
                raise ValueError(f"input size {size} does not fit a valid-padding U-Net of depth {self.depth}")
            s //= 2
        s -= loss
        for _ in range(self.depth):
            s = s * 2 - loss
        if s <= 0:
            raise ValueError(f"input size {size} is too small for this U-Net")
        return s

    def valid_input_size(self, at_least: int) -> int:
        """The smallest input size >= ``at_least`` that this network accepts."""
        size = max(1, at_least)
        while True:
            try:
                self.output_size(size)
                return size
            except ValueError:
                size += 1


class UNet(nn.Module):
    """Encoder-decoder with skip connections; returns logits of ``out_channels``."""

    def __init__(self, config: UNetConfig | None = None, **overrides) -> None:
        super().__init__()
        config = config or UNetConfig(**overrides)
        self.config = c = config
        widths = [c.base_channels * 2**i for i in range(c.depth + 1)]

        def block(cin: int, cout: int, dropout: float = 0.0) -> nn.Module:
            if c.kind == "residual":
                return ResidualBlock(cin, cout, c.dims, c.padding, c.norm, dropout)
            if c.kind == "multires":
                return MultiResBlock(cin, round(cout * c.multires_alpha), c.dims, c.padding, c.norm)
            return DoubleConv(cin, cout, c.dims, c.padding, c.norm, dropout)

        def out_ch(b: nn.Module, cout: int) -> int:
            return b.out_channels if isinstance(b, MultiResBlock) else cout

        self.inc = block(c.in_channels, widths[0])
        chans = [out_ch(self.inc, widths[0])]
        self.downs = nn.ModuleList()
        for i in range(1, c.depth + 1):
            b = block(chans[-1], widths[i], c.dropout if i == c.depth else 0.0)
            self.downs.append(Down(b, c.dims))
            chans.append(out_ch(b, widths[i]))

        self.ups = nn.ModuleList()
        cur = chans[-1]
        for i in range(c.depth - 1, -1, -1):
            skip_ch, cup = chans[i], widths[i]
            gate = AttentionGate(skip_ch, cur, max(1, skip_ch // 2), c.dims, c.norm) if c.kind == "attention" else None
            path = ResPath(skip_ch, c.depth - i, c.dims, c.norm) if c.kind == "multires" else None
            b = block(skip_ch + cup, widths[i])
            self.ups.append(Up(cur, cup, b, c.dims, gate=gate, path=path))
            cur = out_ch(b, widths[i])
        self.head = conv_nd(c.dims)(cur, c.out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        pads: list[int] = []
        if c.padding == "same":
            # Mirror-pad to a multiple of 2**depth so every pooling is exact; crop back after.
            m = 2**c.depth
            for s in reversed(x.shape[2:]):
                extra = (-s) % m
                pads += [extra // 2, extra - extra // 2]
            if any(pads):
                mode = "reflect" if min(x.shape[2:]) > max(pads) else "replicate"
                x = F.pad(x, pads, mode=mode)
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up in self.ups:
            y = up(y, skips.pop())
        y = self.head(y)
        if any(pads):
            idx = [slice(None), slice(None)]
            for d in range(c.dims):
                lo, hi = pads[2 * (c.dims - 1 - d)], pads[2 * (c.dims - 1 - d) + 1]
                idx.append(slice(lo, y.shape[2 + d] - hi))
            y = y[tuple(idx)]
        return y


PRESETS: dict[str, UNetConfig] = {
    "tiny": UNetConfig(base_channels=8, depth=2),
    "default": UNetConfig(base_channels=16, depth=4),
    # Ronneberger et al. 2015: no norm, valid convolutions, 64 -> 1024 channels, dropout 0.5.
    "paper": UNetConfig(base_channels=64, depth=4, padding="valid", norm="none", dropout=0.5),
}
NORMALISED = "percentile-normalised (1, 99.8) -> about [0, 1]"  # restore.segment.preprocess, per image


def _inputs(c: UNetConfig, side: int | None) -> tuple[Port, ...]:
    """The segmenter's tiles: cubes in 3D; a valid-padding network takes one size only."""
    side = side or (188 if c.padding == "valid" else 256 if c.dims == 2 else 64)
    if c.padding == "valid":
        return (Port("input", c.in_channels, NORMALISED, side=c.valid_input_size(side), dims=c.dims,
                     note="fixed tile (valid convolutions)"),)
    return (Port("input", c.in_channels, NORMALISED, multiple=2 ** c.depth, dims=c.dims),)


DESCRIPTORS = (Descriptor(
    "UNet", UNetConfig, UNet, kind="segmenter", inputs=_inputs, output="logits", output_range="logits",
    presets=PRESETS,
    variants={"tiny-valid": UNetConfig(base_channels=8, depth=2, padding="valid"),
              "tiny-3d": UNetConfig(base_channels=8, depth=2, dims=3),
              **{f"tiny-{k}": UNetConfig(base_channels=8, depth=2, kind=k) for k in KINDS if k != "plain"}}),)

