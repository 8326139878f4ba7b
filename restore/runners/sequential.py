"""One input after another (``--no-pipeline``, and any ``process`` of one's own):

    found = scan_inputs(args.paths, exclude=[out])
    report = run_batch(found.items, process, outputs, skip_existing=args.skip_existing,
                       desc="segment", ignored=found.ignored)

``process(file, rel)`` does one input and writes its outputs under ``OUT / rel`` (with
``atomic_write`` / ``write_png``); ``outputs(file, rel)`` names those outputs (``restore.runners.outputs``).
"""
from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from restore.notes import collect_notes

from .inputs import Item
from .outputs import claim_outputs, remove_new, stamp
from .report import (BatchReport, debugging, describe_error, finish_report, interrupted, printable, progress_bar,
                     record_notes, start_report)

__all__ = ["run_batch"]


def run_batch(items: Sequence[Item], process: Callable[[Path, Path], None],
              outputs: Callable[[Path, Path], list[Path]], *, skip_existing: bool = False,
              desc: str = "", quiet: bool = False, stream: TextIO | None = None,
              ignored: Sequence[tuple[Path, str]] = ()) -> BatchReport:
    """Run ``process`` on every item; one ``error: <path>: <reason>`` line per failure, go on.

    ``ignored`` (from ``scan_inputs``) is listed first, one ``ignored: <path>: <reason>`` line
    each, and counted; the notes a file's reading or writing made are one ``note:`` line.

    Expected failures (ImageError, OSError, ValueError) print their message; anything else
    prints its type too, plus the traceback when the environment has RESTORE_DEBUG=1.
    KeyboardInterrupt propagates after a note on how to resume; finished outputs stay valid
    because writes are atomic. Two inputs that would write the same output: the second fails.
    ``quiet`` hides the progress bar and the summary (errors are always printed).
    """
    stream = sys.stderr if stream is None else stream
    debug = debugging()
    report = start_report(ignored, quiet, stream)
    claimed: dict[Path, Path] = {}
    bar = progress_bar(items, desc, quiet, stream)

    def fail(file: Path, reason: str) -> None:
        report.failed.append((file, reason))
        bar.write(printable(f"error: {file}: {reason}"), file=stream)

    for file, rel in bar:
        try:
            outs = claim_outputs(file, rel, outputs, claimed)
        except ValueError as e:
            fail(file, str(e))
            continue
        if skip_existing and outs and all(o.exists() for o in outs):
            report.skipped += 1
            continue
        before = [stamp(o) for o in outs]
        try:
            with collect_notes() as notes:
                process(file, rel)
        except KeyboardInterrupt:
            remove_new(outs, before)
            interrupted(report, bar, desc, quiet, stream, at=file)
            raise
        except Exception as e:
            remove_new(outs, before)
            fail(file, describe_error(e))
            if debug:
                traceback.print_exc(file=stream)
            continue
        missing = [o for o in outs if not o.exists()]
        if missing:  # a bug in the command rather than a bad file, but never count it as done
            remove_new(outs, before)
            fail(file, "produced no " + ", ".join(map(str, missing)))
            continue
        report.done += 1
        record_notes(report, file, notes, bar, quiet, stream)
    return finish_report(report, bar, desc, quiet, stream)
