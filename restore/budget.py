"""A time budget for one piece of work (one app request): past it, the work stops at its next check.

    with time_budget(120, "this request"):     # restore app --max-seconds 120
        result = segmenter(volume)             # raises OverBudget at the first check past 120 s

Python cannot stop a thread from outside, and killing a process mid-way would lose the model
that is loaded in it, so the budget is cooperative: the long loops (tiles in
``restore.tiling``, slices of a volume, faces of a photo, frames of a film) call ``check()``
between steps. One step is at most one batch of tiles, so the work stops within a few
seconds of its deadline. The deadline lives in a ``ContextVar``: each request (each thread
gradio runs a handler in) has its own, and code outside any budget pays one lookup per check.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["OverBudget", "check", "remaining", "time_budget"]


class OverBudget(ValueError):
    """The work took longer than its budget (a ValueError: a message for the user, one line)."""


_budget: ContextVar[tuple[float, float, str] | None] = ContextVar("restore_time_budget", default=None)


@contextlib.contextmanager
def time_budget(seconds: float | None, what: str = "this request") -> Iterator[None]:
    """Stop the work inside at the first ``check()`` after ``seconds`` (None or <= 0: no budget).
    A budget inside another never extends it: the earlier deadline holds."""
    if seconds is None or seconds <= 0:
        yield
        return
    deadline = time.monotonic() + float(seconds)
    outer = _budget.get()
    token = _budget.set(outer if outer is not None and outer[0] <= deadline else (deadline, float(seconds), what))
    try:
        yield
    finally:
        _budget.reset(token)


def check() -> None:
    """Raise OverBudget when the current budget (if any) is spent."""
    budget = _budget.get()
    if budget is not None and time.monotonic() > budget[0]:
        _, seconds, what = budget
        raise OverBudget(f"stopped: {what} took longer than the {seconds:g} s this server allows "
                         "(a smaller image, fewer pages or frames, or a smaller upscale fits)")


def remaining() -> float | None:
    """Seconds left in the current budget; None when there is none."""
    budget = _budget.get()
    return None if budget is None else budget[0] - time.monotonic()
