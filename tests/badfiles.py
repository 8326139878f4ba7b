"""A folder of good, awkward and broken image files, for the reader, batch and CLI tests.

``make_mixed_folder(root)`` writes it in well under a second and says which files are which:

    from tests.badfiles import make_mixed_folder, BAD_REASONS
    files = make_mixed_folder(tmp_path)
    files["good"]     # 2D images every reader must accept
    files["volume"]   # multi-page TIFF: read_volume reads it, read_image refuses it
    files["bad"]      # each must fail with an ImageError containing BAD_REASONS[path.name]
    files["ignored"]  # a folder search must not pick these up (README, hidden, our '.tmp')

Stems are unique within each folder (``grey8.png`` exists in both ``root`` and ``sub/``, on
purpose), so ``<stem>_mask.png`` outputs never collide. The files are written here with Pillow,
tifffile and a few lines of PNG chunk code, never with restore.imageio, so the tests do not
check the writer against itself.
"""
from __future__ import annotations

import functools
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

H, W = 40, 48  # stored size of the small test images (non-square, so rotations show)
ENORMOUS = 13500  # 13500^2 = 182 MP: above Pillow's bomb limit (179 MP), below our cap (268 MP)
HUGE = 20000  # 20000^2 = 400 MP: above our default cap

# expected substring of the ImageError message for each bad file
BAD_REASONS = {
    "empty.png": "empty",
    "truncated.png": "truncated",
    "truncated_jpeg.jpg": "truncated",
    "truncated.tif": "truncated",
    "corrupt.png": "not an image",
    "notimage.jpg": "not an image",
    "huge.png": "too large",
}

PNG_SIG = b"\x89PNG\r\n\x1a\n"


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height (8-bit grey) but whose pixel data stops after a few bytes.

    Pillow opens it (it stops reading at the first IDAT), so only a size check made before
    decoding can call it "too large"; decoding it would say "truncated" instead.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    co = zlib.compressobj()
    data = co.compress(bytes(width + 1) * 4) + co.flush(zlib.Z_SYNC_FLUSH)  # stream not ended
    return PNG_SIG + _chunk(b"IHDR", ihdr) + struct.pack(">I", 1 << 20) + b"IDAT" + data


@functools.lru_cache(maxsize=2)
def zero_png(width: int, height: int) -> bytes:
    """A valid all-zero 8-bit grey PNG, compressed row block by row block (never all in memory)."""
    co = zlib.compressobj(6)
    row = bytes(width + 1)  # filter byte + pixels
    block = 256
    parts = [co.compress(row * block) for _ in range(height // block)]
    parts += [co.compress(row * (height % block)), co.flush()]
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return PNG_SIG + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


def png16_colour(rgb: np.ndarray) -> bytes:
    """A 16-bit RGB PNG (Pillow cannot write one)."""
    h, w, _ = rgb.shape
    rows = np.frombuffer(rgb.astype(">u2").tobytes(), np.uint8).reshape(h, -1)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return (PNG_SIG + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw))
            + _chunk(b"IEND", b""))


def grey8() -> np.ndarray:
    return (np.arange(H * W).reshape(H, W) % 251).astype(np.uint8)


def grey16() -> np.ndarray:
    return (np.arange(H * W, dtype=np.uint32).reshape(H, W) * 31).astype(np.uint16)


def rgb16() -> np.ndarray:
    g = grey16()
    return np.stack([g, 65535 - g, g // 2], axis=-1)


def stack16() -> np.ndarray:
    return np.stack([grey16() + z for z in range(5)])


def exif6_source() -> np.ndarray:
    """The stored (unrotated) pixels of rgb_exif6.jpg: white, with a red 12x12 block top-left."""
    a = np.full((H, W, 3), 255, np.uint8)
    a[:12, :12] = (255, 0, 0)
    return a


def _save(im: Image.Image, path: Path, **kw) -> Path:
    im.save(path, **kw)
    return path


def make_mixed_folder(root: Path, big: bool = False) -> dict[str, list[Path]]:
    """Write the mixed folder under ``root`` (with a ``sub/`` folder) and list its files by kind.

    ``big=True`` adds enormous.png, a real 13500x13500 image (182 MP, ~180 kB on disk) that
    Pillow's bomb limit would refuse and our cap allows: it takes ~1 s to write and to read.
    """
    root = Path(root)
    sub = root / "sub"
    sub.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (H * 4, W * 4, 3), dtype=np.uint8)
    good: list[Path] = []

    good.append(_save(Image.fromarray(grey8()), root / "grey8.png"))
    good.append(_save(Image.fromarray(255 - grey8()), sub / "grey8.png"))  # same stem, other folder
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    good.append(_save(Image.fromarray(exif6_source()), root / "rgb_exif6.jpg", quality=95,
                      exif=exif))
    good.append(_save(Image.fromarray(grey16()), root / "grey16.png"))
    tifffile.imwrite(root / "grey16_tiff.tif", grey16())
    good.append(root / "grey16_tiff.tif")
    rgba = np.dstack([noise[:H, :W], np.linspace(0, 255, W, dtype=np.uint8)[None].repeat(H, 0)])
    good.append(_save(Image.fromarray(rgba, "RGBA"), root / "rgba.png"))
    pal = Image.fromarray((np.arange(H * W).reshape(H, W) % 4).astype(np.uint8), "P")
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 0])
    good.append(_save(pal, root / "palette.png"))
    grey_pal = Image.fromarray((np.arange(H * W).reshape(H, W) % 3).astype(np.uint8), "P")
    grey_pal.putpalette([0, 0, 0, 128, 128, 128, 255, 255, 255])
    good.append(_save(grey_pal, sub / "palette_grey.png"))
    good.append(_save(Image.new("CMYK", (W, H), (255, 0, 0, 0)), root / "cmyk.jpg", quality=95))
    good.append(_save(Image.fromarray(grey8()[:3, :3]), root / "tiny.png"))
    (sub / "rgb16.png").write_bytes(png16_colour(rgb16()))
    good.append(sub / "rgb16.png")
    good.append(_save(Image.fromarray(grey8()), sub / "lzw.tif", compression="tiff_lzw"))
    if big:
        (root / "enormous.png").write_bytes(zero_png(ENORMOUS, ENORMOUS))
        good.append(root / "enormous.png")

    tifffile.imwrite(root / "stack.tif", stack16())
    volume = [root / "stack.tif"]

    (root / "empty.png").write_bytes(b"")
    png = _png_bytes(Image.fromarray(noise))
    (root / "truncated.png").write_bytes(png[: len(png) // 2])
    jpg = _png_bytes(Image.fromarray(noise), format="JPEG", quality=90)
    (root / "truncated_jpeg.jpg").write_bytes(jpg[: len(jpg) // 2])
    tifffile.imwrite(sub / "truncated.tif", noise)
    data = (sub / "truncated.tif").read_bytes()
    (sub / "truncated.tif").write_bytes(data[: len(data) // 2])
    (root / "corrupt.png").write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (root / "notimage.jpg").write_text("this is not a JPEG\n")
    (root / "huge.png").write_bytes(png_header_only(HUGE, HUGE))
    bad = [root / n for n in ("empty.png", "truncated.png", "truncated_jpeg.jpg", "corrupt.png",
                              "notimage.jpg", "huge.png")] + [sub / "truncated.tif"]

    (root / "README.txt").write_text("not an image; folder search must skip it\n")
    (root / "notes.md").write_text("# notes\n")
    Image.fromarray(grey8()).save(root / ".hidden.png")
    (sub / ".grey8_mask.png.123-abcd.tmp").write_bytes(b"half-written")
    ignored = [root / "README.txt", root / "notes.md", root / ".hidden.png",
               sub / ".grey8_mask.png.123-abcd.tmp"]
    return {"good": good, "volume": volume, "bad": bad, "ignored": ignored}


def _png_bytes(im: Image.Image, format: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=format, **kw)
    return buf.getvalue()
