"""The training crop for folders of any size: what ``--crop`` means when it is left out.

Left out (``None``), the crop adapts: the largest multiple of the network's size divisor, up to
the trainer's default, that every usable image allows. When the smallest image is below even
one divisor (pix2pix's 8-level U-Net needs 256 px), the crop is the divisor and the smaller
images are resized up to it, keeping their aspect, as pix2pix itself does (it resizes every
image to 286 px before cropping 256). One line says which happened and which image decided.

Given (``--crop N``), N is used as it is, and an image smaller than N is unusable; the message
then names the crop every image would allow, instead of suggesting ``--skip-bad`` when that
would leave nothing.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["CropFit", "fit_crop", "largest_crop", "resize_up", "size_hint"]


@dataclass(frozen=True)
class CropFit:
    crop: int
    resize_up: bool  # images with a side below ``crop`` are to be resized up to it
    message: str  # the one line that tells the user


def _shape(size: Sequence[int]) -> str:
    return "x".join(str(s) for s in reversed(size))  # (H, W) -> "WxH", (Z, H, W) -> "WxHxZ"


def largest_crop(sizes: Sequence[Sequence[int]], divisor: int) -> int:
    """The largest multiple of ``divisor`` that fits in every size (0 when none does)."""
    return min(min(s) for s in sizes) // divisor * divisor


def fit_crop(sizes: Sequence[Sequence[int]], names: Sequence[str], default: int, divisor: int, *,
             can_resize: bool = True, hint: str = "") -> CropFit:
    """The crop for images of these ``sizes`` (each (H, W) or (Z, H, W)) when none was given.

    ``can_resize=False`` (segmentation: resizing would change the objects' scale) keeps the
    divisor as the crop for images below it instead; the augmentation mirrors their borders.
    ``hint`` is added to the resize-up line (e.g. how to train at the images' own size).
    """
    if not sizes:
        raise ValueError("no images to choose a crop for")
    i = int(np.argmin([min(s) for s in sizes]))
    smallest = f"the smallest: {names[i]}, {_shape(sizes[i])}"
    crop = min(default, min(sizes[i])) // divisor * divisor  # 0 when even one divisor is too big
    if crop > 0:
        if crop == default:
            return CropFit(crop, False, f"crop: {crop} px")
        return CropFit(crop, False, f"crop: {crop} px, the largest multiple of the network's {divisor} px that "
                                    f"every image allows ({smallest})")
    crop = min(default, divisor)
    n = sum(min(s) < crop for s in sizes)
    if not can_resize:
        return CropFit(crop, False, f"crop: {crop} px, the network's smallest; {n} of {len(sizes)} images are "
                                    f"smaller ({smallest}) and their borders are mirrored to fill it")
    return CropFit(crop, True, f"crop: {crop} px; {n} of {len(sizes)} images are smaller ({smallest}) and are "
                               f"resized up to it, as pix2pix does, since the network takes multiples of "
                               f"{divisor} px" + (f" ({hint})" if hint else ""))


def size_hint(sizes: Sequence[Sequence[int]], divisor: int, requested: int) -> str:
    """What to change when images are smaller than ``--crop requested``."""
    best = largest_crop(sizes, divisor) if sizes else 0
    if 0 < best < requested:
        return f"pass --crop {best} (the largest crop every image allows) or leave --crop out"
    return "leave --crop out (smaller images are then resized up to the network's size)"


def resize_up(img: np.ndarray, side: int) -> np.ndarray:
    """``img`` (H, W[, C]) resized so its shorter side is ``side`` (bicubic); unchanged if it is."""
    import cv2  # basicsr's dependency; its bicubic is the usual one for pix2pix-style resizing

    h, w = img.shape[:2]
    if min(h, w) >= side:
        return img
    s = side / min(h, w)
    size = (max(side, round(w * s)), max(side, round(h * s)))
    return np.ascontiguousarray(cv2.resize(img, size, interpolation=cv2.INTER_CUBIC))
