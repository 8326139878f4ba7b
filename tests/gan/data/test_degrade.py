"""GFP-GAN degradation model (gan.data.degrade): determinism, stages, mixtures, presets."""
from __future__ import annotations

import random
from dataclasses import replace

import cv2
import numpy as np
import pytest
from skimage import data

from gan.data.degrade import (DEGRADE_PRESETS, GFPGAN, MILD, Degradation, DegradeConfig, config_from_dict,
                              config_to_dict, degrade, jpeg, make_kernel, sample_params)
from tests import ROOT

OFF = DegradeConfig(blur_sigma=None, downsample_range=None, noise_range=None, jpeg_range=None,
                    color_jitter_prob=0.0, gray_prob=0.0)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real 64x64 RGB photo (skimage's bundled astronaut), float32 in [0, 1]."""
    img = cv2.resize(data.astronaut(), (64, 64), interpolation=cv2.INTER_AREA)
    return img.astype(np.float32) / 255.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.mark.parametrize("preset", sorted(DEGRADE_PRESETS))
def test_same_seed_same_output_and_shape_dtype_range(photo, preset):
    deg = Degradation(preset)
    a, b = deg(photo, 123), deg(photo, 123)
    assert np.array_equal(a, b)
    assert np.array_equal(deg(photo, (7, 3)), deg(photo, np.random.default_rng((7, 3))))
    assert a.shape == photo.shape and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert np.allclose(a * 255, np.round(a * 255), atol=1e-4)  # rounded to 8 bits, as GFP-GAN does
    if preset == "none":  # untouched, except the rounding to 8 bits
        assert np.array_equal(a, np.round(photo * 255) / 255)
    else:
        assert not np.array_equal(a, deg(photo, 124))
        assert not np.array_equal(deg(photo, (7, 3)), deg(photo, (7, 4)))
    out, params = deg.sample(photo, 123)
    assert np.array_equal(out, a) and params["component"] in range(len(deg.configs))


def test_odd_and_tiny_sizes(photo):
    for shape in [(37, 53), (5, 9)]:
        out = Degradation("gfpgan")(photo[: shape[0], : shape[1]], 0)
        assert out.shape == (*shape, 3)


def test_global_random_state_untouched(photo):
    # basicsr's random_* helpers would consume np.random / random: we must not
    np.random.seed(5)
    random.seed(5)
    expected = (np.random.rand(), random.random())
    np.random.seed(5)
    random.seed(5)
    Degradation("mixed")(photo, 0)
    assert (np.random.rand(), random.random()) == expected


def test_all_stages_off_is_identity(photo):
    out = degrade(photo, OFF, np.random.default_rng(0))
    assert np.array_equal(out, np.round(photo * 255) / 255)


@pytest.mark.parametrize("stage", [
    dict(blur_sigma=(2.0, 3.0)), dict(downsample_range=(3.0, 4.0)), dict(noise_range=(10.0, 20.0)),
    dict(jpeg_range=(20.0, 30.0)), dict(color_jitter_prob=1.0), dict(gray_prob=1.0)])
def test_each_stage_alone_changes_the_image(photo, stage):
    out = degrade(photo, replace(OFF, **stage), np.random.default_rng(1))
    assert psnr(out, photo) < 40


def test_disabling_a_stage_keeps_the_other_draws():
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    full = sample_params(GFPGAN, rng_a)
    no_noise = sample_params(replace(GFPGAN, noise_range=None), rng_b)
    assert "noise" in full and "noise" not in no_noise
    assert full["blur"] == no_noise["blur"] and full["scale"] == no_noise["scale"]
    assert full["jpeg_quality"] == no_noise["jpeg_quality"]
    off = sample_params(OFF, np.random.default_rng(3))
    assert set(off) == {"gray"} and off["gray"] is False


def test_noise_stage_has_the_drawn_sigma():
    flat = np.full((128, 128, 3), 0.5, np.float32)
    cfg = replace(OFF, noise_range=(10.0, 10.0))
    out = degrade(flat, cfg, np.random.default_rng(0))
    assert abs((out - 0.5).std() * 255 - 10.0) < 0.5


def test_blur_reduces_detail_and_kernel_is_normalised(photo):
    cfg = replace(OFF, blur_sigma=(3.0, 3.0))
    out = degrade(photo, cfg, np.random.default_rng(0))
    lap = lambda x: np.abs(cv2.Laplacian(x, cv2.CV_32F)).mean()  # noqa: E731
    assert lap(out) < 0.5 * lap(photo)
    for kind in ("iso", "aniso", "generalized_aniso", "plateau_iso"):
        k = make_kernel(21, {"kernel": kind, "sigma_x": 2.0, "sigma_y": 0.5, "theta": 0.3, "beta": 1.5})
        assert k.shape == (21, 21) and abs(k.sum() - 1) < 1e-5
    iso = make_kernel(21, {"kernel": "iso", "sigma_x": 2.0, "sigma_y": 0.5, "theta": 0.3, "beta": 1.5})
    assert np.allclose(iso, iso.T, atol=1e-7)  # isotropic: sigma_y and theta ignored


def test_downsample_loses_resolution(photo):
    out = degrade(photo, replace(OFF, downsample_range=(4.0, 4.0)), np.random.default_rng(0))
    small = cv2.resize(photo, (16, 16), interpolation=cv2.INTER_LINEAR)
    back = cv2.resize(small, (64, 64), interpolation=cv2.INTER_LINEAR)
    assert np.abs(out - np.round(back * 255) / 255).max() < 1e-6


def test_jpeg_is_done_in_bgr_like_basicsr(photo):
    from basicsr.data.degradations import add_jpg_compression
    ours = jpeg(photo, 50)
    ref = add_jpg_compression(np.ascontiguousarray(photo[..., ::-1]), 50)[..., ::-1]
    assert np.array_equal(ours, ref)
    wrong_order = add_jpg_compression(photo, 50)  # RGB fed as BGR: different chroma
    assert not np.array_equal(ours, wrong_order)


def test_color_jitter_is_a_per_channel_shift():
    flat = np.full((32, 32, 3), 0.5, np.float32)
    out = degrade(flat, replace(OFF, color_jitter_prob=1.0, color_jitter_shift=20.0), np.random.default_rng(2))
    shift = (out - 0.5).reshape(-1, 3)
    assert np.allclose(shift, shift[0], atol=1e-6)  # the same shift everywhere
    assert np.abs(shift[0]).max() <= 20.5 / 255 and np.abs(shift[0]).max() > 0


def test_gray_prob_one_gives_equal_channels(photo):
    out = Degradation(replace(GFPGAN, gray_prob=1.0))(photo, 0)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    assert not np.array_equal(photo[..., 0], photo[..., 1])


def test_mixture_weights_are_honoured(photo):
    deg = Degradation([(OFF, 3.0), (replace(OFF, gray_prob=1.0), 1.0)])
    assert np.allclose(deg.weights, [0.75, 0.25])
    rng = np.random.default_rng(0)
    picks = np.array([deg.choose(rng) for _ in range(4000)])
    assert abs(picks.mean() - 0.25) < 0.03
    # the chosen component is the one applied: the grey one about a quarter of the time
    grey = [np.array_equal((o := deg(photo, s))[..., 0], o[..., 2]) for s in range(200)]
    assert 0.15 < np.mean(grey) < 0.35
    only_first = Degradation([(OFF, 1.0), (replace(OFF, gray_prob=1.0), 0.0)])
    assert all(only_first.choose(rng) == 0 for _ in range(200))


def test_mild_is_milder_than_gfpgan(photo):
    mild = np.mean([psnr(Degradation("mild")(photo, s), photo) for s in range(8)])
    heavy = np.mean([psnr(Degradation("gfpgan")(photo, s), photo) for s in range(8)])
    assert mild > heavy + 2.0


def test_presets_and_gfpgan_ranges():
    assert DEGRADE_PRESETS["gfpgan"] == GFPGAN and DEGRADE_PRESETS["mild"] == MILD
    assert (GFPGAN.blur_kernel_size, GFPGAN.blur_sigma, GFPGAN.downsample_range) == (41, (0.1, 10.0), (0.8, 8.0))
    assert (GFPGAN.noise_range, GFPGAN.jpeg_range) == ((0.0, 20.0), (60.0, 100.0))
    assert (GFPGAN.color_jitter_prob, GFPGAN.color_jitter_shift, GFPGAN.gray_prob) == (0.3, 20.0, 0.01)
    weights = dict((c, w) for c, w in DEGRADE_PRESETS["mixed"])
    assert set(weights) == {MILD, GFPGAN} and weights[MILD] > weights[GFPGAN]


def test_config_validation_and_round_trip(photo):
    with pytest.raises(ValueError, match=r"blur_kernel_size must be odd, got 40"):
        DegradeConfig(blur_kernel_size=40)
    with pytest.raises(ValueError, match=r"unknown kernel type\(s\) \['box'\]"):
        DegradeConfig(kernel_list=("iso", "box"), kernel_prob=(0.5, 0.5))
    with pytest.raises(ValueError, match=r"noise_range must be \(low, high\) with low <= high"):
        DegradeConfig(noise_range=(5.0, 1.0))
    with pytest.raises(ValueError, match=r"unknown degradation preset 'nonexistent'"):
        Degradation("nonexistent")
    cfg = DegradeConfig(kernel_list=["iso"], kernel_prob=[1.0], blur_sigma=[0.5, 1.0])  # lists from JSON
    assert cfg.kernel_list == ("iso",) and hash(cfg)
    assert config_from_dict(config_to_dict(GFPGAN)) == GFPGAN
    deg = Degradation("mixed")
    again = Degradation.from_dict(deg.to_dict())
    assert np.array_equal(deg(photo, 9), again(photo, 9))
    with pytest.raises(ValueError, match=r"expected an HxWx3 RGB image, got shape \(64, 64\)"):
        deg(photo[..., 0], 0)


# --- scripts/baseline_restore.py and scripts/fetch_photos.py (pure parts; no download) ---------

def _load(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def baseline():
    return _load("baseline_restore")


def test_degraded_test_pair_is_seeded_by_file_name(baseline, photo, tmp_path):
    from PIL import Image

    u8 = np.round(photo * 255).astype(np.uint8)
    for sub, name in [("a", "x.png"), ("b", "x.png"), ("b", "y.png")]:
        (tmp_path / sub).mkdir(exist_ok=True)
        Image.fromarray(u8).save(tmp_path / sub / name)
    d1, clean = baseline.degraded_test_pair(tmp_path / "a/x.png", "gfpgan", 0)
    d2, _ = baseline.degraded_test_pair(tmp_path / "b/x.png", "gfpgan", 0)
    d3, _ = baseline.degraded_test_pair(tmp_path / "b/y.png", "gfpgan", 0)
    d4, _ = baseline.degraded_test_pair(tmp_path / "a/x.png", "gfpgan", 1)
    assert np.array_equal(clean, u8 / np.float32(255)) and clean.dtype == np.float32
    assert np.array_equal(d1, d2) and not np.array_equal(d1, d3) and not np.array_equal(d1, d4)


def test_classical_baseline_beats_a_noisy_input(baseline):
    photo = cv2.resize(data.coffee(), (128, 128), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    rng = np.random.default_rng(0)
    noisy = np.clip(photo + rng.standard_normal(photo.shape, dtype=np.float32) * 15 / 255, 0, 1)
    assert abs(baseline.estimate_noise(noisy) - 15) < 3
    out = baseline.classical_baseline(noisy)
    assert out.shape == photo.shape and out.dtype == np.float32
    p_in, s_in = baseline.psnr_ssim(noisy, photo)
    p_out, s_out = baseline.psnr_ssim(out, photo)
    assert p_out > p_in + 1.0 and s_out > s_in


def test_psnr_ssim_matches_the_definition(baseline, photo):
    other = np.clip(photo + 4 / 255, 0, 1)
    p, s = baseline.psnr_ssim(other, photo)
    mse = np.mean((other.astype(np.float64) * 255 - photo.astype(np.float64) * 255) ** 2)
    assert abs(p - 10 * np.log10(255**2 / mse)) < 1e-6  # basicsr compares on the 0-255 scale
    assert 0.9 < s < 1.0
    assert baseline.psnr_ssim(photo, photo)[1] == pytest.approx(1.0)


def test_fetch_photos_helpers(tmp_path):
    import io

    from PIL import Image

    fetch = _load("fetch_photos")
    fetch.check_split(set(fetch.TEST) | {n for g in fetch.GROUPS for n in g})  # lists are consistent
    buf = io.BytesIO()
    Image.new("RGBA", (2000, 1000), (255, 0, 0, 0)).save(buf, "PNG")  # transparent: white after
    meta = fetch.to_png(buf.getvalue(), tmp_path / "a.png", 1024)
    assert meta == {"source_size": [2000, 1000], "size": [1024, 512]}
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode == "RGB" and im.getpixel((10, 10)) == (255, 255, 255)
    paras = fetch.dep5_licences("Files: *\nLicense: GPL-2+\n\nFiles: 16.04/a.jpg\n b.jpg\nCopyright: X\n"
                                "License: CC0-1.0\n\nFiles: debian/*\nLicense: Expat\n")
    assert fetch.licence_of("usr/share/backgrounds/b.jpg", paras) == "CC0-1.0 (X)"
    assert fetch.licence_of("usr/share/backgrounds/c.jpg", paras) == "GPL-2+"


def test_old_photo_mixture_leaves_some_photos_untouched():
    from gan.data.degrade import NONE

    rng = np.random.default_rng(0)
    clean = (np.round(rng.random((48, 48, 3)) * 255) / 255).astype(np.float32)
    assert np.abs(Degradation(NONE)(clean, 1) - clean).max() < 1e-6
    d = Degradation("old-photo")
    changes = [np.abs(d(clean, (7, i)) - clean).mean() for i in range(60)]
    untouched = sum(c < 1e-6 for c in changes)
    assert 1 <= untouched <= 15  # about 10% of 60


def test_jpeg_preset_only_compresses(photo):
    out, params = Degradation("jpeg").sample(photo, 3)
    assert not {"blur", "scale", "noise", "color_jitter"} & set(params) and not params["gray"]
    assert 30 <= params["jpeg_quality"] <= 90
    ref = jpeg(photo, params["jpeg_quality"])
    assert np.abs(out - ref).max() <= 1 / 255 + 1e-6  # the same JPEG round trip, nothing else
    weights = dict((c, w) for c, w in DEGRADE_PRESETS["photo"])
    assert set(weights) >= {MILD, GFPGAN, DEGRADE_PRESETS["jpeg"]} and abs(sum(weights.values()) - 1) < 1e-9


def test_mixed_jpeg_preset_has_no_untouched_share():
    """'mixed-jpeg' is 'photo' without the untouched photos that taught a net to leave real ones alone."""
    weights = dict((c, w) for c, w in DEGRADE_PRESETS["mixed-jpeg"])
    assert set(weights) == {MILD, GFPGAN, DEGRADE_PRESETS["jpeg"]} and abs(sum(weights.values()) - 1) < 1e-9
    assert DEGRADE_PRESETS["none"] not in weights and weights[DEGRADE_PRESETS["jpeg"]] == 0.1
