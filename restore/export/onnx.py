"""Networks to ONNX files, checked by onnxruntime before they are kept.

    result = export_onnx(model, "restorer.onnx", name="restorer", source_sha256=digest)
    result.score   # ("psnr", 118.4): onnxruntime's output against PyTorch's on a real picture

``torch.onnx.export(dynamo=True)`` (torch.export, then onnxscript) rather than the TorchScript
tracer: it keeps the batch axis (and, with ``dynamic``, the sides) symbolic through GFP-GAN's
modulated convolutions, whose grouped weights are shaped from the batch. The file is written
beside its destination under a temporary name, run by onnxruntime on the spec's test input and
compared with PyTorch's output; only a file that matches is renamed onto the destination.

The first input is the network's own (NCHW float32 in its range, see ``restore.export.specs``);
the file's metadata (``onnxruntime``'s ``custom_metadata_map``) holds the model's name, its
architecture and config, the input and output ranges, the sha256 of the weights it came from,
and the check's score.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from restore.imagewrite import atomic_write

from .specs import ExportSpec, spec_for

__all__ = ["ExportError", "ExportResult", "export_onnx", "MIN_PSNR", "MIN_EQUAL"]

MIN_PSNR = {"fp32": 45.0, "fp16": 30.0}  # dB against PyTorch (fp32) on the test input
MIN_EQUAL = {"fp32": 0.999, "fp16": 0.99}  # share of equal mask pixels
DEFAULT_OPSET = 18  # Resize with antialias, and what onnxscript's translations target


class ExportError(ValueError):
    """The network cannot be exported, or its export does not match PyTorch."""


@dataclass
class ExportResult:
    path: Path
    score: tuple[str, float]  # ("psnr", dB) or ("equal", share)
    metadata: dict[str, str]
    seconds: float

    def describe(self) -> str:
        kind, value = self.score
        return f"PSNR {value:.1f} dB" if kind == "psnr" else f"{100 * value:.4f}% equal mask pixels"


def export_onnx(model: nn.Module, path: str | os.PathLike, *, name: str = "", source_sha256: str = "",
                opset: int | None = None, dynamic: bool = False, fp16: bool = False, tile: int | None = None,
                source_meta: dict[str, Any] | None = None, check: bool = True) -> ExportResult:
    """Export ``model`` (a toolkit network, any device) to ``path``; see the module's docstring.

    ``dynamic``: the sides vary too (fully convolutional networks; multiples of their size
    divisor); the batch always varies. ``fp16``: weights and activations in float16, inputs and
    outputs still float32. Raises ExportError (and leaves nothing at ``path``) when the export
    fails or onnxruntime's output does not match PyTorch's."""
    import time

    t0 = time.perf_counter()
    path = Path(path)
    model = copy.deepcopy(model).float().cpu().eval()  # the caller's model stays as it was
    spec = spec_for(model, tile=tile)
    if dynamic and not any(i.dynamic for i in spec.inputs):
        raise ExportError(f"{type(model).__name__} takes one input size only ({'; '.join(spec.notes)}): "
                          "export it without --dynamic")
    precision = "fp16" if fp16 else "fp32"
    examples = tuple(i.example for i in spec.inputs)
    with torch.inference_mode():
        reference = spec.module(*examples).float().numpy()
    module: nn.Module = _Float16(spec.module) if fp16 else spec.module
    program = _export(module, spec, examples, opset or DEFAULT_OPSET, dynamic)
    config = getattr(model, "config", None)
    from gan.serialize import arch_name

    try:
        arch = arch_name(model)
    except ValueError:  # a network without a saved-model architecture (HED)
        arch = type(model).__name__
    meta = {"name": name or arch, "arch": arch, "config": json.dumps(config.to_dict() if config is not None else {}),
            "inputs": json.dumps([{"name": i.name, "range": i.range,
                                   "multiple": max(i.dynamic.values()) if dynamic and i.dynamic else 0}
                                  for i in spec.inputs]),
            "input_range": spec.inputs[0].range, "output_range": spec.output_range, "output": spec.output,
            "source_sha256": source_sha256, "precision": precision, "dynamic": json.dumps(dynamic),
            "opset": str(opset or DEFAULT_OPSET), "producer": "unet-restore (restore export)"}
    if source_meta:  # what the weights file said of itself (a segmenter's training diameter, ...)
        meta["source_meta"] = json.dumps({k: _decoded(v) for k, v in source_meta.items()})
    with atomic_write(path) as tmp:  # renamed onto ``path`` only when it matches; deleted otherwise
        for key, value in meta.items():
            program.model.metadata_props[key] = value
        program.save(str(tmp), external_data=False)
        score = _check(str(tmp), spec, examples, reference) if check else ("psnr", float("nan"))
        kind, value = score
        floor = (MIN_PSNR if kind == "psnr" else MIN_EQUAL)[precision]
        if check and not value >= floor:
            shown = f"{value:.1f} dB" if kind == "psnr" else f"{100 * value:.3f}% equal pixels"
            raise ExportError(f"onnxruntime's output does not match PyTorch's ({shown}; needs "
                              f"{floor:g}{' dB' if kind == 'psnr' else ''}): nothing written to {path}")
        _set_metadata(str(tmp), {"check": json.dumps({kind: round(value, 4)})})
    meta["check"] = json.dumps({score[0]: round(score[1], 4)})
    return ExportResult(path, score, meta, time.perf_counter() - t0)


class _Float16(nn.Module):
    """The network in float16 between float32 inputs and output (the file's interface stays
    the network's own)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = copy.deepcopy(net).half()

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.net(*(x.half() for x in inputs)).float()


def _export(module: nn.Module, spec: ExportSpec, examples: tuple, opset: int, dynamic: bool) -> Any:
    from torch.export import Dim

    batch = Dim("batch", min=1, max=4096)
    per_input: list[dict[int, Any]] = []
    names = list(_forward_names(module))
    sides: dict[int, Any] = {}  # one symbol per axis, shared by the inputs (a sketch and its hints)
    for k, i in enumerate(spec.inputs):
        axes: dict[int, Any] = {0: batch}
        if dynamic:
            for axis, multiple in i.dynamic.items():
                if axis not in sides:
                    root = Dim(f"side{axis}", min=1 if multiple > 1 else 2, max=16384 // multiple)
                    sides[axis] = root * multiple if multiple > 1 else root
                axes[axis] = sides[axis]
        per_input.append(axes)
    # by parameter name; a ``*inputs`` forward takes them as one tuple
    shapes = {"inputs": tuple(per_input)} if names == ["inputs"] else dict(zip(names, per_input))
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        # torch.onnx prints its progress ("[torch.onnx] ...") to stdout: keep the command's own
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            return torch.onnx.export(module, examples, None, dynamo=True, opset_version=opset,
                                     input_names=[i.name for i in spec.inputs], output_names=["output"],
                                     dynamic_shapes=shapes, verbose=False)
    except Exception as e:  # noqa: BLE001 - torch.export's many error types: one readable line
        raise ExportError(f"torch.onnx.export failed for {type(spec.module).__name__}: {_summary(e)}") from e


def _summary(e: BaseException) -> str:
    """The one line of torch.onnx's long report that says what went wrong."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if "## Exception summary" in lines:
        after = lines[lines.index("## Exception summary") + 1:]
        if after:
            return after[0]
    return lines[0] if lines else type(e).__name__


def _forward_names(module: nn.Module) -> list[str]:
    import inspect

    return [p for p in inspect.signature(module.forward).parameters if p not in ("self",)]


def _check(path: str, spec: ExportSpec, examples: tuple, reference: np.ndarray) -> tuple[str, float]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feeds = {i.name: x.numpy() for i, x in zip(spec.inputs, examples)}
    out = session.run(None, feeds)[0]
    if out.shape != reference.shape:
        return ("psnr" if spec.output != "logits" else "equal"), 0.0
    return spec.compare(reference, out)


def _set_metadata(path: str, extra: dict[str, str]) -> None:
    """Add ``extra`` to the file's metadata (after the check, which it records)."""
    import onnx

    proto = onnx.load(path, load_external_data=False)
    for key, value in extra.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, path)


def _decoded(value: Any) -> Any:
    try:
        return json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError:
        return value


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata ``export_onnx`` wrote, JSON values decoded."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    meta: dict[str, Any] = {}
    for entry in proto.metadata_props:
        try:
            meta[entry.key] = json.loads(entry.value)
        except json.JSONDecodeError:
            meta[entry.key] = entry.value
    return meta
