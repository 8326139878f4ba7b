"""The pipelined runner (the default): the next inputs are read while the networks work on the
current ones, several inputs share one network call, and the outputs are written behind.

    report = run_pipeline(items, outputs, load, compute, save, batch=8, size=lambda v: len(v.crops))

- ``load(file, rel)`` runs in a reader thread (decode, and whatever needs no big network);
- ``compute(group)`` runs in the calling thread on a group of loaded values, in input order,
  whose ``size``s add up to at least ``batch`` (or what is left), and returns one result per
  value; an exception fails the whole group, an exception *instance* in the list fails one item;
- ``save(file, rel, result)`` runs in a writer thread, in input order, and writes the outputs
  atomically; its return value goes to ``on_done(file, value)`` in the calling thread.

What ``run_batch`` promises holds here too, file for file: the same ``outputs`` names, skipped,
failed (one ``error:`` line, partial outputs removed) or done, the ignored files listed, a
``note:`` line per file, the same summary; Ctrl-C removes the outputs of the inputs in flight
and says how to resume. Threads rather than processes: decoding (Pillow), PNG encoding (zlib)
and the networks (PyTorch) all release the GIL, so on a 2-core machine a reader and a writer
overlap the networks without copying photos between processes.
"""
from __future__ import annotations

import sys
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from restore.notes import collect_notes

from .inputs import Item
from .outputs import plan_outputs, remove_new
from .report import (BatchReport, debugging, describe_error, finish_report, interrupted, printable, progress_bar,
                     record_notes, start_report)

__all__ = ["run_pipeline"]


def _with_notes(fn: Callable, *args) -> tuple[Any, list[str]]:
    with collect_notes() as notes:
        return fn(*args), notes


def run_pipeline(items: Sequence[Item], outputs: Callable[[Path, Path], list[Path]],
                 load: Callable[[Path, Path], Any], compute: Callable[[list[Any]], list[Any]],
                 save: Callable[[Path, Path, Any], Any], *, batch: int = 1, size: Callable[[Any], int] = lambda v: 1,
                 lookahead: int = 4, skip_existing: bool = False, desc: str = "", quiet: bool = False,
                 stream: TextIO | None = None, ignored: Sequence[tuple[Path, str]] = (),
                 on_done: Callable[[Path, Any], None] | None = None) -> BatchReport:
    """Run every item through load -> compute (grouped) -> save; see the module's docstring."""
    stream = sys.stderr if stream is None else stream
    debug = debugging()
    report = start_report(ignored, quiet, stream)
    bar = progress_bar(items, desc, quiet, stream)

    def fail(file: Path, reason: str, exc: BaseException | None = None) -> None:
        report.failed.append((file, reason))
        bar.write(printable(f"error: {file}: {reason}"), file=stream)
        if debug and exc is not None:
            traceback.print_exception(exc, file=stream)
        bar.update()

    todo = plan_outputs(items, outputs, skip_existing, report, fail, bar.update)

    readers = ThreadPoolExecutor(1, thread_name_prefix="read")
    writer = ThreadPoolExecutor(1, thread_name_prefix="write")
    loading: deque[tuple[int, Future]] = deque()
    saving: deque[tuple[int, Future, list[str]]] = deque()
    nxt = 0
    settled: set[int] = set()  # indices whose outputs are final (done, or failed and cleaned)

    def refill() -> None:
        nonlocal nxt
        while nxt < len(todo) and len(loading) < lookahead:
            file, rel = todo[nxt][:2]
            loading.append((nxt, readers.submit(_with_notes, load, file, rel)))
            nxt += 1

    def drop(i: int, reason: str, exc: BaseException | None = None) -> None:
        file, _, outs, before = todo[i]
        remove_new(outs, before)
        settled.add(i)
        fail(file, reason, exc)

    def collect(block: bool) -> None:
        """Settle finished saves in order (all of them when ``block``); cancelled ones are left."""
        while saving and (block or saving[0][1].done()):
            i, fut, notes = saving.popleft()
            file, _, outs, _ = todo[i]
            if fut.cancelled():  # Ctrl-C before it started: nothing of it was written
                continue
            try:
                value, more = fut.result()
            except Exception as e:  # noqa: BLE001 - any failure of one file is that file's
                drop(i, describe_error(e), e)
                continue
            missing = [o for o in outs if not o.exists()]
            if missing:  # a bug in the command rather than a bad file, but never count it as done
                drop(i, "produced no " + ", ".join(map(str, missing)))
                continue
            settled.add(i)
            report.done += 1
            record_notes(report, file, notes + [n for n in more if n not in notes], bar, quiet, stream)
            if on_done is not None:
                on_done(file, value)
            bar.update()

    try:
        refill()
        while loading:
            group: list[tuple[int, Any, list[str]]] = []
            total = 0
            while loading and (not group or total < batch):
                i, fut = loading.popleft()
                try:
                    value, notes = fut.result()
                except Exception as e:  # noqa: BLE001
                    drop(i, describe_error(e), e)
                    refill()
                    continue
                group.append((i, value, notes))
                total += max(0, int(size(value)))
                refill()
            if not group:
                continue
            try:
                results = compute([v for _, v, _ in group])
            except Exception as e:  # noqa: BLE001 - the group's network call failed: each of its files
                for i, _, _ in group:
                    drop(i, describe_error(e), e)
                continue
            for (i, _, notes), result in zip(group, results):
                if isinstance(result, BaseException):
                    drop(i, describe_error(result), result)
                    continue
                file, rel = todo[i][:2]
                saving.append((i, writer.submit(_with_notes, save, file, rel, result), notes))
            collect(block=False)
        collect(block=True)
    except KeyboardInterrupt:
        for _, fut in loading:
            fut.cancel()
        readers.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True, cancel_futures=True)  # a file being written finishes, atomically
        collect(block=False)  # what was written whole counts as done
        for i in range(len(todo)):
            if i not in settled:
                remove_new(*todo[i][2:])
        interrupted(report, bar, desc, quiet, stream)
        raise
    finally:
        readers.shutdown(wait=False, cancel_futures=True)
        writer.shutdown(wait=True)
    return finish_report(report, bar, desc, quiet, stream)
