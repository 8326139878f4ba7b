"""What the four wrappers (``FaceRestorer``, ``Segmenter``, ``Translator``, ``Colorizer``) resolve
the same way, written once: device, precision, backend, test-time augmentation and weights.

Their defaults are the command line's, so the Python API and the CLI give the same numbers:
``precision=None`` means the command's ``--precision`` default (``auto`` for the photo tasks,
whose bf16 error measured >= 45 dB; ``fp32`` for segmentation, whose masks flip in bf16).
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch

from gan.nets.registry import descriptor_of
from gan.precision import resolve_precision
from restore.ensemble import check_orientations
from restore.export.backend import check_backend, load_model_file
from restore.models.cache import resolve_weights
from restore.runners.args import DEFAULT_PRECISION


class Inference:
    """The base of the wrappers: ``task`` names the command whose defaults it takes."""

    task: ClassVar[str]

    def setup(self, device: str | torch.device, precision: str | None, backend: str, tta: int = 1) -> None:
        """``device``, ``precision`` (checked against the backend: an impossible one fails now;
        onnxruntime runs the file in the precision it was exported in), ``backend``, ``tta``."""
        self.device = torch.device(device)
        self.asked = DEFAULT_PRECISION[self.task] if precision is None else precision
        self.precision = resolve_precision(check_backend(backend, self.asked), self.device)
        self.backend = backend
        self.tta = check_orientations(tta)  # test-time augmentation: orientations averaged

    def runs_from_file(self, model: torch.nn.Module) -> None:
        """A network given as an exported ``.onnx`` file runs on onnxruntime in the file's own
        precision, whatever the backend asked for: fp32 here (auto included), and a precision
        onnxruntime cannot run is refused as ``--backend onnxruntime`` refuses it."""
        from restore.export.backend import OnnxNetwork

        if isinstance(model, OnnxNetwork):
            self.backend = "onnxruntime"
            self.precision = check_backend("onnxruntime", self.asked)

    def load(self, weights: str | Path | torch.nn.Module, kind: str) -> tuple[Path | None, torch.nn.Module, dict]:
        """(path or None, network, its file's metadata) for a bundled name, run folder, file or a
        network object (run as it is, on the torch backend); ValueError when the network is not
        of ``kind`` (a descriptor kind: "image-to-image", "segmenter", "colorizer", ...)."""
        if isinstance(weights, torch.nn.Module):
            path, model, meta = None, weights.to(self.device).eval(), {}
            self.backend = "torch"
        else:
            path = resolve_weights(weights)
            model, meta = load_model_file(path, self.device)
            self.runs_from_file(model)
        try:
            found = descriptor_of(model).kind
        except ValueError:
            if path is None:
                raise
            # an .onnx made elsewhere: its metadata names no network of ours
            raise ValueError(f"{path}: names no network of this toolkit (arch {getattr(model, 'arch', None)!r}); "
                             "`restore export` writes the .onnx files these commands run") from None
        if found != kind:
            raise ValueError(f"{path or 'the network'} is not {WHAT.get(kind, kind)} ({type(model).__name__}: {found})")
        return path, model, meta


WHAT = {"image-to-image": "an image-to-image generator", "colorizer": "a sketch colorizer",
        "segmenter": "a segmentation network", "face prior": "a face restorer", "upscaler": "an upscaler"}


__all__ = ["Inference"]
