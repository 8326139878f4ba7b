"""The Faces tab's per-face display: the gallery's captions (which face, its identity and what the
guard did, its no-reference quality) and the table of faces the page can sort
(``Handlers.faces``; the numbers come from ``restore.faces.trust``)."""
from __future__ import annotations

from typing import Any

import numpy as np


def shrink(pair: np.ndarray, height: int = 256) -> np.ndarray:
    """A face pair (input | restored, aligned) at ``height`` px, for the gallery."""
    from restore.faces.align import resize_to

    return resize_to(pair, height, round(pair.shape[1] * height / pair.shape[0]), "area")


FACE_COLUMNS = ["photo", "face", "identity", "guard", "NIQE", "BRISQUE"]


def guard(trust: dict) -> str:
    g = trust.get("guard") or {}
    if g.get("action") == "blended":
        return f"blended to fidelity {g['fidelity']:g} (was {g['identity_before']:.2f})"
    if g.get("action") == "input":
        return f"input kept (was {g['identity_before']:.2f})"
    return g.get("action", "")


def caption(name: str, k: int, trust: dict) -> str:
    """A face's gallery caption: which, its identity (and what the guard did), its quality."""
    parts = [f"{name} #{k}"]
    if trust.get("identity") is not None:
        parts.append(f"identity {trust['identity']:.2f}")
    if (g := guard(trust)) and g != "kept":
        parts.append(g)
    q = trust.get("quality") or {}
    if q:
        parts.append(" ".join(f"{m.upper()} {v:.1f}" for m, v in q.items() if v is not None))
    return " · ".join(parts)


def row(name: str, k: int, trust: dict) -> list:
    q = trust.get("quality") or {}
    return [name, k, trust.get("identity"), guard(trust), q.get("niqe"), q.get("brisque")]


def table(rows: list[list]) -> Any:
    """The faces as a table the page can sort (click a column's header)."""
    import pandas as pd

    return pd.DataFrame(rows, columns=FACE_COLUMNS)
