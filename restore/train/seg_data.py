"""Segmentation training data from folders: ``images/`` + ``masks/`` or the Cell Tracking
Challenge layout. Returns arrays; ``gan.data.batches`` turns them into augmented batches."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from restore.formats import is_image_file
from restore.imageio import ImageError, is_volume, read_image, read_volume
from restore.segment.preprocess import median_diameter, prepare_image, rescale

from .holdout import held_out, pick

MASK_SUFFIXES = ("", "_mask", "_masks", "_label", "_labels", "_seg", "_gt")


@dataclass
class Pair:
    image: Path
    mask: Path
    z: int | None = None  # a CTC 2D annotation of one slice of a 3D frame


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file() and is_image_file(p))


def _folder_pairs(root: Path) -> list[Pair]:
    masks = {p.stem: p for p in _files(root / "masks")}
    pairs = []
    for image in _files(root / "images"):
        mask = next((masks[image.stem + s] for s in MASK_SUFFIXES if image.stem + s in masks), None)
        if mask is None:
            raise ValueError(f"no mask for {image} in {root / 'masks'}")
        pairs.append(Pair(image, mask))
    return pairs


def _ctc_pairs(root: Path) -> list[Pair]:
    """``01/t000.tif`` with ``01_GT/SEG/man_seg000.tif`` (gold) or ``01_ST/SEG/`` (silver);
    ``man_seg_000_012.tif`` annotates slice 12 of frame 0 of a 3D sequence."""
    pairs = []
    for seq in sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"\d+", p.name)):
        for truth in ("GT", "ST"):
            seg = root / f"{seq.name}_{truth}" / "SEG"
            if not seg.is_dir():
                continue
            for mask in sorted(seg.glob("man_seg*.tif*")):
                m = re.fullmatch(r"man_seg_?(\d+)(?:_(\d+))?", mask.stem)
                if not m:
                    continue
                t = m.group(1)
                image = next((c for c in seq.glob(f"t{t}.tif*")), None)
                if image is not None:
                    pairs.append(Pair(image, mask, int(m.group(2)) if m.group(2) else None))
            if pairs and truth == "GT":
                break  # gold truth when there is any; silver only as a fallback
    return pairs


def find_pairs(root: str | Path) -> list[Pair]:
    """All (image, mask) pairs under ``root`` in either layout."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"data folder not found: {root}")
    if (root / "images").is_dir() and (root / "masks").is_dir():
        pairs = _folder_pairs(root)
    else:
        pairs = _ctc_pairs(root)
    if not pairs:
        raise ValueError(f"{root}: found neither images/ + masks/ nor a Cell Tracking Challenge layout "
                         "(01/t000.tif with 01_GT/SEG/man_seg000.tif)")
    return pairs


def _read_any(path: Path) -> np.ndarray:
    return read_volume(path) if is_volume(path) else read_image(path)


def load_pairs(pairs: list[Pair], dims: int, in_channels: int = 1, diameter: float | None = None
               ) -> tuple[list[np.ndarray], list[np.ndarray], list[float]]:
    """Read and normalise pairs: images as (C, *spatial) float32, masks as integer labels.

    Volumes become 2D slices when ``dims == 2``. With ``diameter``, every image is rescaled so
    its median object diameter (measured on the instance mask) becomes ``diameter`` px."""
    images, masks, diameters = [], [], []
    for pair in pairs:
        try:
            image, mask = _read_any(pair.image), _read_any(pair.mask)
        except ImageError as e:
            raise ValueError(f"{e}") from None
        if pair.z is not None:
            image = image[pair.z]
        volume = mask.ndim == 3  # masks are single-channel, so their rank tells
        if dims == 3 and not volume:
            raise ValueError(f"{pair.image}: a 3D model needs volumes (multi-page TIFF)")
        items = [(image, mask)]
        if dims == 2 and volume:
            items = [(image[z], mask[z]) for z in range(mask.shape[0]) if mask[z].any()]
        for img, msk in items:
            if img.shape[:msk.ndim] != msk.shape:
                raise ValueError(f"{pair.image} and {pair.mask} differ in size: {img.shape} vs {msk.shape}")
            x = prepare_image(img, in_channels, dims)
            y = msk.astype(np.int64)
            d = median_diameter(y)
            if diameter and d:
                x, y = rescale(x, y, diameter / d)
            images.append(x)
            masks.append(y)
            diameters.append(d)
    return images, masks, diameters


def holdout_indices(n: int, fraction: float = 0.2) -> set[int]:
    """The images ``split_holdout`` holds out when there are enough (at least 5): every k-th,
    k = 1 / ``fraction`` (``restore.train.holdout``'s rule)."""
    return set(held_out(n, every=round(1 / fraction), minimum=5))


def split_holdout(images: list[np.ndarray], masks: list[np.ndarray], fraction: float = 0.2
                  ) -> tuple[tuple[list, list], tuple[list, list]]:
    """Hold out whole images when there are enough (every k-th), otherwise the last
    ``fraction`` of every image along its width, so validation never sees training pixels."""
    val = holdout_indices(len(images), fraction)
    if val:
        return (pick(images, val, False), pick(masks, val, False)), (pick(images, val), pick(masks, val))
    tr_i, tr_m, va_i, va_m = [], [], [], []
    for x, y in zip(images, masks):
        cut = int(y.shape[-1] * (1 - fraction))
        tr_i.append(x[..., :cut]), tr_m.append(y[..., :cut])
        va_i.append(x[..., cut:]), va_m.append(y[..., cut:])
    return (tr_i, tr_m), (va_i, va_m)
