"""What a command's paths hold: the images (and films) to process, and the rest named with why.

    found = scan_inputs(args.paths, exclude=[args.out])    # UsageError -> exit 2
    found.items, found.videos, found.ignored

Images are told by content (``restore.formats``), so a ``.HEIC``, a ``.gif`` or a JPEG without
an extension is read, and a ``notes.txt`` or ``.DS_Store`` is named, never silently dropped.
Inputs found inside a folder argument keep their sub-folder under OUT (``rel``), so ``a/x.png``
and ``b/x.png`` do not collide; files named on the command line have ``rel == "."``.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from restore.formats import is_image_file, is_video_file

__all__ = ["Inputs", "Item", "UsageError", "find_inputs", "scan_inputs"]

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
