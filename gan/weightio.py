"""Weight files: published state dicts read with ``weights_only=True`` and checked key for key,
and files written atomically (temporary name, fsync, rename).

Shared by the networks (published checkpoints), ``gan.serialize`` (model files) and the
training checkpoints, so it lives beside them rather than in any one of them.
"""
from __future__ import annotations

import contextlib
import io
import os
import pickle
import pickletools
import re
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn


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


class RefusedPickle(ValueError):
    """A ``.pth`` whose pickle names Python objects other than tensors: never unpickled."""


def read_state_dict(path: str | os.PathLike, what: str = "",
                    keys: tuple[str, ...] = ("params_ema", "params", "state_dict")) -> dict[str, torch.Tensor]:
    """A published ``.pth``'s state dict, read with ``weights_only=True``. A file whose pickle
    names other objects raises RefusedPickle; a truncated or foreign one ValueError; both one
    line naming the file (never torch's advice to retry with ``weights_only=False``)."""
    what = what or str(path)
    try:
        with warnings.catch_warnings():  # a bare pickle's protocol note: noise on the way to a refusal
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's safe unpickler said no: say why without its advice
        refuse_foreign(path, what)
        raise ValueError(f"{what}: cannot read it as PyTorch weights (not a file torch.save wrote)") from None
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - random bytes reach torch's legacy reader as any error
        # (OSError, RuntimeError, EOFError, BadZipFile, and for ~5% of random files IndexError,
        # KeyError or UnicodeDecodeError): all mean a file that is not a checkpoint: one line.
        reason = str(e).split(". ")[0].splitlines()[0][:160] if str(e).strip() else "the file ends early"
        raise ValueError(f"{what}: cannot read it as PyTorch weights (truncated or not a checkpoint: "
                         f"{type(e).__name__}: {reason})") from None
    return unwrap_state_dict(state, what, keys)


# What torch.save writes for a state dict (tensors, storages, dtypes, OrderedDict); anything else
# named by a pickle is a callable or class it would construct.
_PLAIN = ("torch.",)
_PLAIN_NAMES = {"collections.OrderedDict", "collections.Counter", "builtins.set", "builtins.bytearray",
                "builtins.complex", "_codecs.encode"}
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_SCAN_BYTES = 64 << 20  # the pickle of a state dict is kilobytes; tensors live outside it


def refuse_foreign(path: str | os.PathLike, what: str = "") -> None:
    """RefusedPickle (one line naming ``what``) if the pickle of ``path`` imports anything a
    plain state dict does not (``foreign_global``)."""
    if (culprit := foreign_global(path)) is not None:
        raise RefusedPickle(f"{what or path}: refused: the file holds Python objects other than tensors ({culprit}: a "
                            "pickle that could run code); only plain state dicts load")


def foreign_global(path: str | os.PathLike) -> str | None:
    """The first ``module.name`` a ``.pth``'s pickle imports that a plain state dict never
    does (e.g. ``posix.system``), found by reading the opcodes only (nothing is executed);
    None when there is none or the bytes are not a pickle."""
    try:
        if zipfile.is_zipfile(path):  # torch.save's format: the pickle is ARCHIVE/data.pkl
            with zipfile.ZipFile(path) as z:
                member = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
                if member is None:
                    return None
                with z.open(member) as f:
                    data = f.read(_SCAN_BYTES)
        else:  # the legacy format (or a bare pickle): a few pickles one after another, then raw data
            with open(path, "rb") as f:
                data = f.read(_SCAN_BYTES)
    except (OSError, zipfile.BadZipFile, RuntimeError):
        return None
    stream = io.BytesIO(data)
    for _ in range(5):  # legacy: magic number, protocol, sys info, the object, storage keys
        for name in _imported_names(stream):
            if not name.startswith(_PLAIN) and name not in _PLAIN_NAMES:
                return name[:80]
        if stream.tell() >= len(data):
            break
    return None


def _imported_names(stream: io.BytesIO) -> Iterator[str]:
    """The names one pickle's GLOBAL, STACK_GLOBAL and INST opcodes import, in order (a
    malformed stream just ends the walk)."""
    memo: dict[int, Any] = {}
    pushed: list[Any] = []  # the strings (or None) pushed lately: STACK_GLOBAL takes the last two
    try:
        for op, arg, _ in pickletools.genops(stream):
            if op.name in ("GLOBAL", "INST"):
                name = str(arg).replace(" ", ".")
            elif op.name == "STACK_GLOBAL" and len(pushed) >= 2 and all(isinstance(v, str) for v in pushed[-2:]):
                name = f"{pushed[-2]}.{pushed[-1]}"
            else:
                name = None
            if name is not None and _DOTTED.fullmatch(name):
                yield re.sub(r"^__builtin__\.", "builtins.", name)  # protocol 2's spelling
            if op.name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
                memo[len(memo) if op.name == "MEMOIZE" else arg] = pushed[-1] if pushed else None
            elif op.name in ("GET", "BINGET", "LONG_BINGET"):
                pushed.append(memo.get(arg))
            elif op.stack_after:  # a constant's value, or None for anything computed
                pushed.append(arg if isinstance(arg, str) and not op.stack_before else None)
            pushed = pushed[-2:]
    except Exception:  # noqa: BLE001 - bytes that are not a pickle (ValueError, EOFError...): the walk ends
        return


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


def published_state(path_or_state: str | os.PathLike | dict, keys: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """A published checkpoint's state dict: from a file read with ``weights_only=True``, or from a
    dict; nested under the first of ``keys`` it has (``params_ema``, ``params``), else the dict."""
    if isinstance(path_or_state, dict):
        return unwrap_state_dict(path_or_state, "the given dict", keys)
    return read_state_dict(path_or_state, keys=keys)


def load_strictly(make: Callable[[], nn.Module], state: dict[str, torch.Tensor]) -> nn.Module:
    """``make()``'s network with ``state`` loaded key for key, in eval mode. Built on the meta
    device (no random init of weights about to be overwritten: 86 M for GFP-GAN at 512 px) and
    checked before anything is allocated: ValueError naming the missing, unexpected and
    mis-shaped keys (``check_fits``)."""
    with torch.device("meta"):
        model = make()
    model = model.to_empty(device="cpu")
    check_fits(model.state_dict(), state, f"state dict does not fit {getattr(model, 'config', type(model).__name__)}")
    model.load_state_dict(state, strict=True)
    return model.eval()
