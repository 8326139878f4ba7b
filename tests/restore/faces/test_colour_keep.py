"""restore.faces.colour_keep: a restored face given a colour cast comes back to the input's
colours (CIEDE2000 of the low-passed faces drops many times) with the restorer's detail kept;
equal faces unchanged, grey faces grey; the coarse-grid low band is CodeFormer's filter."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from scipy import ndimage
from skimage.color import deltaE_ciede2000, lab2rgb, rgb2lab

from restore.faces.colour_keep import (
    _levels,
    _low,
    _low_band,
    colour_difference,
    keep_colours,
)

FACE = skimage.data.astronaut()  # 512 x 512, a face in it


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ [0.299, 0.587, 0.114]


def high_pass(rgb: np.ndarray) -> np.ndarray:
    y = luma(rgb)
    return y - ndimage.gaussian_filter(y, 3)


@pytest.fixture(scope="module")
def pair():
    """(restored, source): the source is the degraded input (blurred, noisy); the 'restored'
    face has detail of its own (an unsharp mask of the clean face)."""
    f = FACE.astype(np.float64)
    source = to_uint8(ndimage.gaussian_filter(f, (2, 2, 0)) + np.random.default_rng(0).normal(0, 6, f.shape))
    restored = to_uint8(f + 0.8 * (f - ndimage.gaussian_filter(f, (1.5, 1.5, 0))))
    return restored, source


def casts():
    lab = rgb2lab(FACE)
    chroma = lab + [0, 9, -12]  # a hue / white-balance shift at constant L
    return {"red+20": lambda x: to_uint8(x.astype(np.float64) + [20, 0, 0]),
            "blue tint": lambda x: to_uint8(x.astype(np.float64) * [0.85, 0.95, 1.15] + [0, 0, 10]),
            "chroma": lambda x: to_uint8(x.astype(np.float64) + 255 * lab2rgb(chroma) - FACE)}


@pytest.mark.parametrize("method", ["wavelet", "lab"])
@pytest.mark.parametrize("cast", list(casts()))
def test_cast_goes_back_detail_stays(pair, cast, method):
    restored, source = pair
    tinted = casts()[cast](restored)
    out = keep_colours(tinted, source, method=method)
    before, after = colour_difference(tinted, source), colour_difference(out, source)
    assert before > 4
    if method == "wavelet" or cast == "chroma":  # "lab" moves a and b only: a cast in L stays
        assert after < before / 8, (before, after)
    else:
        assert after < before * 0.6, (before, after)
    # the restorer's detail (not the source's): luma's high band nearly unchanged
    hp_out, hp_in, hp_src = high_pass(out), high_pass(tinted), high_pass(source)
    change = np.linalg.norm(hp_out - hp_in) / np.linalg.norm(hp_in)
    assert change < (0.02 if method == "wavelet" else 0.06), change
    assert np.linalg.norm(hp_out - hp_src) > 5 * np.linalg.norm(hp_out - hp_in)


@pytest.mark.parametrize("method", ["wavelet", "lab"])
def test_equal_faces_come_back_unchanged(method):
    assert np.array_equal(keep_colours(FACE, FACE, method=method), FACE)
    mask = np.zeros(FACE.shape[:2], np.float32)
    mask[100:400, 120:380] = 1
    assert np.array_equal(keep_colours(FACE, FACE, mask, method=method), FACE)


@pytest.mark.parametrize("method", ["wavelet", "lab"])
def test_grey_faces_stay_grey(pair, method):
    restored, source = (np.repeat(luma(x).round().astype(np.uint8)[..., None], 3, 2) for x in pair)
    out = keep_colours(restored, source, method=method)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert colour_difference(out, source) < colour_difference(restored, source) or method == "lab"


@pytest.mark.parametrize("method", ["wavelet", "lab"])
def test_mask_limits_the_change(pair, method):
    restored, source = pair
    tinted = casts()["chroma"](restored)
    mask = np.zeros(FACE.shape[:2], np.float32)
    mask[:, 256:] = 1  # a hard edge: blurred before use, no seam
    out = keep_colours(tinted, source, mask, method=method)
    assert np.abs(out[:, :200].astype(int) - tinted[:, :200]).max() <= 1  # outside: the restored face
    inside = np.zeros_like(mask)
    inside[:, 320:] = 1
    assert colour_difference(out, source, mask=inside) < colour_difference(tinted, source, mask=inside) / 5
    # no seam: across the mask's edge the change steps no more than the unmasked change does
    # there (a hard edge would step by the whole correction, 25-35 levels here)
    def steps(x):
        return np.abs(np.diff(x[:, 240:272].astype(int) - tinted[:, 240:272], axis=1)).max()

    assert steps(out) <= steps(keep_colours(tinted, source, method=method)) + 2


def test_low_band_on_the_coarse_grid_is_codeformer_s(pair):
    """The 4x coarser evaluation is within a level (0..255) of the full-resolution a-trous
    filter, on a real difference (degraded input minus a sharpened face, with a cast), but for
    the crop's outer 32 px: there the replicated edge is one pixel at full resolution, four
    averaged on the coarse grid (both conventions; measured 0.6 inside, 6 at the very edge)."""
    restored, source = pair
    diff = source.astype(np.float32) - casts()["blue tint"](restored).astype(np.float32)
    error = np.abs(_low_band(diff) - _low(diff, _levels(512)))
    assert error[32:-32, 32:-32].max() < 1.0
    assert error.max() < 8
    assert error.mean() < 0.1
    assert _levels(512) == 5 and _levels(256) == 4 and _levels(1024) == 6


def test_colour_difference_is_the_issue_s_measure():
    """Mean CIEDE2000 of the Gaussian-low-passed faces; the coarse-grid evaluation agrees with
    blurring at full resolution and converting every pixel."""
    tinted = casts()["blue tint"](FACE)
    s = 0.025 * 512
    direct = deltaE_ciede2000(*(rgb2lab(np.clip(ndimage.gaussian_filter(x / 255.0, (s, s, 0), mode="nearest"), 0, 1))
                                for x in (tinted.astype(np.float64), FACE.astype(np.float64)))).mean()
    assert colour_difference(tinted, FACE) == pytest.approx(direct, rel=0.02)
    assert colour_difference(FACE, FACE) == 0
    assert colour_difference(tinted, FACE) == pytest.approx(colour_difference(FACE, tinted), rel=1e-6)
    half = np.zeros(FACE.shape[:2])
    half[:, :256] = 1
    assert colour_difference(tinted, FACE, mask=half) != colour_difference(tinted, FACE)


def test_inputs_are_checked():
    with pytest.raises(ValueError, match="same size"):
        keep_colours(FACE, FACE[:256, :256])
    with pytest.raises(ValueError, match="method"):
        keep_colours(FACE, FACE, method="hsv")
    with pytest.raises(ValueError, match="mask"):
        keep_colours(FACE, FACE, np.ones((10, 10)))
    with pytest.raises(ValueError, match="uint8"):
        keep_colours(FACE.astype(np.float32), FACE)


def test_small_and_odd_sizes():
    face = np.ascontiguousarray(FACE[100:197, 150:247])  # 97 x 97
    tinted = casts()["red+20"](face)
    for method in ("wavelet", "lab"):
        out = keep_colours(tinted, face, method=method)
        assert out.shape == face.shape and out.dtype == np.uint8
        assert colour_difference(out, face) < colour_difference(tinted, face)
