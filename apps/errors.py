"""What a visitor reads when a request fails: one line, naming only the file they gave.

The app may face a network (``restore app --host``, issue 35): a message must show nothing of
the server (gradio's upload folder, the weights cache, a temporary folder), and a bug's
traceback goes to the log, not the page. ``handler`` also runs each button inside its
request's time budget (``restore.budget``).
"""
from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import gradio as gr
import torch

from restore.budget import time_budget

log = logging.getLogger(__name__)  # restore.apps.errors: the tracebacks of bugs


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


# An absolute POSIX path (not the tail of a URL or of "a/b"): ends at a space, a quote or punctuation.
_ABS_PATH = re.compile(r"(?<![\w.:/~-])/[^\s'\"()\[\]<>,;]+")


def public(text: str, uploads: Iterable[str | Path] = ()) -> str:
    """``text`` with every server path cut to its last part: an upload's path (gradio's cache
    folder, which may hold spaces) to the visitor's file name, any other absolute path (the
    weights cache, a temp folder, a library's file in a traceback line) to its file name."""
    for path in sorted({str(u) for u in uploads}, key=len, reverse=True):
        text = text.replace(path, Path(path).name)
    return _ABS_PATH.sub(lambda m: Path(m.group().rstrip("/.:")).name or "/", text)


def _uploads(args: Iterable) -> list[str]:
    """The absolute paths among a handler's arguments (its uploads), lists of them included."""
    flat = [x for a in args for x in (a if isinstance(a, (list, tuple)) else [a])]
    return [x for x in flat if isinstance(x, str) and os.path.isabs(x)]


def user_errors(fn: Callable) -> Callable:
    """Errors a user can act on become a one-line ``gr.Error``; anything else is logged with its
    traceback on the server and shown as one line too (gradio would show a bare "Error"). Every
    message goes through ``public``: an OSError's text, a library's or an unexpected one may
    hold the upload's path in gradio's cache or another folder of the server."""

    @functools.wraps(fn)  # keeps the signature: gradio finds the ``progress`` parameter through it
    def wrapper(*args, **kwargs):
        def error(message: str, e: gr.Error | None = None) -> gr.Error:
            message = public(message, _uploads([*args, *kwargs.values()]))
            if e is None:
                return gr.Error(message, print_exception=False)
            return gr.Error(message, duration=e.duration, visible=e.visible, title=e.title,
                            print_exception=e.print_exception)

        try:
            return fn(*args, **kwargs)
        except gr.Error as e:
            raise error(e.message, e) from None
        except (ValueError, OSError) as e:  # ImageError, WeightsError, OverBudget and bad options: for users
            raise error(_one_line(e)) from None
        except torch.OutOfMemoryError:
            raise error("out of memory: try a smaller image, a smaller tile or no upscaling") from None
        except Exception as e:  # a bug: keep the traceback for the log, not the page
            log.exception("unexpected error in %s", fn.__name__)
            raise error(f"unexpected error ({type(e).__name__}): {_one_line(e)}") from None

    return wrapper


def handler(what: str) -> Callable[[Callable], Callable]:
    """A button's method: it runs inside its request's time budget (``Runtime.max_seconds``; the
    long loops stop at their next ``restore.budget.check()`` past it, which frees the queue's
    slot), and its errors become messages as ``user_errors`` says. ``what`` names the work in
    the message ("stopped: the segmentation took longer than the 300 s this server allows")."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def budgeted(self: Any, *args, **kwargs):  # a Handlers
            with time_budget(self.rt.max_seconds, what):
                return fn(self, *args, **kwargs)

        return user_errors(budgeted)

    return decorate
