"""Post-processing of segmentation outputs: small islands and holes, instance splitting,
and a dense-CRF refinement of class probabilities.

Label maps are numpy arrays (2D or 3D, 0 = background); the CRF works on torch tensors so
it runs on whichever device the probabilities are on.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.measure import label as cc_label
from skimage.morphology import h_maxima
from skimage.segmentation import relabel_sequential, watershed

__all__ = ["remove_small", "fill_holes", "split_instances", "dense_crf"]


def _structure(ndim: int, connectivity: int) -> np.ndarray:
    return ndi.generate_binary_structure(ndim, max(1, min(connectivity, ndim)))


def _smallest_uint(n: int) -> np.dtype:
    return np.dtype(np.uint16 if n < 2**16 else np.uint32)


# -- islands and holes ----------------------------------------------------------------------
def remove_small(labels: np.ndarray, min_size: int, connectivity: int = 1) -> np.ndarray:
    """Set connected pieces of any label smaller than ``min_size`` pixels to 0.

    Works on class maps (each class separately: a piece is a connected run of one value)
    and on instance maps alike, in 2D and 3D. ``connectivity`` 1 = faces only.
    """
    labels = np.asarray(labels)
    out = labels.copy()
    if min_size <= 1 or not labels.any():
        return out
    # skimage's label joins neighbours of equal value only, so one call handles every class.
    pieces = cc_label(labels, background=0, connectivity=max(1, min(connectivity, labels.ndim)))
    small = np.bincount(pieces.ravel()) < min_size
    small[0] = False
    out[small[pieces]] = 0
    return out


def fill_holes(labels: np.ndarray, max_size: int | None = None, connectivity: int = 1) -> np.ndarray:
    """Fill background holes that one label encloses with that label (2D and 3D).

    A hole is a connected background (0) region that does not touch the array border and
    whose neighbours all carry the same label; a gap bordered by two classes (or two touching
    instances) is left as it is. ``max_size`` None fills every hole, else holes up to that size.
    """
    labels = np.asarray(labels)
    out = labels.copy()
    holes, n = ndi.label(labels == 0, structure=_structure(labels.ndim, connectivity))
    if n == 0:
        return out
    on_border = np.zeros(n + 1, bool)
    for ax in range(labels.ndim):
        on_border[np.take(holes, 0, axis=ax)] = True
        on_border[np.take(holes, -1, axis=ax)] = True
    # (hole id, neighbouring label) pairs over face neighbours, in both directions of each axis;
    # hand-written because no library gives "the set of labels around a region" in one call.
    ids, nbrs = [], []
    lab = labels.astype(np.int64, copy=False)
    for ax in range(labels.ndim):
        lo = [slice(None)] * labels.ndim
        hi = [slice(None)] * labels.ndim
        lo[ax], hi[ax] = slice(None, -1), slice(1, None)
        for a, b in ((tuple(lo), tuple(hi)), (tuple(hi), tuple(lo))):
            h, v = holes[a], lab[b]
            m = (h > 0) & (v != 0)
            ids.append(h[m])
            nbrs.append(v[m])
    ids, nbrs = np.concatenate(ids), np.concatenate(nbrs)
    idx = np.arange(1, n + 1)
    if ids.size == 0:
        return out
    low = np.asarray(ndi.minimum(nbrs, ids, idx), dtype=np.int64)
    high = np.asarray(ndi.maximum(nbrs, ids, idx), dtype=np.int64)
    has = np.bincount(ids, minlength=n + 1)[1:] > 0
    fill = np.zeros(n + 1, bool)
    fill[1:] = has & (low == high) & ~on_border[1:]
    if max_size is not None:
        fill[1:] &= np.bincount(holes.ravel(), minlength=n + 1)[1:] <= max_size
    value = np.zeros(n + 1, np.int64)
    value[1:] = np.where(fill[1:], low, 0)
    sel = fill[holes]
    out[sel] = value[holes[sel]].astype(out.dtype)
    return out


# -- instances -------------------------------------------------------------------------------
def _equivalent_radius(size: float, ndim: int) -> float:
    """Radius of the disc (2D) or ball (3D) of ``size`` pixels."""
    return math.sqrt(size / math.pi) if ndim == 2 else (3 * size / (4 * math.pi)) ** (1 / 3)


def split_instances(foreground: np.ndarray, min_distance: int = 0, prob: np.ndarray | None = None,
                    min_size: int = 0, h: float | None = None, connectivity: int = 1) -> np.ndarray:
    """Instance labels (uint16, uint32 past 65535 objects) from a foreground mask, 2D or 3D.

    Touching round objects are split by a watershed on the distance transform. Markers are
    the maxima of the distance map that are at least ``h`` deep (h-maxima: discretisation
    ripples on one object are not seeds) and ``min_distance`` apart (peak_local_max inside
    each connected component). ``min_distance`` 0 = half the equivalent radius of the median
    connected component; ``h`` None = max(0.5, 0.1 * that radius). With ``prob`` (foreground
    probability, same shape) the landscape is distance * prob, so uncertain seams between
    nuclei become valleys. Objects smaller than ``min_size`` are dropped.
    """
    fg = np.asarray(foreground).astype(bool)
    comps, n = ndi.label(fg, structure=_structure(fg.ndim, connectivity))
    if n == 0:
        return np.zeros(fg.shape, np.uint16)
    radius = _equivalent_radius(float(np.median(np.bincount(comps.ravel())[1:])), fg.ndim)
    if min_distance <= 0:
        min_distance = max(1, int(round(0.5 * radius)))
    if h is None:
        h = max(0.5, 0.1 * radius)
    land = ndi.distance_transform_edt(fg)
    if prob is not None:
        land = land * np.clip(np.asarray(prob, dtype=np.float64), 0, 1)
    deep = h_maxima(land, h).astype(bool) & fg
    # Spacing among the deep maxima; every peak marks the whole plateau it sits on, so a flat
    # ridge is one seed however long it is.
    peaks = peak_local_max(np.where(deep, land, 0), min_distance=min_distance, labels=comps,
                           exclude_border=False)
    plateaus, _ = ndi.label(deep, structure=_structure(fg.ndim, fg.ndim))
    keep = np.unique(plateaus[tuple(peaks.T)]) if len(peaks) else np.zeros(0, int)
    keep = keep[keep > 0]
    lut = np.zeros(plateaus.max() + 1, np.int64)
    lut[keep] = np.arange(1, len(keep) + 1)
    markers = lut[plateaus]
    # A component without any seed (tiny, or flat below h) still becomes one object.
    seeded = np.zeros(n + 1, bool)
    seeded[comps[markers > 0]] = True
    missing = np.flatnonzero(~seeded[1:]) + 1
    if len(missing):
        at = ndi.maximum_position(land, comps, missing)
        for k, pos in enumerate(at):
            markers[pos] = len(keep) + 1 + k
    inst = watershed(-land, markers, mask=fg, connectivity=connectivity)
    if min_size > 1:
        inst = remove_small(inst, min_size, connectivity)
    inst, _, _ = relabel_sequential(inst)
    return inst.astype(_smallest_uint(int(inst.max())))


# -- dense CRF ---------------------------------------------------------------------------------
def _gaussian_1d(sigma: float, radius: int, device, dtype) -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    return torch.exp(-0.5 * (x / sigma) ** 2)  # peak 1: the kernel k(i, i) = 1 of the paper


def _spatial_filter(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Exact (truncated at 4 sigma) Gaussian filter of (V, H, W), zero outside the image."""
    r = max(1, int(math.ceil(4 * sigma)))
    g = _gaussian_1d(sigma, r, x.device, x.dtype)
    y = F.conv2d(x[:, None], g.view(1, 1, 1, -1), padding=(0, r))
    return F.conv2d(y, g.view(1, 1, -1, 1), padding=(r, 0))[:, 0]


def _grid_filter(feat: torch.Tensor, vals: torch.Tensor, step: float) -> torch.Tensor:
    """Approximate sum_j exp(-|f_i - f_j|^2 / 2) v_j with a bilateral grid.

    ``feat`` (d, n) features in kernel units, ``vals`` (V, n). Splat with multilinear weights
    onto a dense grid of spacing ``step``, blur each axis with a sampled Gaussian, slice with
    the same weights (Paris & Durand 2006). The blur width makes the total variance per axis
    (tent + blur + tent) equal to 1, i.e. the target kernel.
    """
    d, n = feat.shape
    f = feat / step
    f = f - f.amin(1, keepdim=True)
    base = f.floor()
    frac = f - base
    base = base.long()
    size = (base.amax(1) + 2).tolist()
    strides = [1] * d
    for k in range(d - 2, -1, -1):
        strides[k] = strides[k + 1] * size[k + 1]
    lin = (base * torch.tensor(strides, device=feat.device)[:, None]).sum(0)
    corners = list(itertools.product((0, 1), repeat=d))

    def weights(corner):
        w = torch.ones(n, device=feat.device, dtype=vals.dtype)
        for k, c in enumerate(corner):
            w = w * (frac[k] if c else 1 - frac[k])
        return lin + sum(c * s for c, s in zip(corner, strides)), w

    grid = torch.zeros(vals.shape[0], math.prod(size), device=vals.device, dtype=vals.dtype)
    for corner in corners:
        idx, w = weights(corner)
        grid.index_add_(1, idx, vals * w)
    grid = grid.view(vals.shape[0], *size)
    sb = math.sqrt(max(1 / step**2 - 1 / 3, 0.09))  # blur sigma in cells
    g = _gaussian_1d(sb, max(1, int(math.ceil(3 * sb))), vals.device, vals.dtype)
    for k in range(d):
        moved = grid.movedim(k + 1, -1)
        shape = moved.shape
        moved = F.conv1d(moved.reshape(-1, 1, shape[-1]), g.view(1, 1, -1), padding=len(g) // 2)
        grid = moved.view(shape).movedim(-1, k + 1)
    grid = grid.reshape(vals.shape[0], -1)
    out = torch.zeros_like(vals)
    for corner in corners:
        idx, w = weights(corner)
        out += grid[:, idx] * w
    return out


class _BilateralFilter:
    """Raw appearance-kernel filter of (V, H, W), tiled so the grid stays under ``max_cells``."""

    def __init__(self, image: torch.Tensor, sxy: float, srgb: float, max_cells: int) -> None:
        c, self.h, self.w = image.shape
        self.sxy = sxy
        self.colour = image * (255.0 / srgb)  # srgb is in 0-255 units, as in pydensecrf
        span = (self.colour.amax((1, 2)) - self.colour.amin((1, 2))).tolist()
        self.halo = int(math.ceil(3 * sxy))
        # Finest spacing (more accurate) whose whole-image grid fits; else spacing 1 and tiles.
        def cells(step: float, tile_h: int, tile_w: int) -> float:
            sp = [(t + 2 * self.halo) / (sxy * step) + 2 for t in (tile_h, tile_w)]
            return math.prod(sp) * math.prod(s / step + 2 for s in span)
        self.step, self.tile = 1.0, max(self.h, self.w)
        for step in (0.5, 0.7, 1.0):
            if cells(step, self.h, self.w) <= max_cells:
                self.step = step
                break
        while self.tile > 32 and cells(self.step, min(self.tile, self.h), min(self.tile, self.w)) > max_cells:
            self.tile //= 2

    def __call__(self, vals: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(vals)
        t, hl = self.tile, self.halo
        for y0 in range(0, self.h, t):
            for x0 in range(0, self.w, t):
                ya, yb = max(0, y0 - hl), min(self.h, y0 + t + hl)
                xa, xb = max(0, x0 - hl), min(self.w, x0 + t + hl)
                yy, xx = torch.meshgrid(torch.arange(ya, yb, device=vals.device, dtype=vals.dtype),
                                        torch.arange(xa, xb, device=vals.device, dtype=vals.dtype),
                                        indexing="ij")
                feat = torch.cat([yy[None] / self.sxy, xx[None] / self.sxy, self.colour[:, ya:yb, xa:xb]])
                v = vals[:, ya:yb, xa:xb]
                res = _grid_filter(feat.reshape(feat.shape[0], -1), v.reshape(v.shape[0], -1), self.step)
                res = res.view(v.shape)
                ye, xe = min(self.h, y0 + t), min(self.w, x0 + t)
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

    Hand-written: pydensecrf is unmaintained and does not build on current Pythons. As in its
    current version, kernels are symmetrically normalised (D^-1/2 K D^-1/2) and include the
    pixel itself. The spatial kernel is filtered exactly (separable convolution). The
    bilateral kernel is approximated with a bilateral grid (Paris & Durand) over
    (y, x, colour) instead of the permutohedral lattice: linear splat/slice and a Gaussian
    blur, grid spacing 0.5-1 kernel sigma; images whose grid would pass ``max_cells`` cells
    are processed in tiles with a 3-sigma halo, so memory stays bounded. Time is linear in
    pixels (about a second for 512x512 RGB on one CPU core).
    """
    if probs.ndim != 3:
        raise ValueError(f"probs must be (K, H, W), got {tuple(probs.shape)}")
    single = probs.shape[0] == 1
    p = probs.float()
    if single:
        p = torch.cat([1 - p, p]).clamp(0, 1)
    img = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
    img = img.to(p.device)
    if img.ndim == 2:
        img = img[None]
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
    for _ in range(iterations):
        energy = -unary
        for (w, f), nrm in zip(filters, norms):
            energy = energy + w * nrm * f(nrm * q)  # Potts: -(-w) * filtered Q
        q = torch.softmax(energy, 0)
    return q[1:] if single else q
