"""Dense sketch-to-reference correspondence for the colorizer (Lee et al., CVPR 2020, SCFT).

The style vector tells the colorizer *which* colours a reference has, not *where* they go. Here
the sketch's features attend to the reference's: every sketch position (a query) looks up the
reference positions whose features match (keys) and takes their content (values), so the red
of the reference's hat goes to the sketch's hat even when the two are mirrored, turned or
warped against each other (the augmented-self references of gan/data/sketch.py teach this).
No positional encoding: the match must be semantic, not "the same place".

- ``ReferenceEncoder``: the reference RGB image -> features at the colorizer's levels (its own
  weights; the same shape as the sketch encoder, so level j has the same width and scale);
- ``CrossAttention``: ``h + out(softmax(q k^T / sqrt(d)) v)`` with multi-head scaled dot-product
  attention (``torch.nn.functional.scaled_dot_product_attention``: fused kernels on CPU and
  CUDA, and it exports to ONNX). The values also see the reference's own colours, average-pooled
  to the level's scale, so a colour can be carried over exactly rather than re-synthesised.
  The output projection starts at zero: a colorizer trained without attention keeps its
  behaviour when the module is added and fine-tuned (``restore train colorizer --init``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ResidualBlock


class ReferenceEncoder(nn.Module):
    """RGB reference (N, 3, S, S) in [-1, 1] -> {level: features}, level j at 1 / (unshuffle * 2^j)
    of the reference's side with ``widths[j]`` channels, for the requested ``levels``."""

    def __init__(self, widths: list[int], pixel_unshuffle: int, levels: tuple[int, ...], blocks: int = 1) -> None:
        super().__init__()
        self.unshuffle, self.levels = pixel_unshuffle, tuple(sorted(levels))
        depth = max(self.levels)
        self.head = nn.Conv2d(3 * pixel_unshuffle**2, widths[0], 3, padding=1)
        self.stages = nn.ModuleList(
            nn.Sequential(*(ResidualBlock(widths[j], widths[j], norm="none") for _ in range(blocks)))
            for j in range(depth + 1))
        self.downs = nn.ModuleList(nn.Conv2d(widths[j], widths[j + 1], 2, stride=2) for j in range(depth))

    def forward(self, ref: torch.Tensor) -> dict[int, torch.Tensor]:
        h = F.pixel_unshuffle(ref, self.unshuffle) if self.unshuffle > 1 else ref
        h = self.head(h)
        out = {}
        for j, stage in enumerate(self.stages):
            h = stage(h)
            if j in self.levels:
                out[j] = h
            if j < len(self.downs):
                h = self.downs[j](h)
        return out


class CrossAttention(nn.Module):
    """Sketch features (N, C, H, W) attend to reference features (N, Cr, h, w); returns (N, C, H, W)."""

    def __init__(self, channels: int, ref_channels: int, heads: int = 4, dim: int = 0) -> None:
        super().__init__()
        dim = dim or channels
        if dim % heads:
            raise ValueError(f"attention width {dim} is not a multiple of {heads} heads")
        self.heads = heads
        self.norm_q = nn.GroupNorm(1, channels)
        self.norm_r = nn.GroupNorm(1, ref_channels)
        self.q = nn.Conv2d(channels, dim, 1)
        self.k = nn.Conv2d(ref_channels, dim, 1)
        self.v = nn.Conv2d(ref_channels + 3, dim, 1)  # + the reference's colours at this scale
        self.out = nn.Conv2d(dim, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        n, c = t.shape[:2]
        return t.reshape(n, self.heads, c // self.heads, -1).transpose(2, 3)  # (N, heads, tokens, d)

    def forward(self, h: torch.Tensor, ref_feat: torch.Tensor, ref_rgb: torch.Tensor) -> torch.Tensor:
        r = self.norm_r(ref_feat)
        colours = F.adaptive_avg_pool2d(ref_rgb.to(r.dtype), r.shape[-2:])
        q = self._heads(self.q(self.norm_q(h)))
        k = self._heads(self.k(r))
        v = self._heads(self.v(torch.cat([r, colours], dim=1)))
        a = F.scaled_dot_product_attention(q, k, v)  # (N, heads, H*W, d)
        n, _, H, W = h.shape
        a = a.transpose(2, 3).reshape(n, -1, H, W)
        return h + self.out(a)
