"""The input's colours kept: a restored face whose low frequencies of colour are the input's.

Face priors (GFP-GAN, the StyleGAN2 behind it) pull skin tone, saturation and white balance
toward their training faces. The fix CodeFormer and StableSR apply (``wavelet_reconstruction``):
split both faces into a low-frequency band and the rest, and keep the restored face's detail
on the input's low band. Low means a blur of ~2.5 % of the face's side (13 px at 512): coarser
than anything the restorer is meant to add (pores, hair, eyelashes, edges), finer than the
shading and colour of cheeks, lips and eyes, and far past the input's noise and JPEG blocks,
which the blur averages away.

Two ways, ``method``:

* ``"wavelet"`` (the default): CodeFormer's, per RGB channel: five levels of an a-trous
  B3-spline-like blur ([1, 2, 1] / 4, dilated 1, 2, 4, ..., replicated edges) at 512 px, one
  level more or less per octave of face size, evaluated on a 4x coarser grid (the band allows
  it: within a level of the full-resolution filter but at the crop's edge; 3 ms at 512 px
  instead of 30). It brings back the input's low-frequency
  brightness too (its shading and exposure), which is what the issue's measure, CIEDE2000 of
  the low-passed faces, counts (the L term is part of it); what the restorer drew above that
  scale, all of its detail, is kept. Grey faces stay grey (the channels are treated alike).
* ``"lab"``: the same low band of CIELAB's a and b only; L, the luminance, stays the
  restorer's entirely (its exposure and contrast included). For a restorer whose brightness
  one trusts and whose hue one doesn't.

``mask`` (S x S, 0..1: the face region, feathered; None: the whole crop) weighs the correction,
lightly blurred first (sigma S/128) so that a hard mask still blends without a seam; the
correction itself is a smooth field (a difference of two low bands), so the result has no
edge of its own. ``colour_difference`` is the measure: the mean CIEDE2000 between the
low-passed faces.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["LOW_SIGMA", "colour_difference", "keep_colours"]

LOW_SIGMA = 0.025  # the low band's scale, a fraction of the face's side (13 px at 512)
METHODS = ("wavelet", "lab")


def _levels(size: int) -> int:
    """CodeFormer's 5 levels at 512 px, one more per doubling (the blur's sigma is ~0.0255 S)."""
    return max(1, 5 + round(math.log2(size / 512)))


def _low(img: np.ndarray, levels: int) -> np.ndarray:
    """The low band of CodeFormer's ``wavelet_decomposition``: ``levels`` blurs with the 3 x 3
    kernel [1, 2, 1]^T [1, 2, 1] / 16 dilated by 1, 2, 4, ..., replicated edges."""
    for i in range(levels):
        d = 2**i
        k = np.zeros(2 * d + 1, np.float32)
        k[[0, d, 2 * d]] = 0.25, 0.5, 0.25
        img = cv2.sepFilter2D(img, -1, k, k, borderType=cv2.BORDER_REPLICATE)
    return img


def _checked(restored: np.ndarray, source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    restored, source = np.asarray(restored), np.asarray(source)
    for name, a in (("restored", restored), ("source", source)):
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"{name}: expected an RGB uint8 HxWx3 face, got {a.dtype} {a.shape}")
    if restored.shape != source.shape:
        raise ValueError(f"restored {restored.shape} and source {source.shape}: align them to the same size")
    return restored, source


def keep_colours(restored: np.ndarray, source: np.ndarray, mask: np.ndarray | None = None, *,
                 method: str = "wavelet") -> np.ndarray:
    """``restored`` (RGB uint8 S x S, an aligned restored face) with the low-frequency colour of
    ``source`` (the input face, aligned the same way) inside ``mask`` (float S x S in 0..1, None
    for the whole crop); RGB uint8, the shape of ``restored``. See the module's docstring for
    ``method`` ("wavelet" or "lab"). Equal faces come back unchanged, grey ones grey."""
    restored, source = _checked(restored, source)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    h, w = restored.shape[:2]
    weight = None
    if mask is not None:
        mask = np.asarray(mask, np.float32)
        if mask.shape != (h, w):
            raise ValueError(f"mask {mask.shape}: expected {(h, w)}")
        # blurred (sigma S/128) on the low band's coarse grid: 4x fewer pixels a side, bilinear back
        small = cv2.resize(np.clip(mask, 0, 1), _small_size(h, w), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), min(h, w) / 128 / DECIMATE, borderType=cv2.BORDER_REPLICATE)
        weight = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)

    if method == "wavelet":
        # the low band is linear: one blur of the difference, in 0..255 units
        fix = _low_band(cv2.subtract(source, restored, dtype=cv2.CV_32F))
        if weight is not None:
            fix *= weight[..., None]
        return cv2.add(restored, fix, dtype=cv2.CV_8U)  # rounded, saturated

    # "lab": OpenCV's CIELAB (D65, sRGB; float input: L 0..100, a and b about -127..127). The
    # a, b difference is taken on the faces area-averaged to the low band's grid (their low band
    # is all that is used); L is left alone.
    if _is_grey(restored) and _is_grey(source):
        return restored.copy()  # a and b are 0 up to rounding: nothing to move
    small = _small_size(h, w)
    lab = [cv2.cvtColor(cv2.resize(x, small, interpolation=cv2.INTER_AREA).astype(np.float32) / 255,
                        cv2.COLOR_RGB2Lab) for x in (source, restored)]
    fix_ab = _low_band(lab[0][..., 1:] - lab[1][..., 1:], (h, w))
    if weight is not None:
        fix_ab *= weight[..., None]
    res = restored.astype(np.float32) / 255
    lab_res = cv2.cvtColor(res, cv2.COLOR_RGB2Lab)
    moved = lab_res.copy()
    moved[..., 1:] += fix_ab
    # the change in RGB, added to the restored face: the round trip's own error cancels
    change = cv2.cvtColor(moved, cv2.COLOR_Lab2RGB) - cv2.cvtColor(lab_res, cv2.COLOR_Lab2RGB)
    return cv2.add(restored, change * 255, dtype=cv2.CV_8U)


DECIMATE = 4  # the low band is computed on a grid 4x coarser (its finest part, sigma 13 px at 512, allows it)


def _small_size(h: int, w: int) -> tuple[int, int]:
    return max(1, round(w / DECIMATE)), max(1, round(h / DECIMATE))


def _low_band(img: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """CodeFormer's low band of an H x W x C float32 image (or of one already averaged to the
    coarse grid, with ``size`` = (H, W)): area-averaged 4x, the a-trous levels past the first
    two there (their dilations 4, 8, 16 are 1, 2, 4 on the coarse grid), bilinear back. The
    first two levels' blur (variance 2.5 px^2) is stood in for by the averaging and the
    bilinear interpolation (~3.9): the band's sigma is 13.1 px at 512 instead of 13.06, and
    the result is within a level of the full-resolution filter (tests/restore/faces)."""
    h, w = size or img.shape[:2]
    levels = _levels(min(h, w))
    small = img if size else cv2.resize(img, _small_size(h, w), interpolation=cv2.INTER_AREA)
    low = _low(small, max(0, levels - 2))
    low = cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)
    return low.reshape(h, w, -1)


def _is_grey(rgb: np.ndarray) -> bool:
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def colour_difference(a: np.ndarray, b: np.ndarray, sigma: float = LOW_SIGMA,
                      mask: np.ndarray | None = None) -> float:
    """Mean CIEDE2000 (``skimage.color.deltaE_ciede2000``) between the low-passed ``a`` and
    ``b`` (RGB uint8, the same shape): each blurred with a Gaussian of ``sigma`` times its
    shorter side (in sRGB values, edges replicated), then to CIELAB (skimage's, D65). Weighted
    by ``mask`` (0..1) when given. 0 for equal faces; about 1 is the smallest difference one
    sees side by side, 2-10 a visible cast, above 10 another colour."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    a, b = _checked(a, b)
    s = sigma * min(a.shape[:2])
    # the low-passed faces are smooth: averaged over step x step pixels first, then blurred by
    # what is left of sigma on that grid (16x fewer pixels at 512 px)
    step = max(1, int(s // 4))
    size = (max(1, a.shape[1] // step), max(1, a.shape[0] // step))
    lows = [cv2.GaussianBlur(cv2.resize(x.astype(np.float32) / 255, size, interpolation=cv2.INTER_AREA), (0, 0),
                             math.sqrt(max(s * s - (step * step - 1) / 12, 0.25)) / step,
                             borderType=cv2.BORDER_REPLICATE) for x in (a, b)]
    de = deltaE_ciede2000(*(rgb2lab(np.clip(x, 0, 1).astype(np.float64)) for x in lows))
    if mask is None:
        return float(de.mean())
    mask = np.clip(np.asarray(mask, np.float64), 0, 1)
    if mask.shape != a.shape[:2]:
        raise ValueError(f"mask {mask.shape}: expected {a.shape[:2]}")
    mask = cv2.resize(mask, size, interpolation=cv2.INTER_AREA)
    return float((de * mask).sum() / max(mask.sum(), 1e-12))
