"""Published third-party checkpoints (``.pth``): read safely, converted once to safetensors.

Only ``torch.load(..., weights_only=True)`` ever reads them (tensors and plain containers, no
arbitrary pickled objects). A conversion is one ``.safetensors`` file with the architecture
config in its metadata (``gan.serialize``), written beside the published file in the cache, so
later loads need no unpickling at all. ``cache.load_network(name)`` is the one call for users:

    model, meta = load_network("gfpgan-v1.4")   # conversion, else the verified .pth (converted now)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from gan.weightio import RefusedPickle, read_state_dict

from .manifest import (RefusedWeights, WeightsError, check_file, converted_path, entry, is_downloadable, model_file,
                       sha256, write_record)

STATE_KEYS = ("params_ema", "params", "state_dict")  # where published .pth files nest the weights


def can_convert(arch: str) -> bool:
    """Whether ``arch`` is one of this toolkit's networks (others, e.g. RetinaFace, are used by
    facexlib as they are)."""
    from gan.nets.registry import networks

    return arch in networks()


def _published_loader(arch: str) -> tuple[Callable[..., nn.Module], type] | None:
    """The network's own reader of its published key layout (e.g. GFP-GAN's ``params_ema`` with
    noise buffers), from its descriptor; None: a plain strict load does."""
    from gan.nets.registry import networks

    d = networks().get(arch)
    return (d.load_published, d.config) if d is not None and d.load_published is not None else None


def _file_reader(arch: str) -> Callable[[Any], nn.Module] | None:
    """The network's reader of a published file that is not a torch pickle (its descriptor's
    ``read_published``), or None."""
    from gan.nets.registry import networks

    d = networks().get(arch)
    return d.read_published if d is not None else None


def _one_line(e: BaseException, limit: int = 300) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_state(path: str | os.PathLike, label: str | None = None) -> dict[str, torch.Tensor]:
    """The state dict in a ``.pth``, read with ``weights_only=True`` (nested under
    ``params_ema``/``params``/``state_dict`` or not)."""
    try:
        return read_state_dict(path, label or str(path), STATE_KEYS)
    except RefusedPickle as e:  # its own class: the CLI treats it as a bad input (exit 2), not a failed fetch
        raise RefusedWeights(_one_line(e)) from None
    except ValueError as e:  # truncated, not a checkpoint, or no tensors
        raise WeightsError(_one_line(e)) from None


def load_checkpoint(path: str | os.PathLike, arch: str, config: dict[str, Any] | None = None, *,
                    label: str | None = None) -> nn.Module:
    """A published checkpoint -> network ``arch`` (eval mode), loaded key for key (strict).

    ``config`` is the manifest's architecture config: the generic loader builds the network
    from it; with an architecture's own loader it is checked against the built network."""
    label = label or str(path)
    found = _published_loader(arch)
    reader = _file_reader(arch)
    if reader is not None:  # the network reads its own format (dlib's .dat): no pickle at all
        try:
            model = reader(path)
        except ValueError as e:
            raise WeightsError(f"{label} does not load as {arch} ({_one_line(e)})") from None
    elif found is not None:
        loader, config_cls = found
        state = read_state(path, label)  # our safe read, whatever the loader would do with a path
        try:  # without a config the loader reads one from the shapes (checked below)
            model = loader(state, config_cls(**config)) if config else loader(state)
        except Exception as e:  # noqa: BLE001 - its own reason, on one line
            raise WeightsError(f"{label} does not load as {arch} ({type(e).__name__}: {_one_line(e)})") from None
    else:
        from gan.serialize import ARCHITECTURES, build_model

        if arch not in ARCHITECTURES:
            raise WeightsError(f"{arch} is not one of this toolkit's networks ({', '.join(sorted(ARCHITECTURES))}); "
                               f"{label} is used as it is by the library it belongs to")
        state = read_state(path, label)
        try:
            model = build_model(arch, config or {})
        except (TypeError, ValueError) as e:
            raise WeightsError(f"config {config} does not build a {arch} ({_one_line(e)})") from None
        try:
            res = model.load_state_dict(state, strict=False)
        except RuntimeError as e:  # shape mismatches
            raise WeightsError(f"{label} does not fit {arch} {config or {}}: {_one_line(e)}") from None
        if res.missing_keys or res.unexpected_keys:
            raise WeightsError(f"{label} does not fit {arch} {config or {}}: {len(res.missing_keys)} missing keys "
                               f"{res.missing_keys[:2]}, {len(res.unexpected_keys)} unexpected {res.unexpected_keys[:2]}")
    _check_config(model, arch, config or {}, label)
    return model.eval()


def _check_config(model: nn.Module, arch: str, config: dict[str, Any], label: str) -> None:
    built = model.config.to_dict() if hasattr(getattr(model, "config", None), "to_dict") else {}
    wrong = {k: (built[k], v) for k, v in config.items() if k in built and built[k] != v}
    if wrong:
        raise WeightsError(f"{label} built a {arch} that differs from the manifest's config "
                           f"(field: built, expected): {wrong}")


def save_conversion(model: nn.Module, name: str, meta: dict[str, Any]) -> Path:
    """Write ``model`` to ``converted_path(name)`` (atomically) and record its sha256."""
    from gan.serialize import save_model

    out = save_model(model, converted_path(name), meta)
    write_record(out, sha256(out))
    return out


def convert(name: str) -> Path:
    """Convert manifest model ``name``'s verified published file to safetensors, once."""
    e = entry(name)
    src = model_file(name)
    if not is_downloadable(e) or not src.is_file():
        raise WeightsError(f"{name} has no published file at {src} to convert")
    if (problem := check_file(src, e["sha256"], e.get("bytes"))) is not None:
        raise WeightsError(f"{src} {problem}: not converted")
    model = load_checkpoint(src, e["arch"], e.get("config"), label=str(src))
    return save_conversion(model, name, _conversion_meta(name, e))


def _conversion_meta(name: str, e: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "task": e.get("task", ""), "source": e["url"], "source_sha256": e["sha256"],
            "licence": e.get("licence", "")}
