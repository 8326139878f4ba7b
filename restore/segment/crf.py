"""A dense-CRF refinement of class probabilities (``dense_crf``), on torch tensors so it runs on
whichever device the probabilities are on (``restore segment --crf``)."""
from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

__all__ = ["dense_crf"]


def _gaussian_1d(sigma: float, radius: int, device, dtype) -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    return torch.exp(-0.5 * (x / sigma) ** 2)  # peak 1: the kernel k(i, i) = 1 of the paper


def _spatial_filter(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Exact (truncated at 4 sigma) Gaussian filter of (V, H, W), zero outside the image."""
    r = max(1, int(math.ceil(4 * sigma)))
    g = _gaussian_1d(sigma, r, x.device, x.dtype)
    y = F.conv2d(x[:, None], g.view(1, 1, 1, -1), padding=(0, r))
    return F.conv2d(y, g.view(1, 1, -1, 1), padding=(r, 0))[:, 0]


class _Grid:
    """Bilateral grid (Paris & Durand 2006) approximating sum_j exp(-|f_i - f_j|^2 / 2) v_j.

    ``feat`` (d, n): features in kernel units. Points are splatted onto a dense grid of
    spacing ``step`` with multilinear weights, each axis is blurred with a sampled Gaussian and
    the result sliced with the same weights; the blur width makes the variance per axis
    (tent + blur + tent) equal to 1, the target kernel. The plan (corner indices and weights)
    depends only on the features, so it is built once and reused by every iteration.
    """

    def __init__(self, feat: torch.Tensor, step: float, dtype: torch.dtype) -> None:
        d, n = feat.shape
        f = feat / step
        f = f - f.amin(1, keepdim=True)
        base = f.floor()
        frac = (f - base).to(dtype)
        base = base.long()
        self.size = (base.amax(1) + 2).tolist()
        strides = [math.prod(self.size[k + 1:]) for k in range(d)]
        lin = (base * torch.tensor(strides, device=feat.device)[:, None]).sum(0)
        sb = math.sqrt(max(1 / step**2 - 1 / 3, 0.09))  # blur sigma in cells
        self.r = max(1, int(round(2.5 * sb)))
        self.g = _gaussian_1d(sb, self.r, feat.device, dtype).tolist()
        # The grid's kernel at zero distance depends on where a point falls in its cell (up to
        # +-40% in 5D); dividing by the sqrt of that self-weight on both sides removes most of
        # this aliasing. For separable weights it is a product over the axes.
        selfw = torch.ones(n, device=feat.device, dtype=dtype)
        for k in range(d):
            selfw = selfw * ((1 - frac[k]) ** 2 + frac[k] ** 2 + 2 * self.g[self.r + 1] * frac[k] * (1 - frac[k]))
        corners = list(itertools.product((0, 1), repeat=d))
        self.idx = torch.empty(len(corners), n, dtype=torch.long, device=feat.device)
        self.w = torch.empty(len(corners), n, dtype=dtype, device=feat.device)
        for c, corner in enumerate(corners):
            w = selfw.rsqrt()
            for k, bit in enumerate(corner):
                w = w * (frac[k] if bit else 1 - frac[k])
            self.idx[c] = lin + sum(b * s for b, s in zip(corner, strides))
            self.w[c] = w

    def __call__(self, vals: torch.Tensor) -> torch.Tensor:
        v = vals.shape[0]
        grid = torch.zeros(v, math.prod(self.size), device=vals.device, dtype=vals.dtype)
        grid.index_add_(1, self.idx.view(-1), (vals[:, None] * self.w).view(v, -1))
        grid = grid.view(v, *self.size)
        r, g = self.r, self.g
        for k in range(1, grid.ndim):
            # Shift-and-add: conv1d over millions of very short rows is several times slower.
            padded = F.pad(grid.movedim(k, -1), (r, r))
            blurred = g[r] * padded[..., r:r + self.size[k - 1]]
            for t in range(2 * r + 1):
                if t != r:
                    blurred.add_(padded[..., t:t + self.size[k - 1]], alpha=g[t])
            grid = blurred.movedim(-1, k)
        grid = grid.reshape(v, -1)
        return (grid[:, self.idx.view(-1)].view(v, *self.idx.shape) * self.w).sum(1)


class _BilateralFilter:
    """Raw appearance-kernel filter of (V, H, W) in tiles with a 3-sigma halo, each tile's grid
    under ``max_cells`` cells and its plan under ``max_entries`` (corner, pixel) pairs, so
    memory is bounded whatever the image size. Plans are kept between calls when they fit in
    ``cache_entries`` in all, else rebuilt (slower, same result)."""

    def __init__(self, image: torch.Tensor, sxy: float, srgb: float, max_cells: int = 2**22,
                 max_entries: int = 2**24, cache_entries: int = 2**24, step: float | None = None) -> None:
        c, self.h, self.w = image.shape
        self.sxy = sxy
        self.colour = image * (255.0 / srgb)  # srgb is in 0-255 units, as in pydensecrf
        span = (self.colour.amax((1, 2)) - self.colour.amin((1, 2))).tolist()
        self.halo = int(math.ceil(3 * sxy))

        def fits(step: float, th: int, tw: int) -> bool:
            he, we = min(th + 2 * self.halo, self.h), min(tw + 2 * self.halo, self.w)
            cells = (he / (sxy * step) + 2) * (we / (sxy * step) + 2) * math.prod(x / step + 2 for x in span)
            return cells <= max_cells and he * we * 2 ** (c + 2) <= max_entries

        def work(th: int, tw: int) -> int:  # pixels splatted per call, halos included
            return sum(self._window(y0, x0, th, tw)[4] for y0, x0 in self._starts(th, tw))

        # The finest spacing (most accurate) whose whole-image grid fits; else spacing 1 and
        # the tile shape (strips or blocks) that splats the fewest pixels.
        self.step = step or next((st for st in (0.5, 0.7) if fits(st, self.h, self.w)), 1.0)
        shapes = []
        tw = self.w
        while True:
            th = self.h
            while th > 16 and not fits(self.step, th, tw):
                th = int(th * 0.8)
            shapes.append((th, tw))
            if tw <= 16 or fits(self.step, self.h, tw):
                break
            tw = int(tw * 0.7)
        self.th, self.tw = min(shapes, key=lambda sh: work(*sh))
        self.tiles = self._starts(self.th, self.tw)
        n = work(self.th, self.tw)
        self.cache = {} if n * 2 ** (c + 2) <= cache_entries else None

    def _starts(self, th: int, tw: int) -> list[tuple[int, int]]:
        return [(y0, x0) for y0 in range(0, self.h, th) for x0 in range(0, self.w, tw)]

    def _window(self, y0: int, x0: int, th: int | None = None, tw: int | None = None):
        th, tw = th or self.th, tw or self.tw
        ya, yb = max(0, y0 - self.halo), min(self.h, y0 + th + self.halo)
        xa, xb = max(0, x0 - self.halo), min(self.w, x0 + tw + self.halo)
        return ya, yb, xa, xb, (yb - ya) * (xb - xa)

    def _plan(self, y0: int, x0: int, dtype: torch.dtype) -> _Grid:
        if self.cache is not None and (y0, x0) in self.cache:
            return self.cache[(y0, x0)]
        ya, yb, xa, xb, _ = self._window(y0, x0)
        dev = self.colour.device
        yy, xx = torch.meshgrid(torch.arange(ya, yb, device=dev, dtype=dtype),
                                torch.arange(xa, xb, device=dev, dtype=dtype), indexing="ij")
        feat = torch.cat([yy[None] / self.sxy, xx[None] / self.sxy, self.colour[:, ya:yb, xa:xb].to(dtype)])
        plan = _Grid(feat.reshape(feat.shape[0], -1), self.step, dtype)
        if self.cache is not None:
            self.cache[(y0, x0)] = plan
        return plan

    def __call__(self, vals: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(vals)
        for y0, x0 in self.tiles:
            ya, yb, xa, xb, _ = self._window(y0, x0)
            v = vals[:, ya:yb, xa:xb]
            res = self._plan(y0, x0, vals.dtype)(v.reshape(v.shape[0], -1)).view(v.shape)
            ye, xe = min(self.h, y0 + self.th), min(self.w, x0 + self.tw)
            out[:, y0:ye, x0:xe] = res[:, y0 - ya:ye - ya, x0 - xa:xe - xa]
        return out


def dense_crf(probs: torch.Tensor, image: torch.Tensor, iterations: int = 5, sxy: float = 3.0,
              compat: float = 3.0, bilateral_sxy: float = 50, srgb: float = 13,
              bilateral_compat: float = 4.0, max_cells: int = 2**22) -> torch.Tensor:
    """Refine class probabilities with a fully connected CRF (Kraehenbuehl & Koltun 2011).

    ``probs`` (K, H, W) sums to 1 over K (K = 1: a foreground probability, handled as two
    classes and returned as (1, H, W)); ``image`` (C, H, W) or (H, W), float in 0-1 (grey or
    RGB; uint8 is divided by 255). Unary -log(probs); a spatial Gaussian kernel (``sxy``,
    weight ``compat``) and a bilateral kernel (``bilateral_sxy`` pixels, ``srgb`` in 0-255
    intensity units, weight ``bilateral_compat``); Potts compatibility; ``iterations`` of
    mean field. Returns refined probabilities of the input's shape.

    Hand-written because pydensecrf, the reference implementation, is unmaintained. As in its
    current version, kernels are symmetrically normalised (D^-1/2 K D^-1/2) and include the
    pixel itself. The spatial kernel is filtered exactly (separable convolution). The
    bilateral kernel is approximated with a bilateral grid (Paris & Durand) over
    (y, x, colour) instead of the permutohedral lattice: linear splat/slice and a Gaussian
    blur, grid spacing 0.5-1 kernel sigma; images whose grid would pass ``max_cells`` cells
    are processed in tiles with a 3-sigma halo, so memory stays bounded. Time is linear in
    pixels: on one CPU core about 0.3 s for a 512x512 grey image and 1-2 s for RGB. Against
    the exact O(N^2) sum the normalised bilateral message is off by < 1% on average, a few %
    at worst (tests/test_postprocess.py). Returns float32, or the dtype of float ``probs``.
    """
    if probs.ndim != 3:
        raise ValueError(f"probs must be (K, H, W), got {tuple(probs.shape)}")
    single = probs.shape[0] == 1
    p = probs.float()
    if single:
        p = p.clamp(0, 1)
        p = torch.cat([1 - p, p])
    img = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
    img = img.to(p.device)
    if img.ndim == 2:
        img = img[None]
    if img.shape[0] == 4:
        img = img[:3]  # RGBA: the alpha channel is no appearance feature
    if img.shape[0] > 1 and bool((img == img[:1]).all()):
        img = img[:1]  # grey stored as RGB: a 3D grid instead of a 5D one, finer and faster
    if img.shape[1:] != p.shape[1:]:
        raise ValueError(f"image {tuple(img.shape)} and probs {tuple(p.shape)} differ in size")
    p = p / p.sum(0, keepdim=True).clamp_min(1e-12)
    unary = -torch.log(p.clamp_min(1e-8))
    q = torch.softmax(-unary, 0)
    filters = []
    ones = torch.ones_like(p[:1])
    if compat:
        filters.append((compat, lambda v: _spatial_filter(v, sxy)))
    if bilateral_compat:
        filters.append((bilateral_compat, _BilateralFilter(img, bilateral_sxy, srgb, max_cells)))
    norms = [f(ones).clamp_min(1e-20).rsqrt() for _, f in filters]
    # Q sums to 1 over classes, so the last class's message is filter(nrm) minus the others:
    # K - 1 filtered channels per iteration instead of K (half the work for two classes).
    totals = [f(nrm) if iterations else None for (_, f), nrm in zip(filters, norms)]
    for _ in range(iterations):
        energy = -unary
        for (w, f), nrm, total in zip(filters, norms, totals):
            part = f(nrm * q[:-1])
            msg = torch.cat([part, total - part.sum(0, keepdim=True)])
            energy = energy + w * nrm * msg  # Potts: -(-w) * filtered Q
        q = torch.softmax(energy, 0)
    q = q[1:] if single else q
    return q.to(probs.dtype) if probs.is_floating_point() else q
