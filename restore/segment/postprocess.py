"""Post-processing of segmentation outputs: small islands and holes, instance splitting (the
dense-CRF refinement of class probabilities is ``restore.segment.crf``).

Label maps are numpy arrays (2D or 3D, 0 = background).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.measure import label as cc_label
from skimage.morphology import h_maxima
from skimage.segmentation import relabel_sequential, watershed

__all__ = ["fill_holes", "instance_scale", "remove_small", "split_instances"]


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


def instance_scale(foreground: np.ndarray, connectivity: int = 1) -> tuple[int, float] | None:
    """``split_instances``'s defaults (``min_distance``, ``h``) for the objects of ``foreground``,
    leaving out those cut by its border: measured once on a sample block, they let every block
    of a volume split its objects alike (each block's own median would drift with what it cuts).
    None when no object lies wholly inside."""
    fg = np.asarray(foreground).astype(bool)
    comps, n = ndi.label(fg, structure=_structure(fg.ndim, connectivity))
    if n == 0:
        return None
    cut = np.unique(np.concatenate([np.take(comps, i, axis=a).ravel() for a in range(fg.ndim) for i in (0, -1)]))
    sizes = np.bincount(comps.ravel())
    inside = np.setdiff1d(np.arange(1, n + 1), cut)
    sizes = sizes[inside] if len(inside) else sizes[1:]
    radius = _equivalent_radius(float(np.median(sizes)), fg.ndim)
    return max(1, int(round(0.5 * radius))), max(0.5, 0.1 * radius)


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
    if fg.size > BY_PIECE_ABOVE and n > 1:
        inst = _split_by_piece(fg, comps, min_distance, h, prob, connectivity)
    else:
        inst = _watershed(fg, comps, n, min_distance, h, prob, connectivity)
    if min_size > 1:
        inst = remove_small(inst, min_size, connectivity)
    inst, _, _ = relabel_sequential(inst)
    return inst.astype(_smallest_uint(int(inst.max())))


# Above this many voxels, each connected piece is split inside its own box: on a 72 x 448 x 448
# block the whole array's distance map and h-maxima took ~110 bytes a voxel (h-maxima alone
# 100, and 60% of the time, flooding the background too), which put a block of a volume over 2 GB.
BY_PIECE_ABOVE = 1 << 22


def _split_by_piece(fg: np.ndarray, comps: np.ndarray, min_distance: int, h: float, prob: np.ndarray | None,
                    connectivity: int) -> np.ndarray:
    """``_watershed`` on each connected piece in its bounding box (a voxel of background around
    it, the rest of the box masked out): the same seeds and basins, as a piece's distances, maxima
    and flooding never reach past the background around it."""
    out = np.zeros(fg.shape, np.uint32)
    total = 0
    for k, box in enumerate(ndi.find_objects(comps), 1):
        if box is None:
            continue
        box = tuple(slice(max(0, b.start - 1), min(n, b.stop + 1)) for b, n in zip(box, fg.shape))
        piece = comps[box] == k
        inst = _watershed(piece, piece.astype(np.int32), 1, min_distance, h,
                          None if prob is None else np.asarray(prob)[box], connectivity)
        inside = inst > 0
        out[box][inside] = inst[inside] + total
        total += int(inst.max())
    return out


def _watershed(fg: np.ndarray, comps: np.ndarray, n: int, min_distance: int, h: float,
               prob: np.ndarray | None, connectivity: int) -> np.ndarray:
    """Seeds (deep maxima of the distance map, spaced) and the watershed of the foreground ``fg``
    whose ``n`` connected pieces are ``comps``."""
    land = ndi.distance_transform_edt(fg)
    if prob is not None:
        land = land * np.clip(np.asarray(prob, dtype=np.float64), 0, 1)
    deep = h_maxima(land, h).astype(bool) & fg
    # Spacing among the deep maxima; every peak marks the whole plateau it sits on, so a flat
    # ridge is one seed however long it is.
    peaks = peak_local_max(np.where(deep, land, 0), min_distance=min_distance, labels=comps,
                           exclude_border=False)
    plateaus, _ = ndi.label(deep, structure=_structure(fg.ndim, connectivity))  # never spans two objects
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
    return watershed(-land, markers, mask=fg, connectivity=connectivity)
