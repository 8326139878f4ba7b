"""Training checkpoints: written atomically, read with ``weights_only=True``.

A checkpoint holds only tensors, numbers, strings and dicts of them, so the safe unpickler
reads it; a half-written file can never take the real name (temp file + ``os.replace``).
"""
from __future__ import annotations

import os
import pickle
import random
import zipfile
from typing import Any

import numpy as np
import torch

from gan.weightio import atomic_path


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint; a damaged file raises ValueError naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"checkpoint {path} is damaged or not a checkpoint ({e})") from None


def rng_state() -> dict[str, Any]:
    """Every random state a step can touch, as tensors and numbers (no pickled objects, so a
    tampered checkpoint cannot run code when it is read back)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
