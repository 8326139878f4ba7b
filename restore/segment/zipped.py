"""A stranger's zipped store, checked before zarr opens it: ``check_zipped_store``.

    check_zipped_store("upload.ome.zarr.zip", max_bytes=2 << 30)   # VolumeError (one line) or None

Only the zip's central directory is read (names and declared sizes), nothing is decompressed.
Python's zipfile never hands out more than a member's declared size (and checks its CRC), so the
declared total bounds what reading the store can decompress, however well a member compresses:
a zip bomb is refused from its directory. A store's members are its chunks as zarr encoded them
and its metadata: their total is about the voxels' bytes or less, so the caller's cap on the
decoded volume (with room for pyramid levels) is the cap here too.
"""
from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

from .volume import VolumeError

__all__ = ["MAX_MEMBERS", "check_zipped_store"]

# A store's files: its metadata and one per chunk (or shard). 200,000 chunks of 64^3 voxels are
# 52 G voxels, far past any cap here; a directory of millions of tiny members would cost memory
# and time to list, and every absent-chunk check walks it.
MAX_MEMBERS = 200_000
_DRIVE = re.compile(r"^[A-Za-z]:")


def _unsafe(name: str) -> bool:
    """An absolute name (POSIX or Windows), one with a drive, or one that climbs out (``..``)."""
    parts = re.split(r"[/\\]", name)
    return name.startswith(("/", "\\")) or bool(_DRIVE.match(name)) or ".." in parts


def _declared_members(path: Path) -> int | None:
    """The member count the zip's end record declares (zipfile's own parser of that record;
    None where it cannot be read: ``ZipFile`` then says why)."""
    end_record = getattr(zipfile, "_EndRecData", None)
    if end_record is None:
        return None
    try:
        with open(path, "rb") as f:
            end = end_record(f)
        return None if end is None else int(end[zipfile._ECD_ENTRIES_TOTAL])
    except Exception:  # noqa: BLE001 - not a zip: ZipFile's message
        return None


def _too_many(path: Path, members: int | None) -> None:
    if members is not None and members > MAX_MEMBERS:
        raise VolumeError(f"{path}: {members} files in the zip, more than the {MAX_MEMBERS} a store may hold here")


def check_zipped_store(path: str | os.PathLike, max_bytes: int | None) -> None:
    """Refuse, in one line naming ``path``, a zip that is no zip, that holds more than
    ``MAX_MEMBERS`` members, a member whose name is absolute or holds ``..``, or members whose
    declared uncompressed sizes add up to more than ``max_bytes`` (None: no size cap)."""
    path = Path(path)
    _too_many(path, _declared_members(path))  # before the directory is parsed: a ZipInfo per member costs memory
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
        raise VolumeError(f"{path}: not a zipped Zarr store ({type(e).__name__}: {e})") from None
    _too_many(path, len(infos))  # the end record's count may lie; the directory itself is bounded by the file's size
    bad = next((i.filename for i in infos if _unsafe(i.filename)), None)
    if bad is not None:
        raise VolumeError(f"{path}: a member named {bad[:80]!r} (absolute, or climbing out with '..'): not a store's file")
    total = sum(i.file_size for i in infos)
    if max_bytes is not None and total > max_bytes:
        raise VolumeError(f"{path}: its files unzip to {_size(total)}, more than the {_size(max_bytes)} allowed here")


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"
