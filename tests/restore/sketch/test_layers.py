"""restore.sketch.layers: the sketch's lines and paper over the network's colours; --layers."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from restore.cli import main
from restore.sketch.colorizer import read_sketch
from restore.sketch.layers import compose, fill_hinted, flat, line_layer, paper, regions
from tests.gan.nets.test_colorizer import clipart
from tests.restore.sketch.test_sketch import tiny_model


def _ring(gap: int = 0) -> np.ndarray:
    """A 60x60 sketch: a square outline 3 px thick with a gap of ``gap`` px in its top side,
    and an anti-aliased grey fringe outside it."""
    s = np.ones((60, 60), np.float32)
    s[10:50, 10:50] = 0.7  # fringe
    s[11:49, 11:49] = 0.0  # ink
    s[14:46, 14:46] = 0.7  # fringe inside
    s[15:45, 15:45] = 1.0  # inside
    if gap:
        s[10:14, 30:30 + gap] = 1.0
    return s


def test_paper_is_outside_the_outline_only():
    p = paper(_ring())
    assert p[0, 0] and p[5, 30] and not p[30, 30] and not p[12, 12]
    # a gap of 2 px in the outline does not let the paper flood the figure
    p2 = paper(_ring(gap=2))
    assert p2[0, 0] and not p2[30, 30] and not p2[40, 40]


def test_compose_keeps_every_line_pixel_and_the_paper():
    s = _ring()
    tint = np.full((60, 60, 3), (200, 120, 40), np.uint8)  # the network tinted everything
    colours = flat(s, tint)
    assert np.array_equal(colours[0, 0], [255, 255, 255]) and np.array_equal(colours[30, 30], [200, 120, 40])
    assert np.array_equal(colours[12, 30], [200, 120, 40])  # under the line: the colour next to it
    out = compose(s, colours)
    ink = s < 0.5
    assert np.array_equal(out[ink], np.zeros((int(ink.sum()), 3), np.uint8))  # lines exactly as drawn
    assert np.array_equal(out[0, 0], [255, 255, 255]) and np.array_equal(out[30, 30], [200, 120, 40])
    assert np.allclose(out[14, 30], np.array([200, 120, 40]) * 0.7, atol=1)  # a fringe inside multiplies
    assert np.allclose(out[10, 30], 0.7 * 255, atol=1)  # the fringe outside is paper: the sketch's grey
    rgba = line_layer(s)
    assert rgba.shape == (60, 60, 4) and rgba[30, 30, 3] == 0 and rgba[20, 12, 3] == 255


def test_cli_layers_writes_flat_and_lines(tmp_path, capsys):
    weights = tiny_model(tmp_path / "c.safetensors")
    art = clipart(5, 64, 64)
    Image.fromarray(art).save(tmp_path / "art.png")
    argv = ["sketch", str(tmp_path / "art.png"), "--extract", "--style", str(tmp_path / "art.png"), "--layers",
            "--keep-paper",
            "-o", str(tmp_path / "out"), "--weights", str(weights), "--quiet"]
    assert main(argv) == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["art.png", "art_compare.png", "art_flat.png", "art_lines.png"]
    lines = np.asarray(Image.open(tmp_path / "out" / "art_lines.png"))
    assert lines.shape == (64, 64, 4)
    sketch = 1 - lines[..., 3].astype(np.float32) / 255
    result = np.asarray(Image.open(tmp_path / "out" / "art.png")).astype(np.float32) / 255
    ink = sketch < 0.5
    assert ink.any() and np.abs(result[ink] - sketch[ink, None]).max() <= 1 / 255 + 1e-6
    assert main(["sketch", str(tmp_path / "art.png"), "--extract", "--layers", "-o", str(tmp_path / "x")]) == 2
    assert "--layers needs --style" in capsys.readouterr().err


def test_colorizer_keeps_the_lines_of_a_drawn_sketch(tmp_path):
    from restore.sketch.colorizer import Colorizer

    s = _ring()
    Image.fromarray((s * 255).astype(np.uint8)).save(tmp_path / "s.png")
    c = Colorizer(weights=tiny_model(tmp_path / "c.safetensors"))
    red = np.zeros((20, 20, 3), np.uint8)
    red[..., 0] = 220
    sketch = read_sketch(tmp_path / "s.png")
    out, colours = c.layers(sketch, red, keep_paper=True)
    assert (out[sketch < 0.5] == 0).all() and (c(sketch, red, keep_paper=True) == out).all()
    assert (out[0, 0] == 255).all() and (colours[0, 0] == 255).all()
    plain, _ = c.layers(sketch, red)  # the default leaves the network's colour on the paper
    assert (plain[sketch < 0.5] == 0).all() and (plain == c(sketch, red)).all()
    raw = c(sketch, red, keep_lines=False)
    assert raw.shape == out.shape and not (raw == out).all()


def test_hint_strokes_paint_the_regions_they_touch():
    s = _ring()
    colours = np.full((60, 60, 3), (200, 120, 40), np.uint8)
    hints = np.zeros((60, 60, 4), np.float32)
    hints[30:32, 28:34] = (0, 0, 1, 1)  # a blue stroke inside the square
    hints[40:41, 40:43] = (1, 0, 0, 1)  # and a shorter red one: the most stroke pixels win
    hints[12, 30] = (0, 1, 0, 1)  # on the line: ignored
    out = fill_hinted(s, colours, hints)
    inside = s > 0.9
    inside[:10], inside[50:], inside[:, :10], inside[:, 50:] = False, False, False, False
    assert np.array_equal(np.unique(out[inside], axis=0), [[0, 0, 255]])
    assert np.array_equal(out[0, 0], [200, 120, 40])  # outside: untouched
    assert fill_hinted(s, colours, np.zeros((60, 60, 4), np.float32)) is colours
    hints[2:4, 2:4] = (0, 1, 0, 1)  # a stroke on the paper is left to the network
    assert np.array_equal(fill_hinted(s, colours, hints)[0, 0], [200, 120, 40])
    leaky = _ring(gap=2)  # a 2 px gap in the outline: the stroke inside still paints the inside only
    out = fill_hinted(leaky, colours, hints)
    assert np.array_equal(out[30, 30], [0, 0, 255]) and np.array_equal(out[0, 0], [200, 120, 40])
    # without closing, the inside is one piece with the paper, and the stroke is left to the network
    assert np.array_equal(fill_hinted(leaky, colours, hints, gap=0)[30, 30], [200, 120, 40])


def test_one_colour_per_region_is_the_median_and_the_regions_close_small_gaps():
    s = _ring(gap=2)
    labels, n = regions(s)
    assert labels[30, 30] != labels[0, 0] and labels[30, 30] > 0 and (labels[s < 0.5] == 0).all()
    assert ndi_label_count(s) == 1  # the plain pieces: inside and outside are one
    rng = np.random.default_rng(0)
    colours = np.full((60, 60, 3), (200, 120, 40), np.uint8)
    colours[15:45, 15:45] = (20, 200, 90)
    noisy = colours.copy()
    spots = rng.random((60, 60)) < 0.2
    noisy[spots] = rng.integers(0, 256, (int(spots.sum()), 3))  # a wash of stray colours
    out = flat(s, noisy, keep_paper=False, one_per_region=True)
    assert np.array_equal(out[30, 30], [20, 200, 90]) and np.array_equal(out[0, 0], [200, 120, 40])
    assert len(np.unique(out[s > 0.9].reshape(-1, 3), axis=0)) == 2
    assert not np.array_equal(flat(s, noisy, keep_paper=False)[spots & (s > 0.9)], out[spots & (s > 0.9)])


def test_auto_takes_one_colour_per_region_only_for_flat_references(tmp_path):
    """``one_per_region="auto"``: a flat-colour reference gives each region one colour, a shaded
    one (noise and gradients inside the figure, however wide its white margin) keeps the
    network's own colours; True and False force the choice."""
    from restore.sketch.colorizer import Colorizer
    from restore.sketch.extract import flat_share

    flat_ref = np.full((80, 80, 3), 255, np.uint8)
    flat_ref[30:50, 30:50] = (220, 40, 30)
    shaded = flat_ref.copy()
    shaded[30:50, 30:50] = np.random.default_rng(0).integers(0, 256, (20, 20, 3))
    assert flat_share(shaded) > 0.8 and flat_share(shaded, figure_only=True) < 0.1  # the margin hides it
    assert flat_share(flat_ref, figure_only=True) > 0.9 and flat_share(np.full((9, 9, 3), 255), True) == 1.0
    weights = tiny_model(tmp_path / "c.safetensors")
    auto = Colorizer(weights)
    assert auto.one_per_region == "auto" and auto.per_region(flat_ref) and not auto.per_region(shaded)
    assert Colorizer(weights, one_per_region=True).per_region(shaded)
    assert not Colorizer(weights, one_per_region=False).per_region(flat_ref)
    s = _ring()
    out_flat = auto.layers(s, flat_ref)[1]
    assert len(np.unique(out_flat[15:45, 15:45].reshape(-1, 3), axis=0)) == 1  # the inside, one colour
    assert np.array_equal(auto.layers(s, shaded)[1], Colorizer(weights, one_per_region=False).layers(s, shaded)[1])
    with pytest.raises(ValueError, match="one_per_region"):
        Colorizer(weights, one_per_region="yes")
    with pytest.raises(ValueError, match="one_per_region"):  # the per-call choice is checked too
        auto.layers(s, flat_ref, one_per_region="yes")


def ndi_label_count(s: np.ndarray) -> int:
    from scipy import ndimage

    return ndimage.label(s >= 0.5)[1]


def test_editor_strokes_become_hints():
    from restore.apps.drawn import canvas, editor_hints

    s = _ring()
    value = canvas(s)
    assert editor_hints(value, s.shape, s) is None  # nothing drawn
    layer = np.zeros((60, 60, 4), np.uint8)
    layer[30:33, 30:33] = (30, 60, 230, 255)
    hints = editor_hints({**value, "layers": [layer]}, s.shape, s)
    assert hints[31, 31, 3] == 1 and hints[0, 0, 3] == 0
    assert np.allclose(hints[31, 31, :3], np.array([30, 60, 230]) / 255)
    flat_only = value["composite"].copy()  # an editor that flattened the strokes into the picture
    flat_only[30:33, 30:33] = (30, 60, 230)
    hints = editor_hints({"background": value["background"], "layers": [], "composite": flat_only}, (120, 120), s)
    assert hints.shape == (120, 120, 4) and hints[62, 62, 3] == 1 and hints[0, 0, 3] == 0
