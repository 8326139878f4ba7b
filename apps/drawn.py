"""Colour hints drawn in the page: the Sketch tab's ``gr.ImageEditor`` value -> hints HxWx4.

The editor shows the sketch as its background; the user paints strokes on a layer above it.
Its value is {"background", "layers", "composite"} (numpy, RGBA): the strokes are the opaque
pixels of the layers (the last layer wins where they overlap); an editor without layers (a
drawing flattened into the background) gives the pixels where the composite differs from the
sketch.
"""
from __future__ import annotations

import numpy as np


def _rgba(a: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return None
    a = np.asarray(a)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.shape[2] == 3:
        a = np.dstack([a, np.full(a.shape[:2], 255, a.dtype)])
    return a.astype(np.uint8)


def editor_hints(value: dict | None, shape: tuple[int, int], sketch: np.ndarray | None = None) -> np.ndarray | None:
    """HxWx4 float hints (RGB in [0, 1], mask) of the sketch's ``shape`` from an ImageEditor
    value, or None when nothing was drawn. ``sketch`` (HxW in [0, 1]) is what the background
    showed, for editors whose strokes are only in the composite."""
    import cv2

    if not value:
        return None
    base = value.get("composite") if value.get("composite") is not None else value.get("background")
    if base is None:
        return None
    colour = np.zeros((*np.asarray(base).shape[:2], 3), np.float32)
    mask = np.zeros(colour.shape[:2], bool)
    for layer in value.get("layers") or []:
        layer = _rgba(layer)
        if layer is None or layer.shape[:2] != mask.shape:
            continue
        on = layer[..., 3] > 127
        colour[on] = layer[on, :3] / 255
        mask |= on
    composite = _rgba(value.get("composite"))
    if not mask.any() and composite is not None and sketch is not None:
        shown = cv2.resize((np.clip(sketch, 0, 1) * 255).round().astype(np.uint8), composite.shape[1::-1],
                           interpolation=cv2.INTER_NEAREST)
        differs = np.abs(composite[..., :3].astype(int) - shown[..., None]).max(axis=2) > 24
        colour[differs] = composite[differs, :3] / 255
        mask = differs
    if not mask.any():
        return None
    hints = np.dstack([colour, mask.astype(np.float32)])
    if hints.shape[:2] != tuple(shape):
        hints = cv2.resize(hints, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return hints


def canvas(sketch: np.ndarray) -> dict:
    """An ImageEditor value showing the sketch (HxW in [0, 1]) to draw hints on."""
    grey = (np.clip(sketch, 0, 1) * 255).round().astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    return {"background": rgb, "layers": [], "composite": rgb}
