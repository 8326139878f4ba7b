"""The VQGAN parts RestoreFormer and CodeFormer share (Esser et al.'s taming-transformers, as both
references carry it): GroupNorm(32) + swish residual blocks, stride-2 downsampling with
asymmetric padding, nearest 2x upsampling, and a codebook of learned vectors.

The ops are written as the references write them (``x * sigmoid(x)``, the codebook's distance
expanded as ``|z|^2 + |e|^2 - 2 z.e``, the straight-through ``z + (z_q - z)``): a codebook lookup
is a discontinuous choice, so a different rounding of the features before it could pick another
code and change a whole patch of the face. With the same ops the outputs are bit for bit the
references' (tests/gan/nets/test_restoreformer.py, test_codeformer.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def group_norm(channels: int) -> nn.GroupNorm:
    if channels % 32:
        raise ValueError(f"VQGAN blocks need multiples of 32 channels (GroupNorm(32)), not {channels}")
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


class ResBlock(nn.Module):
    """norm, swish, 3x3 conv, twice; a 1x1 conv on the skip where the width changes. Named as
    CodeFormer's checkpoints name it (the skip ``conv_out``; RestoreFormer's subclass renames it)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.norm2 = group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        if in_channels != out_channels:
            self.conv_out = nn.Conv2d(in_channels, out_channels, 1)

    def skip(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(x) if self.in_channels != self.out_channels else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(swish(self.norm2(h)))
        return self.skip(x) + h


class Downsample(nn.Module):
    """3x3 stride-2 conv after padding one row and column at the bottom and right."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 2, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0))


class Upsample(nn.Module):
    """Nearest 2x, then a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Codebook(nn.Module):
    """``size`` learned vectors of ``dim`` (the published ``quantize.embedding.weight``)."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.size, self.dim = size, dim
        self.embedding = nn.Embedding(size, dim)
        self.embedding.weight.data.uniform_(-1.0 / size, 1.0 / size)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Each position of ``z`` (N, dim, H, W) replaced by its nearest code (squared distance),
        passed through as ``z + (code - z)`` (the straight-through estimator RestoreFormer keeps at
        inference too)."""
        z = z.permute(0, 2, 3, 1).contiguous()
        flat = z.view(-1, self.dim)
        e = self.embedding.weight
        d = torch.sum(flat**2, dim=1, keepdim=True) + torch.sum(e**2, dim=1) - 2 * torch.matmul(flat, e.t())
        index = torch.min(d, dim=1)[1]
        z_q = e[index].view(z.shape).to(z.dtype)  # the rows themselves (the reference's one-hot matmul)
        z_q = z + (z_q - z).detach()
        return z_q.permute(0, 3, 1, 2).contiguous()

    def lookup(self, index: torch.Tensor, shape: tuple[int, int, int, int]) -> torch.Tensor:
        """The codes of ``index`` (N * H * W) as an (N, dim, H, W) map; ``shape`` is (N, H, W, dim)."""
        return self.embedding.weight[index.reshape(-1)].view(shape).permute(0, 3, 1, 2).contiguous()
