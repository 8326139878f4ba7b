"""A folder of good, awkward and broken image files, for the reader, batch and CLI tests.

``make_mixed_folder(root)`` writes it in well under a second and says which files are which:

    from tests.badfiles import make_mixed_folder, BAD_REASONS
    files = make_mixed_folder(tmp_path)
    files["good"]     # 2D images every reader must accept: PNG, JPEG (also .JPG, no extension,
                      # CMYK, ICC-tagged), TIFF, GIF, PPM/PGM, AVIF, HEIC, WebP, TGA, ICO, a
                      # name with spaces and accents, a 240-character name, ...
    files["animated"] # the animated ones among them (GIF, APNG, WebP): first frame, with a note
    files["volume"]   # multi-page TIFF: read_volume reads it, read_image refuses it
    files["bad"]      # each must fail with an ImageError containing BAD_REASONS[path.name]
    files["ignored"]  # a folder search must name but not read these (README, .DS_Store, hidden,
                      # our '.tmp', a FIFO, a symlink alias of grey8.png)

Stems are unique within each folder (``grey8.png`` exists in both ``root`` and ``sub/``, on
purpose), so ``<stem>_mask.png`` outputs never collide. The files are written here with Pillow,
tifffile and a few lines of PNG chunk code, never with restore.imageio, so the tests do not
check the writer against itself.
"""
from __future__ import annotations

import functools
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pillow_heif
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
    "short_rows.png": "truncated",  # a complete zlib stream of 10 rows of 64: Pillow pads it with black
    "claims_7000.png": "truncated",  # 87 bytes declaring 7000x7000: refused before decoding
    "cut_avif.avif": "truncated or damaged AVIF",  # its header says AVIF: not "not an image"
    "cut_heic.heic": "truncated or damaged HEIC",
}
LONG_NAME = "long_" + "n" * 231 + ".png"  # 240 characters: the outputs' temporaries must fit too

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


def png_rows(width: int, height: int, rows: int, value: int = 200) -> bytes:
    """An 8-bit grey PNG declaring ``width`` x ``height`` whose pixel data, a complete zlib
    stream, holds only ``rows`` rows (filter byte 0, every pixel ``value``)."""
    raw = (b"\x00" + bytes([value]) * width) * rows
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return PNG_SIG + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def png16_colour(rgb: np.ndarray) -> bytes:
    """A 16-bit RGB PNG (Pillow cannot write one)."""
    h, w, _ = rgb.shape
    rows = np.frombuffer(rgb.astype(">u2").tobytes(), np.uint8).reshape(h, -1)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return (PNG_SIG + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw))
            + _chunk(b"IEND", b""))


def _s15(x: float) -> bytes:
    return struct.pack(">i", round(x * 65536))


@functools.lru_cache(maxsize=1)
def linear_rgb_icc() -> bytes:
    """An ICC v2 RGB profile with sRGB's primaries and a linear tone curve: stored 128 is
    sRGB 188 (64 -> 137, 200 -> 229), so a reader that applies the profile is easy to tell."""
    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + bytes(4) + _s15(x) + _s15(y) + _s15(z)

    text = b"Linear RGB (test)\0"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(4 + 4 + 2 + 1 + 67)
    curve = b"curv" + bytes(4) + struct.pack(">I", 0)  # no entries: the identity curve
    tags = [(b"desc", desc), (b"wtpt", xyz(0.9642, 1.0, 0.8249)), (b"rXYZ", xyz(0.4361, 0.2225, 0.0139)),
            (b"gXYZ", xyz(0.3851, 0.7169, 0.0971)), (b"bXYZ", xyz(0.1431, 0.0606, 0.7141)),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve), (b"cprt", b"text" + bytes(4) + b"CC0\0")]
    offset = 128 + 4 + 12 * len(tags)
    table, data = struct.pack(">I", len(tags)), b""
    for sig, body in tags:
        body += bytes(-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = (struct.pack(">I", offset + len(data)) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ "
              + bytes(12) + b"acspAPPL" + bytes(24) + _s15(0.9642) + _s15(1.0) + _s15(0.8249) + bytes(48))
    assert len(header) == 128
    return header + table + data


ICC_STORED, ICC_SRGB = (128, 64, 200), (188, 137, 229)  # linear_rgb_icc: stored -> sRGB


def colour_frames(n: int = 3) -> list[np.ndarray]:
    """n distinct RGB frames (frame k: a different flat colour with a grey ramp)."""
    ramp = np.linspace(0, 120, W, dtype=np.uint8)[None, :, None].repeat(H, 0)
    return [np.clip(ramp + np.array([60 * k, 200 - 50 * k, 90], np.uint8), 0, 255).astype(np.uint8)
            for k in range(n)]


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

    # what a phone, a camera or a web archive gives (issue 12): by content, any case
    frames = [Image.fromarray(f) for f in colour_frames()]
    good.append(_save(frames[0].convert("P", palette=Image.Palette.ADAPTIVE), root / "static.gif"))
    animated = [_save(frames[0], root / "anim_gif.gif", save_all=True, append_images=frames[1:], duration=80,
                      loop=0),
                _save(frames[0], root / "anim_apng.png", save_all=True, append_images=frames[1:], duration=80),
                _save(frames[0], sub / "anim_webp.webp", save_all=True, append_images=frames[1:], duration=80,
                      lossless=True)]
    good += animated
    good.append(_save(frames[1], root / "pixmap.ppm"))
    good.append(_save(Image.fromarray(grey8()), sub / "greymap.pgm"))
    good.append(_save(frames[1], root / "photo.avif", quality=90))
    pillow_heif.register_heif_opener()
    good.append(_save(frames[2], root / "phone.heic", quality=90))
    good.append(_save(frames[1], root / "UPPER.JPG", quality=95))
    good.append(_save(frames[2], sub / "camera_file", format="JPEG", quality=95))  # no extension at all
    good.append(_save(Image.new("RGB", (W, H), ICC_STORED), root / "icc_linear.jpg", quality=98,
                      icc_profile=linear_rgb_icc()))
    good.append(_save(frames[0], sub / "targa.tga"))
    good.append(_save(frames[1], sub / "icon.ico", sizes=[(32, 32)]))
    good.append(_save(frames[2], sub / "bitmap.BMP"))
    good.append(_save(frames[0], sub / "café au lait.png"))  # printed as it is: spaces, accents
    good.append(_save(Image.fromarray(grey8()), root / LONG_NAME))
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
    (root / "short_rows.png").write_bytes(png_rows(W, 64, 10))
    (root / "claims_7000.png").write_bytes(png_rows(7000, 7000, 1, 0))
    for name, fmt in (("cut_avif.avif", "AVIF"), ("cut_heic.heic", "HEIF")):  # the header whole, the rest cut
        (sub / name).write_bytes(_png_bytes(frames[1], format=fmt, quality=90)[:100])
    bad = [root / n for n in ("empty.png", "truncated.png", "truncated_jpeg.jpg", "corrupt.png",
                              "notimage.jpg", "huge.png", "short_rows.png", "claims_7000.png")]
    bad += [sub / "truncated.tif", sub / "cut_avif.avif", sub / "cut_heic.heic"]

    (root / "README.txt").write_text("not an image; folder search must skip it\n")
    (root / "notes.md").write_text("# notes\n")
    (sub / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))  # a video: not an image
    Image.fromarray(grey8()).save(root / ".hidden.png")
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(2048))  # what macOS leaves
    (sub / ".grey8_mask.png.123-abcd.tmp").write_bytes(b"half-written")
    (root / "alias.png").symlink_to("grey8.png")  # the same file twice: done once, under grey8.png
    ignored = [root / "README.txt", root / "notes.md", sub / "clip.mp4", root / ".hidden.png",
               root / ".DS_Store", sub / ".grey8_mask.png.123-abcd.tmp", root / "alias.png"]
    if hasattr(os, "mkfifo"):  # reading it would wait for a writer for ever
        os.mkfifo(sub / "pipe.png")
        ignored.append(sub / "pipe.png")
    return {"good": good, "animated": animated, "volume": volume, "bad": bad, "ignored": ignored}


def _png_bytes(im: Image.Image, format: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=format, **kw)
    return buf.getvalue()
