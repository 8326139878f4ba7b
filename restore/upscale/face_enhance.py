"""``restore upscale --face-enhance``: the picture enlarged by the Upscaler, its faces restored by
``restore faces``' models and pasted back, as Real-ESRGAN's ``inference_realesrgan.py
--face_enhance`` does it (``GFPGANer(upscale=outscale, bg_upsampler=the upsampler)``): the
background is the upscaler's own picture, bit for bit, outside the faces' masks.

The face network is ``restore faces``' default (GFPGANv1.4, else v1.3, from the weights cache, else
the bundled restorer) or ``face_weights``; the detector RetinaFace when cached, else MTCNN."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .upscaler import DEFAULT_WEIGHTS, Upscaler


class FaceEnhancer:
    """``FaceEnhancer(**upscaler_options)(picture)`` -> the upscaled picture with its faces restored.

    Takes what an ``Upscaler`` takes (grey, RGB, RGBA; 8 or 16 bits) and gives the same kind of
    picture ``scale`` times larger. ``face_weights``, ``detector``, ``fidelity``, ``parse``,
    ``colour``, ``identity``, ``min_identity``: as ``restore.faces.FaceRestorer``'s; the rest are
    the ``Upscaler``'s."""

    def __init__(self, weights: str | Path = DEFAULT_WEIGHTS, *, device: str = "cpu", precision: str | None = None,
                 backend: str = "torch", face_weights: str | Path | None = None, detector: str = "auto",
                 fidelity: float = 1.0, parse: bool | str = "auto", colour: str = "auto", identity: Any = "auto",
                 min_identity: float | None = None, **upscaler: Any) -> None:
        from restore.faces.restorer import FaceRestorer

        self.upscaler = Upscaler(weights, device, precision=precision, backend=backend, **upscaler)
        self.faces = FaceRestorer(face_weights, detector, device, precision, upscale=self.upscaler.scale,
                                  bg="realesrgan", bg_upscaler=self.upscaler, fidelity=fidelity, parse=parse,
                                  backend=backend, batch_size=1, colour=colour, identity=identity,
                                  min_identity=min_identity)

    @property
    def model_info(self) -> str:
        fr = self.faces
        return f"{self.upscaler.model_info}; faces restored by {fr.model_info}, found by {fr.detector_info}"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.faces.restore(image).image
