"""The batch runner every CLI command uses: find inputs, process each, report, never half-write.

    found = scan_inputs(args.paths, exclude=[out])             # UsageError -> exit 2
    report = run_batch(found.items, process, outputs, skip_existing=args.skip_existing,
                       desc="segment", ignored=found.ignored)
    return report.exit_code                                     # 0 all good, 1 some failed

Every file under an input folder ends in exactly one of four counts of the summary line: done,
skipped (its outputs exist, ``--skip-existing``), failed (one ``error:`` line with the reason)
or ignored (not an image: one ``ignored:`` line each). Images are told by content
(``restore.formats``), so a ``.HEIC``, a ``.gif`` or a JPEG without an extension is read, and a
``notes.txt`` or ``.DS_Store`` is named, never silently dropped. What a reader had to do to a
file (only the first frame of an animation, say) is one ``note:`` line for that file.

``process(file, rel)`` does one input and writes its outputs under ``OUT / rel`` (with
``atomic_write`` / ``write_png``); ``outputs(file, rel)`` names those outputs, which is how
``skip_existing`` knows a file is finished and how a failed file's partial outputs are removed.
Inputs found inside a folder argument keep their sub-folder under OUT (``rel``), so
``a/x.png`` and ``b/x.png`` do not collide; files named on the command line have ``rel == "."``.
"""
from __future__ import annotations

import argparse
import os
import stat
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from restore.formats import is_image_file, is_video_file
from restore.imageio import ImageError
from restore.imagewrite import OUTPUT_FORMATS
from restore.notes import collect_notes

__all__ = ["BatchReport", "Inputs", "UsageError", "add_output_args", "describe_error", "find_inputs",
           "output_ext", "output_path", "run_batch", "scan_inputs"]

Item = tuple[Path, Path]  # (input file, output sub-folder relative to OUT)


class UsageError(Exception):
    """The command line itself is wrong (missing path, nothing to do): exit status 2."""


@dataclass
class Inputs:
    """What a search of the command line's paths found."""
    items: list[Item] = field(default_factory=list)  # (image file, output sub-folder) to process
    ignored: list[tuple[Path, str]] = field(default_factory=list)  # (path, why it is not an input)
    videos: list[Item] = field(default_factory=list)  # films, when the command takes them (``videos=True``)


def scan_inputs(paths: Sequence[str | os.PathLike], *, exclude: Iterable[str | os.PathLike] = (),
                allow_empty: bool = False, videos: bool = False) -> Inputs:
    """Images to process (sorted, each once) and everything else found, with the reason.

    A file named explicitly is used whatever it holds (it may then fail as a bad file). In
    folders (searched recursively, symlinks followed, loops cut), a file is an input when its
    content is an image or its extension an image format's; hidden files and folders (``.*``,
    our own ``.*.tmp`` included) and other files are ignored, one entry each (a hidden folder is
    one entry, not searched). Anything under ``exclude`` (the output folder) is neither.
    ``videos``: films (by extension, ``restore.formats.VIDEO_EXTENSIONS``) go to ``videos``
    instead of being ignored. Raises UsageError for a path that does not exist, or when no
    image (nor video) is found (unless ``allow_empty``).
    """
    if not paths:
        raise UsageError("no input files or folders given")
    skip_dirs = [Path(p).resolve() for p in exclude]
    seen: set[Path] = set()
    found = Inputs()

    def inside_excluded(resolved: Path) -> bool:
        return any(resolved.is_relative_to(d) for d in skip_dirs)

    def add(file: Path, rel: Path) -> None:
        key = file.resolve()
        if key not in seen and not inside_excluded(key):
            seen.add(key)
            (found.videos if videos and is_video_file(file) else found.items).append((file, rel))

    for arg in map(Path, paths):
        if arg.is_dir():
            walked = _walk(arg, lambda folder: inside_excluded(folder.resolve()))
            entries = sorted(walked, key=lambda e: e[0].relative_to(arg).parts)
            for path, reason in entries:
                if reason is None or (videos and reason == "not an image" and is_video_file(path)):
                    add(path, path.relative_to(arg).parent)
                else:
                    found.ignored.append((path, reason))
        elif arg.exists():
            add(arg, Path("."))
        else:
            raise UsageError(f"{arg}: no such file or folder")
    if not found.items and not found.videos and not allow_empty:
        others = (f" ({len(found.ignored)} other file(s) ignored, e.g. {found.ignored[0][0].name}: "
                  f"{found.ignored[0][1]})") if found.ignored else ""
        raise UsageError("no image files found in: " + ", ".join(map(str, paths)) + others)
    return found


def _walk(root: Path, excluded: Callable[[Path], bool]) -> Iterator[tuple[Path, str | None]]:
    """(path, None) for each image file under ``root``; (path, reason) for what is not one.
    ``excluded`` folders (the output folder) are not entered."""
    visited: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(dirpath)
        real = os.path.realpath(dirpath)
        if real in visited or excluded(here):  # a symlink loop, or the output folder
            dirnames[:] = []
            continue
        visited.add(real)
        for name in [n for n in dirnames if n.startswith(".")]:
            yield here / name, "hidden folder (not searched)"
        dirnames[:] = [n for n in dirnames if not n.startswith(".")]
        for name in filenames:
            path = here / name
            if name.startswith("."):
                yield path, "hidden file"
                continue
            try:
                regular = stat.S_ISREG(path.stat().st_mode)
            except OSError:
                yield path, "broken link or unreadable entry"
                continue
            if not regular:
                yield path, "not a regular file"
            elif is_image_file(path):
                yield path, None
            else:
                yield path, "not an image"


def find_inputs(paths: Sequence[str | os.PathLike], *, exclude: Iterable[str | os.PathLike] = (),
                allow_empty: bool = False) -> list[Item]:
    """The image files of ``scan_inputs`` alone (for readers of training folders)."""
    return scan_inputs(paths, exclude=exclude, allow_empty=allow_empty).items


def add_output_args(parser: argparse.ArgumentParser, what: str = "images") -> None:
    """``--format png|jpg|webp`` and ``--quality`` for a command's photo-like outputs."""
    parser.add_argument("--format", default="png", choices=sorted(OUTPUT_FORMATS),
                        help=f"file format of the output {what} (default png, lossless; jpg and webp are "
                             "8-bit and several times smaller; JPEG flattens transparency onto white)")
    parser.add_argument("--quality", type=_quality, default=95,
                        help="JPEG/WebP quality 1-100 (default 95; webp 100 is lossless)")


def add_precision_arg(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    """``--precision`` with the measured default of the command (benchmarks/bench_precision.py)."""
    from gan.precision import PRECISIONS

    why = {"auto": "auto (default): bf16 on GPUs that have it (fp16 on older ones) and on CPUs where it measured "
                   "faster (AMX, or AMD's AVX512-BF16), fp32 on other CPUs; its error against fp32 measured >= 45 dB",
           "fp32": "fp32 (default: in bf16 up to 2%% of the foreground pixels flipped)"}[default]
    others = ", ".join(p for p in PRECISIONS if p != default)
    parser.add_argument("--precision", default=default, choices=PRECISIONS,
                        help=f"{why} (benchmarks/bench_precision.py); or one of {others}")


def add_tta_arg(parser: argparse.ArgumentParser, what: str) -> None:
    """``--tta N``: average the network over N flips/rotations of each input (restore/ensemble.py)."""
    from .ensemble import ORIENTATIONS

    parser.add_argument("--tta", type=int, default=1, choices=ORIENTATIONS, metavar="N",
                        help=f"test-time augmentation: {what} over N of the 8 flips and quarter turns of each "
                             "image (1 off (default), 2, 4, 8); N times the network time")


BACKENDS = ("torch", "onnxruntime")


def add_backend_arg(parser: argparse.ArgumentParser) -> None:
    """``--backend``: where the networks run (``restore.export.backend``)."""
    parser.add_argument("--backend", default="torch", choices=BACKENDS,
                        help="torch (default), or onnxruntime: the networks run from their ONNX export, made once "
                             "into the weights cache and checked against PyTorch (or --weights FILE.onnx); "
                             'detection, tiling and paste-back stay the same (pip install "unet-restore[onnx]")')


def add_video_args(parser: argparse.ArgumentParser) -> None:
    """``--crf`` and ``--codec``: how the commands that take films encode theirs (``restore.video``)."""
    parser.add_argument("--crf", type=int, default=18, help="videos: H.264 quality, 0 (lossless) to 51 (default 18)")
    parser.add_argument("--codec", default="libx264",
                        help="videos: the encoder (default libx264, H.264 yuv420p in .mp4; others PyAV has go in .mkv)")


def output_ext(args: argparse.Namespace) -> str:
    """The extension of the photo-like outputs chosen by ``--format`` (".png" without it)."""
    return OUTPUT_FORMATS[getattr(args, "format", None) or "png"]


def _quality(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError("quality must be in 1..100")
    return value


def output_path(out_dir: str | os.PathLike, rel: str | os.PathLike, file: str | os.PathLike,
                suffix: str = "", ext: str = ".png") -> Path:
    """``OUT/rel/<stem><suffix><ext>``, e.g. output_path(out, rel, f, "_mask")."""
    return Path(out_dir) / rel / f"{Path(file).stem}{suffix}{ext}"


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


def claim_outputs(file: Path, rel: Path, outputs: Callable[[Path, Path], list[Path]],
                  claimed: dict[Path, Path]) -> list[Path]:
    """The outputs of one input, claimed for it; ValueError (its reason) when naming them fails
    or another input already claimed one of them."""
    try:
        outs = [Path(p) for p in outputs(file, rel)]
    except Exception as e:
        raise ValueError(describe_error(e)) from e
    clash = next((claimed[o] for o in outs if o in claimed), None)
    if clash is not None:
        raise ValueError(f"would overwrite the output of {clash} (same name); rename one of them")
    claimed.update((o, file) for o in outs)
    return outs


Planned = tuple[Path, Path, list[Path], list[int | None]]  # (file, rel, its outputs, their mtimes before)


def plan_outputs(items: Sequence[Item], outputs: Callable[[Path, Path], list[Path]], skip_existing: bool,
                 report: BatchReport, fail: Callable[[Path, str, BaseException], None],
                 advance: Callable[[], object] = lambda: None) -> list[Planned]:
    """The items to do, with their outputs claimed and stamped: names, clashes (``fail``) and
    ``--skip-existing`` (counted in ``report``) settled before any work, as ``run_batch`` does."""
    todo: list[Planned] = []
    claimed: dict[Path, Path] = {}
    for file, rel in items:
        try:
            outs = claim_outputs(file, rel, outputs, claimed)
        except ValueError as e:
            fail(file, str(e), e)
            continue
        if skip_existing and outs and all(o.exists() for o in outs):
            report.skipped += 1
            advance()
            continue
        todo.append((file, rel, outs, [stamp(o) for o in outs]))
    return todo


def start_report(ignored: Sequence[tuple[Path, str]], quiet: bool, stream: TextIO) -> BatchReport:
    """The report of a run whose search found ``ignored``; they are listed now, one line each."""
    report = BatchReport(ignored=list(ignored))
    if not quiet:
        for path, reason in report.ignored:
            print(f"ignored: {path}: {reason}", file=stream)
    return report


def record_notes(report: BatchReport, file: Path, notes: list[str], bar, quiet: bool, stream: TextIO) -> None:
    """A done file's notes: kept in the report, and one ``note:`` line."""
    if notes:
        report.notes[file] = notes
        if not quiet:
            bar.write(f"note: {file}: {'; '.join(notes)}", file=stream)


def stamp(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def remove_new(outs: list[Path], before: list[int | None]) -> None:
    """Delete the outputs a failed call created or replaced, so no half-new set remains."""
    for p, t in zip(outs, before):
        now = stamp(p)
        if now is not None and now != t:
            try:
                p.unlink()
            except OSError:
                pass


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
    debug = os.environ.get("RESTORE_DEBUG", "") not in ("", "0")
    report = start_report(ignored, quiet, stream)
    claimed: dict[Path, Path] = {}
    bar = tqdm(items, desc=desc or None, unit="file", file=stream, leave=False,
               disable=quiet or not isatty(stream))

    def fail(file: Path, reason: str) -> None:
        report.failed.append((file, reason))
        bar.write(f"error: {file}: {reason}", file=stream)

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
            bar.close()
            if not quiet:
                print(f"interrupted at {file}; {report.summary(desc)}. Run again with "
                      "--skip-existing to resume.", file=stream)
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
    bar.close()
    if not quiet:
        print(report.summary(desc), file=stream)
    return report


def isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
