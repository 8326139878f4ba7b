"""Scores of a colorized sketch that are about colour, not about where the lines fall.

Whole-picture PSNR is dominated by the lines: even the true colours in every region score only
~1 dB over a one-colour fill. So the colour is scored on the pixels at least ``margin`` px away
from any line of the input sketch, against a **mean-colour fill** (the picture's background
kept white, everything else painted the reference's mean colour), and the lines are scored by
the share of the sketch's dark pixels that are still dark in the result. PSNR over those
pixels is ``restore.sketch.colorizer.psnr(result, truth, away_from_lines(sketch))``.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .extract import luminance

LINE = 0.5  # a sketch pixel darker than this is a line pixel


def line_pixels(sketch: np.ndarray) -> np.ndarray:
    """HxW bool: the dark pixels of a sketch (float in [0, 1], dark lines on white)."""
    return sketch < LINE


def away_from_lines(sketch: np.ndarray, margin: float = 3.0) -> np.ndarray:
    """HxW bool: pixels at least ``margin`` px (Euclidean) from every line pixel."""
    lines = line_pixels(sketch)
    if not lines.any():
        return np.ones_like(lines)
    return ndi.distance_transform_edt(~lines) >= margin


def border_connected(region: np.ndarray) -> np.ndarray:
    """HxW bool: the pixels of ``region`` (HxW bool) in a connected piece that touches the border."""
    labels, _ = ndi.label(region)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return np.isin(labels, border[border > 0])


def background(picture: np.ndarray, mask: np.ndarray | None = None, white: float = 0.97) -> np.ndarray:
    """HxW bool: the picture's background: outside ``mask`` (its foreground) when given, else
    the near-white pixels connected to the border (white inside a figure stays foreground)."""
    if mask is not None:
        return ~mask.astype(bool)
    return border_connected(picture.min(axis=2) > white)


def mean_colour_fill(picture: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None,
                     reference_mask: np.ndarray | None = None) -> np.ndarray:
    """The baseline: ``picture``'s background white, every other pixel the mean colour of the
    reference's foreground (RGB float in [0, 1])."""
    ref_fg = ~background(reference, reference_mask)
    colour = reference[ref_fg].mean(axis=0) if ref_fg.any() else reference.reshape(-1, 3).mean(axis=0)
    out = np.empty_like(picture, dtype=np.float32)
    out[:] = colour
    out[background(picture, mask)] = 1.0
    return out


def lines_kept(sketch: np.ndarray, result: np.ndarray) -> float:
    """Share of the sketch's line pixels that are line pixels (luminance < 0.5) of the result."""
    lines = line_pixels(sketch)
    if not lines.any():
        return 1.0
    return float((luminance(result)[lines] < LINE).mean())


def transformed_reference(reference: np.ndarray, degrees: float = 15.0) -> np.ndarray:
    """The reference mirrored left-right and turned by ``degrees`` (corners filled white), so
    that no pixel lines up with the sketch: a reference the model must match by content."""
    mirrored = reference[:, ::-1]
    return np.clip(ndi.rotate(mirrored, degrees, axes=(1, 0), reshape=False, order=1, mode="constant", cval=1.0),
                   0, 1).astype(np.float32)
