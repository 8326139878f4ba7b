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

from restore.formats import is_image_file, is_store, is_video_file, not_regular

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
    stores: list[Item] = field(default_factory=list)  # OME-Zarr/NIfTI volumes, when taken (``stores=True``)


def scan_inputs(paths: Sequence[str | os.PathLike], *, exclude: Iterable[str | os.PathLike] = (),
                allow_empty: bool = False, videos: bool = False, stores: bool = False) -> Inputs:
    """Images to process (sorted, each once) and everything else found, with the reason.

    A regular file named explicitly is used whatever it holds (it may then fail as a bad file);
    anything else named (a FIFO, a socket, a device) is refused unopened: reading it could wait
    for ever or never end. In folders (searched recursively, symlinks followed), a file is an
    input when its content is an image or its extension an image format's; hidden files and
    folders (``.*``, our own ``.*.tmp`` included), other files, folders that cannot be read and
    a folder reached again (a symlink loop) are ignored, one entry each with its reason (a hidden
    folder is one entry, not searched). A file reached twice under two names (a symlink or hard
    link alias) is done once, under the name that is not a link, the other ignored; anything
    under ``exclude`` (the output folder) is ignored too, saying so. ``videos``: films (by
    extension, ``restore.formats.VIDEO_EXTENSIONS``) go to ``videos`` instead of being ignored;
    ``stores``: volumes read chunk by chunk (``restore.formats.is_store``: a ``.zarr`` folder is one
    input, not searched) go to ``stores``.
    Raises UsageError for a path that does not exist, or when no image (nor video) is found
    (unless ``allow_empty``), naming what was ignored and why.
    """
    if not paths:
        raise UsageError("no input files or folders given")
    outs = [(Path(p), Path(p).resolve()) for p in exclude]
    found = Inputs()
    named: list[tuple[Path, str]] = []  # the command line's own paths that were refused
    candidates: list[Item] = []

    def in_output(path: Path, resolved: Path | None = None) -> str | None:
        real = path.resolve() if resolved is None else resolved
        for shown, folder in outs:
            if real.is_relative_to(folder):
                return f"inside the output folder {shown}: outputs are not read as inputs"
        return None

    for arg in map(Path, paths):
        try:
            mode = arg.stat().st_mode
        except FileNotFoundError:
            raise UsageError(f"{arg}: no such file or folder") from None
        except OSError as e:  # a folder above it that cannot be searched, a link loop, ...
            named.append((arg, f"cannot be read: {e.strerror or e}"))
            continue
        why = in_output(arg) if outs else None
        if why is None and not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            why = not_regular(mode)
        if why is not None:
            named.append((arg, why))
        elif stat.S_ISDIR(mode) and stores and is_store(arg):
            candidates.append((arg, Path(".")))
        elif stat.S_ISDIR(mode):
            walked = _walk(arg, stores, (lambda folder: in_output(folder, Path(os.path.realpath(folder)))) if outs
                           else (lambda folder: None))
            for path, reason in sorted(walked, key=lambda e: e[0].relative_to(arg).parts):
                if reason is None or (videos and reason == "not an image" and is_video_file(path)) or (
                        stores and reason in ("not an image", "a store") and is_store(path)):
                    why = in_output(path) if outs and os.path.islink(path) else None  # a link into OUT
                    if why is None:
                        candidates.append((path, path.relative_to(arg).parent))
                    else:
                        found.ignored.append((path, why))
                else:
                    found.ignored.append((path, reason))
        else:
            candidates.append((arg, Path(".")))
    found.ignored[:0] = named
    for (file, rel), first in _once(candidates):
        if first is None:
            kind = found.videos if videos and is_video_file(file) else found.items
            (found.stores if stores and is_store(file) else kind).append((file, rel))
        elif first != file:  # the same path reached twice (a file and its folder) is no alias
            found.ignored.append((file, f"same file as {first}: done once"))
    if not found.items and not found.videos and not found.stores and not allow_empty:
        raise UsageError(_nothing_found(paths, named or found.ignored, len(found.ignored)))
    return found


def _once(candidates: list[Item]) -> list[tuple[Item, Path | None]]:
    """Each candidate with None when it is to be done, or the path that is done instead (the same
    file: its device and inode). Of a file's names, the first that is not a symlink is done."""
    keys: list[tuple[int, int] | Path] = []
    chosen: dict[tuple[int, int] | Path, Path] = {}
    for file, _ in candidates:
        try:
            st = file.stat()
            key: tuple[int, int] | Path = (st.st_dev, st.st_ino)
        except OSError:  # gone since it was found: its reader will say so
            key = file
        keys.append(key)
        if key not in chosen or (os.path.islink(chosen[key]) and not os.path.islink(file)):
            chosen[key] = file
    done: set[tuple[int, int] | Path] = set()
    result: list[tuple[Item, Path | None]] = []
    for item, key in zip(candidates, keys):
        if item[0] == chosen[key] and key not in done:
            done.add(key)
            result.append((item, None))
        else:
            result.append((item, chosen[key]))
    return result


def _nothing_found(paths: Sequence[str | os.PathLike], ignored: list[tuple[Path, str]], count: int) -> str:
    """The UsageError of a search that found nothing to do: what was ignored, and why."""
    text = "no image files found in: " + ", ".join(map(str, paths))
    if not ignored:
        return text
    path, why = ignored[0]
    if count == 1:
        return f"{text} ({path}: {why})"
    return f"{text} ({count} file(s) ignored, e.g. {path}: {why})"


def _walk(root: Path, stores: bool, excluded: Callable[[Path], str | None]) -> Iterator[tuple[Path, str | None]]:
    """(path, None) for each image file under ``root``; (path, reason) for what is not one, and
    for the folders not searched: ``excluded`` ones (the output folder: its reason), those that
    cannot be read and those reached again through a symlink. ``stores``: a Zarr folder is
    (path, "a store"), not searched."""
    searched: dict[str, Path] = {}  # real path -> the name it was searched under
    unreadable: list[tuple[Path, str]] = []

    def cannot_read(e: OSError) -> None:
        unreadable.append((Path(e.filename), f"folder not readable: {e.strerror or e}"))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=cannot_read):
        yield from unreadable
        unreadable.clear()
        here = Path(dirpath)
        real = os.path.realpath(dirpath)
        if real in searched:  # a symlink loop, or a second name of a folder
            dirnames[:] = []
            yield here, f"same folder as {searched[real]}: searched once"
            continue
        searched[real] = here
        for name in [n for n in dirnames if n.startswith(".")]:
            yield here / name, "hidden folder (not searched)"
        # real folders before links to folders, so a folder is searched under its own name
        dirnames[:] = sorted((n for n in dirnames if not n.startswith(".")),
                             key=lambda n: (os.path.islink(os.path.join(dirpath, n)), n))
        for name in list(dirnames):
            why = excluded(here / name)
            if why is None and stores and is_store(name):
                why = "a store"
            if why is not None:
                dirnames.remove(name)
                yield here / name, why
        for name in filenames:
            path = here / name
            if name.startswith("."):
                yield path, "hidden file"
                continue
            try:
                mode = path.stat().st_mode
            except OSError as e:
                yield path, "broken link" if os.path.islink(path) else f"cannot be read: {e.strerror or e}"
                continue
            if not stat.S_ISREG(mode):
                yield path, not_regular(mode)
            elif is_image_file(path):
                yield path, None
            else:
                yield path, "not an image"
    yield from unreadable


def find_inputs(paths: Sequence[str | os.PathLike], *, exclude: Iterable[str | os.PathLike] = (),
                allow_empty: bool = False) -> list[Item]:
    """The image files of ``scan_inputs`` alone (for readers of training folders)."""
    return scan_inputs(paths, exclude=exclude, allow_empty=allow_empty).items
