"""One ``.safetensors`` file per model, its config in the metadata.

``load_model(path)`` rebuilds the right network from the file alone. The table of known
architectures is built from the descriptor each network file ends with (``gan.nets.registry``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from gan.nets.descriptor import config_from_dict
from gan.nets.registry import descriptor, descriptor_of, networks

from .weightio import atomic_path


def __getattr__(name: str):
    # ARCHITECTURES (arch -> (config class, module class)) is read from the descriptors on
    # first use, so that importing this module does not import every network.
    if name == "ARCHITECTURES":
        return {n: (d.config, d.model) for n, d in networks().items()}
    raise AttributeError(f"module 'gan.serialize' has no attribute {name!r}")


def build_model(arch: str, config: dict[str, Any]) -> nn.Module:
    """Instantiate architecture ``arch`` from a config dict (ValueError: unknown arch, or a config
    that is not a dict of the architecture's fields)."""
    d = descriptor(arch)
    if not isinstance(config, dict):
        raise ValueError(f"the config of {arch} must be a JSON object, not {type(config).__name__}")
    return d.make(config_from_dict(d.config, config))


def arch_name(model: nn.Module) -> str:
    return descriptor_of(model).name


def save_model(model: nn.Module, path: str | os.PathLike, meta: dict[str, Any] | None = None) -> Path:
    """Write weights + config (+ ``meta``, JSON-encoded) atomically to ``path``."""
    path = Path(path)
    metadata = {"arch": arch_name(model), "config": json.dumps(model.config.to_dict())}
    for key, value in (meta or {}).items():
        metadata[key] = value if isinstance(value, str) else json.dumps(value)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, tmp, metadata=metadata)
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def read_header(path: str | os.PathLike) -> tuple[dict[str, str], dict[str, tuple[int, ...]]]:
    """(metadata, name -> shape of every tensor) of a safetensors file, from its header alone."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {}), {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


def check_against_file(arch: str, config: Any, shapes: dict[str, tuple[int, ...]], label: str) -> None:
    """Build ``arch`` from ``config`` on PyTorch's ``meta`` device (no memory is allocated) and
    check that its state dict has exactly the file's tensor names and shapes: a config written to
    ask for hundreds of GiB over one tiny tensor is refused before anything is allocated, since
    what is then built is no larger than the file's own tensors. ValueError, one line."""
    try:
        with torch.device("meta"):
            model = build_model(arch, config)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{label}: its config does not build a {arch} ({' '.join(str(e).split())[:200]})") from None
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if want != shapes:
        missing, extra = sorted(set(want) - set(shapes)), sorted(set(shapes) - set(want))
        wrong = sorted(k for k in set(want) & set(shapes) if want[k] != shapes[k])
        parts = [f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
                 f"{len(extra)} unexpected (e.g. {extra[0]})" if extra else "",
                 f"{len(wrong)} of another shape (e.g. {wrong[0]}: {shapes[wrong[0]]}, config {want[wrong[0]]})"
                 if wrong else ""]
        raise ValueError(f"{label}: its config does not match its tensors ({', '.join(p for p in parts if p)}); "
                         "refused before building it")


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network saved at ``path``; returns (model in eval mode, metadata).

    The config in the metadata is checked against the file's tensors on the ``meta`` device
    before the network is built for real (``check_against_file``). Raises ValueError with a
    readable reason for a missing, truncated, foreign or mismatched file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file not found: {path}")
    try:
        raw, shapes = read_header(path)
    except (SafetensorError, OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a readable safetensors file ({e})") from None
    if "arch" not in raw or "config" not in raw:
        raise ValueError(f"{path} has no model config in its metadata; was it saved by this toolkit?")
    meta: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            meta[key] = json.loads(value)
        except json.JSONDecodeError:
            meta[key] = value
    check_against_file(meta["arch"], meta["config"], shapes, str(path))
    try:
        state = load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path} is not a readable safetensors file ({e})") from None
    model = build_model(meta["arch"], meta["config"])
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), meta
