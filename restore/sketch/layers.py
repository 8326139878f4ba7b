"""The sketch's lines over the network's colours, as colouring tools layer them.

The network paints every pixel, lines included, and smears them; here the input's own lines
go back on top: its line pixels (darker than 0.5) come out exactly as they went in, the lighter
anti-aliased edge pixels multiply the colour under them, and (opt-in: ``keep_paper``) the paper
outside the drawing's outer contour keeps the sketch's own value instead of the network's tint.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .extract import luminance, to_float
from .scores import border_connected, line_pixels


def paper(sketch: np.ndarray, gap: int = 3) -> np.ndarray:
    """HxW bool: the paper around the drawing: the non-line pixels reachable from the border
    without crossing a line. Gaps in the outline of up to ~2 * ``gap`` px are closed first (the
    lines dilated by ``gap``), so that a broken contour does not let the paper flood the figure;
    the paper then grows back by ``gap`` px up to the lines, never across them."""
    lines = line_pixels(luminance(sketch))
    if not lines.any():
        return np.ones_like(lines)
    closed = ndi.binary_dilation(lines, iterations=gap) if gap else lines
    outside = border_connected(~closed)
    if gap:
        outside = ndi.binary_dilation(outside, iterations=gap, mask=~lines)
    return outside


def flat(sketch: np.ndarray, colours: np.ndarray, keep_paper: bool = True) -> np.ndarray:
    """RGB uint8: the colours without lines: each line pixel takes the colour of the nearest
    pixel off the lines (the network smears dark strokes there); with ``keep_paper`` the paper
    outside the drawing is white (composed, it shows the sketch's own paper value)."""
    s = luminance(sketch)
    c = to_float(colours)[..., :3].copy()
    lines = line_pixels(s)
    if lines.any() and not lines.all():
        _, (iy, ix) = ndi.distance_transform_edt(lines, return_indices=True)
        c[lines] = c[iy[lines], ix[lines]]
    if keep_paper:
        c[paper(s)] = 1.0
    return (np.clip(c, 0, 1) * 255).round().astype(np.uint8)


def fill_hinted(sketch: np.ndarray, flat_colours: np.ndarray, hints: np.ndarray) -> np.ndarray:
    """RGB uint8: the flat layer with every region a hint stroke touches painted the stroke's
    colour, as a colouring tool's bucket fill. Regions are the 4-connected pieces of the
    sketch's non-line pixels; ``hints`` HxWx4 (RGB in [0, 1] or uint8, mask). Where strokes of
    several colours touch one region, the colour with the most stroke pixels there wins. Line
    pixels then take the nearest region's colour again (``flat``)."""
    s = luminance(sketch)
    h = to_float(hints)
    free = ~line_pixels(s)
    mask = (h[..., 3] > 0.5) & free
    if not mask.any():
        return flat_colours
    labels, n = ndi.label(free)
    colour8 = (np.clip(h[..., :3], 0, 1) * 255).round().astype(np.int64)
    key = (colour8[..., 0] << 16) | (colour8[..., 1] << 8) | colour8[..., 2]
    found, counts = np.unique(np.stack([labels[mask], key[mask]], axis=1), axis=0, return_counts=True)
    found = found[np.lexsort((-counts, found[:, 0]))]  # per region, the most frequent colour first
    first = np.r_[True, found[1:, 0] != found[:-1, 0]]
    paint = np.full(n + 1, -1, np.int64)  # region -> its colour key, -1: no stroke touched it
    paint[found[first, 0]] = found[first, 1]
    keys = paint[labels]
    out = (to_float(flat_colours)[..., :3] * 255).round().astype(np.uint8)
    painted = keys >= 0
    out[painted] = np.stack([(keys[painted] >> b) & 255 for b in (16, 8, 0)], axis=1)
    return flat(s, out, keep_paper=False)


def compose(sketch: np.ndarray, flat_colours: np.ndarray) -> np.ndarray:
    """RGB uint8: the flat layer under the sketch's lines. Line pixels are the sketch's grey
    unchanged; the others are colour x sketch (multiply, so anti-aliased edges stay smooth)."""
    s = luminance(sketch)
    out = to_float(flat_colours)[..., :3] * s[..., None]
    lines = line_pixels(s)
    out[lines] = s[lines, None]
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)


def line_layer(sketch: np.ndarray) -> np.ndarray:
    """RGBA uint8: the sketch's lines as ink on a transparent sheet (alpha = 1 - luminance), so
    that they can be laid over any colours in an image editor."""
    s = luminance(sketch)
    alpha = ((1 - np.clip(s, 0, 1)) * 255).round().astype(np.uint8)
    return np.dstack([np.zeros((*s.shape, 3), np.uint8), alpha])
