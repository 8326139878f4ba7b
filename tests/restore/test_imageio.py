"""restore.imageio: every kind of file is read right or refused with a clear ImageError."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageFile, ImageOps

from restore import imageio
from restore.colour import normalize
from restore.imageio import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    is_volume,
    read_image,
    read_volume,
)
from restore.imagewrite import atomic_write, write_png
from tests import badfiles
from tests.badfiles import BAD_REASONS, H, W, make_mixed_folder


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mixed")
    make_mixed_folder(root)
    return root


# ------------------------------------------------------------------ good files
def test_grey8_exact(mixed):
    a = read_image(mixed / "grey8.png")
    assert a.dtype == np.uint8 and a.shape == (H, W)
    np.testing.assert_array_equal(a, badfiles.grey8())
    np.testing.assert_array_equal(read_image(mixed / "sub" / "grey8.png"), 255 - badfiles.grey8())


def test_exif_orientation_applied(mixed):
    a = read_image(mixed / "rgb_exif6.jpg")
    # stored 40 high x 48 wide with a red block top-left; orientation 6 = turn 90 deg clockwise
    assert a.dtype == np.uint8 and a.shape == (W, H, 3)
    red = (a[..., 0] > 200) & (a[..., 1] < 60) & (a[..., 2] < 60)
    assert red[:10, -10:].all(), "red block should have moved to the top-right corner"
    assert not red[:, :H // 2].any() and not red[-20:].any()


@pytest.mark.parametrize("name", ["grey16.png", "grey16_tiff.tif"])
def test_16bit_grey_kept(mixed, name):
    a = read_image(mixed / name)
    assert a.dtype == np.uint16 and a.shape == (H, W) and a.max() > 255
    np.testing.assert_array_equal(a, badfiles.grey16())


def test_16bit_colour_png_kept(mixed):
    a = read_image(mixed / "sub" / "rgb16.png")
    assert a.dtype == np.uint16 and a.shape == (H, W, 3)
    np.testing.assert_array_equal(a, badfiles.rgb16())


def test_rgba_alpha_dropped(mixed):
    a = read_image(mixed / "rgba.png")
    stored = np.asarray(Image.open(mixed / "rgba.png"))
    assert a.shape == (H, W, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, stored[..., :3])  # colours as stored, not composited


def test_palette(mixed):
    a = read_image(mixed / "palette.png")
    assert a.shape == (H, W, 3) and a.dtype == np.uint8
    idx = np.arange(H * W).reshape(H, W) % 4
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], np.uint8)
    np.testing.assert_array_equal(a, colours[idx])
    g = read_image(mixed / "sub" / "palette_grey.png")  # grey palette -> plain grey image
    assert g.shape == (H, W)
    idx3 = np.arange(H * W).reshape(H, W) % 3
    np.testing.assert_array_equal(g, np.array([0, 128, 255], np.uint8)[idx3])


def test_cmyk_to_rgb(mixed):
    a = read_image(mixed / "cmyk.jpg")
    assert a.shape == (H, W, 3) and a.dtype == np.uint8
    r, g, b = a.reshape(-1, 3).mean(0)
    assert r < 30 and g > 225 and b > 225  # pure cyan


def test_tiny_and_lzw_tiff(mixed):
    assert read_image(mixed / "tiny.png").shape == (3, 3)
    np.testing.assert_array_equal(read_image(mixed / "sub" / "lzw.tif"), badfiles.grey8())


def test_volume(mixed):
    p = mixed / "stack.tif"
    assert is_volume(p)
    assert not is_volume(mixed / "grey16_tiff.tif") and not is_volume(mixed / "grey8.png")
    assert not is_volume(mixed / "empty.png")
    with pytest.raises(ImageError, match="volume"):
        read_image(p)
    v = read_volume(p)
    assert v.dtype == np.uint16
    np.testing.assert_array_equal(v, badfiles.stack16())
    assert read_volume(mixed / "grey8.png").shape == (1, H, W)
    with pytest.raises(ImageError, match="too large"):
        read_volume(p, max_pixels=4 * H * W)  # the cap counts voxels


def test_rgb_and_lzw_volume_via_pillow(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (3, 8, 10, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    np.testing.assert_array_equal(read_volume(tmp_path / "rgb.tif"), rgb)
    frames = [Image.fromarray(p[..., 0]) for p in rgb]
    frames[0].save(tmp_path / "lzw.tif", save_all=True, append_images=frames[1:],
                   compression="tiff_lzw")
    np.testing.assert_array_equal(read_volume(tmp_path / "lzw.tif"), rgb[..., 0])


def test_tiff_two_stack_axes_refused(tmp_path):
    tifffile.imwrite(tmp_path / "zc.tif", np.zeros((3, 2, 8, 8), np.uint16), imagej=True,
                     metadata={"axes": "ZCYX"})
    with pytest.raises(ImageError, match="stack axis"):
        read_volume(tmp_path / "zc.tif")


def test_other_dtypes(tmp_path):
    tifffile.imwrite(tmp_path / "f.tif", np.linspace(-1, 1, 64, dtype=np.float64).reshape(8, 8))
    assert read_image(tmp_path / "f.tif").dtype == np.float32
    tifffile.imwrite(tmp_path / "i.tif", np.arange(64, dtype=np.int16).reshape(8, 8))
    assert read_image(tmp_path / "i.tif").dtype == np.uint16
    tifffile.imwrite(tmp_path / "n.tif", -np.arange(64, dtype=np.int32).reshape(8, 8))
    assert read_image(tmp_path / "n.tif").dtype == np.float32


def test_modes(mixed):
    rgb = read_image(mixed / "rgba.png")
    grey = read_image(mixed / "rgba.png", mode="grey")
    assert grey.shape == (H, W) and grey.dtype == np.uint8
    expect = np.asarray(Image.fromarray(rgb).convert("L")).astype(int)
    assert np.abs(grey.astype(int) - expect).max() <= 1
    g3 = read_image(mixed / "grey16.png", mode="rgb")
    assert g3.shape == (H, W, 3) and g3.dtype == np.uint16 and (g3[..., 2] == g3[..., 0]).all()
    assert read_image(mixed / "grey16.png", mode="grey").dtype == np.uint16
    with pytest.raises(ValueError, match="mode"):
        read_image(mixed / "grey8.png", mode="bgr")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_matches_pillow(orientation):
    a = np.random.default_rng(orientation).integers(0, 256, (5, 7), dtype=np.uint8)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.info["exif"] = exif.tobytes()
    expect = np.asarray(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(imageio._orient(a, orientation), expect)
    vol = np.stack([a, a + 1])
    np.testing.assert_array_equal(imageio._orient(vol, orientation, yaxis=1)[1], expect + 1)


# ------------------------------------------------------------------ bad files
@pytest.mark.parametrize("name", sorted(BAD_REASONS))
def test_bad_file_clear_error(mixed, name):
    path = next(mixed.rglob(name))
    with pytest.raises(ImageError) as info:
        read_image(path)
    msg = str(info.value)
    assert BAD_REASONS[name] in msg and "\n" not in msg and "Traceback" not in msg


def test_missing_and_directory(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="directory"):
        read_image(tmp_path)


def test_truncated_even_if_pillow_told_to_pad(mixed, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # as some libraries do
    with pytest.raises(ImageError, match="truncated"):
        read_image(mixed / "truncated.png")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored


# ------------------------------------------------------------------ size cap
def test_cap_checked_before_decoding(mixed):
    # huge.png holds a few bytes of pixel data: decoding it would say "truncated", not "too large"
    t = time.perf_counter()
    with pytest.raises(ImageError, match=r"too large: 20000x20000 = 400\.0 megapixels"):
        read_image(mixed / "huge.png")
    assert time.perf_counter() - t < 2.0
    with pytest.raises(ImageError, match="max_pixels=100"):
        read_image(mixed / "grey8.png", max_pixels=100)
    with pytest.raises(ImageError, match="too large"):
        read_image(mixed / "grey16_tiff.tif", max_pixels=100)
    assert read_image(mixed / "grey8.png", max_pixels=H * W).shape == (H, W)


def test_pillow_bomb_limit_lifted_up_to_cap(tmp_path):
    # 15000^2 = 225 MP: Pillow alone raises DecompressionBombError; under our cap it is decoded
    # (and this header-only file is then found truncated)
    assert 15000**2 > 2 * Image.MAX_IMAGE_PIXELS and 15000**2 < DEFAULT_MAX_PIXELS
    (tmp_path / "big.png").write_bytes(badfiles.png_header_only(15000, 15000))
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageError, match="truncated"):
        read_image(tmp_path / "big.png")
    assert Image.MAX_IMAGE_PIXELS == before


@pytest.mark.slow
def test_enormous_real_image(tmp_path):
    files = make_mixed_folder(tmp_path, big=True)
    big = [p for p in files["good"] if p.name == "enormous.png"][0]
    a = read_image(big)
    assert a.shape == (badfiles.ENORMOUS, badfiles.ENORMOUS) and a.dtype == np.uint8
    assert a.max() == 0
    del a
    with pytest.raises(ImageError, match="too large"):
        read_image(big, max_pixels=10**8)


# ------------------------------------------------------------------ writing
@pytest.mark.parametrize("dtype,shape", [(np.uint8, (H, W)), (np.uint16, (H, W)),
                                         (np.uint8, (H, W, 3)), (np.uint16, (H, W, 3)),
                                         (np.uint8, (H, W, 4)), (np.uint16, (H, W, 4))])
def test_write_png_roundtrip(tmp_path, dtype, shape):
    info = np.iinfo(dtype)
    a = np.random.default_rng(0).integers(0, info.max + 1, shape, dtype=dtype)
    write_png(tmp_path / "o" / "x.png", a)
    b = read_image(tmp_path / "o" / "x.png")
    np.testing.assert_array_equal(b, a[..., :3] if a.ndim == 3 else a)
    if a.ndim == 3 and shape[-1] == 4:  # alpha written too (read_image drops it)
        import cv2
        raw = cv2.imread(str(tmp_path / "o" / "x.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(raw[..., 3], a[..., 3])
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["x.png"]  # no temp file left


def test_write_png_bool_and_bad_input(tmp_path):
    write_png(tmp_path / "m.png", np.eye(4, dtype=bool))
    np.testing.assert_array_equal(read_image(tmp_path / "m.png"), np.eye(4, dtype=np.uint8) * 255)
    with pytest.raises(ValueError, match="uint8 or uint16"):
        write_png(tmp_path / "f.png", np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="shape"):
        write_png(tmp_path / "s.png", np.zeros((4, 4, 2), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png"]


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "x.png"
    real_save = Image.Image.save

    def half_save(self, fp, *a, **k):
        Path(fp).write_bytes(b"\x89PNG half")  # something lands on disk, then the write dies
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", half_save)
    with pytest.raises(OSError, match=r"No space left on device"):
        write_png(target, np.zeros((4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []
    # an existing file survives a failed overwrite untouched
    monkeypatch.setattr(Image.Image, "save", real_save)
    write_png(target, np.full((4, 4), 7, np.uint8))
    monkeypatch.setattr(Image.Image, "save", half_save)
    with pytest.raises(OSError, match=r"No space left on device"):
        write_png(target, np.zeros((4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == [target]
    assert (read_image(target) == 7).all()


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_atomic_write(tmp_path, exc):
    target = tmp_path / "a.json"
    with atomic_write(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".") and tmp.name.endswith(".tmp")
        tmp.write_text("{}")
        assert not target.exists()  # only appears once complete
    assert target.read_text() == "{}"
    with pytest.raises(exc):
        with atomic_write(target) as tmp:
            tmp.write_text('{"half"')
            raise exc()
    assert target.read_text() == "{}" and list(tmp_path.iterdir()) == [target]


# ------------------------------------------------------------------ normalize
def test_normalize():
    rng = np.random.default_rng(0)
    a = rng.integers(100, 4000, (32, 32), dtype=np.uint16)
    n = normalize(a, 1, 99)
    assert n.dtype == np.float32 and n.shape == a.shape
    assert abs(np.percentile(n, 1)) < 1e-5 and abs(np.percentile(n, 99) - 1) < 1e-5
    assert normalize(a, clip=True).min() >= 0 and normalize(a, clip=True).max() <= 1
    c = normalize(np.full((8, 8, 3), 77, np.uint8))
    assert np.isfinite(c).all() and (c == 0).all()
    sparse = np.zeros((100, 100), np.uint8)
    sparse[0, 0] = 200  # percentiles coincide: falls back to min/max
    s = normalize(sparse)
    assert s.max() == pytest.approx(1.0) and s.min() == 0
    rgb = np.stack([a, a // 2, a // 4], -1)
    shared, per = normalize(rgb), normalize(rgb, per_channel=True)
    assert shared[..., 2].max() < 0.5  # shared scale keeps the channel ratios
    assert all(abs(np.percentile(per[..., c], 99.8) - 1) < 1e-4 for c in range(3))
    f = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    f[0, 0] = np.nan
    assert np.isfinite(normalize(f)).all()


def test_to_rgb8_for_display():
    from restore.colour import to_rgb8

    grey16 = np.full((2, 3), 65535, np.uint16)
    assert to_rgb8(grey16).shape == (2, 3, 3) and to_rgb8(grey16).dtype == np.uint8 and to_rgb8(grey16).min() == 255
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    assert to_rgb8(rgba).shape == (2, 3, 3) and to_rgb8(rgba)[..., 0].min() == 200  # alpha dropped


def test_icc_profiles(tmp_path):
    """Non-sRGB profiles are converted (palette images too); sRGB ones change nothing, so a
    grey palette stays grey; where Pillow cannot apply one (16-bit), a note says so."""
    from PIL import ImageCms

    from restore.notes import collect_notes
    from tests.badfiles import ICC_SRGB, ICC_STORED, linear_rgb_icc

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    grey_pal = Image.fromarray((np.arange(12).reshape(3, 4) % 3).astype(np.uint8), "P")
    grey_pal.putpalette([0, 0, 0, 128, 128, 128, 255, 255, 255])
    grey_pal.save(tmp_path / "grey_pal_srgb.png", icc_profile=srgb)
    a = read_image(tmp_path / "grey_pal_srgb.png")
    assert a.ndim == 2 and a.dtype == np.uint8 and set(np.unique(a)) == {0, 128, 255}
    pal = Image.new("RGB", (4, 3), ICC_STORED).convert("P", palette=Image.Palette.ADAPTIVE)
    pal.save(tmp_path / "pal_linear.png", icc_profile=linear_rgb_icc())
    assert np.abs(read_image(tmp_path / "pal_linear.png").astype(int) - ICC_SRGB).max() <= 1
    Image.new("RGB", (4, 3), ICC_STORED).save(tmp_path / "rgb_srgb.png", icc_profile=srgb)
    np.testing.assert_array_equal(read_image(tmp_path / "rgb_srgb.png"), np.full((3, 4, 3), ICC_STORED, np.uint8))
    rgb16 = np.full((3, 4, 3), 30000, np.uint16)
    tifffile.imwrite(tmp_path / "rgb16_linear.tif", rgb16, photometric="rgb", iccprofile=linear_rgb_icc())
    with collect_notes() as notes:
        np.testing.assert_array_equal(read_image(tmp_path / "rgb16_linear.tif"), rgb16)
    assert notes == ["its ICC colour profile was not applied (uint16 colour)"]
