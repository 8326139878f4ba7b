"""restore.imageio facing crafted files (issue 35): PNGs of too few rows, tiny files declaring
millions of pixels, cut AVIF/HEIC, volumes of too many pages, FIFOs, and Pillow's
LOAD_TRUNCATED_IMAGES never switched on."""
from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from restore.imageio import ImageError, read_image, read_volume
from tests import ROOT, badfiles
from tests.badfiles import H, W


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, i = [], 8
    while i < len(data):
        (n,) = struct.unpack(">I", data[i:i + 4])
        out.append((data[i + 4:i + 8], data[i + 8:i + 8 + n]))
        i += 12 + n
    return out


def _cut_rows(data: bytes, missing: int) -> bytes:
    """The PNG ``data`` without the last ``missing`` rows of its pixel data (the whole last
    Adam7 pass when interlaced), recompressed: a complete zlib stream that holds too few rows.
    (A cut inside a row leaves the decoder waiting for more: Pillow itself says truncated.)"""
    w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", _chunks(data)[0][1])
    row = 1 + -(-w * depth * {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour] // 8)
    raw = zlib.decompress(b"".join(d for tag, d in _chunks(data) if tag == b"IDAT"))
    out, idat = badfiles.PNG_SIG, zlib.compress(raw[:len(raw) - row * (h // 2 if interlace else missing)])
    for tag, d in _chunks(data):
        if tag == b"IDAT":
            d, idat = idat, b""
            if not d:
                continue
        out += badfiles._chunk(tag, d)
    return out


def _interlaced(a: np.ndarray) -> bytes:
    """An Adam7-interlaced 8-bit grey PNG (Pillow writes none)."""
    raw = b""
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                           (0, 1, 1, 2)):
        for row in a[y0::dy, x0::dx]:
            raw += b"\x00" + row.tobytes() if row.size else b""
    ihdr = struct.pack(">IIBBBBB", a.shape[1], a.shape[0], 8, 0, 0, 0, 1)
    return (badfiles.PNG_SIG + badfiles._chunk(b"IHDR", ihdr) + badfiles._chunk(b"IDAT", zlib.compress(raw))
            + badfiles._chunk(b"IEND", b""))


def _png_variants() -> dict[str, bytes]:
    rgb = np.random.default_rng(3).integers(0, 256, (37, 45, 3), dtype=np.uint8)
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    ims = {"L": Image.fromarray(rgb[..., 0]), "RGB": Image.fromarray(rgb), "1": Image.fromarray(rgb[..., 0] > 99),
           "RGBA": Image.fromarray(np.dstack([rgb, rgb[..., :1]])), "P": pal,
           "I;16": Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)}
    out = {}
    for name, im in ims.items():
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        out[name] = buf.getvalue()
    out["48-bit"] = badfiles.png16_colour(rgb.astype(np.uint16) * 257)
    out["interlaced"] = _interlaced(rgb[..., 1])
    buf = io.BytesIO()
    ims["RGB"].save(buf, format="PNG", save_all=True, append_images=[ims["L"].convert("RGB")])
    out["APNG"] = buf.getvalue()
    return out


def badfiles_png(folder: Path) -> Path:
    Image.fromarray(badfiles.grey8()).save(folder / "grey8.png")
    return folder / "grey8.png"


@pytest.mark.parametrize("kind", list(_png_variants()))
def test_a_png_of_too_few_rows_is_truncated(tmp_path, kind):
    """A complete zlib stream holding too few rows: Pillow pads it with black, we refuse it."""
    data = _png_variants()[kind]
    (tmp_path / "whole.png").write_bytes(data)
    with Image.open(tmp_path / "whole.png") as im:  # the whole file reads as Pillow reads it
        im.load()
    whole = read_image(tmp_path / "whole.png")
    assert whole.shape[:2] == (37, 45)
    for missing in (1, 2, 36):
        (tmp_path / "short.png").write_bytes(_cut_rows(data, missing))
        with pytest.raises(ImageError, match=r"^truncated file: image data ends early \(its pixel data stops"):
            read_image(tmp_path / "short.png")


def test_the_rows_check_is_cheap_and_exact(tmp_path, monkeypatch):
    from restore import pngcheck

    (tmp_path / "short.png").write_bytes(badfiles.png_rows(64, 64, 10))
    with pytest.raises(ImageError, match="truncated"):
        read_image(tmp_path / "short.png")
    # a whole PNG of ordinary rows is never inflated a second time
    whole = np.arange(64 * 64, dtype=np.uint32).reshape(64, 64).astype(np.uint8)
    Image.fromarray(whole).save(tmp_path / "whole.png")
    monkeypatch.setattr(pngcheck, "_inflated_size", lambda *a: pytest.fail("inflated twice"))
    np.testing.assert_array_equal(read_image(tmp_path / "whole.png"), whole)
    # when the last row happens to equal the marker, the bytes are counted: right either way
    monkeypatch.undo()
    monkeypatch.setattr(pngcheck.os, "urandom", lambda n: bytes(n))  # the marker: all zeros
    zeros_last = whole.copy()
    zeros_last[-1] = 0
    Image.fromarray(zeros_last).save(tmp_path / "zeros_last.png")
    np.testing.assert_array_equal(read_image(tmp_path / "zeros_last.png"), zeros_last)
    (tmp_path / "short0.png").write_bytes(badfiles.png_rows(64, 64, 10, value=0))
    with pytest.raises(ImageError, match="truncated"):
        read_image(tmp_path / "short0.png")


def test_a_tiny_png_declaring_millions_of_pixels_is_refused_undecoded(tmp_path, monkeypatch):
    from PIL import ImageFile as PILImageFile

    (tmp_path / "claims.png").write_bytes(badfiles.png_rows(7000, 7000, 1, 0))
    assert (tmp_path / "claims.png").stat().st_size < 100  # 87 bytes with the usual zlib
    monkeypatch.setattr(PILImageFile.ImageFile, "load", lambda self: pytest.fail("decoded"))
    t = time.perf_counter()
    with pytest.raises(ImageError, match=r"^truncated file: image data ends early \(\d+ bytes cannot hold a "
                                         r"7000x7000 image\)$"):
        read_image(tmp_path / "claims.png")
    assert time.perf_counter() - t < 0.5


@pytest.mark.parametrize("fmt,named", [("AVIF", "AVIF"), ("HEIF", "HEIC/HEIF")])
def test_a_truncated_avif_or_heic_is_a_damaged_image(tmp_path, fmt, named):
    import pillow_heif

    pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    Image.fromarray(badfiles.colour_frames()[1]).save(buf, format=fmt, quality=90)
    data = buf.getvalue()
    path = tmp_path / f"cut.{fmt.lower()}"
    for keep in (40, 100, len(data) // 2, len(data) - 10):
        path.write_bytes(data[:keep])
        with pytest.raises(ImageError) as info:
            read_image(path)
        msg = str(info.value)
        assert "not an image" not in msg and "truncated" in msg, (keep, msg)
        if keep <= 100:  # the header itself is cut
            assert msg == f"truncated or damaged {named} image"


def test_too_many_pages_refused_from_the_header(tmp_path, monkeypatch):
    for name, meta in (("shaped.tif", {}), ("plain.tif", {"metadata": None})):
        tifffile.imwrite(tmp_path / name, np.zeros((10_000, 16, 16), np.uint8), **meta)
    for what in (tifffile.TiffPage, tifffile.TiffPageSeries, tifffile.TiffFrame):
        monkeypatch.setattr(what, "asarray", lambda *a, **k: pytest.fail("a page was decoded"), raising=False)
    for name in ("shaped.tif", "plain.tif"):
        t = time.perf_counter()
        with pytest.raises(ImageError, match=r"^too many pages: 10000 pages exceeds the limit of 9999$"):
            read_volume(tmp_path / name, max_pages=9999)
        assert time.perf_counter() - t < 0.5, name
    monkeypatch.undo()
    assert read_volume(tmp_path / "shaped.tif", max_pages=10_000).shape == (10_000, 16, 16)
    assert read_volume(tmp_path / "shaped.tif").shape == (10_000, 16, 16)  # no cap by default
    assert read_volume(tmp_path / "plain.tif", max_pages=10_000).shape == (10_000, 16, 16)
    assert read_volume(badfiles_png(tmp_path), max_pages=1).shape == (1, H, W)  # a 2D image: one page


@pytest.mark.slow  # ~12 s: torch, gradio and the rest imported
def test_importing_everything_leaves_load_truncated_images_off():
    """Importing every module of restore, gan and the app (and what they import) leaves Pillow
    refusing truncated files."""
    code = ("import importlib, pkgutil, restore, gan, apps\n"
            "for pkg in (restore, gan, apps):\n"
            "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
            "        if not m.name.endswith('__main__'):\n"
            "            importlib.import_module(m.name)\n"
            "from PIL import ImageFile\n"
            "print(ImageFile.LOAD_TRUNCATED_IMAGES)\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["False"]


def test_nothing_switches_load_truncated_images_on():
    """No line of the repository sets Pillow's LOAD_TRUNCATED_IMAGES (tests' monkeypatches aside)."""
    offenders = []
    for path in ROOT.rglob("*.py"):
        if ".venv" in path.parts or path == Path(__file__):
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            code_part = line.split("#")[0]
            if ("LOAD_TRUNCATED_IMAGES" in code_part and re.search(r"\b(True|1)\b", code_part)
                    and not code_part.lstrip().startswith("assert") and "monkeypatch" not in code_part):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.timeout(120)
def test_a_fifo_is_refused_without_waiting(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    try:
        with pytest.raises(ImageError, match=r"^not a regular file \(a named pipe \(FIFO\)\): not read$"):
            read_image(tmp_path / "pipe.png")
        with pytest.raises(ImageError, match="not a regular file"):
            read_volume(tmp_path / "pipe.png")
    finally:  # a reader blocked in open() (the old behaviour) is set free
        with contextlib.suppress(OSError):
            os.close(os.open(tmp_path / "pipe.png", os.O_WRONLY | os.O_NONBLOCK))
