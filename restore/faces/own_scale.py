"""Faces restored at their own scale, for face models that are not a face prior.

GFP-GAN is a 512 px face prior: it must see faces aligned to its template. The bundled
restorer is an image-to-image network trained on photos at their own scale; sent through the
aligned 512 px crop, a 70 px face is upscaled 7x, restored out of its training distribution
(hard, painted-looking edges) and shrunk back, and came out worse than the restorer's result on
the whole photo (measured on real group photos, heavy degradation: +0.55 dB inside the faces
against +0.82; ``scripts/eval_faces.py``). Such a model therefore restores the faces where they
are: the whole photo when it also restores the background, else a margin around each face box,
blended in with a feathered edge. The aligned crops of the result still serve the report, the
app's gallery and a film's temporal smoothing.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from restore.colour import to_rgb8

from .align import blend_into, resize_to, warp_face
from .detect import Detection

MARGIN = 0.5  # of the box's longer side, on every side: context for the network, room to feather


def face_region(box: np.ndarray, height: int, width: int, margin: float = MARGIN) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): the face box grown by ``margin`` of its longer side, clipped to the photo."""
    pad = margin * float(max(box[2] - box[0], box[3] - box[1]))
    x0, y0 = int(np.floor(box[0] - pad)), int(np.floor(box[1] - pad))
    x1, y1 = int(np.ceil(box[2] + pad)), int(np.ceil(box[3] + pad))
    return max(y0, 0), min(y1, height), max(x0, 0), min(x1, width)


def box_feather(shape: tuple[int, int], edges: tuple[bool, bool, bool, bool], width: int) -> np.ndarray:
    """A weight that is 1 inside and ramps linearly to 0 over ``width`` px at the sides named in
    ``edges`` (top, bottom, left, right); sides on the photo's border stay 1."""
    h, w = shape
    ys, xs = np.ones(h, np.float32), np.ones(w, np.float32)
    ramp = lambda n: np.clip((np.arange(n, dtype=np.float32) + 0.5) / max(width, 1), 0, 1)  # noqa: E731
    if edges[0]:
        ys = np.minimum(ys, ramp(h))
    if edges[1]:
        ys = np.minimum(ys, ramp(h)[::-1])
    if edges[2]:
        xs = np.minimum(xs, ramp(w))
    if edges[3]:
        xs = np.minimum(xs, ramp(w)[::-1])
    return ys[:, None] * xs[None, :]


def restore_regions(net: Callable[[np.ndarray], np.ndarray], rgb8: np.ndarray, faces: list[Detection],
                    canvas: np.ndarray, upscale: float) -> None:
    """Run ``net`` (RGB uint8 -> the same size) on a margin around each face of ``rgb8`` and
    blend the results into ``canvas`` (``upscale`` x the photo, any positive factor as a
    Real-ESRGAN background allows; grey or 16-bit layouts too), in place."""
    h, w = rgb8.shape[:2]
    H, W = canvas.shape[:2]
    for d in faces:
        y0, y1, x0, x1 = face_region(d.box, h, w)
        if y1 - y0 < 2 or x1 - x0 < 2:
            continue
        patch = net(np.ascontiguousarray(rgb8[y0:y1, x0:x1]))
        Y0, X0 = round(y0 * upscale), round(x0 * upscale)
        Y1, X1 = min(round(y1 * upscale), H), min(round(x1 * upscale), W)
        if Y1 - Y0 < 2 or X1 - X0 < 2:
            continue
        out = resize_to(patch, Y1 - Y0, X1 - X0, "lanczos").astype(np.float32)
        feather = max(1, int(MARGIN * float(max(d.box[2] - d.box[0], d.box[3] - d.box[1])) * upscale) // 2)
        mask = box_feather((Y1 - Y0, X1 - X0), (y0 > 0, y1 < h, x0 > 0, x1 < w), feather)
        blend_into(canvas[Y0:Y1, X0:X1], out, mask)


def canvas_crops(canvas: np.ndarray, affines: list[np.ndarray], size: int, upscale: float) -> list[np.ndarray]:
    """The aligned ``size`` px faces of the restored ``canvas`` (RGB uint8), from the affines
    fitted on the input (``upscale`` x smaller)."""
    rgb8 = to_rgb8(canvas)
    out = []
    for a in affines:
        scaled = a.copy()
        scaled[:, :2] /= upscale
        # input pixel x sits at upscale * x + (upscale - 1) / 2 on the canvas (align.inverse_affine)
        scaled[:, 2] -= scaled[:, :2] @ np.full(2, (upscale - 1) / 2)
        out.append(warp_face(rgb8, scaled, size))
    return out


def blend(restored: list[np.ndarray], inputs: list[np.ndarray], weight: float) -> list[np.ndarray]:
    """``weight`` x restored + (1 - weight) x input, per aligned face (``fidelity``)."""
    return [np.rint(weight * r.astype(np.float32) + (1 - weight) * c.astype(np.float32)).astype(np.uint8)
            for r, c in zip(restored, inputs)]
