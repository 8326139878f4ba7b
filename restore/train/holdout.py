"""The validation split every trainer makes when no ``--val`` is given: whole items held out,
every k-th one (the last of each run of k), so validation never sees a training image.

``held_out`` is the rule; ``split_off`` applies it to a trainer's items and says what it did,
and when there is a single item, validation shares it (with a warning). The segmenter, which
with fewer than 5 images holds out a strip of every image instead, asks ``held_out`` alone.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def held_out(n: int, every: int = 10, minimum: int = 2) -> list[int]:
    """The indices of ``n`` items held out for validation: the last of every ``every`` (fewer
    items: the last one), never the first; none when there are fewer than ``minimum``."""
    if n < max(2, minimum):
        return []
    k = max(2, min(every, n))
    return list(range(k - 1, n, k))


def pick(items: Sequence[T], indices: Sequence[int], keep: bool = True) -> list[T]:
    """The items at ``indices`` (``keep``), or all the others."""
    chosen = set(indices)
    return [item for i, item in enumerate(items) if (i in chosen) == keep]


def split_off(n: int, what: str, every: int = 10) -> tuple[list[int], list[int]]:
    """(training, validation) indices of ``n`` items (``what``: "images", "pairs", "faces")
    when no --val is given: every ``every``-th item held out, at least one; a single item
    serves both, with a warning. One line says which happened."""
    val = held_out(n, every)
    if not val:
        print(f"warning: a single training {what.rstrip('s')}, so validation uses it too "
              "(pass --val for a real score)")
        return list(range(n)), list(range(n))
    train = pick(range(n), val, keep=False)
    print(f"no --val given: holding out {len(val)} of {n} {what} for validation")
    return train, val
