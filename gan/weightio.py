"""Weight files: published state dicts read with ``weights_only=True`` and checked key for key,
and files written atomically (temporary name, fsync, rename).

Shared by the networks (published checkpoints), ``gan.serialize`` (model files) and the
training checkpoints, so it lives beside them rather than in any one of them.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterator

import torch


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary name beside ``path``; on success fsync it and rename it onto ``path``,
    on failure delete it. (``restore.imageio.atomic_write`` does the same for photos; ``gan``
    cannot import ``restore``.)"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def unwrap_state_dict(state: Any, what: str, keys: tuple[str, ...] = ("params_ema", "params", "state_dict")
                      ) -> dict[str, torch.Tensor]:
    """The state dict inside a published checkpoint (``params_ema``, else ``params``, else
    ``state_dict``, else the dict itself); ValueError unless it holds tensors only."""
    for key in keys:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{what} does not hold a state dict of tensors")
    return state


def read_state_dict(path: str | os.PathLike, what: str = "",
                    keys: tuple[str, ...] = ("params_ema", "params", "state_dict")) -> dict[str, torch.Tensor]:
    """A published ``.pth``'s state dict, read with ``weights_only=True`` (a file that holds
    code, or is truncated, raises ValueError naming it)."""
    what = what or str(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        raise ValueError(f"cannot read {what} with weights_only=True ({e})") from None
    return unwrap_state_dict(state, what, keys)


def check_fits(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], what: str, shown: int = 8) -> None:
    """ValueError naming the missing, unexpected and mis-shaped keys when ``state`` does not
    load strictly into a network whose state dict is ``own``."""
    missing = sorted(own.keys() - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    misshaped = sorted(f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}"
                       for k in own.keys() & state.keys() if state[k].shape != own[k].shape)
    if missing or unexpected or misshaped:
        def show(keys: list[str]) -> str:
            return ", ".join(keys[:shown]) + (f" ... ({len(keys)} in all)" if len(keys) > shown else "") if keys else "none"
        raise ValueError(f"{what}: missing {show(missing)}; unexpected {show(unexpected)}; mis-shaped {show(misshaped)}")
