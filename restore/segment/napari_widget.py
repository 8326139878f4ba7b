"""The napari dock widget: ``restore segment`` on the selected image layer (``napari.yaml`` names it).

``segment_widget`` is a magicgui function widget, napari's own convention: napari builds the form
from its signature, and calling the widget runs it with the values shown. It returns a
``FunctionWorker[LayerDataTuple]``: the segmenter runs in a worker thread, so the viewer stays
responsive, and napari adds the labels when the worker returns (or, on the next run, updates the
layer of the same name). The options are the command's, parsed the same way.
"""
# No ``from __future__ import annotations``: magicgui and napari read the signature's annotations
# (napari.layers.Image, FunctionWorker[LayerDataTuple]) as objects, outside this module's namespace.
import threading
from argparse import ArgumentTypeError
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui import magic_factory
from napari.layers import Image
from napari.qt.threading import FunctionWorker, thread_worker
from napari.types import LayerDataTuple
from qtpy.QtCore import QTimer

from .cli import _diameter

if TYPE_CHECKING:
    from .segmenter import Segmenter

__all__ = ["load_segmenter", "model_choices", "segment_layer", "segment_widget"]

WEIGHT_FILTER = "*.safetensors *.onnx *.zip"  # what Segmenter(weights=) reads: ours, exports, bioimage.io
DEVICES = ("auto", "cpu", "cuda")

# Loaded segmenters by (weights, device, file's mtime): pressing Run again, or with another tile or
# diameter (Segmenter.with_options), reuses the network instead of reading and hashing the file
# again; a weights file rewritten since (a training run that went on) is loaded anew.
_segmenters: dict[tuple[str, str, int], "Segmenter"] = {}
_lock = threading.Lock()  # two runs started together load a model once


def model_choices(_widget: Any = None) -> list[str]:
    """The manifest's segmentation models (``restore weights list``), the names ``--weights`` takes."""
    from gan.tasks import task_word
    from restore.models.manifest import manifest

    def is_segmenter(entry: dict) -> bool:
        try:
            return task_word(entry.get("task", "")) == "segment" and not entry.get("role")
        except ValueError:  # a task word of no version
            return False

    return sorted(name for name, entry in manifest().items() if is_segmenter(entry)) or ["nuclei"]


def _device(name: str) -> str:
    """``auto``: CUDA where there is one (as ``restore serve --device auto``), else the CPU."""
    if name != "auto":
        return name
    import torch  # here, not at the top: opening the widget should not wait for torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_segmenter(weights: str, device: str = "cpu") -> "Segmenter":
    """The ``Segmenter`` for ``weights`` (a bundled name or a file) on ``device``, loaded once."""
    from .segmenter import Segmenter

    path = Path(weights).expanduser()
    key = (str(weights), _device(device), path.stat().st_mtime_ns if path.is_file() else 0)
    with _lock:
        if key not in _segmenters:
            _segmenters[key] = Segmenter(weights=key[0], device=key[1])
        return _segmenters[key]


def _spatial_data(layer: Image) -> np.ndarray:
    """The layer's pixels as the segmenter takes them: (H, W[, C]) or (D, H, W[, C]), channels
    last for an RGB(A) layer; the finest level of a multiscale layer; dask or zarr read here."""
    data = layer.data[0] if layer.multiscale else layer.data
    return np.asarray(data)


def segment_layer(layer: Image, *, weights: str = "nuclei", device: str = "cpu", tile: int = 512,
                  diameter: float | str | None = "auto", instances: bool = False, min_size: int = 16,
                  fill_holes: bool = False) -> LayerDataTuple:
    """Labels of an image layer as a napari layer-data tuple, named ``"<image> labels"``, on the
    image's grid (its scale, translate and units), so the two overlay in world coordinates."""
    seg = load_segmenter(weights, device).with_options(tile=tile, diameter=diameter)
    labels = seg(_spatial_data(layer), instances=instances, min_size=min_size, fill_holes=fill_holes)
    meta = {"name": f"{layer.name} labels", "scale": tuple(layer.scale), "translate": tuple(layer.translate),
            "units": tuple(str(u) for u in layer.units), "metadata": {"restore": {
                "weights": str(weights), "tile": seg.tile, "diameter": diameter, "instances": instances,
                "min_size": min_size, "fill_holes": fill_holes}}}
    return labels, meta, "labels"


@magic_factory(
    call_button="Run",
    image={"label": "image", "tooltip": "the image layer to segment (grey, RGB, or a stack of slices)"},
    model={"choices": model_choices, "tooltip": "a bundled model (restore weights list)"},
    weights_file={"label": "or weights file", "filter": WEIGHT_FILTER, "mode": "r",
                  "tooltip": "a .safetensors or .onnx segmenter, or a bioimage.io model package (.zip); "
                             "when set, it is used instead of the model above"},
    diameter={"tooltip": "object diameter in pixels: 'auto' (measured, then rescaled when it is far from "
                         "the model's), 'none' (the image as it is) or a number"},
    tile={"min": 16, "max": 4096, "step": 16, "tooltip": "tile side in pixels (overlap-tile inference)"},
    instances={"tooltip": "one label per object (touching objects split), instead of classes"},
    min_size={"label": "min size", "min": 0, "max": 1_000_000,
              "tooltip": "remove objects and holes smaller than this (pixels; 0 keeps all)"},
    fill_holes={"label": "fill holes"},
    device={"choices": DEVICES, "tooltip": "auto: CUDA when there is one"},
)
def segment_widget(image: Image, model: str = "nuclei", weights_file: Path | None = None, diameter: str = "auto",
                   tile: int = 512, instances: bool = False, min_size: int = 16, fill_holes: bool = False,
                   device: str = "auto") -> FunctionWorker[LayerDataTuple]:
    """Segment ``image`` with a U-Net in a worker thread; napari adds the Labels layer it returns."""
    if image is None:
        raise ValueError("no image layer: open an image first")
    weights = str(weights_file) if weights_file else model
    # Bad values fail here, in the main thread, as one message; not later inside the worker.
    try:
        size = _diameter(str(diameter).strip().lower())
    except (ValueError, ArgumentTypeError):
        raise ValueError(f"diameter must be 'auto', 'none' or a positive number of pixels, not {diameter!r}") from None
    if weights_file and not Path(weights_file).exists():
        raise ValueError(f"{weights_file}: no such file")

    # Indeterminate progress: the tiles are not counted (restore.tiling reports them to tqdm only).
    @thread_worker(progress={"desc": f"segmenting {image.name}"})
    def run() -> LayerDataTuple:
        return segment_layer(image, weights=weights, device=device, tile=tile, diameter=size,
                             instances=instances, min_size=min_size, fill_holes=fill_holes)

    worker = run()
    # Started from the event loop, after napari has connected its ``returned`` handler to the
    # worker we return: a worker started now could finish before anything listens to it.
    QTimer.singleShot(0, worker.start)
    return worker
