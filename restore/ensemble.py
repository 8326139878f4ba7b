"""Test-time augmentation: the model run on flipped and rotated copies of the input, averaged.

The "self-ensemble" of EDSR+ (Lim et al. 2017): a convolutional network is not exactly
equivariant to the 8 flips and 90-degree rotations of the square (the dihedral group), so its
errors on the 8 copies are partly independent, and their mean, mapped back, is closer to the
truth. It costs one network pass per copy. Written here (a few lines on ``torch.rot90`` and
``torch.flip``) rather than taken from a library: MONAI's and ttach's wrappers want a float
batch of the whole image, and ours runs each copy through the overlap-tile inference, which
reads uint8 photos tile by tile.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # torch is imported where a picture is turned: --help reads ORIENTATIONS alone
    from torch import Tensor

#: How many copies ``ensemble`` may average: 1 (off), 2 (+ mirror), 4 (+ 180 degrees), 8 (all).
ORIENTATIONS = (1, 2, 4, 8)
# Orientation k: rotate by k % 4 quarter turns, then mirror left-right if k >= 4.
_ORDER = {1: (0,), 2: (0, 4), 4: (0, 4, 2, 6), 8: tuple(range(8))}


def orient(x: Tensor, k: int) -> Tensor:
    """``x`` (..., H, W) in orientation ``k`` (0-7)."""
    import torch

    y = torch.rot90(x, k % 4, dims=(-2, -1)) if k % 4 else x
    return (torch.flip(y, dims=(-1,)) if k >= 4 else y).contiguous()


def unorient(y: Tensor, k: int) -> Tensor:
    """The inverse of :func:`orient`: a result computed on ``orient(x, k)`` mapped back to ``x``."""
    import torch

    y = torch.flip(y, dims=(-1,)) if k >= 4 else y
    return torch.rot90(y, -(k % 4), dims=(-2, -1)) if k % 4 else y


def check_orientations(n: int) -> int:
    if n not in ORIENTATIONS:
        raise ValueError(f"test-time augmentation takes {', '.join(map(str, ORIENTATIONS))} orientations, not {n!r}")
    return n


def ensemble(run: Callable[[Tensor], Tensor], x: Tensor, n: int = 8) -> Tensor:
    """The mean of ``run`` over ``n`` orientations of ``x`` (..., H, W), each mapped back.

    ``run`` maps an image to a result with the same last two axes (an image, logits); ``n = 1``
    is ``run(x)`` itself."""
    check_orientations(n)
    if n == 1:
        return run(x)
    total = None
    for k in _ORDER[n]:
        y = unorient(run(orient(x, k)), k).float()
        total = y.clone() if total is None else total.add_(y)
    return total / n
