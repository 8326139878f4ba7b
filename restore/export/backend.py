"""``backend="onnxruntime"``: the networks of a command run from ONNX files in onnxruntime,
and everything around them (detection, tiling, paste-back, post-processing) stays the same code.

    net = onnx_network(model, source=path)     # exported once into CACHE/onnx/, then reused
    net = OnnxNetwork("restorer.onnx")         # a file the user gives
    y = net(x)                                 # a torch.Tensor in, a torch.Tensor out, as the model

``OnnxNetwork`` is an ``nn.Module`` with the network's ``config`` (from the file's metadata), so
the task code that calls ``model(x)``, reads ``model.config`` or asks for the model's device
needs no second path. Providers: CUDA for a ``cuda`` device (when this onnxruntime build has
it), OpenVINO when installed, the CPU always last.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["BACKENDS", "OnnxNetwork", "check_backend", "load_model_file", "on_backend", "onnx_network", "source_digest"]

from restore.runners.args import BACKENDS


def check_backend(backend: str, precision: str = "fp32") -> str:
    """The precision a task runs ``backend`` in: ``precision`` for torch, fp32 for onnxruntime
    (the file's own precision is chosen at export: ``restore export --fp16``). Raises ValueError
    for an unknown backend, or onnxruntime with a precision it does not run."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "onnxruntime":
        if precision not in ("fp32", "auto"):
            raise ValueError(f"--precision {precision} is for the torch backend; onnxruntime runs the file in "
                             "its own precision (restore export --fp16 makes a float16 one)")
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise ValueError('the onnxruntime backend needs onnxruntime: pip install "unet-restore[onnx]"') from None
        return "fp32"
    return precision


def providers(device: str | torch.device = "cpu") -> list[Any]:
    """onnxruntime's execution providers for ``device``, best first; the CPU always."""
    import onnxruntime as ort

    device = torch.device(device)
    available = ort.get_available_providers()
    chosen: list[Any] = []
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise ValueError("--device cuda with the onnxruntime backend needs onnxruntime-gpu "
                             f"(this onnxruntime has {', '.join(available)})")
        chosen.append(("CUDAExecutionProvider", {"device_id": device.index or 0}))
    elif "OpenVINOExecutionProvider" in available:
        chosen.append("OpenVINOExecutionProvider")
    return chosen + ["CPUExecutionProvider"]


class OnnxNetwork(nn.Module):
    """An exported network run by onnxruntime, called like the PyTorch one (tensors in and out;
    ``None`` inputs, such as a colorizer's absent hints, are left out)."""

    def __init__(self, path: str | os.PathLike, device: str | torch.device = "cpu", threads: int | None = None) -> None:
        super().__init__()
        import onnxruntime as ort

        from .onnx import read_metadata

        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"ONNX file not found: {self.path}")
        try:  # a user's file: random bytes or a truncated copy fail here, in protobuf or onnx
            self.meta = read_metadata(self.path)
        except Exception as e:  # noqa: BLE001 - DecodeError, ValueError, ...: one line, not a traceback
            raise ValueError(f"{self.path}: not a readable ONNX model ({_first_line(e)})") from None
        for key, value in (self.meta.get("source_meta") or {}).items():  # e.g. a segmenter's diameter
            self.meta.setdefault(key, value)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()  # as the torch backend's (Ray actors)
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers(device))
        except Exception as e:  # noqa: BLE001 - onnxruntime's own error types
            raise ValueError(f"{self.path}: not a readable ONNX model ({_first_line(e)})") from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        # sides each input must be a multiple of (exports with dynamic sides); others are padded
        # to it here, as the network pads itself, and the output cropped back
        self.multiples = [int(i.get("multiple") or 0) for i in self.meta.get("inputs") or []]
        self.arch = self.meta.get("arch")  # gan.nets.registry.descriptor_of reads it
        try:  # the metadata is the file's word: a config that does not build is the file's fault
            self.config = _config(self.meta)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{self.path}: its metadata's config does not fit {self.arch} ({_first_line(e)})") from None
        # An empty parameter, so code that asks a model for its device and dtype (tiling,
        # ``gan.precision.run``) gets cpu / float32: onnxruntime takes host arrays.
        self.anchor = nn.Parameter(torch.empty(0), requires_grad=False)

    def forward(self, *inputs: torch.Tensor | None) -> torch.Tensor:
        from gan.nets.pix2pix import _crop, _pad_to_multiple  # the networks' own padding: their result

        given = [x.detach().to("cpu", torch.float32) for x in inputs if x is not None]
        pads: list[int] = []
        for k, m in enumerate(self.multiples[:len(given)]):
            if m > 1 and any(s % m for s in given[k].shape[2:]):
                if given[k].dim() != 4:
                    raise ValueError(f"{self.path.name} takes sides that are multiples of {m}, "
                                     f"not {tuple(given[k].shape[2:])}")
                given[k], pads = _pad_to_multiple(given[k], m)
        feeds = {name: x.contiguous().numpy() for name, x in zip(self.input_names, given)}
        out = torch.from_numpy(self.session.run(None, feeds)[0])
        return _crop(out, pads) if any(pads) else out

    def __deepcopy__(self, memo: dict) -> OnnxNetwork:
        return self  # a session is read-only and thread-safe: copies share it

    def extra_repr(self) -> str:
        return f"{self.path.name}, providers={self.session.get_providers()}"


def _first_line(e: BaseException, limit: int = 200) -> str:
    text = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _config(meta: dict[str, Any]) -> Any:
    """The network's frozen config, rebuilt from the file's metadata (None when it has none)."""
    from gan.nets.descriptor import config_from_dict
    from gan.nets.registry import networks

    d = networks().get(meta.get("arch"))
    if d is not None and isinstance(meta.get("config"), dict):
        return config_from_dict(d.config, meta["config"])
    return None


def source_digest(path: str | os.PathLike | None = None, model: nn.Module | None = None) -> str:
    """The sha256 of the weights file, or of the tensors of an in-memory ``model``."""
    if path is not None and Path(path).is_file():
        from restore.models.manifest import file_sha256

        return file_sha256(Path(path))
    h = hashlib.sha256()
    for key, t in sorted((model.state_dict() if model is not None else {}).items()):
        h.update(key.encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def onnx_network(model: nn.Module, *, source: str | os.PathLike | None = None, name: str = "",
                 device: str | torch.device = "cpu", dynamic: bool | None = None, tile: int | None = None,
                 source_meta: dict[str, Any] | None = None, quiet: bool = True) -> OnnxNetwork:
    """``model`` as an ``OnnxNetwork``, exported (and checked) once into ``CACHE/onnx/`` under
    the sha256 of ``source`` (its weights file) and reused by every later run. ``dynamic``
    (default: where the network allows it) makes one file serve every tile size."""
    from restore.models.manifest import cache_dir

    from .onnx import DEFAULT_OPSET, export_onnx, read_metadata
    from .specs import spec_for

    if isinstance(model, OnnxNetwork):
        return model
    digest = source_digest(source, model)
    spec = spec_for(model, tile=tile)
    if dynamic is None:
        dynamic = any(i.dynamic for i in spec.inputs)
    shape = "dyn" if dynamic else "x".join(str(s) for s in spec.inputs[0].example.shape[1:])
    path = cache_dir() / "onnx" / f"{type(model).__name__}-{digest[:16]}-{shape}-opset{DEFAULT_OPSET}.onnx"
    if path.is_file():
        try:
            if read_metadata(path).get("source_sha256") == digest:
                return OnnxNetwork(path, device)
        except Exception:  # noqa: BLE001 - a damaged cache file is exported again
            pass
    result = export_onnx(model, path, name=name, source_sha256=digest, dynamic=dynamic, tile=tile,
                         source_meta=source_meta)
    if not quiet:
        import sys

        print(f"exported {name or type(model).__name__} to {path} ({result.describe()} against PyTorch)",
              file=sys.stderr)
    return OnnxNetwork(path, device)


def load_model_file(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """``gan.serialize.load_model`` that also takes an exported ``.onnx`` file (run by onnxruntime)."""
    from gan.serialize import load_model

    if str(path).endswith(".onnx"):
        check_backend("onnxruntime")
        net = OnnxNetwork(path, device)
        return net, net.meta
    return load_model(path, device)


def on_backend(model: nn.Module, backend: str, *, source: str | os.PathLike | None = None, name: str = "",
               device: str | torch.device = "cpu", tile: int | None = None) -> nn.Module:
    """``model`` for ``backend``: itself for torch (or when it is already an ``OnnxNetwork``),
    its cached export for onnxruntime (``onnx_network``)."""
    if backend == "torch" or isinstance(model, OnnxNetwork):
        return model
    meta = None
    if source is not None and str(source).endswith(".safetensors") and Path(source).is_file():
        from gan.serialize import read_metadata as source_metadata

        meta = {k: v for k, v in source_metadata(source).items() if k not in ("arch", "config")}
    return onnx_network(model, source=source, name=name, device=device, tile=tile, source_meta=meta)
