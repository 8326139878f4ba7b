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


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network saved at ``path``; returns (model in eval mode, metadata).

    Raises ValueError with a readable reason for a missing, truncated or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file not found: {path}")
    try:
        raw = read_metadata(path)
        state = load_file(str(path), device=str(device))
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
    model = build_model(meta["arch"], meta["config"])
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), meta
