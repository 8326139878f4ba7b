"""Which files are images, told by their content: the still formats Pillow reads (and HEIC/HEIF
through pillow-heif), their magic bytes checked by Pillow's own format tests.

    image_format(path)  -> "JPEG", "HEIF", ... or None      (content only)
    is_image_file(path) -> True for any file a folder search should read: recognised content,
                           or an image extension (so a broken ``x.jpg`` fails with its reason
                           instead of vanishing)
    IMAGE_EXTS          -> every extension of those formats, lower case (upload filters, docs)

Formats that carry no magic bytes (TGA, IM, PCD) are trusted by extension only: Pillow would
otherwise try them on any file and "open" random bytes as a TGA.
"""
from __future__ import annotations

import functools
import os
import stat
import threading
from pathlib import Path

from PIL import Image

__all__ = ["IMAGE_EXTS", "PIL_FORMATS", "STORE_SUFFIXES", "TIFF_MAGICS", "image_format", "is_image_file", "is_store",
           "not_regular",
           "pil_formats_for", "register_plugins"]

# Left out of what Pillow opens: EPS/PS (runs Ghostscript), WMF/EMF (Windows only), MPEG, BUFR,
# GRIB and HDF5 (Pillow holds only stubs for them), IPTC/IMT/MCIDAS/XVTHUMB/SPIDER/GBR/FTEX
# (headers with no reliable magic, or not pictures a user restores). Order matters: Pillow
# tries them in turn, and TIFF is read by tifffile before Pillow is asked.
PIL_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "DIB", "WEBP", "GIF", "PPM", "AVIF", "HEIF", "ICO", "CUR",
               "ICNS", "JPEG2000", "PSD", "QOI", "PCX", "SGI", "SUN", "DDS", "BLP", "DCX", "FLI", "FITS",
               "MSP", "XBM", "XPM", "PIXAR", "TGA", "IM", "PCD")
TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders
_HEAD = 64  # bytes read to recognise a format (Pillow's own checks look at the first 16)
_LOCK = threading.Lock()


@functools.cache
def register_plugins() -> tuple[str, ...]:
    """Load Pillow's plugins and pillow-heif's HEIF opener once; the formats available here."""
    with _LOCK:
        Image.init()
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
        except ImportError:  # a dependency, but the rest still works without it
            pass
    return tuple(f for f in PIL_FORMATS if f in Image.OPEN)


@functools.cache
def _extensions() -> dict[str, str]:
    """extension -> format, for the formats we read."""
    formats = set(register_plugins())
    return {ext.lower(): fmt for ext, fmt in Image.EXTENSION.items() if fmt in formats}


def _needs_extension(fmt: str) -> bool:
    return Image.OPEN[fmt][1] is None  # no accept() test: Pillow would try it on anything


def _accepts(fmt: str, head: bytes) -> bool:
    accept = Image.OPEN[fmt][1]
    try:
        return accept is not None and bool(accept(head))
    except Exception:  # a plugin's check tripping on a short or odd header: not that format
        return False


def _read_head(path: Path) -> bytes:
    # non-blocking, and nothing from what is not a regular file: a FIFO would wait for a writer
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with open(fd, "rb") as f:
        return f.read(_HEAD) if stat.S_ISREG(os.fstat(fd).st_mode) else b""


def format_of_bytes(head: bytes, ext: str = "") -> str | None:
    """The format whose magic bytes ``head`` starts with (or, for TGA-like formats, whose
    extension ``ext`` is); None when none matches, or the file is empty."""
    if not head:
        return None
    if head[:4] in TIFF_MAGICS:
        return "TIFF"
    return next(iter(pil_formats_for(head, ext)), None)


def image_format(path: str | os.PathLike) -> str | None:
    """The image format of a file from its first bytes; None for anything else (unreadable too)."""
    path = Path(path)
    try:
        head = _read_head(path)
    except OSError:
        return None
    return format_of_bytes(head, path.suffix)


VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")  # what ``restore faces`` takes as films


def not_regular(mode: int) -> str:
    """Why a file of ``mode`` (``os.stat``'s ``st_mode``) that is not a regular file is not read:
    a FIFO would block its reader for ever, /dev/zero never ends."""
    kinds = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))
    kind = next((name for test, name in kinds if test(mode)), "a special file")
    return f"not a regular file ({kind}): not read"


def is_video_file(path: str | os.PathLike) -> bool:
    """A film by its extension (containers have no one magic number; PyAV says more on opening)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


# What ``restore segment`` reads region by region (restore.segment.volumes): OME-Zarr and Zarr
# stores (folders, or zipped), and NIfTI volumes. By name: a store is a folder, not a file with
# a magic number, and ``.nii`` files have no magic at their start.
STORE_SUFFIXES = (".zarr", ".zarr.zip", ".ozx", ".nii", ".nii.gz")


def is_store(path: str | os.PathLike) -> bool:
    """A volume ``restore segment`` reads chunk by chunk: ``x.zarr``/``x.ome.zarr`` (a folder),
    ``x.ome.zarr.zip``/``x.ozx`` (zipped), ``x.nii``/``x.nii.gz`` (NIfTI-1 or -2)."""
    name = Path(path).name.lower()
    return name.endswith(STORE_SUFFIXES)


def is_image_file(path: str | os.PathLike) -> bool:
    """True when a folder search should read ``path``: its content is an image, or its
    extension is an image format's (then a broken file fails with its reason)."""
    path = Path(path)
    return path.suffix.lower() in _extensions() or image_format(path) is not None


def pil_formats_for(head: bytes, ext: str) -> tuple[str, ...]:
    """The formats to let Pillow try on a file: those whose magic matches (in our order), plus
    the extension-only ones when the extension is theirs."""
    exts = _extensions()
    return tuple(f for f in register_plugins()
                 if (exts.get(ext.lower()) == f if _needs_extension(f) else _accepts(f, head)))


IMAGE_EXTS = frozenset(_extensions())
