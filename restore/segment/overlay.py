"""Label maps drawn over their image: a colour per label, contours on top."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage.segmentation import find_boundaries

__all__ = ["PALETTE", "colour_of", "to_display", "overlay", "save_overlay"]

# Index 0 is background and never drawn. Then the 20 colours of matplotlib's tab20 reordered so
# that consecutive labels (neighbouring instances usually are) get contrasting hues.
PALETTE = np.array([
    (0, 0, 0),
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207), (127, 127, 127),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
    (196, 156, 148), (247, 182, 210), (219, 219, 141), (158, 218, 229), (199, 199, 199),
], dtype=np.uint8)


def colour_of(labels: np.ndarray) -> np.ndarray:
    """RGB colour (..., 3) of each label; labels past the palette cycle through 1..N-1."""
    labels = np.asarray(labels).astype(np.int64)
    idx = np.where(labels > 0, (labels - 1) % (len(PALETTE) - 1) + 1, 0)
    return PALETTE[idx]


def to_display(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """uint8 RGB (H, W, 3) from grey or RGB(A) of any dtype: uint8 as it is, anything else
    stretched between the ``low`` and ``high`` percentiles (16-bit microscopy, floats)."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[-1] == 4:
        img = img[..., :3]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] != 3):
        raise ValueError(f"image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {img.shape}")
    if img.dtype != np.uint8:
        f = img.astype(np.float32)
        finite = f[np.isfinite(f)]
        lo, hi = np.percentile(finite, (low, high)) if finite.size else (0.0, 1.0)
        if hi <= lo:  # flat image: keep it visible rather than dividing by zero
            lo, hi = float(finite.min(initial=0)), float(finite.max(initial=0)) + 1e-6
        f = np.nan_to_num((f - lo) / (hi - lo), nan=0.0)
        img = (np.clip(f, 0, 1) * 255 + 0.5).astype(np.uint8)
    return np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.4, contours: bool = True,
            contour_colour: tuple[int, int, int] | None = None) -> np.ndarray:
    """Blend label colours over an image; returns uint8 RGB (H, W, 3).

    ``image`` (H, W) or (H, W, 3|4), any dtype (see ``to_display``); ``labels`` (H, W) class or
    instance map, 0 left as the image. Each label is filled with its palette colour at
    ``alpha``; with ``contours`` its boundary pixels (inner boundaries, so touching instances
    stay apart) are drawn opaque in that colour, or ``contour_colour``. A volume (Z, H, W)
    with labels (Z, H, W) gives (Z, H, W, 3), slice by slice.
    """
    labels = np.asarray(labels)
    img = np.asarray(image)
    if labels.ndim == 3:
        if img.shape[0] != labels.shape[0]:
            raise ValueError(f"image {img.shape} and labels {labels.shape} differ in depth")
        disp = to_display(img.reshape(-1, *img.shape[2:]) if img.ndim in (3, 4) else img)
        disp = disp.reshape(*labels.shape, 3)  # one normalisation for the whole volume
        return np.stack([_blend(d, lab, alpha, contours, contour_colour) for d, lab in zip(disp, labels)])
    disp = to_display(img)
    if disp.shape[:2] != labels.shape:
        raise ValueError(f"image {img.shape} and labels {labels.shape} differ in size")
    return _blend(disp, labels, alpha, contours, contour_colour)


def _blend(disp: np.ndarray, labels: np.ndarray, alpha: float, contours: bool, contour_colour) -> np.ndarray:
    out = disp.astype(np.float32)
    colours = colour_of(labels).astype(np.float32)
    fg = labels > 0
    out[fg] = (1 - alpha) * out[fg] + alpha * colours[fg]
    if contours:
        edge = find_boundaries(labels, mode="inner") & fg
        out[edge] = colours[edge] if contour_colour is None else np.asarray(contour_colour, np.float32)
    return (out + 0.5).astype(np.uint8)


def save_overlay(path: str | Path, image: np.ndarray, labels: np.ndarray, **kwargs) -> Path:
    """Write ``overlay(image, labels, **kwargs)`` as a PNG (2D only); returns the path."""
    from PIL import Image

    rgb = overlay(image, labels, **kwargs)
    if rgb.ndim != 3:
        raise ValueError("save_overlay writes one 2D image; pick a slice of the volume first")
    path = Path(path)
    Image.fromarray(rgb).save(path)
    return path
