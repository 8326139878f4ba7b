"""One ``.safetensors`` file per model, its config in the metadata.

``load_model(path)`` rebuilds the right network from the file alone. The table of known
architectures is a plain dict (no registry filled by import side effects).
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

from gan.nets.ac_patchgan import ACPatchDiscriminator, ACPatchGANConfig
from gan.nets.colorizer import Colorizer, ColorizerConfig
from gan.nets.components import ComponentDiscriminatorConfig, FacialComponentDiscriminator
from gan.nets.gfpgan import GFPGAN, GFPGANConfig
from gan.nets.pix2pix import PatchDiscriminator, PatchGANConfig, Pix2PixConfig, UNetGenerator
from gan.nets.restorer import Restorer, RestorerConfig
from gan.nets.stylegan2_disc import StyleGAN2Discriminator, StyleGAN2DiscriminatorConfig
from gan.nets.unet import UNet, UNetConfig
from gan.nets.unetr import UNETR, UNETRConfig

from .weightio import atomic_path

ARCHITECTURES: dict[str, tuple[type, type[nn.Module]]] = {
    "UNet": (UNetConfig, UNet),
    "UNETR": (UNETRConfig, UNETR),
    "UNetGenerator": (Pix2PixConfig, UNetGenerator),
    "Restorer": (RestorerConfig, Restorer),
    "PatchDiscriminator": (PatchGANConfig, PatchDiscriminator),
    "GFPGAN": (GFPGANConfig, GFPGAN),
    "StyleGAN2Discriminator": (StyleGAN2DiscriminatorConfig, StyleGAN2Discriminator),
    "FacialComponentDiscriminator": (ComponentDiscriminatorConfig, FacialComponentDiscriminator),
    "Colorizer": (ColorizerConfig, Colorizer),
    "ACPatchDiscriminator": (ACPatchGANConfig, ACPatchDiscriminator),
}


def build_model(arch: str, config: dict[str, Any]) -> nn.Module:
    """Instantiate architecture ``arch`` from a config dict."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    config_cls, model_cls = ARCHITECTURES[arch]
    return model_cls(config_cls(**config))


def arch_name(model: nn.Module) -> str:
    for name, (_, cls) in ARCHITECTURES.items():
        if type(model) is cls:
            return name
    raise ValueError(f"{type(model).__name__} is not a known architecture")


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
