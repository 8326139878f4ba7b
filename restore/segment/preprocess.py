"""From a decoded image to the network's input: channels, intensity, scale."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from restore.colour import normalize


def to_channels(image: np.ndarray, in_channels: int, dims: int = 2) -> np.ndarray:
    """(*spatial[, C]) -> (C, *spatial). Colour into a 1-channel model takes the channel-wise
    maximum: fluorescence stains sit in one channel (DAPI in blue) with the others dark, which
    a luminance weighting (0.11 for blue) would nearly erase."""
    has_channels = image.ndim == dims + 1
    x = np.moveaxis(image, -1, 0) if has_channels else image[None]
    if x.shape[0] == in_channels:
        return x
    if in_channels == 1:
        return x.max(axis=0, keepdims=True)
    if x.shape[0] == 1:
        return np.repeat(x, in_channels, axis=0)
    raise ValueError(f"image has {x.shape[0]} channels; the model takes {in_channels}")


def prepare_image(image: np.ndarray, in_channels: int, dims: int = 2,
                  levels: tuple[float, float] | None = None) -> np.ndarray:
    """Decoded image -> normalised (C, *spatial) float32. Percentile normalisation (1, 99.8),
    the convention of cell tools (stardist, cellpose), makes 8-bit, 16-bit and differently
    exposed images look alike to the network. ``levels`` (the grey values that map to 0 and 1,
    from ``intensity_levels``) replaces the image's own percentiles: a block of a volume larger
    than memory is scaled as the whole volume is, not as its own contents would be."""
    if levels is None:
        return to_channels(normalize(image), in_channels, dims)
    lo, hi = levels
    x = (np.asarray(image, dtype=np.float32) - np.float32(lo)) / np.float32(hi - lo if hi > lo else 1.0)
    return to_channels(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), in_channels, dims)


def intensity_levels(sample: np.ndarray) -> tuple[float, float]:
    """The grey values ``prepare_image`` maps to 0 and 1 for ``sample`` (a subsample of a volume):
    its 1st and 99.8th percentiles, as ``normalize`` computes them (min/max where they meet)."""
    x = np.asarray(sample, dtype=np.float32)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(x, (1.0, 99.8))
    if hi <= lo:
        lo, hi = float(x.min()), float(x.max())
    return float(lo), float(hi)


def median_diameter(labels: np.ndarray) -> float:
    """Median equivalent diameter (sphere in 3D) of the labelled objects; 0 when none."""
    counts = np.bincount(labels.reshape(-1).astype(np.int64))[1:]
    counts = counts[counts > 0]
    if counts.size == 0:
        return 0.0
    area = float(np.median(counts))
    if labels.ndim == 3:
        return float((6 * area / np.pi) ** (1 / 3))
    return float(np.sqrt(4 * area / np.pi))


def rescale(image: np.ndarray, mask: np.ndarray | None, factor: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Zoom (C, *spatial) image (antialiased linear) and mask (nearest) by ``factor``."""
    if abs(factor - 1) < 1e-3:
        return image, mask
    size = [max(1, round(s * factor)) for s in image.shape[1:]]
    x = torch.from_numpy(np.ascontiguousarray(image))[None]
    mode = "bilinear" if image.ndim == 3 else "trilinear"
    x = F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=factor < 1 and image.ndim == 3)
    y = None
    if mask is not None:
        m = torch.from_numpy(np.ascontiguousarray(mask.astype(np.int64)))[None, None].float()
        y = F.interpolate(m, size=size, mode="nearest-exact")[0, 0].numpy().astype(mask.dtype)
    return x[0].numpy(), y
