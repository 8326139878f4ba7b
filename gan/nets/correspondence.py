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


def xdog_torch(rgb: torch.Tensor, sigma: float = 0.8, k: float = 1.6, tau: float = 0.98,
               epsilon: float = -0.005, phi: float = 200.0) -> torch.Tensor:
    """restore.sketch.extract.xdog's line form in torch (RGB (N, 3, H, W) in [-1, 1] -> lines
    (N, 1, H, W) in [-1, 1], -1 = ink), so the reference's own sketch is made inside the network
    and exports with it; Gaussian kernels cut at 3 sigma, reflected borders, as cv2's."""
    lum = ((rgb.float() + 1) / 2 * rgb.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1).float()).sum(1, True)

    def blur(x: torch.Tensor, s: float) -> torch.Tensor:
        r = max(1, int(3 * s + 0.5))
        t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
        g = torch.exp(-t**2 / (2 * s * s))
        g = g / g.sum()
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), g.view(1, 1, 1, -1))
        return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), g.view(1, 1, -1, 1))

    d = blur(lum, sigma) - tau * blur(lum, sigma * k)
    lines = torch.where(d >= epsilon, torch.ones_like(d), 1 + torch.tanh(phi * (d - epsilon)))
    return (lines.clamp(0, 1) * 2 - 1).to(rgb.dtype)


class SketchMatch(nn.Module):
    """Correspondence by the sketch's own features: queries from the input sketch's encoder
    features, keys from the *reference's* sketch (``xdog_torch``) through the same encoder, so
    both sides live in one feature space from the first step (RGB-to-sketch keys, as
    ``CrossAttention``, must learn that space; measured: 12,000 steps left them about as good as
    the mean colour). A token is described by its level's features and every coarser level's,
    upsampled (local shape plus context, as SCFT concatenates its levels), through one shared
    projection; cosine similarity with a learned temperature. Values: the reference encoder's
    features and the reference's colours at this scale. Output projection starts at zero."""

    def __init__(self, widths: list[int], level: int, dim: int = 128, heads: int = 4) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not a multiple of {heads} heads")
        self.level, self.heads = level, heads
        feats = widths[level:]
        self.norms = nn.ModuleList(nn.GroupNorm(1, w) for w in feats)
        self.proj = nn.Conv2d(sum(feats), dim, 1)
        self.log_temperature = nn.Parameter(torch.full((1, heads, 1, 1), 2.3))  # e^2.3 ~ 10
        self.norm_v = nn.GroupNorm(1, widths[level])
        self.v = nn.Conv2d(widths[level] + 3, dim, 1)
        self.out = nn.Conv2d(dim, widths[level], 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def describe(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Encoder features at levels ``level``.. (finest first) -> unit descriptors (N, heads, tokens, d)."""
        size = feats[0].shape[-2:]
        parts = [norm(f if f.shape[-2:] == size else F.interpolate(f, size=size, mode="nearest"))
                 for norm, f in zip(self.norms, feats)]
        d = self.proj(torch.cat(parts, dim=1))
        n, c = d.shape[:2]
        d = d.reshape(n, self.heads, c // self.heads, -1).transpose(2, 3)
        return F.normalize(d, dim=-1)

    def forward(self, h: torch.Tensor, query_feats: list[torch.Tensor], key_feats: list[torch.Tensor],
                ref_feat: torch.Tensor, ref_rgb: torch.Tensor) -> torch.Tensor:
        q = self.describe(query_feats) * self.log_temperature.exp().to(h.dtype)
        k = self.describe(key_feats)
        r = self.norm_v(ref_feat)
        colours = F.adaptive_avg_pool2d(ref_rgb.to(r.dtype), r.shape[-2:])
        v = self.v(torch.cat([r, colours], dim=1))
        n, c = v.shape[:2]
        v = v.reshape(n, self.heads, c // self.heads, -1).transpose(2, 3)
        a = F.scaled_dot_product_attention(q, k, v, scale=1.0)
        H, W = query_feats[0].shape[-2:]
        return h + self.out(a.transpose(2, 3).reshape(n, -1, H, W))
