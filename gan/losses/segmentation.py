"""Segmentation losses: the U-Net border weight map, weighted cross-entropy, Dice, Dice + CE.

Every loss takes logits (N, C, *spatial) and an integer target (N, *spatial); 2D and 3D alike.
(The GAN tasks' losses are in ``adversarial.py`` and ``perceptual.py``.)
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

# ---------------------------------------------------------------------------------------------
# segmentation: the weight map of Ronneberger et al. (2015), eq. 2


def class_balance_weights(instances: np.ndarray) -> np.ndarray:
    """w_c: inverse frequency of background / foreground, normalised so its mean over the
    image is 1 (so weighting does not change the overall scale of the loss)."""
    fg = instances > 0
    n, n_fg = fg.size, int(fg.sum())
    if n_fg in (0, n):
        return np.ones(instances.shape, np.float32)
    w_fg, w_bg = n / (2.0 * n_fg), n / (2.0 * (n - n_fg))
    return np.where(fg, w_fg, w_bg).astype(np.float32)


def _two_nearest(instances: np.ndarray, reach: float,
                 spacing: tuple[float, ...] | None) -> tuple[np.ndarray, np.ndarray]:
    """Distances d1 <= d2 of every pixel to its nearest and second-nearest instance.

    One Euclidean distance transform per instance, limited to its bounding box grown by
    ``reach`` (in the units of ``spacing``): farther pixels get inf, which only drops border
    terms smaller than w0 * exp(-reach**2 / (2 sigma**2)). A running min keeps the two smallest.
    """
    d1 = np.full(instances.shape, np.inf, np.float32)
    d2 = np.full(instances.shape, np.inf, np.float32)
    sp = spacing or (1.0,) * instances.ndim
    grow = [int(math.ceil(reach / s)) for s in sp]
    for label, box in enumerate(ndimage.find_objects(instances), start=1):
        if box is None:
            continue
        box = tuple(slice(max(b.start - r, 0), min(b.stop + r, n))
                    for b, r, n in zip(box, grow, instances.shape))
        d = ndimage.distance_transform_edt(instances[box] != label, sampling=sp).astype(np.float32)
        a1, a2 = d1[box], d2[box]
        a2[...] = np.minimum(a2, np.maximum(a1, d))
        a1[...] = np.minimum(a1, d)
    return d1, d2


def unet_weight_map(instances: np.ndarray, w0: float = 10.0, sigma: float = 5.0,
                    class_balance: bool = True, reach: float | None = None,
                    spacing: tuple[float, ...] | None = None) -> np.ndarray:
    """Per-pixel loss weights from an instance label image (0 = background), 2D or 3D.

    w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 sigma**2)) on background pixels, with d1
    and d2 the distances to the nearest and second-nearest instance; foreground pixels get
    w_c(x) only. ``w_c`` balances the class frequencies (``class_balance``) or is 1. ``reach``
    (default 4 sigma) bounds the distance transforms; ``spacing`` gives voxel sizes.
    A binary mask must be labelled first (e.g. ``scipy.ndimage.label``).
    """
    inst = np.asarray(instances)
    if not np.issubdtype(inst.dtype, np.integer):
        raise TypeError(f"instances must be integer labels, got {inst.dtype}")
    labels = np.unique(inst)
    labels = labels[labels > 0]
    if len(labels) and labels[-1] > 2 * len(labels):  # sparse labels: find_objects is O(max)
        remap = np.zeros(int(labels[-1]) + 1, np.int32)
        remap[labels] = np.arange(1, len(labels) + 1)
        inst = remap[inst]
    inst = inst.astype(np.int32, copy=False)
    w = class_balance_weights(inst) if class_balance else np.ones(inst.shape, np.float32)
    if len(labels) >= 2 and w0 > 0:
        d1, d2 = _two_nearest(inst, 4.0 * sigma if reach is None else reach, spacing)
        border = w0 * np.exp(-((d1 + d2) ** 2) / (2.0 * sigma**2))
        w += np.where(inst == 0, border, 0.0).astype(np.float32)
    return w


# ---------------------------------------------------------------------------------------------
# segmentation: pixel losses


def weighted_cross_entropy(logits: torch.Tensor, target: torch.Tensor,
                           weight_map: torch.Tensor | None = None,
                           class_weights: torch.Tensor | None = None,
                           ignore_index: int = -100) -> torch.Tensor:
    """Cross-entropy with a per-pixel weight map (a plain multiplier of each pixel's term).

    Normalised like ``F.cross_entropy``: by the number of counted pixels, or by the sum of
    their class weights when ``class_weights`` is given; so a map of ones gives exactly
    ``F.cross_entropy``. One output channel means binary: sigmoid with target > 0.
    """
    target = target.long()
    valid = target != ignore_index
    if logits.shape[1] == 1:
        per_pixel = F.binary_cross_entropy_with_logits(
            logits[:, 0], (target > 0).to(logits.dtype), reduction="none")
        denom = valid.sum()
        if class_weights is not None:
            cw = class_weights.to(logits)[(target > 0).long()]
            per_pixel, denom = per_pixel * cw, (cw * valid).sum()
    else:
        per_pixel = F.cross_entropy(logits, target, weight=class_weights,
                                    ignore_index=ignore_index, reduction="none")
        if class_weights is None:
            denom = valid.sum()
        else:
            denom = class_weights.to(logits)[torch.where(valid, target, 0)][valid].sum()
    if weight_map is not None:
        per_pixel = per_pixel * weight_map.to(per_pixel)
    per_pixel = per_pixel * valid
    return per_pixel.sum() / denom.clamp_min(1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0,
              include_background: bool = False, ignore_index: int = -100) -> torch.Tensor:
    """1 - mean soft Dice over classes: softmax for C > 1 channels, sigmoid for one channel.

    Sums run over the batch and all pixels per class (steadier than per image when a class
    is absent from some images). Channel 0 is background and is left out unless asked for.
    """
    target = target.long()
    valid = (target != ignore_index).unsqueeze(1).to(logits.dtype)
    if logits.shape[1] == 1:
        probs = torch.sigmoid(logits)
        onehot = (target > 0).unsqueeze(1).to(logits.dtype)
    else:
        probs = torch.softmax(logits, dim=1)
        onehot = F.one_hot(torch.where(target != ignore_index, target, 0), logits.shape[1])
        onehot = torch.movedim(onehot, -1, 1).to(logits.dtype)
        if not include_background:
            probs, onehot = probs[:, 1:], onehot[:, 1:]
    probs, onehot = probs * valid, onehot * valid
    dims = (0,) + tuple(range(2, logits.dim()))
    inter = (probs * onehot).sum(dims)
    total = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + smooth) / (total + smooth)
    return 1 - dice.mean()


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor,
                 weight_map: torch.Tensor | None = None, dice_weight: float = 1.0,
                 ce_weight: float = 1.0, class_weights: torch.Tensor | None = None,
                 ignore_index: int = -100) -> torch.Tensor:
    """dice_weight * Dice + ce_weight * (weighted) cross-entropy."""
    return (dice_weight * dice_loss(logits, target, ignore_index=ignore_index)
            + ce_weight * weighted_cross_entropy(logits, target, weight_map, class_weights,
                                                 ignore_index))


SegLoss = Callable[..., torch.Tensor]  # (logits, target, weight_map=None) -> scalar


def _ce(logits: torch.Tensor, target: torch.Tensor,
        weight_map: torch.Tensor | None = None) -> torch.Tensor:
    return weighted_cross_entropy(logits, target)  # plain CE: the weight map is not used


def _wce(logits: torch.Tensor, target: torch.Tensor,
         weight_map: torch.Tensor | None = None) -> torch.Tensor:
    return weighted_cross_entropy(logits, target, weight_map)


def _dice(logits: torch.Tensor, target: torch.Tensor,
          weight_map: torch.Tensor | None = None) -> torch.Tensor:
    return dice_loss(logits, target)


def _dice_ce(logits: torch.Tensor, target: torch.Tensor,
             weight_map: torch.Tensor | None = None) -> torch.Tensor:
    return dice_ce_loss(logits, target, weight_map)


# Every entry has the signature (logits, target, weight_map=None) -> scalar.
SEG_LOSSES: dict[str, SegLoss] = {"ce": _ce, "wce": _wce, "dice": _dice, "dice_ce": _dice_ce}


def seg_loss(name: str) -> SegLoss:
    """The segmentation loss called ``name``, with a clear error for an unknown one."""
    try:
        return SEG_LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown segmentation loss {name!r}; "
                         f"choose one of {sorted(SEG_LOSSES)}") from None
