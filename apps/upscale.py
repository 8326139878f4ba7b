"""The Upscale tab's work (``Handlers.upscale`` calls ``upscale``): a picture enlarged by
Real-ESRGAN's networks as ``restore upscale`` does it (restore.upscale.Upscaler: grey, alpha and
16 bits kept), the result's size checked against the server's output cap before any work.

The output cap is its own limit: the input cap (``--max-pixels``, 50 MP) bounds what is decoded,
but a 4x upscale of a 50 MP picture is 800 MP. ``--max-output-pixels`` (64 MP) bounds width *
height * scale^2, read from the file's header before the picture is decoded where Pillow can
tell its size, and from the decoded picture otherwise, always before the network runs.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from .errors import public

PREVIEW_PIXELS = 4_000_000  # the before/after slider: larger results are shown downsized (the file is whole)


def header_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from the file's header, nothing decoded; None where Pillow cannot tell
    (then the decoded picture is checked)."""
    from PIL import Image

    from restore.formats import register_plugins

    register_plugins()
    try:
        with Image.open(path) as im:
            return im.size
    except Exception:  # noqa: BLE001 - the reader gives the reason, or the input cap refuses it
        return None


def output_error(name: str, width: int, height: int, scale: float, cap: int) -> str | None:
    """Why a ``width`` x ``height`` picture may not be enlarged ``scale`` times here (None when it may)."""
    out_w, out_h = int(width * scale), int(height * scale)
    if width * height * scale * scale <= cap:
        return None
    return (f"{name}: at scale {scale:g} the result would be {out_w}x{out_h} = {out_w * out_h / 1e6:.1f} "
            f"megapixels, over the {cap / 1e6:g} megapixels this server makes: a smaller scale or picture fits")


def _preview(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the input enlarged by Lanczos, the result) at the result's size, or smaller for the page."""
    from restore.colour import to_rgb8
    from restore.faces.align import resize_to

    after = to_rgb8(after)
    h, w = after.shape[:2]
    shrink = min(1.0, (PREVIEW_PIXELS / (h * w)) ** 0.5)
    size = max(1, round(h * shrink)), max(1, round(w * shrink))
    if shrink < 1:
        after = resize_to(after, *size, "area")
    return resize_to(to_rgb8(before), *size, "lanczos"), after


def upscale(h: Any, image: str | None, weights: str | None, scale: float, tile: int, denoise: float,
            progress: gr.Progress, face_enhance: bool = False) -> tuple:
    """``Handlers.upscale``: ((before, after), the PNG file, a summary). ``face_enhance``: the
    faces restored and pasted onto the upscaled picture (``restore upscale --face-enhance``)."""
    from restore.imagewrite import write_image
    from restore.upscale.job import read_picture
    from restore.upscale.upscaler import DENOISE_TWINS

    rt = h.rt
    if not image:
        raise gr.Error("Upload a picture first.", print_exception=False)
    if not weights:
        raise gr.Error("No upscaler here: fetch one (restore weights fetch realesrgan-x4plus) or start the app with "
                       "--model FILE.", print_exception=False)
    scale, tile = float(scale or 0), int(tile or 0)
    if scale < 0 or tile < 0:
        raise gr.Error("The scale and the tile must be positive (scale 0: the network's own).", print_exception=False)
    name = Path(image).name
    progress(0, desc="loading the upscaler")
    from restore.models.manifest import manifest

    level = None
    if DENOISE_TWINS.get(weights) in manifest():
        if not 0 <= float(denoise) <= 1:
            raise gr.Error("The denoise level must be in 0..1.", print_exception=False)
        # to the slider's steps: each level is a network of its own in the cache, so a visitor's
        # requests may make at most 21 of them
        level = round(float(denoise) * 20) / 20
    up = copy.copy(rt.upscaler(weights, tile, level))
    up.tile, up.scale = tile, scale or float(up.netscale)  # this request's: the loaded network is shared
    size = header_size(image)
    if size is not None and (why := output_error(name, *size, up.scale, rt.max_output_pixels)):
        raise gr.Error(why, print_exception=False)  # before anything is decoded
    picture = h._read(image, "a picture", read_picture)
    if (why := output_error(name, picture.shape[1], picture.shape[0], up.scale, rt.max_output_pixels)):
        raise gr.Error(why, print_exception=False)
    progress(0.1, desc="upscaling" + (f" (tiles of {tile})" if tile else "") + (", then the faces" if face_enhance else ""))
    t0 = time.perf_counter()
    info = up.model_info
    if face_enhance:
        faces = _face_enhancer(rt, up)
        result = faces.restore(picture).image
        info += f"; faces restored by {faces.model_info}, found by {faces.detector_info}"
    else:
        result = up(picture)
    seconds = time.perf_counter() - t0
    out = h._outdir() / f"{Path(name).stem}_out.png"  # Real-ESRGAN's command's name
    write_image(out, result)
    before, after = _preview(picture, result)
    shown = "" if after.shape[:2] == result.shape[:2] else f"; shown at {after.shape[1]}x{after.shape[0]}"
    summary = (f"**{name}**: {picture.shape[1]}x{picture.shape[0]} -> {result.shape[1]}x{result.shape[0]} px in "
               f"{seconds:.1f} s{shown}; {info}")
    return (before, after), str(out), public(summary, [image])  # model_info may name a weights file


def _face_enhancer(rt: Any, up: Any) -> Any:
    """``restore upscale --face-enhance`` with the server's loaded networks: the Faces tab's
    restorer (its default model, loaded once) with this request's upscaler as the background,
    as ``restore.upscale.FaceEnhancer`` builds it (GFPGANer with ``bg_upsampler``)."""
    fr = copy.copy(rt.faces(None, "auto"))  # the cached one stays as it is
    fr.upscaler = up  # with_options keeps this one, at its own outscale
    return fr.with_options(upscale=up.scale, bg="realesrgan")
