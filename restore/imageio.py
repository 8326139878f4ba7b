"""Reading and writing images robustly: every file either gives a clean array or an ImageError.

Conventions (so every command sees the same thing):

* ``read_image`` returns HxW (grey) or HxWx3 (RGB); dtype uint8 or uint16 as stored, float32
  for float TIFFs (and for integer TIFFs outside 0..65535).
* EXIF orientation is applied; palette images become RGB (grey when the palette is grey);
  CMYK/YCbCr/LAB become RGB.
* Alpha is dropped, not composited: the stored colour values are the data (what cv2 and
  tifffile give too), and an opaque RGBA file -- the usual case -- is unchanged either way.
* Pillow's decompression-bomb limit (~179 MP) is lifted up to our own cap, ``max_pixels``
  (default ``DEFAULT_MAX_PIXELS`` = 2**28 = 268 MP); larger images are refused from their header,
  before anything is decoded. Truncated files are an error, never padded with grey or black
  (a PNG whose pixel data holds too few rows too: ``restore.pngcheck``).
* Multi-page TIFFs are volumes: ``read_image`` refuses them, ``read_volume`` reads them (up to
  ``max_pages``, counted from the header before any page is decoded).
* Only regular files are read: a FIFO or a device is refused without waiting on it.
* Formats are told by content (``restore.formats``): every still format Pillow reads, HEIC/HEIF
  through pillow-heif, AVIF through Pillow. Animated GIF/PNG/WebP (and MPO, multi-image HEIF)
  give their first frame, and say so in a ``note``.
* Embedded ICC colour profiles other than sRGB are converted to sRGB (8-bit images; for 16-bit
  and float data a note says the profile was not applied).
* ``note(msg)``: what a reader or writer did that the user should hear of (the first frame of an
  animation, a profile not applied); ``with collect_notes() as notes:`` gathers them for one file,
  which is how the batch runner prints one ``note:`` line per file. Writing: ``restore.imagewrite``.
"""
from __future__ import annotations

import contextlib
import os
import stat
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, ImageFile, ImageOps, ImageSequence, UnidentifiedImageError

from .colour import is_srgb, srgb_array, to_srgb, to_uint8
from .formats import TIFF_MAGICS, not_regular, pil_formats_for
from .notes import note
from .pngcheck import PngRows, too_small

__all__ = ["DEFAULT_MAX_PIXELS", "ImageError", "is_volume", "read_alpha", "read_image", "read_volume"]


class ImageError(ValueError):
    """A user-facing reason why a file can't be used (message names no traceback)."""


DEFAULT_MAX_PIXELS = 2**28  # 268 MP (16384^2): ~1 GB as RGB uint8, a sane ceiling for one image
MODES = ("keep", "grey", "rgb", "rgb8")

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PIL_LOCK = threading.Lock()


# --------------------------------------------------------------------------- reading
def read_image(path: str | os.PathLike, *, mode: str = "keep",
               max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read one 2D image as HxW or HxWx3; ``mode`` "keep" | "grey" | "rgb" | "rgb8" (RGB
    scaled to uint8, what the photo networks take). Raises ImageError."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    return _to_mode(_read(Path(path), max_pixels, volume=False), mode)


def read_volume(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                max_pages: int | None = None) -> np.ndarray:
    """Read a multi-page / 3D TIFF as (Z, H, W) or (Z, H, W, 3); ``max_pixels`` caps Z*H*W,
    ``max_pages`` (None: no cap) the pages, counted from the file's chain of page headers
    before any is decoded.

    A 2D image (any format) comes back as a one-slice volume.
    """
    return _read(Path(path), max_pixels, volume=True, max_pages=max_pages)


def _read(path: Path, max_pixels: int, volume: bool, max_pages: int | None = None) -> np.ndarray:
    head = _head(path)
    if head[:4] in TIFF_MAGICS:
        return _read_tiff(path, max_pixels, volume=volume, max_pages=max_pages)
    arr = _read_pil(path, max_pixels, head)
    return arr[None] if volume else arr


def read_alpha(path: str | os.PathLike, shape: tuple[int, int] | None = None) -> np.ndarray | None:
    """The alpha channel (uint8 HxW, oriented like the image) that ``read_image`` drops; None
    when the file has none (only its header is read then), or when it is not ``shape``."""
    try:
        path = Path(path)
        with _pillow_guard(), _open_pil(path, _head(path)) as im:
            if im.mode not in ("RGBA", "LA", "PA", "La", "RGBa") and "transparency" not in im.info:
                return None
            alpha = np.array(ImageOps.exif_transpose(im.convert("RGBA")).getchannel("A"))
    except Exception:  # noqa: BLE001 - read_image vouches for the pixels; alpha is extra
        return None
    return alpha if shape is None or alpha.shape == tuple(shape) else None


def is_volume(path: str | os.PathLike) -> bool:
    """True for a TIFF holding more than one 2D plane; False otherwise (unreadable files too)."""
    try:
        if _head(Path(path))[:4] not in TIFF_MAGICS:
            return False
        with tifffile.TiffFile(path) as tif:
            return _tiff_layout(tif)[0] > 1
    except Exception:  # an unreadable file is not a volume; read_image will say what is wrong
        return False


def _head(path: Path) -> bytes:
    """First bytes of the file, after the checks every reader needs."""
    try:  # non-blocking: opening a FIFO would otherwise wait for a writer for ever
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with open(fd, "rb") as f:
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectoryError
            if not stat.S_ISREG(mode):
                raise ImageError(not_regular(mode))
            head = f.read(33)
    except FileNotFoundError:
        raise ImageError("no such file") from None
    except IsADirectoryError:
        raise ImageError("is a directory, not an image file") from None
    except OSError as e:
        raise ImageError(f"cannot read file: {e.strerror or e}") from None
    if not head:
        raise ImageError("empty file (0 bytes)")
    return head


def _check_size(width: int, height: int, max_pixels: int, depth: int = 1) -> None:
    if width <= 0 or height <= 0 or depth <= 0:
        raise ImageError(f"image has no pixels ({width}x{height})")
    n = width * height * depth
    if n > max_pixels:
        size = f"{depth}x{width}x{height}" if depth > 1 else f"{width}x{height}"
        raise ImageError(f"image too large: {size} = {n / 1e6:.1f} megapixels exceeds the limit of "
                         f"{max_pixels / 1e6:.1f} megapixels (max_pixels={max_pixels})")


@contextlib.contextmanager
def _pillow_guard() -> Iterator[None]:
    """Lift Pillow's bomb limit (we check the size ourselves) and insist on complete files.

    Both are Pillow globals, hence the lock; LOAD_TRUNCATED_IMAGES is forced off in case some
    other library switched it on, which would silently pad truncated files with grey.
    """
    with _PIL_LOCK:
        old = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = None, False
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = old


def _decode_error(e: BaseException) -> ImageError:
    msg = " ".join(str(e).split()) or type(e).__name__
    if any(w in msg.lower() for w in ("truncated", "end of file")) or isinstance(e, EOFError):
        # Pillow's words (libavif's, libheif's); no need to repeat them
        return ImageError("truncated file: image data ends early")
    if "failed to read" in msg:  # tifffile's
        return ImageError(f"truncated file: image data ends early ({msg})")
    return ImageError(f"corrupt image data ({msg})")


_NOT_AN_IMAGE = "not an image file (or not a format Pillow or pillow-heif reads)"
# formats whose header (an ISO ftyp box and its brand) says what the file is: when it then fails
# to open, it is that kind of image, damaged, not some other file
_SAYS_WHAT_IT_IS = {"AVIF": "AVIF", "HEIF": "HEIC/HEIF"}


def _open_pil(path: Path, head: bytes) -> Image.Image:
    formats = pil_formats_for(head, path.suffix)
    if not formats:
        raise ImageError(_NOT_AN_IMAGE)
    try:
        return Image.open(path, formats=formats)
    except UnidentifiedImageError:
        named = next((_SAYS_WHAT_IT_IS[f] for f in formats if f in _SAYS_WHAT_IT_IS), None)
        raise ImageError(f"truncated or damaged {named} image" if named else _NOT_AN_IMAGE) from None
    except OSError as e:
        raise ImageError(f"cannot read file: {e.strerror or e}") from None
    except Exception as e:  # plugins raise SyntaxError/ValueError/struct.error on broken headers
        raise ImageError(f"corrupt image header ({e})") from None


def _read_pil(path: Path, max_pixels: int, head: bytes) -> np.ndarray:
    with _pillow_guard(), _open_pil(path, head) as im:
        _check_size(*im.size, max_pixels)
        rows = None
        if im.format == "PNG" and head[:8] == _PNG_SIG and len(head) > 28:
            why = too_small(im, path, head)
            if why is not None:
                raise ImageError(why)
            rows = PngRows(im, path, head)  # Pillow pads a short zlib stream with black rows
        try:
            im.load()  # frame 0 of an animation, the primary image of an MPO/HEIF
        except MemoryError:
            raise
        except Exception as e:  # OSError, SyntaxError, zlib.error, ... all mean a broken file
            raise _decode_error(e) from None
        why = rows.missing() if rows is not None else None
        if why is not None:
            raise ImageError(why)
        frames = getattr(im, "n_frames", 1)
        if frames > 1:
            note(f"{_kind(im)} of {frames} frames: only the first frame was read")
        icc = im.info.get("icc_profile")
        # Pillow has no 48/64-bit colour modes and would quietly drop 16-bit colour to 8 bit.
        if len(head) > 25 and head[:8] == _PNG_SIG and head[24] == 16 and head[25] in (2, 4, 6):
            arr = _read_png16_colour(path, head[25])
            if arr is not None:
                if icc and not is_srgb(icc):
                    note("its ICC colour profile was not applied (16-bit colour)")
                return _orient(arr, im.getexif().get(0x0112, 1))
        try:
            im = ImageOps.exif_transpose(im)
        except Exception:  # a broken EXIF block should not cost the image; keep it as stored
            pass
        if icc:
            im = to_srgb(im, icc)
        return _pil_to_array(im)


def _kind(im: Image.Image) -> str:
    """'animated GIF', 'animated PNG (APNG)', 'MPO', ... for the first-frame note."""
    fmt = {"PNG": "PNG (APNG)", "WEBP": "WebP"}.get(im.format or "", im.format or "image")
    return f"animated {fmt}" if getattr(im, "is_animated", False) and im.format in ("GIF", "PNG", "WEBP") else fmt


def _read_png16_colour(path: Path, colour_type: int) -> np.ndarray | None:
    """16-bit colour PNG at full depth through OpenCV (already validated by Pillow)."""
    try:
        import cv2  # lazy: heavy, and only this rare case needs it
    except ImportError:
        warnings.warn(f"{path}: 16-bit colour PNG read as 8-bit (OpenCV is not installed)",
                      stacklevel=3)
        return None
    arr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageError("corrupt image data (16-bit colour PNG)")
    if arr.ndim == 3:
        arr = arr[..., 0] if colour_type == 4 else arr[..., 2::-1]  # BGR(A) -> RGB, alpha dropped
    return np.ascontiguousarray(arr)


def _pil_to_array(im: Image.Image) -> np.ndarray:
    m = im.mode
    if m in ("L", "RGB"):
        return np.array(im)
    if m.startswith("I;16"):
        return np.array(im).astype(np.uint16)  # native byte order
    if m == "I":
        return _fix_dtype(np.array(im))
    if m == "F":
        return np.array(im, dtype=np.float32)
    if m in ("1", "LA", "La"):
        return np.array(im.convert("L"))
    rgb = np.array(im.convert("RGB"))  # P, PA, RGBA, CMYK, YCbCr, LAB, HSV: alpha dropped
    if m in ("P", "PA") and (rgb == rgb[..., :1]).all():
        return np.ascontiguousarray(rgb[..., 0])  # grey palette -> grey image
    return rgb


def _fix_dtype(arr: np.ndarray) -> np.ndarray:
    """Map any stored sample type onto uint8 / uint16 / float32."""
    if arr.dtype in (np.uint8, np.uint16, np.float32):
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            return arr.astype(np.float32)
        return arr.astype(np.uint8 if arr.dtype.itemsize == 1 else np.uint16)
    if arr.dtype.kind == "f":
        return arr.astype(np.float32)
    raise ImageError(f"unsupported sample type {arr.dtype}")


# TIFF: tifffile reads 16-bit, float, multi-page and big files; Pillow is the fallback for
# what it does not (palette, CMYK, and LZW/JPEG compression when imagecodecs is missing).
_PLANE_AXES = "YXS"


def _tiff_layout(tif: tifffile.TiffFile) -> tuple[int, tifffile.TiffPageSeries]:
    """Number of 2D planes in the first series; refuses layouts with two stack axes."""
    if not tif.series:
        raise ImageError("TIFF holds no image data")
    series = tif.series[0]
    stack = [(a, n) for a, n in zip(series.axes, series.shape) if a not in _PLANE_AXES and n > 1]
    if len(stack) > 1:
        raise ImageError(f"TIFF has axes {series.axes} {series.shape}; only one stack axis "
                         "(one volume of Z slices) is supported")
    return (stack[0][1] if stack else 1), series


def _read_tiff(path: Path, max_pixels: int, *, volume: bool, max_pages: int | None = None) -> np.ndarray:
    try:
        tif = tifffile.TiffFile(path)
    except Exception as e:
        raise ImageError(f"corrupt TIFF ({' '.join(str(e).split())})") from None
    with tif:
        if max_pages is not None:  # the chain of page headers only: cheap, nothing decoded
            _check_pages(len(tif.pages), max_pages)
        nz, series = _tiff_layout(tif)
        if max_pages is not None:  # one page may hold several planes (ImageJ, ImageDepth)
            _check_pages(nz, max_pages)
        shape = dict(zip(series.axes, series.shape))
        _check_size(shape.get("X", 0), shape.get("Y", 0), max_pixels, nz if volume else 1)
        if nz > 1 and not volume:
            raise ImageError(f"is a volume ({nz} pages, multi-page TIFF), not a 2D image")
        page = series.keyframe
        tag = page.tags.get(274)  # Orientation, which tifffile leaves to us
        orientation = int(tag.value) if tag is not None else 1
        icc_tag = page.tags.get(34675)  # InterColorProfile
        icc = bytes(icc_tag.value) if icc_tag is not None else None
        if page.photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB):
            return _read_tiff_pil(path, max_pixels, volume)
        try:
            arr = series.asarray()
        except MemoryError:
            raise
        except Exception as e:
            if "imagecodecs" in str(e):  # LZW/JPEG/PackBits without the optional codecs
                return _read_tiff_pil(path, max_pixels, volume)
            raise _decode_error(e) from None
    axes = series.axes
    if "S" in axes:  # samples last (planar RGB is stored SYX)
        arr = np.moveaxis(arr, axes.index("S"), -1)
        axes = axes.replace("S", "") + "S"
    arr = arr.reshape((nz, shape["Y"], shape["X"]) + ((shape["S"],) if "S" in axes else ()))
    if arr.ndim == 4:  # grey+alpha -> grey, RGBA -> RGB, 1 sample -> grey
        c = arr.shape[-1]
        arr = arr[..., 0] if c in (1, 2) else arr[..., :3]
    arr = _orient(_fix_dtype(arr), orientation, yaxis=1)
    if icc and arr.ndim == 4:
        arr = np.stack([srgb_array(plane, icc) for plane in arr])
    return arr if volume else arr[0]


def _check_pages(pages: int, max_pages: int) -> None:
    if pages > max_pages:
        raise ImageError(f"too many pages: {pages} pages exceeds the limit of {max_pages}")


def _read_tiff_pil(path: Path, max_pixels: int, volume: bool) -> np.ndarray:
    with _pillow_guard(), _open_pil(path, _head(path)) as im:
        n = getattr(im, "n_frames", 1)
        _check_size(*im.size, max_pixels, n if volume else 1)
        if n > 1 and not volume:
            raise ImageError(f"is a volume ({n} pages, multi-page TIFF), not a 2D image")
        planes = []
        try:
            for frame in ImageSequence.Iterator(im):
                frame.load()
                icc = frame.info.get("icc_profile")
                plane = ImageOps.exif_transpose(frame)
                planes.append(_pil_to_array(to_srgb(plane, icc) if icc else plane))
        except MemoryError:
            raise
        except Exception as e:
            raise _decode_error(e) from None
    if any(p.shape != planes[0].shape or p.dtype != planes[0].dtype for p in planes):
        raise ImageError("TIFF pages differ in size or type; not a volume")
    return np.stack(planes) if volume else planes[0]


def _orient(arr: np.ndarray, orientation: int, yaxis: int = 0) -> np.ndarray:
    """Apply an EXIF/TIFF orientation to the (Y, X) axes at ``yaxis`` (same as exif_transpose)."""
    ax = (yaxis, yaxis + 1)
    ops = {
        2: lambda a: np.flip(a, ax[1]),
        3: lambda a: np.rot90(a, 2, ax),
        4: lambda a: np.flip(a, ax[0]),
        5: lambda a: np.swapaxes(a, *ax),
        6: lambda a: np.rot90(a, -1, ax),
        7: lambda a: np.swapaxes(np.rot90(a, 2, ax), *ax),
        8: lambda a: np.rot90(a, 1, ax),
    }
    op = ops.get(orientation)
    return arr if op is None else np.ascontiguousarray(op(arr))


def _to_mode(arr: np.ndarray, mode: str) -> np.ndarray:
    if mode == "grey" and arr.ndim == 3:
        # ITU-R 601-2 luma, the weights Pillow's convert("L") uses
        grey = arr.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return grey if arr.dtype.kind == "f" else np.rint(grey).astype(arr.dtype)
    if mode in ("rgb", "rgb8") and arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if mode == "rgb8":
        return to_uint8(arr)
    return arr
