"""``Upscaler``: Real-ESRGAN's networks (RRDBNet, SRVGGNetCompact) on pictures of any size, with
the behaviour of Real-ESRGAN's ``RealESRGANer.enhance`` (realesrgan 0.3.0), which its users rely
on: the same pre-padding, mod-padding (x2 and x1 networks), tiles (``tile``, ``tile_pad``: each
tile seen with its margin, clipped at the image's edges, never mirrored), grey images (run as RGB,
back to grey by ITU-R 601 luma), alpha (through the network as a grey picture, or a bilinear
resize), 16-bit pictures kept 16-bit, and ``scale`` as its ``outscale`` (a Lanczos resize of the
network's rounded output, as cv2 does it).

Differences, on purpose: pictures are RGB(A) here (cv2's are BGR), and 8 or 16 bits are told by
the array's dtype (RealESRGANer guesses 16 bits from a value above 256).

Memory: the result is one array allocated up front, in the output's dtype, and each tile is
written into it as it is finished: beside the output there is the input (padded, in its own
dtype) and one tile's float activations; no full-size float copy of the output is made (a
``scale`` other than the network's then costs one resized copy, as it does in cv2).
"""
from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from gan.precision import autocast
from restore import budget
from restore.export.backend import on_backend
from restore.inference import Inference

from .memory import check_fits

DEFAULT_WEIGHTS = "realesrgan-x4plus"
# A model whose published twin Real-ESRGAN interpolates with it (its -dn, deep network
# interpolation): denoise d gives d * model + (1 - d) * twin, 0.5 by default.
DENOISE_TWINS = {"realesr-general-x4v3": "realesr-general-wdn-x4v3"}
LUMA = (0.299, 0.587, 0.114)  # cv2's RGB -> grey (BGR2GRAY on its BGR order)
ALPHA_UPSAMPLERS = ("realesrgan", "bilinear")


class Upscaler(Inference):
    """An upscaler ready for pictures: ``Upscaler()(rgb_uint8)`` -> the picture 4x larger.

    ``weights``: a manifest name (``realesrgan-x4plus``, ...), a file (.safetensors, .onnx) or a
    network. ``scale``: the output's scale (RealESRGANer's ``outscale``; None: the network's).
    ``tile`` (0: the whole picture at once), ``tile_pad`` and ``pre_pad``: as RealESRGANer's (the
    defaults of Real-ESRGAN's command). ``alpha``: "realesrgan" (the alpha channel through the
    network) or "bilinear". ``denoise``: 0..1 for a model with a denoise twin (realesr-general-x4v3),
    Real-ESRGAN's interpolation of the two; ``twin`` gives the twin's weights explicitly."""

    task = "upscale"

    def __init__(self, weights: str | Path | torch.nn.Module = DEFAULT_WEIGHTS, device: str | torch.device = "cpu",
                 scale: float | None = None, tile: int = 0, tile_pad: int = 10, pre_pad: int = 0,
                 alpha: str = "realesrgan", denoise: float | None = None,
                 twin: str | Path | torch.nn.Module | None = None, precision: str | None = None,
                 backend: str = "torch") -> None:
        if tile < 0 or tile_pad < 0 or pre_pad < 0:
            raise ValueError("tile, tile_pad and pre_pad must be >= 0")
        if scale is not None and not scale > 0:
            raise ValueError(f"scale must be positive, not {scale}")
        if alpha not in ALPHA_UPSAMPLERS:
            raise ValueError(f"alpha must be one of {', '.join(ALPHA_UPSAMPLERS)}, not {alpha!r}")
        self.setup(device, precision, backend)
        self.name = str(weights) if isinstance(weights, (str, Path)) else type(weights).__name__
        self.path, self.model, self.meta = self.load(weights, "upscaler")
        self.denoise = self._interpolate(weights, denoise, twin)
        cfg = self.model.config
        self.netscale = int(getattr(cfg, "scale", None) or cfg.upscale)
        self.scale = float(scale) if scale is not None else float(self.netscale)
        self.tile, self.tile_pad, self.pre_pad, self.alpha = int(tile), int(tile_pad), int(pre_pad), alpha
        self.mod = {2: 2, 1: 4}.get(self.netscale)  # RealESRGANer's mod_scale: the x2/x1 pixel-unshuffle
        if self.path is not None and self.denoise is None:
            self.model = on_backend(self.model, self.backend, source=self.path, device=self.device,
                                    tile=self.tile or None)

    def _interpolate(self, weights, denoise: float | None, twin) -> float | None:
        """Real-ESRGAN's -dn: the weights become ``denoise * model + (1 - denoise) * twin``."""
        name = weights if isinstance(weights, str) else None
        if twin is None and name in DENOISE_TWINS:
            from restore.models.manifest import manifest

            if DENOISE_TWINS[name] in manifest():
                twin = DENOISE_TWINS[name]
                denoise = 0.5 if denoise is None else denoise  # Real-ESRGAN's default
        if denoise is None or (twin is not None and denoise == 1):
            return None
        if twin is None:
            why = (f"its twin {DENOISE_TWINS[name]} is not in the manifest yet" if name in DENOISE_TWINS
                   else "only realesr-general-x4v3 has a denoise twin")
            raise ValueError(f"--denoise needs a model with a weak-denoise twin: {why}")
        if not 0 <= denoise <= 1:
            raise ValueError(f"denoise must be in 0..1, not {denoise}")
        if self.backend != "torch":
            raise ValueError("--denoise runs on the torch backend (the interpolated weights have no export)")
        _, other, _ = self.load(twin, "upscaler")
        if self.path is None:  # a network given as an object: the caller's own is left as it was
            self.model = copy.deepcopy(self.model)
        mine, theirs = self.model.state_dict(), other.state_dict()
        if type(other) is not type(self.model) or other.config != self.model.config:
            raise ValueError("the denoise twin is not the same network as the model")
        self.model.load_state_dict({k: denoise * v + (1 - denoise) * theirs[k] for k, v in mine.items()})
        return float(denoise)

    @property
    def model_info(self) -> str:
        """One line: which weights, what they are, the scales."""
        note = self.meta.get("weights_note") if isinstance(self.meta, dict) else None
        name = self.meta.get("name") if isinstance(self.meta, dict) and self.meta.get("name") else self.name
        parts = [f"{name} ({note})" if note else str(name), f"x{self.netscale} network"]
        if self.scale != self.netscale:
            parts.append(f"outscale {self.scale:g}")
        if self.denoise is not None:
            parts.append(f"denoise {self.denoise:g}")
        if self.tile:
            parts.append(f"tiles of {self.tile} (pad {self.tile_pad})")
        return ", ".join(parts) + f", {self.precision} on {self.device}"

    # ----- pictures ---------------------------------------------------------------------------
    def __call__(self, image: np.ndarray) -> np.ndarray:
        """HxW grey, HxWx3 RGB or HxWx4 RGBA, uint8 or uint16 (float: values in 0..1) -> the same
        kind of picture, ``scale`` times larger (each side ``int(side * scale)``)."""
        image = np.asarray(image)
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))) or 0 in image.shape:
            raise ValueError(f"expected an HxW, HxWx3 or HxWx4 picture, got shape {image.shape}")
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[..., 0]
        peak = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(image.dtype)
        if peak is None:
            if image.dtype.kind != "f":
                raise ValueError(f"expected uint8, uint16 or float pixels, not {image.dtype}")
            image, peak = np.clip(image, 0, 1).astype(np.float32), 1.0
        h, w = image.shape[:2]
        s = self.netscale
        check_fits(w, h, image.shape[2] if image.ndim == 3 else 1, image.dtype.itemsize, netscale=s,
                   scale=self.scale, tile=self.tile, tile_pad=self.tile_pad, num_feat=self._num_feat())
        out = np.empty((h * s, w * s) + image.shape[2:], image.dtype)  # the result, written tile by tile
        colour = image if image.ndim == 2 else image[..., :3]
        for box, tile in self._enhance(colour, peak):
            _write(out[box + ((slice(0, 3),) if image.ndim == 3 else ())],
                   tile if colour.ndim == 3 else tile @ np.array(LUMA, np.float32), peak)
        if image.ndim == 3 and image.shape[2] == 4:
            self._alpha(image[..., 3], peak, out)
        if self.scale == s:
            return out
        import cv2

        size = (int(w * self.scale), int(h * self.scale))
        if min(size) < 1:
            raise ValueError(f"scale {self.scale:g} leaves nothing of a {w}x{h} picture")
        return cv2.resize(out, size, interpolation=cv2.INTER_LANCZOS4)

    def _num_feat(self) -> int:
        cfg = getattr(self.model, "config", None)  # an onnxruntime network: its source's config
        return int(getattr(cfg, "num_feat", 64))

    def _alpha(self, alpha: np.ndarray, peak: float, out: np.ndarray) -> None:
        if self.alpha == "realesrgan":  # as a grey picture through the network, as RealESRGANer does
            for box, tile in self._enhance(alpha, peak):
                _write(out[box + (3,)], tile @ np.array(LUMA, np.float32), peak)
            return
        import cv2

        h, w = alpha.shape
        s = self.netscale
        up = cv2.resize(alpha.astype(np.float32) / peak, (w * s, h * s), interpolation=cv2.INTER_LINEAR)
        _write(out[..., 3], up, peak)

    def _enhance(self, image: np.ndarray, peak: float) -> Iterator[tuple[tuple[slice, slice], np.ndarray]]:
        """RealESRGANer's pre_process, tile_process and post_process: (where in the output,
        HxWx3 float32 in 0..1) for each tile, cropped to the output of the unpadded picture."""
        h, w = image.shape[:2]
        padded = image
        if self.pre_pad:
            padded = _reflect(padded, self.pre_pad, self.pre_pad)
        if self.mod:
            ph, pw = padded.shape[:2]
            padded = _reflect(padded, -ph % self.mod, -pw % self.mod)
        height, width = padded.shape[:2]
        tile = self.tile or max(height, width)  # no tiles: one tile of the whole picture
        s, pad = self.netscale, (self.tile_pad if self.tile else 0)
        for y in range(math.ceil(height / tile)):
            for x in range(math.ceil(width / tile)):
                x0, y0 = x * tile, y * tile
                x1, y1 = min(x0 + tile, width), min(y0 + tile, height)
                if x0 >= w or y0 >= h:
                    continue  # only padding: cropped away in the end (RealESRGANer computes it anyway)
                px0, py0 = max(x0 - pad, 0), max(y0 - pad, 0)
                px1, py1 = min(x1 + pad, width), min(y1 + pad, height)
                budget.check()  # a request's time budget (restore.budget), between tiles
                result = self._run(padded[py0:py1, px0:px1], peak)
                oy1, ox1 = min(y1, h), min(x1, w)  # in the output of the unpadded picture
                part = result[(y0 - py0) * s:(oy1 - py0) * s, (x0 - px0) * s:(ox1 - px0) * s]
                yield (slice(y0 * s, oy1 * s), slice(x0 * s, ox1 * s)), part

    @torch.inference_mode()
    def _run(self, pixels: np.ndarray, peak: float) -> np.ndarray:
        """HxW or HxWx3 pixels -> the network's HsxWsx3 float32 output, clamped to 0..1."""
        x = torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device, torch.float32) / peak
        x = x[None, None].expand(1, 3, -1, -1) if x.ndim == 2 else x.permute(2, 0, 1)[None]
        with autocast(self.precision, self.device):
            y = self.model(x)
        return y[0].float().clamp_(0, 1).permute(1, 2, 0).cpu().numpy()


def _reflect(image: np.ndarray, bottom: int, right: int) -> np.ndarray:
    """``F.pad(..., (0, right, 0, bottom), "reflect")`` of an HxW[xC] array, in its own dtype."""
    if not bottom and not right:
        return image
    return np.pad(image, ((0, bottom), (0, right)) + ((0, 0),) * (image.ndim - 2), mode="reflect")


def _write(dst: np.ndarray, values: np.ndarray, peak: float) -> None:
    """0..1 float32 ``values`` into ``dst`` (a view of the output) as RealESRGANer rounds them
    (``(x * 255.0).round()`` in float32), in place: no second float copy of a tile."""
    if dst.dtype.kind != "f":
        np.multiply(values, np.float32(peak), out=values)
        np.rint(values, out=values)
    dst[...] = values
