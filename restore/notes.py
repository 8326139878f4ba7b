"""Notes: what a reader or writer did to a file that its user should hear of (only the first
frame of an animation was read, a colour profile could not be applied, 16 bits written as 8).

    with collect_notes() as notes:      # the batch runner, around one file
        image = read_image(path)        # readers and writers call note(...)
    # notes == ["animated GIF of 12 frames: only the first frame was read"]

A context variable, not a return value, so the readers keep returning plain arrays and a note
made deep inside one reaches the one ``note:`` line of its file. Outside ``collect_notes``
notes are dropped.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["collect_notes", "note"]

_NOTES: ContextVar[list[str] | None] = ContextVar("restore_notes", default=None)


@contextlib.contextmanager
def collect_notes() -> Iterator[list[str]]:
    """Gather the ``note``s made inside the block (in this thread or task) into the yielded list."""
    notes: list[str] = []
    token = _NOTES.set(notes)
    try:
        yield notes
    finally:
        _NOTES.reset(token)


def note(message: str) -> None:
    """Tell the user something about the file being read or written (dropped when nobody
    collects notes); each message once per file."""
    notes = _NOTES.get()
    if notes is not None and message not in notes:
        notes.append(message)
