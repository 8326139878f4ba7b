"""Telling a PNG whose pixel data stops early: Pillow decodes a complete zlib stream that holds
too few rows without a word (the missing rows come out black), so ``restore.imageio`` asks here.

    why = too_small(im, path, head)  # after Image.open: the file cannot hold what its header declares
    rows = PngRows(im, path, head)   # then, before im.load()
    im.load()
    why = rows.missing()             # after it: the reason when rows are missing, else None

The check costs almost nothing: the last row of the image memory is filled with random bytes
before decoding and compared after it (the rows are decoded in order, so it is overwritten only
when every row was there). Only when it survives (the real last row equals it: never by chance)
and for interlaced or animated PNGs, whose rows do not come in order, is the pixel data
inflated a second time to count its bytes.
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from PIL import Image

__all__ = ["PngRows", "png_data_size", "too_small"]

_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # IHDR colour type -> samples per pixel
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_MAX_RATIO = 1032  # deflate at its best: 258 bytes from 2 bits; no stream expands more
_TRUNCATED = "truncated file: image data ends early"


def png_data_size(head: bytes, width: int, height: int) -> int:
    """Bytes of filtered pixel data (a filter byte per row) a ``width`` x ``height`` PNG with the
    IHDR of ``head`` (its first 29 bytes or more) decodes from."""
    bits = head[24] * _CHANNELS.get(head[25], 4)
    passes = _ADAM7 if head[28] == 1 else ((0, 0, 1, 1),)
    total = 0
    for x0, y0, dx, dy in passes:
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if w > 0 and h > 0:
            total += h * (1 + -(-w * bits // 8))
    return total


def too_small(im: Image.Image, path: Path, head: bytes) -> str | None:
    """Why the PNG at ``path`` cannot hold the pixels its header declares, from its size alone
    (87 bytes declaring 7000x7000, say); None when it might."""
    size = os.path.getsize(path)
    if size * _MAX_RATIO >= png_data_size(head, *im.size):
        return None
    return f"{_TRUNCATED} ({size} bytes cannot hold a {im.width}x{im.height} image)"


class PngRows:
    """The rows check of one PNG opened by Pillow (see the module's docstring)."""

    def __init__(self, im: Image.Image, path: Path, head: bytes) -> None:
        self.im, self.path, self.sentinel = im, path, None
        self.needed = png_data_size(head, *im.size)
        w, h = im.size
        tile = im.tile[0] if len(im.tile) == 1 else None
        if (head[28] != 1 and getattr(im, "n_frames", 1) == 1 and tile is not None and tile[0] == "zip"
                and tuple(tile[1]) == (0, 0, w, h)):
            try:
                row = Image.new(im.mode, (w, 1))
                self.sentinel = Image.frombytes(im.mode, (w, 1), os.urandom(len(row.tobytes())))
                im.im = Image.core.new(im.mode, im.size)  # what load() would make; kept by it
                im.im.paste(self.sentinel.im, (0, h - 1, w, h))
            except (ValueError, OSError):  # a mode with no raw packer: count the bytes instead
                self.sentinel = None

    def missing(self) -> str | None:
        """Why the decoded image lacks rows, or None (call after ``im.load()``)."""
        if self.sentinel is not None:
            w, h = self.im.size
            if self.im.crop((0, h - 1, w, h)).tobytes() != self.sentinel.tobytes():
                return None  # the last row was decoded, so all were
        if _inflated_size(self.path, self.needed) >= self.needed:
            return None
        return f"{_TRUNCATED} (its pixel data stops before the last row)"


def _inflated_size(path: Path, enough: int) -> int:
    """Bytes the IDAT chunks of ``path`` inflate to, counted up to ``enough``; nothing is kept."""
    inflate = zlib.decompressobj()
    total = 0
    with open(path, "rb") as f:
        f.seek(8)
        while total < enough:
            header = f.read(8)
            if len(header) < 8:
                break
            length, tag = struct.unpack(">I4s", header)
            if tag == b"IEND":
                break
            if tag != b"IDAT":
                f.seek(length + 4, os.SEEK_CUR)
                continue
            data = f.read(length)
            f.seek(4, os.SEEK_CUR)  # CRC
            try:
                while data and total < enough:
                    total += len(inflate.decompress(data, 1 << 20))
                    data = inflate.unconsumed_tail
            except zlib.error:
                break
            if inflate.eof:
                break
    return total
