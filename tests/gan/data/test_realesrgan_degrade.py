"""Real-ESRGAN's second-order degradation (gan.data.realesrgan): shapes, range, determinism, each
stage changing the picture, the noise and sharpening against basicsr's own functions, and the
drawn parameters following Real-ESRGAN's default probabilities."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from skimage import data

import gan  # noqa: F401  (the torchvision shim, before basicsr)
from gan.data.realesrgan import (KERNELS, REALESRGAN, SecondOrderConfig, SecondOrderDegradation, apply_params, blur,
                                 draw_kernel, gaussian_noise, jpeg, poisson_noise, resize, sample_params, usm_sharpen)


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """A 64 x 64 crop of a real photo (skimage's astronaut), (1, 3, H, W) in [0, 1]."""
    img = data.astronaut()[100:164, 180:244].astype(np.float32) / 255
    return torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()


@pytest.mark.parametrize("scale", [2, 4])
def test_shape_range_and_determinism(photo, scale):
    deg = SecondOrderDegradation(scale=scale)
    outs = [deg(photo, (7, i)) for i in range(6)]
    for lq in outs:
        assert lq.shape == (1, 3, 64 // scale, 64 // scale) and lq.dtype == torch.float32
        assert lq.min() >= 0 and lq.max() <= 1
        assert torch.equal(lq * 255, (lq * 255).round())  # 8-bit values, as Real-ESRGAN rounds
    assert all(torch.equal(deg(photo, (7, i)), outs[i]) for i in range(6))  # the seed alone decides
    assert len({o.numpy().tobytes() for o in outs}) == 6  # and different seeds differ
    # a tiny crop (the strongest downscale leaves a few pixels) still works
    assert deg(photo[..., :32, :32], (1,)).shape == (1, 3, 32 // scale, 32 // scale)


def test_each_stage_changes_the_picture(photo):
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    kernel, _ = draw_kernel(np.random.default_rng(0), ("aniso",), (1.0,), 0.0, (1.0, 3.0), (0.5, 4), (1, 2))
    sinc, info = draw_kernel(np.random.default_rng(0), KERNELS, (1,) * 6, 1.0, (1.0, 3.0), (0.5, 4), (1, 2))
    assert info["kernel"] == "sinc"
    stages = {
        "blur": blur(photo, kernel), "sinc": blur(photo, sinc), "usm": usm_sharpen(photo),
        "gaussian": gaussian_noise(photo, 10, False, g()), "gaussian grey": gaussian_noise(photo, 10, True, g()),
        "poisson": poisson_noise(photo, 1.0, False, g()), "poisson grey": poisson_noise(photo, 1.0, True, g()),
        "jpeg": jpeg(photo, 30),
    }
    for name, out in stages.items():
        assert out.shape == photo.shape, name
        assert float((out - photo).abs().mean()) > 1e-3, f"{name} left the picture as it was"
    grey = stages["gaussian grey"] - photo  # grey noise: the same on every channel (where unclipped)
    inside = (stages["gaussian grey"] > 0).all(1) & (stages["gaussian grey"] < 1).all(1)
    assert torch.allclose(grey[:, 0][inside], grey[:, 1][inside], atol=1e-6)
    assert resize(photo, "bicubic", scale=0.5).shape[-2:] == (32, 32)
    assert resize(photo, "area", size=(10, 7)).shape[-2:] == (10, 7)
    # in the whole pipeline: the second blur, the final sinc and the final order each matter
    p = sample_params(REALESRGAN, np.random.default_rng(3))
    base = apply_params(photo, {**p, "second_blur": True, "sinc": sinc, "sinc_first": True}, 2)
    for change in ({"second_blur": False}, {"sinc": None}, {"sinc_first": False}, {"jpeg2": 90.0},
                   {"noise_seed": p["noise_seed"] + 1}, {"kernel1": kernel}):
        other = apply_params(photo, {**p, "second_blur": True, "sinc": sinc, "sinc_first": True, **change}, 2)
        assert not torch.equal(other, base), change


@pytest.mark.parametrize("gray", [False, True])
def test_noise_equals_basicsr_with_the_same_random_state(photo, gray):
    from basicsr.data.degradations import generate_gaussian_noise_pt, generate_poisson_noise_pt

    flag = torch.tensor([1.0 if gray else 0.0])
    torch.manual_seed(5)
    want = torch.clamp(photo + generate_gaussian_noise_pt(photo, torch.tensor([12.5]), flag), 0, 1)
    assert torch.equal(gaussian_noise(photo, 12.5, gray, torch.Generator().manual_seed(5)), want)
    torch.manual_seed(6)
    want = torch.clamp(photo + generate_poisson_noise_pt(photo, torch.tensor([2.0]), flag), 0, 1)
    assert torch.equal(poisson_noise(photo, 2.0, gray, torch.Generator().manual_seed(6)), want)


def test_jpeg_usm_and_blur_are_basicsrs(photo):
    from basicsr.utils.diffjpeg import DiffJPEG
    from basicsr.utils.img_process_util import USMSharp

    assert torch.equal(jpeg(photo, 42.5), DiffJPEG(differentiable=False)(photo, quality=torch.tensor([42.5])))
    from basicsr.utils.img_process_util import filter2D

    want, got = USMSharp()(photo), usm_sharpen(photo)  # separable here: float rounding apart
    assert float((want - got).abs().max()) < 1e-3 and float((want - got).abs().mean()) < 1e-5
    for seed in range(4):  # every kind of kernel, through cv2 here
        kernel, _ = draw_kernel(np.random.default_rng(seed), KERNELS, (1,) * 6, 0.3, (0.2, 3), (0.5, 4), (1, 2))
        want = filter2D(photo, torch.from_numpy(kernel)[None])
        assert float((blur(photo, kernel) - want).abs().max()) < 1e-5


def test_draws_follow_real_esrgans_probabilities():
    rng = np.random.default_rng(0)
    draws = [sample_params(REALESRGAN, rng) for _ in range(600)]
    n = len(draws)

    def share(pred) -> float:
        return sum(map(pred, draws)) / n

    assert abs(share(lambda p: p["blur1"]["kernel"] == "sinc") - 0.1) < 0.04
    assert abs(share(lambda p: p["second_blur"]) - 0.8) < 0.05
    assert abs(share(lambda p: p["sinc"] is not None) - 0.8) < 0.05
    assert abs(share(lambda p: p["noise1"]["type"] == "gaussian") - 0.5) < 0.06
    assert abs(share(lambda p: p["noise2"]["gray"]) - 0.4) < 0.06
    assert abs(share(lambda p: p["sinc_first"]) - 0.5) < 0.06
    up = share(lambda p: p["resize1"][0] > 1)
    keep = share(lambda p: p["resize1"][0] == 1)
    assert abs(up - 0.2) < 0.05 and abs(keep - 0.1) < 0.04
    assert all(0.15 <= p["resize1"][0] <= 1.5 and 0.3 <= p["resize2"][0] <= 1.2 for p in draws)
    assert all(30 <= p["jpeg1"] <= 95 and 30 <= p["jpeg2"] <= 95 for p in draws)
    kinds = Counter(p["blur1"]["kernel"] for p in draws if p["blur1"]["kernel"] != "sinc")
    total = sum(kinds.values())
    assert abs(kinds["iso"] / total - 0.45) < 0.06 and abs(kinds["aniso"] / total - 0.25) < 0.06
    for p in draws[:50]:
        for k in ("kernel1", "kernel2"):
            assert p[k].shape == (21, 21) and math.isclose(float(p[k].sum()), 1.0, abs_tol=1e-4)
        b = p["blur1"]
        if b["kernel"] != "sinc":
            assert 0.2 <= b["sigma_x"] <= 3 and b["size"] in range(7, 22, 2)


def test_config_round_trips_and_refuses_unknown_kernels():
    assert SecondOrderConfig(**REALESRGAN.to_dict()) == REALESRGAN
    with pytest.raises(ValueError, match="kernel lists"):
        SecondOrderConfig(kernel_list=("box",), kernel_prob=(1.0,))
