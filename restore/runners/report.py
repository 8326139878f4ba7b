"""What a run tells its user: one ``ignored:``, ``error:`` or ``note:`` line per file, a progress
bar on a terminal, and the summary line, whose four counts (done, skipped, failed, ignored) hold
every file found; ``BatchReport`` keeps the same, and its ``exit_code`` is the command's.

Every line goes through ``printable``: a file name is a stranger's text, and a newline, a
carriage return or an escape sequence in it must not print a line of its own (a forged summary)
or move the cursor; they are shown escaped (``x.png\\nDone``), everything else as it is."""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from restore.imageio import ImageError

__all__ = ["BatchReport", "debugging", "describe_error", "finish_report", "interrupted", "isatty", "printable",
           "progress_bar", "record_notes", "start_report"]

# C0 and C1 controls (\n, \r, \t, ESC, DEL, NEL, ...), the Unicode line and paragraph separators,
# the bidi embeddings, overrides and isolates that reorder what follows, and lone surrogates
# (the undecodable bytes of a file name)
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: object) -> str:
    """``text`` as one line that shows what it holds: control characters escaped as Python writes
    them (``\\n``, ``\\x1b``, ``\\u202e``), an undecodable byte of a file name as ``\\xff``; plain
    names, spaces and letters of any script unchanged."""
    return _UNSAFE.sub(_escape, str(text))


def _escape(match: re.Match) -> str:
    c = match.group()
    code = ord(c)
    if c in _SHORT:
        return _SHORT[c]
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


@dataclass
class BatchReport:
    done: int = 0
    skipped: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    ignored: list[tuple[Path, str]] = field(default_factory=list)  # found, but not images
    notes: dict[Path, list[str]] = field(default_factory=dict)  # done files: what was done to them

    @property
    def exit_code(self) -> int:
        """0 when every file succeeded (skipped counts as success), 1 when some failed."""
        return 1 if self.failed else 0

    def summary(self, desc: str = "") -> str:
        head = f"{desc}: " if desc else ""
        return (f"{head}done {self.done}, skipped {self.skipped}, failed {len(self.failed)}, "
                f"ignored {len(self.ignored)}")


def describe_error(exc: BaseException) -> str:
    """One line saying what went wrong, for a user: no traceback, no newlines."""
    if isinstance(exc, ImageError):
        msg = str(exc)
    elif isinstance(exc, MemoryError):
        msg = "out of memory"
    elif isinstance(exc, OSError) and exc.strerror:
        msg = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    elif isinstance(exc, (OSError, ValueError)):
        msg = str(exc) or type(exc).__name__
    else:  # unexpected: the type helps a bug report
        msg = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    msg = " ".join(msg.split())
    return msg if len(msg) <= 500 else msg[:497] + "..."


def debugging() -> bool:
    """RESTORE_DEBUG=1: tracebacks after the ``error:`` lines of unexpected failures."""
    return os.environ.get("RESTORE_DEBUG", "") not in ("", "0")


def start_report(ignored: Sequence[tuple[Path, str]], quiet: bool, stream: TextIO) -> BatchReport:
    """The report of a run whose search found ``ignored``; they are listed now, one line each."""
    report = BatchReport(ignored=list(ignored))
    if not quiet:
        for path, reason in report.ignored:
            print(printable(f"ignored: {path}: {reason}"), file=stream)
    return report


def progress_bar(items: Sequence, desc: str, quiet: bool, stream: TextIO):
    """The run's bar over ``items`` (iterate it, or ``update()`` it): on a terminal only, gone at the end."""
    from tqdm import tqdm

    return tqdm(items, total=len(items), desc=desc or None, unit="file", file=stream, leave=False,
                disable=quiet or not isatty(stream))


def record_notes(report: BatchReport, file: Path, notes: list[str], bar, quiet: bool, stream: TextIO) -> None:
    """A done file's notes: kept in the report, and one ``note:`` line."""
    if notes:
        report.notes[file] = notes
        if not quiet:
            bar.write(printable(f"note: {file}: {'; '.join(notes)}"), file=stream)


def finish_report(report: BatchReport, bar, desc: str, quiet: bool, stream: TextIO) -> BatchReport:
    """The end of a run: the bar gone, the summary line."""
    bar.close()
    if not quiet:
        print(printable(report.summary(desc)), file=stream)
    return report


def interrupted(report: BatchReport, bar, desc: str, quiet: bool, stream: TextIO, at: Path | None = None) -> None:
    """Ctrl-C: the bar gone, what was done so far, and how to resume."""
    bar.close()
    if not quiet:
        where = "" if at is None else f" at {at}"
        print(printable(f"interrupted{where}; {report.summary(desc)}. Run again with --skip-existing to resume."),
              file=stream)


def isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
