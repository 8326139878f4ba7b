"""Writing images atomically: PNG (8/16-bit, grey, RGB, RGBA), TIFF stacks, and JPEG / WebP
for the photo outputs of the batch commands (``--format``, ``--quality``).

Every write goes to a temporary name in the same folder, is fsynced, then renamed: a crash or
Ctrl-C never leaves a half-written file under the real name.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from .colour import to_uint8
from .notes import note

__all__ = ["OUTPUT_FORMATS", "TEMPORARY", "atomic_write", "write_image", "write_png", "write_tiff"]

# --format name -> file extension of the photo-like outputs (masks and volumes stay PNG/TIFF)
OUTPUT_FORMATS = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}
TEMPORARY = re.compile(r"^\..+\.\d+-[0-9a-f]{8}\.tmp$")  # atomic_write's temporary names
_PNG_SIG = b"\x89PNG\r\n\x1a\n"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it onto ``path``.

    On any failure (Ctrl-C included) the temporary file is deleted and ``path`` is untouched.
    The temporary name is ``.<name>.<pid>-<8 hex>.tmp`` (hidden, so folder searches skip it, and
    ``TEMPORARY``), its ``<name>`` shortened where the whole would pass the file system's limit on
    a name, so it fits wherever ``path`` does; it has no image extension, so writers must be told
    the format explicitly.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the data is on disk before the name points at it
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # persist the rename too (POSIX; not possible on Windows)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _temporary(path: Path) -> Path:
    """``atomic_write``'s temporary name for ``path``, no longer than the folder allows a name."""
    tail = f".{os.getpid()}-{secrets.token_hex(4)}.tmp"
    name = path.name
    try:
        limit = os.pathconf(path.parent, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # not known (or not POSIX): the usual 255 bytes
        limit = 255
    limit = limit if limit and limit > 0 else 255
    # ~20 bytes longer than the output's own name: a name near the limit (a 240-character photo)
    # would fail with "File name too long" though the output itself fits
    while len(name) > 1 and len(os.fsencode(f".{name}{tail}")) > limit:
        name = name[:-1]
    return path.with_name(f".{name}{tail}")


def _picture(array: np.ndarray, writer: str) -> np.ndarray:
    """``array`` as a grey, RGB or RGBA picture (bool -> 0/255, HxWx1 -> HxW); ValueError else."""
    arr = np.asarray(array)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4))) or 0 in arr.shape:
        raise ValueError(f"{writer} needs HxW, HxWx3 or HxWx4, got shape {arr.shape}")
    return arr


def write_png(path: str | os.PathLike, array: np.ndarray, *, compress_level: int = 6) -> None:
    """Write a uint8/uint16 (bool -> 0/255) grey, RGB or RGBA array as PNG, atomically."""
    arr = np.asarray(array)
    if arr.dtype not in (np.uint8, np.uint16, bool):
        raise ValueError(f"write_png needs uint8 or uint16, got {arr.dtype}")
    arr = np.ascontiguousarray(_picture(arr, "write_png"))
    with atomic_write(path) as tmp:
        if arr.dtype == np.uint16 and arr.ndim == 3:
            tmp.write_bytes(_encode_png16_colour(arr, compress_level))
        else:
            Image.fromarray(arr).save(tmp, format="PNG", compress_level=compress_level)


def write_tiff(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an array (a 2D grey image or a stack of them, e.g. 3D labels) as a zlib-compressed
    TIFF of grey pages, atomically. Grey said outright: tifffile would take a stack of 3 or 4
    slices for one RGB(A) page, and the mask of a 3-slice volume came back as (H, W, 3)."""
    arr = np.ascontiguousarray(array)
    with atomic_write(path) as tmp:
        tifffile.imwrite(tmp, arr, compression="zlib", photometric="minisblack")


def _encode_png16_colour(arr: np.ndarray, level: int) -> bytes:
    """Minimal PNG encoder for 16-bit RGB(A): Pillow has no 48/64-bit modes to save from."""
    h, w, c = arr.shape
    rows = np.frombuffer(arr.astype(">u2").tobytes(), np.uint8).reshape(h, w * c * 2)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1)  # filter byte 0 per row

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2 if c == 3 else 6, 0, 0, 0)
    return (_PNG_SIG + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw.tobytes(), level))
            + chunk(b"IEND", b""))


def write_image(path: str | os.PathLike, array: np.ndarray, *, quality: int = 95,
                compress_level: int = 6) -> None:
    """Write by the extension of ``path``: ``.png`` losslessly (``write_png``), ``.jpg`` or
    ``.webp`` at ``quality`` (1-100; WebP 100 is lossless), atomically.

    JPEG and WebP hold 8 bits per channel: 16-bit or float images are scaled to uint8, and JPEG,
    having no transparency, gets alpha flattened onto white; each such change is a ``note``.
    """
    ext = Path(path).suffix.lower()
    if ext == ".png":
        write_png(path, array, compress_level=compress_level)
        return
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}.get(ext)
    if fmt is None:
        raise ValueError(f"write_image: no writer for {ext!r} (png, jpg, webp)")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, not {quality}")
    arr = _picture(array, "write_image")
    name = "JPEG" if fmt == "JPEG" else "WebP"
    if arr.dtype != np.uint8:
        note(f"written as 8-bit ({name} holds 8 bits per channel)")
        arr = to_uint8(arr)
    if fmt == "JPEG" and arr.ndim == 3 and arr.shape[-1] == 4:
        alpha = arr[..., 3:].astype(np.float32) / 255
        arr = np.rint(arr[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
        note("alpha flattened onto white (JPEG has no transparency)")
    im = Image.fromarray(np.ascontiguousarray(arr))
    with atomic_write(path) as tmp:
        if fmt == "JPEG":  # 4:4:4 chroma at high quality: restored detail is what the user wants
            im.save(tmp, format="JPEG", quality=quality, subsampling=0 if quality >= 90 else 2, optimize=True)
        else:
            im.save(tmp, format="WEBP", quality=quality, lossless=quality == 100, method=4)
