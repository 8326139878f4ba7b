"""Colour and intensity: embedded ICC profiles to sRGB, any sample type to uint8 for display
and encoding, percentile normalisation for the networks.

Profiles are converted with LittleCMS (Pillow's ImageCms), the profile's own rendering intent,
for 8-bit RGB, RGBA, CMYK and palette images; profiles that leave colours as they are (sRGB,
whatever its name; measured once per profile) are not applied. Pillow's colour management has no 16-bit or float modes, so such
images keep their stored values and a ``note`` says so.
"""
from __future__ import annotations

import functools
import io
import warnings

import numpy as np
from PIL import Image, ImageCms

from .notes import note

__all__ = ["is_srgb", "normalize", "srgb_array", "to_rgb8", "to_srgb", "to_uint8"]

_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
# 125 colours spanning the cube: a profile that leaves all of them within one level is sRGB
_PROBE = Image.fromarray(np.stack(np.meshgrid(*[np.linspace(0, 255, 5, dtype=np.uint8)] * 3), -1).reshape(25, 5, 3))


@functools.lru_cache(maxsize=32)
def _profile(icc: bytes) -> tuple[ImageCms.ImageCmsProfile, str] | None:
    """(profile, colour space 'RGB' / 'CMYK' / 'GRAY' ...) or None when LittleCMS can't read it."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return profile, profile.profile.xcolor_space.strip()
    except Exception:  # a broken profile is ignored (with a note) rather than costing the image
        return None


@functools.lru_cache(maxsize=32)
def _srgb_transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform:
    src = _profile(icc)[0]
    out = "RGBA" if mode == "RGBA" else "RGB"
    return ImageCms.buildTransform(src, _SRGB, mode, out, renderingIntent=ImageCms.getDefaultIntent(src))


@functools.lru_cache(maxsize=32)
def is_srgb(icc: bytes) -> bool:
    """True when an RGB profile maps colours to sRGB unchanged (within one level). Measured,
    not read from the description: sRGB profiles go by many names (Facebook's is "c2"), and a
    name holding "sRGB" may describe something else."""
    found = _profile(icc)
    if found is None or found[1] != "RGB":
        return False
    try:
        moved = np.asarray(ImageCms.applyTransform(_PROBE, _srgb_transform(icc, "RGB")), np.int16)
    except Exception:  # LittleCMS can't use it: treated as not sRGB, and to_srgb says so
        return False
    return int(np.abs(moved - np.asarray(_PROBE, np.int16)).max()) <= 1


def to_srgb(im: Image.Image, icc: bytes) -> Image.Image:
    """An image with an embedded profile, in sRGB: 8-bit RGB(A), palette and CMYK images are
    converted; grey images keep their values (grey profiles differ from sRGB's in gamma only);
    for other data (16-bit, float) a note says the profile was not applied."""
    found = _profile(icc)
    if found is None:
        note("its ICC colour profile is unreadable; colours read as stored")
        return im
    space = found[1]
    if space == "RGB" and is_srgb(icc):  # already sRGB: the image stays as read (a grey palette stays grey)
        return im
    if space == "RGB" and im.mode in ("P", "PA"):
        im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
    if (space == "RGB" and im.mode in ("RGB", "RGBA")) or (space == "CMYK" and im.mode == "CMYK"):
        try:
            return ImageCms.applyTransform(im, _srgb_transform(icc, im.mode))
        except Exception:  # a profile LittleCMS can't use: keep the stored values
            note("its ICC colour profile could not be applied; colours read as stored")
    elif space in ("RGB", "CMYK") and im.mode not in ("L", "LA", "1"):
        note(f"its {space} colour profile was not applied ({im.mode} data)")
    return im


def srgb_array(arr: np.ndarray, icc: bytes | None) -> np.ndarray:
    """A (Y, X, 3) uint8 array with profile ``icc`` in sRGB (the TIFF path); others noted."""
    if not icc or arr.ndim != 3 or is_srgb(icc):
        return arr
    if arr.dtype != np.uint8:
        note(f"its ICC colour profile was not applied ({arr.dtype} colour)")
        return arr
    return np.asarray(to_srgb(Image.fromarray(arr), icc))


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale 16-bit (/257) or float ([0, 1] if it fits, else min-max) intensities to uint8."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    x = np.nan_to_num(arr.astype(np.float32))
    if x.min() < 0 or x.max() > 1:
        x = (x - x.min()) / max(float(x.max() - x.min()), 1e-12)
    return np.rint(x * 255).astype(np.uint8)


def to_rgb8(arr: np.ndarray) -> np.ndarray:
    """Any image -> RGB uint8 HxWx3 for display: intensities as ``to_uint8``, grey repeated,
    alpha dropped."""
    img = to_uint8(np.asarray(arr))
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]


def normalize(image: np.ndarray, low: float = 1.0, high: float = 99.8, *,
              per_channel: bool = False, clip: bool = False) -> np.ndarray:
    """Scale intensities so the ``low``/``high`` percentiles map to 0/1 (float32).

    Channels share one scale unless ``per_channel`` (shared keeps colour balance). A constant
    image gives zeros; when the percentiles coincide (sparse images) min/max are used instead.
    Non-finite input values become 0.
    """
    x = np.asarray(image, dtype=np.float32)
    reduce = (0, 1) if per_channel and x.ndim == 3 else None
    sample = x
    if x.shape[0] * x.shape[1] > 2**22:
        # percentiles of a regular subsample of >= 4 MP match the full image's to far below
        # one grey level, at a fraction of np.percentile's cost on a 100+ MP image
        step = int(np.ceil(np.sqrt(x.shape[0] * x.shape[1] / 2**22)))
        sample = x[::step, ::step]
    finite = np.isfinite(sample).all()
    pct = np.percentile if finite else np.nanpercentile
    sample = sample if finite else np.where(np.isfinite(sample), sample, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN image: handled below
        lo, hi = (pct(sample, q, axis=reduce, keepdims=True) for q in (low, high))
        flat = hi <= lo
        if np.any(flat):
            mn = np.nanmin(sample, axis=reduce, keepdims=True)
            mx = np.nanmax(sample, axis=reduce, keepdims=True)
            lo, hi = np.where(flat, mn, lo), np.where(flat, mx, hi)
    lo = np.nan_to_num(lo)
    scale = np.where(np.nan_to_num(hi - lo) > 0, hi - lo, 1.0).astype(np.float32)
    out = (x - lo.astype(np.float32)) / scale
    out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(out, 0.0, 1.0) if clip else out.astype(np.float32, copy=False)
