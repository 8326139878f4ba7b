"""UNETR (Hatamizadeh et al. 2022): a ViT encoder and a convolutional U-Net decoder.

The image is cut into ``patch_size`` patches and encoded by a transformer; the tokens of
layers 3, 6, 9 and 12 (for 12 layers; evenly spaced otherwise) are reshaped to feature maps
and brought back to 1/8, 1/4 and 1/2 of the input size by up-convolutions, then merged by
a U-Net decoder with a full-resolution convolutional skip. 2D and 3D.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .descriptor import Descriptor, Port
from .blocks import ConvNormAct, ResidualBlock, conv_nd, conv_transpose_nd


@dataclass(frozen=True)
class UNETRConfig:
    in_channels: int = 1
    out_channels: int = 2
    img_size: int = 256  # side of the training tiles; other sizes interpolate the position embedding
    dims: int = 2
    patch_size: int = 16  # must be 16: the decoder upsamples the tokens 4 times by 2
    hidden_size: int = 768
    mlp_dim: int = 3072
    num_heads: int = 12
    num_layers: int = 12
    feature_size: int = 16
    norm: str = "instance"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.patch_size != 16:
            raise ValueError("UNETR's decoder needs patch_size 16")
        if self.img_size % self.patch_size:
            raise ValueError("img_size must be a multiple of patch_size")
        if self.num_layers < 4 or self.num_layers % 4:
            raise ValueError("num_layers must be a multiple of 4 (skips at 1/4, 2/4, 3/4, 4/4)")
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden_size must be divisible by num_heads")
        if self.dims not in (2, 3):
            raise ValueError("dims must be 2 or 3")

    def to_dict(self) -> dict:
        return asdict(self)

    def output_size(self, size: int) -> int:
        return size


class _UpBlock(nn.Module):
    """2x up-convolution, concatenate the skip, residual block (UNETR's decoder unit)."""

    def __init__(self, cin: int, cout: int, dims: int, norm: str) -> None:
        super().__init__()
        self.up = conv_transpose_nd(dims)(cin, cout, 2, stride=2)
        self.block = ResidualBlock(2 * cout, cout, dims, "same", norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.block(torch.cat([self.up(x), skip], dim=1))


def _project_up(cin: int, cout: int, steps: int, dims: int, norm: str) -> nn.Sequential:
    """Bring tokens up by ``2**steps``: up-conv, then (up-conv + conv) for each further step."""
    layers: list[nn.Module] = [conv_transpose_nd(dims)(cin, cout, 2, stride=2)]
    for _ in range(steps - 1):
        layers += [conv_transpose_nd(dims)(cout, cout, 2, stride=2), ConvNormAct(cout, cout, dims, 3, "same", norm)]
    return nn.Sequential(*layers)


class UNETR(nn.Module):
    """Transformer encoder + U-Net decoder; input sides must be multiples of 16."""

    def __init__(self, config: UNETRConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = config or UNETRConfig(**overrides)
        d, f = c.dims, c.feature_size
        self.grid = c.img_size // c.patch_size
        self.patch_embed = conv_nd(d)(c.in_channels, c.hidden_size, c.patch_size, stride=c.patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid**d, c.hidden_size))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(c.hidden_size, c.num_heads, c.mlp_dim, c.dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(c.num_layers))
        self.norm = nn.LayerNorm(c.hidden_size)
        self.enc1 = ResidualBlock(c.in_channels, f, d, "same", c.norm)
        self.enc2 = _project_up(c.hidden_size, 2 * f, 3, d, c.norm)
        self.enc3 = _project_up(c.hidden_size, 4 * f, 2, d, c.norm)
        self.enc4 = _project_up(c.hidden_size, 8 * f, 1, d, c.norm)
        self.dec5 = _UpBlock(c.hidden_size, 8 * f, d, c.norm)
        self.dec4 = _UpBlock(8 * f, 4 * f, d, c.norm)
        self.dec3 = _UpBlock(4 * f, 2 * f, d, c.norm)
        self.dec2 = _UpBlock(2 * f, f, d, c.norm)
        self.head = conv_nd(d)(f, c.out_channels, 1)

    def _pos_embed(self, grid: tuple[int, ...]) -> torch.Tensor:
        c = self.config
        if all(g == self.grid for g in grid):
            return self.pos_embed
        # Other input sizes: resample the learned position grid (as ViT does at new resolutions).
        pe = self.pos_embed.transpose(1, 2).reshape(1, c.hidden_size, *([self.grid] * c.dims))
        mode = "bicubic" if c.dims == 2 else "trilinear"
        pe = F.interpolate(pe, size=grid, mode=mode, align_corners=False)
        return pe.flatten(2).transpose(1, 2)

    def _tokens_to_map(self, t: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
        return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], *grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        if any(s % c.patch_size for s in x.shape[2:]):
            raise ValueError(f"UNETR input sides must be multiples of {c.patch_size}, got {tuple(x.shape[2:])}")
        tokens = self.patch_embed(x)
        grid = tuple(tokens.shape[2:])
        tokens = tokens.flatten(2).transpose(1, 2) + self._pos_embed(grid)
        quarter = c.num_layers // 4
        hidden = []
        for i, layer in enumerate(self.layers, start=1):
            tokens = layer(tokens)
            if i % quarter == 0:
                hidden.append(tokens)
        hidden[-1] = self.norm(hidden[-1])
        z3, z6, z9, z12 = (self._tokens_to_map(h, grid) for h in hidden)
        y = self.dec5(z12, self.enc4(z9))
        y = self.dec4(y, self.enc3(z6))
        y = self.dec3(y, self.enc2(z3))
        y = self.dec2(y, self.enc1(x))
        return self.head(y)


PRESETS: dict[str, UNETRConfig] = {
    "tiny": UNETRConfig(img_size=32, hidden_size=32, mlp_dim=64, num_heads=2, num_layers=4, feature_size=4),
    "default": UNETRConfig(img_size=256, hidden_size=192, mlp_dim=768, num_heads=4, num_layers=8, feature_size=16),
    "paper": UNETRConfig(img_size=256),  # ViT-B/16: 768 hidden, 12 layers, 12 heads
}


def _inputs(c: UNETRConfig, side: int | None) -> tuple[Port, ...]:
    from .unet import NORMALISED

    side = max(16, (side or c.img_size) // 16 * 16)
    return (Port("input", c.in_channels, NORMALISED, side=side, dims=c.dims,
                 note="fixed size (the position embedding is interpolated per size)"),)


DESCRIPTORS = (Descriptor("UNETR", UNETRConfig, UNETR, kind="segmenter", inputs=_inputs, output="logits",
                          output_range="logits", presets=PRESETS),)

