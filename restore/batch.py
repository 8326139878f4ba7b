"""The batch runner every CLI command uses: find inputs, process each, report, never half-write.

    items = find_inputs(args.paths, exclude=[out])             # UsageError -> exit 2
    report = run_batch(items, process, outputs, skip_existing=args.skip_existing, desc="segment")
    return report.exit_code                                     # 0 all good, 1 some failed

``process(file, rel)`` does one input and writes its outputs under ``OUT / rel`` (with
``atomic_write`` / ``write_png``); ``outputs(file, rel)`` names those outputs, which is how
``skip_existing`` knows a file is finished and how a failed file's partial outputs are removed.
Inputs found inside a folder argument keep their sub-folder under OUT (``rel``), so
``a/x.png`` and ``b/x.png`` do not collide; files named on the command line have ``rel == "."``.
"""
from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from restore.imageio import IMAGE_EXTS, ImageError

__all__ = ["BatchReport", "UsageError", "describe_error", "find_inputs", "output_path", "run_batch"]

Item = tuple[Path, Path]  # (input file, output sub-folder relative to OUT)


class UsageError(Exception):
    """The command line itself is wrong (missing path, nothing to do): exit status 2."""


def find_inputs(paths: Sequence[str | os.PathLike], exts: Iterable[str] = IMAGE_EXTS, *,
                exclude: Iterable[str | os.PathLike] = (), allow_empty: bool = False) -> list[Item]:
    """List (file, relative output folder) for files and folders (searched recursively, sorted).

    A file named explicitly is used whatever its extension (it may then fail as a bad file).
    In folders, only ``exts`` count, and hidden files/folders (our own ``.*.tmp`` included) and
    anything under ``exclude`` (e.g. the output folder) are skipped. The same file reached
    twice is listed once. Raises UsageError for a path that does not exist, or when nothing
    is found (unless ``allow_empty``).
    """
    if not paths:
        raise UsageError("no input files or folders given")
    exts = {e.lower() for e in exts}
    skip_dirs = [Path(p).resolve() for p in exclude]
    seen: set[Path] = set()
    items: list[Item] = []

    def add(file: Path, rel: Path) -> None:
        key = file.resolve()
        if key not in seen and not any(key.is_relative_to(d) for d in skip_dirs):
            seen.add(key)
            items.append((file, rel))

    for arg in map(Path, paths):
        if arg.is_dir():
            found = []
            for f in arg.rglob("*"):
                rel = f.relative_to(arg)
                if (f.suffix.lower() in exts and not any(p.startswith(".") for p in rel.parts)
                        and f.is_file()):
                    found.append(rel)
            for rel in sorted(found, key=lambda r: r.parts):
                add(arg / rel, rel.parent)
        elif arg.exists():
            add(arg, Path("."))
        else:
            raise UsageError(f"{arg}: no such file or folder")
    if not items and not allow_empty:
        raise UsageError("no image files found in: " + ", ".join(map(str, paths)))
    return items


def output_path(out_dir: str | os.PathLike, rel: str | os.PathLike, file: str | os.PathLike,
                suffix: str = "", ext: str = ".png") -> Path:
    """``OUT/rel/<stem><suffix><ext>``, e.g. output_path(out, rel, f, "_mask")."""
    return Path(out_dir) / rel / f"{Path(file).stem}{suffix}{ext}"


@dataclass
class BatchReport:
    done: int = 0
    skipped: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every file succeeded (skipped counts as success), 1 when some failed."""
        return 1 if self.failed else 0

    def summary(self, desc: str = "") -> str:
        head = f"{desc}: " if desc else ""
        return f"{head}done {self.done}, skipped {self.skipped}, failed {len(self.failed)}"


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


def _stamp(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _remove_new(outs: list[Path], before: list[int | None]) -> None:
    """Delete the outputs a failed call created or replaced, so no half-new set remains."""
    for p, t in zip(outs, before):
        now = _stamp(p)
        if now is not None and now != t:
            try:
                p.unlink()
            except OSError:
                pass


def run_batch(items: Sequence[Item], process: Callable[[Path, Path], None],
              outputs: Callable[[Path, Path], list[Path]], *, skip_existing: bool = False,
              desc: str = "", quiet: bool = False, stream: TextIO | None = None) -> BatchReport:
    """Run ``process`` on every item; one ``error: <path>: <reason>`` line per failure, go on.

    Expected failures (ImageError, OSError, ValueError) print their message; anything else
    prints its type too, plus the traceback when the environment has RESTORE_DEBUG=1.
    KeyboardInterrupt propagates after a note on how to resume; finished outputs stay valid
    because writes are atomic. Two inputs that would write the same output: the second fails.
    ``quiet`` hides the progress bar and the summary (errors are always printed).
    """
    stream = sys.stderr if stream is None else stream
    debug = os.environ.get("RESTORE_DEBUG", "") not in ("", "0")
    report = BatchReport()
    claimed: dict[Path, Path] = {}
    bar = tqdm(items, desc=desc or None, unit="file", file=stream, leave=False,
               disable=quiet or not _isatty(stream))

    def fail(file: Path, reason: str) -> None:
        report.failed.append((file, reason))
        bar.write(f"error: {file}: {reason}", file=stream)

    for file, rel in bar:
        try:
            outs = [Path(p) for p in outputs(file, rel)]
        except Exception as e:
            fail(file, describe_error(e))
            continue
        clash = next((claimed[o] for o in outs if o in claimed), None)
        if clash is not None:
            fail(file, f"would overwrite the output of {clash} (same name); rename one of them")
            continue
        claimed.update((o, file) for o in outs)
        if skip_existing and outs and all(o.exists() for o in outs):
            report.skipped += 1
            continue
        before = [_stamp(o) for o in outs]
        try:
            process(file, rel)
        except KeyboardInterrupt:
            _remove_new(outs, before)
            bar.close()
            if not quiet:
                print(f"interrupted at {file}; {report.summary(desc)}. Run again with "
                      "--skip-existing to resume.", file=stream)
            raise
        except Exception as e:
            _remove_new(outs, before)
            fail(file, describe_error(e))
            if debug:
                traceback.print_exc(file=stream)
            continue
        missing = [o for o in outs if not o.exists()]
        if missing:  # a bug in the command rather than a bad file, but never count it as done
            _remove_new(outs, before)
            fail(file, "produced no " + ", ".join(map(str, missing)))
            continue
        report.done += 1
    bar.close()
    if not quiet:
        print(report.summary(desc), file=stream)
    return report


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
