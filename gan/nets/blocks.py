"""Small modules every network is made of, in 2D and 3D.

Each block takes ``dims`` (2 or 3) and picks the matching torch layers, so one U-Net
definition serves images and volumes. ``padding="valid"`` gives the unpadded convolutions
of Ronneberger et al. (2015); skips are then centre-cropped to the decoder's size.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("none", "batch", "instance", "group")


def conv_nd(dims: int) -> type[nn.Module]:
    """``nn.Conv2d`` or ``nn.Conv3d``."""
    return {2: nn.Conv2d, 3: nn.Conv3d}[dims]


def conv_transpose_nd(dims: int) -> type[nn.Module]:
    return {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[dims]


def max_pool_nd(dims: int) -> type[nn.Module]:
    return {2: nn.MaxPool2d, 3: nn.MaxPool3d}[dims]


def make_norm(kind: str, channels: int, dims: int) -> nn.Module:
    """A normalisation layer by name; ``none`` is the identity (the original U-Net)."""
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims](channels)
    if kind == "instance":
        return {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}[dims](channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    raise ValueError(f"unknown norm {kind!r}; choose one of {NORMS}")


def pad_amount(padding: str, kernel: int) -> int:
    if padding not in ("same", "valid"):
        raise ValueError(f"padding must be 'same' or 'valid', not {padding!r}")
    return kernel // 2 if padding == "same" else 0


def center_crop(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Crop the spatial dims of ``x`` (N, C, *spatial) to ``size`` around the centre."""
    if tuple(x.shape[2:]) == tuple(size):  # same padding: nothing to crop (and no slice for torch.export)
        return x
    slices = [slice(None), slice(None)]
    for have, want in zip(x.shape[2:], size):
        start = (have - want) // 2
        slices.append(slice(start, start + want))
    return x[tuple(slices)]


class ConvNormAct(nn.Sequential):
    """conv -> norm -> ReLU; the bias is dropped when a norm follows (it would cancel)."""

    def __init__(self, cin: int, cout: int, dims: int = 2, kernel: int = 3, padding: str = "same",
                 norm: str = "batch", act: bool = True, stride: int = 1) -> None:
        layers: list[nn.Module] = [
            conv_nd(dims)(cin, cout, kernel, stride=stride, padding=pad_amount(padding, kernel),
                          bias=norm == "none")
        ]
        layers.append(make_norm(norm, cout, dims))
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DoubleConv(nn.Sequential):
    """The U-Net level: two 3x3 convolutions, each followed by ReLU (and a norm if asked)."""

    def __init__(self, cin: int, cout: int, dims: int = 2, padding: str = "same",
                 norm: str = "batch", dropout: float = 0.0) -> None:
        layers: list[nn.Module] = [ConvNormAct(cin, cout, dims, 3, padding, norm)]
        if dropout:
            layers.append({2: nn.Dropout2d, 3: nn.Dropout3d}[dims](dropout))
        layers.append(ConvNormAct(cout, cout, dims, 3, padding, norm))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions plus a 1x1 projection shortcut (He et al.; residual U-Net)."""

    def __init__(self, cin: int, cout: int, dims: int = 2, padding: str = "same",
                 norm: str = "batch", dropout: float = 0.0) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvNormAct(cin, cout, dims, 3, padding, norm),
            {2: nn.Dropout2d, 3: nn.Dropout3d}[dims](dropout) if dropout else nn.Identity(),
            ConvNormAct(cout, cout, dims, 3, padding, norm, act=False),
        )
        self.skip = nn.Identity() if cin == cout else ConvNormAct(cin, cout, dims, 1, padding, norm, act=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return self.act(y + center_crop(self.skip(x), y.shape[2:]))


class MultiResBlock(nn.Module):
    """MultiRes block (Ibtehaz & Rahman 2020): a chain of three 3x3 convolutions whose outputs
    (W/6, W/3, W/2 channels) are concatenated, approximating 3x3, 5x5 and 7x7 receptive
    fields, plus a 1x1 shortcut. ``width`` is W = alpha * U of the paper."""

    def __init__(self, cin: int, width: int, dims: int = 2, padding: str = "same",
                 norm: str = "batch") -> None:
        super().__init__()
        c1, c2, c3 = max(1, width // 6), max(1, width // 3), max(1, width // 2)
        self.out_channels = c1 + c2 + c3
        self.conv1 = ConvNormAct(cin, c1, dims, 3, padding, norm)
        self.conv2 = ConvNormAct(c1, c2, dims, 3, padding, norm)
        self.conv3 = ConvNormAct(c2, c3, dims, 3, padding, norm)
        self.skip = ConvNormAct(cin, self.out_channels, dims, 1, padding, norm, act=False)
        self.norm = make_norm(norm, self.out_channels, dims)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv1(x)
        b = self.conv2(a)
        c = self.conv3(b)
        size = c.shape[2:]
        y = torch.cat([center_crop(a, size), center_crop(b, size), c], dim=1)
        return self.act(self.norm(y + center_crop(self.skip(x), size)))


class ResPath(nn.Module):
    """MultiResUNet's residual path on a skip: ``length`` (3x3 conv + 1x1 shortcut) units, which
    narrow the semantic gap between encoder and decoder features."""

    def __init__(self, channels: int, length: int, dims: int = 2, norm: str = "batch") -> None:
        super().__init__()
        self.convs = nn.ModuleList(ConvNormAct(channels, channels, dims, 3, "same", norm, act=False)
                                   for _ in range(length))
        self.skips = nn.ModuleList(ConvNormAct(channels, channels, dims, 1, "same", norm, act=False)
                                   for _ in range(length))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, skip in zip(self.convs, self.skips):
            x = F.relu(conv(x) + skip(x))
        return x


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018): the coarser decoder signal ``g`` decides,
    per voxel, how much of the skip ``x`` passes."""

    def __init__(self, x_channels: int, g_channels: int, inter_channels: int, dims: int = 2,
                 norm: str = "batch") -> None:
        super().__init__()
        self.theta_x = ConvNormAct(x_channels, inter_channels, dims, 1, "same", norm, act=False)
        self.phi_g = ConvNormAct(g_channels, inter_channels, dims, 1, "same", norm, act=False)
        self.psi = nn.Sequential(conv_nd(dims)(inter_channels, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        g = self.phi_g(g)
        if g.shape[2:] != x.shape[2:]:
            g = F.interpolate(g, size=x.shape[2:], mode="nearest")
        alpha = self.psi(F.relu(self.theta_x(x) + g))
        return x * alpha


class Down(nn.Module):
    """2x2 max-pool with stride 2, then a level block."""

    def __init__(self, block: nn.Module, dims: int = 2) -> None:
        super().__init__()
        self.pool = max_pool_nd(dims)(2)
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.pool(x))


class Up(nn.Module):
    """2x2 up-convolution (halving the channels), optional gate and path on the skip,
    centre-crop of the skip to the decoder's size, concatenation, then a level block."""

    def __init__(self, cin: int, cup: int, block: nn.Module, dims: int = 2,
                 gate: nn.Module | None = None, path: nn.Module | None = None) -> None:
        super().__init__()
        self.up = conv_transpose_nd(dims)(cin, cup, 2, stride=2)
        self.gate = gate
        self.path = path if path is not None else nn.Identity()
        self.block = block

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.up(x)
        skip = center_crop(self.path(skip), up.shape[2:])
        if self.gate is not None:
            skip = self.gate(skip, x)
        return self.block(torch.cat([skip, up], dim=1))


# ---------------------------------------------------------------------------------------------
# pix2pix / PatchGAN levels (Isola et al. 2017): 4x4 stride-2 convolutions instead of pooling


def maybe_spectral_norm(conv: nn.Module, on: bool) -> nn.Module:
    """Wrap ``conv`` in spectral normalisation (Miyato et al. 2018) when ``on``.

    The parametrization API keeps ``weight_orig`` and the power-iteration vectors in the state
    dict, so a saved model reloads with the same outputs in eval mode."""
    return nn.utils.parametrizations.spectral_norm(conv) if on else conv


class StridedDown(nn.Sequential):
    """Encoder level of the pix2pix U-Net: 4x4 stride-2 conv -> norm -> LeakyReLU(0.2).

    ``norm="none"`` for the outermost and innermost levels (as pix2pix), ``act=False`` for the
    innermost one, whose output goes straight to the decoder's ReLU."""

    def __init__(self, cin: int, cout: int, dims: int = 2, norm: str = "batch",
                 act: bool = True) -> None:
        layers: list[nn.Module] = [conv_nd(dims)(cin, cout, 4, stride=2, padding=1, bias=norm == "none"),
                                   make_norm(norm, cout, dims)]
        if act:
            # Not in place: the activated output is also the skip the decoder concatenates
            # (what pix2pix's in-place LeakyReLU ends up passing on its skips too).
            layers.append(nn.LeakyReLU(0.2))
        super().__init__(*layers)


class StridedUp(nn.Sequential):
    """Decoder level of the pix2pix U-Net: ReLU -> 4x4 stride-2 transposed conv -> norm
    (-> dropout). Pre-activation: its input is the concatenation [skip, upsampled]."""

    def __init__(self, cin: int, cout: int, dims: int = 2, norm: str = "batch",
                 dropout: float = 0.0, bias: bool | None = None) -> None:
        layers: list[nn.Module] = [
            nn.ReLU(),
            conv_transpose_nd(dims)(cin, cout, 4, stride=2, padding=1,
                                    bias=norm == "none" if bias is None else bias),
            make_norm(norm, cout, dims),
        ]
        if dropout:
            layers.append(nn.Dropout(dropout))  # element-wise, as pix2pix
        super().__init__(*layers)


class ConvNormLeaky(nn.Sequential):
    """PatchGAN layer: 4x4 conv (stride 2 or 1, padding 1) -> norm -> LeakyReLU(0.2), with
    optional spectral norm on the conv."""

    def __init__(self, cin: int, cout: int, stride: int = 2, norm: str = "batch",
                 spectral_norm: bool = False, dims: int = 2, act: bool = True) -> None:
        conv = conv_nd(dims)(cin, cout, 4, stride=stride, padding=1, bias=norm == "none")
        layers: list[nn.Module] = [maybe_spectral_norm(conv, spectral_norm), make_norm(norm, cout, dims)]
        if act:
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        super().__init__(*layers)
