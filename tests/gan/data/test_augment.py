"""Paired augmentation: alignment of image and masks, reproducibility, crops, 3D, elastic."""
from __future__ import annotations

import math

import pytest
import torch

from gan.data.augment import AugmentConfig, PairedAugment, elastic_displacement, gaussian_blur

NO_INTENSITY = dict(noise_prob=0.0, blur_prob=0.0, brightness_prob=0.0, contrast_prob=0.0)
ALL_GEOMETRY = AugmentConfig(crop=48, fg_crop_prob=1.0, zoom=(0.5, 2.0), flip=True,
                             rotate90=True, rotate=30.0, elastic_prob=1.0, **NO_INTENSITY)
IDENTITY = AugmentConfig(crop=None, zoom=None, flip=False, rotate90=False, elastic_prob=0.0,
                         **NO_INTENSITY)


def blobs(shape: tuple[int, ...], centres, radius: float) -> torch.Tensor:
    """Instance mask of balls (labels 1..n)."""
    grids = torch.meshgrid(*[torch.arange(n, dtype=torch.float32) for n in shape], indexing="ij")
    mask = torch.zeros(shape, dtype=torch.int64)
    for k, c in enumerate(centres, start=1):
        d2 = sum((g - ci) ** 2 for g, ci in zip(grids, c))
        mask[d2 < radius**2] = k
    return mask


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("dims", [2, 3])
def test_image_and_mask_stay_aligned(dims: int) -> None:
    if dims == 2:
        shape, centres, cfg = (96, 96), [(30, 30), (60, 70), (20, 75)], ALL_GEOMETRY
    else:
        shape, centres = (24, 48, 48), [(12, 15, 15), (10, 32, 30)]
        cfg = AugmentConfig(crop=(16, 32, 32), fg_crop_prob=1.0, zoom=(0.7, 1.5), rotate=30.0,
                            elastic_prob=1.0, elastic_sigma=3.0, **NO_INTENSITY)
    mask = blobs(shape, centres, radius=12 if dims == 2 else 8)
    image = (mask > 0).float().unsqueeze(0)
    aug = PairedAugment(cfg, dims=dims)
    agree = []
    for seed in range(8):
        out_img, out_mask = aug(image, mask, gen(seed))
        assert out_mask.dtype == torch.int64
        assert set(out_mask.unique().tolist()) <= set(mask.unique().tolist())
        fg = out_mask > 0
        assert 0 < fg.float().mean() < 1  # the fg-centred crop shows both classes
        agree.append(((out_img[0] > 0.5) == fg).float().mean().item())
    # bilinear vs nearest differ only on boundary pixels; a half-pixel shift between image
    # and mask already brings the mean down to ~0.98
    assert sum(agree) / len(agree) > 0.99 and min(agree) > 0.98, agree


def test_same_seed_same_output_and_seeds_differ() -> None:
    mask = blobs((64, 64), [(20, 20), (40, 45)], 8)
    image = torch.rand(1, 64, 64, generator=gen(1))
    aug = PairedAugment(AugmentConfig(crop=32, rotate=20.0, elastic_prob=1.0, noise_prob=1.0,
                                      blur_prob=1.0))
    a = aug(image, mask, gen(7))
    b = aug(image, mask, gen(7))
    c = aug(image, mask, gen(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize("crop, expected", [(40, (40, 40)), ((24, 56), (24, 56)),
                                            (None, (50, 60)), (100, (100, 100))])
def test_crop_size_honoured(crop, expected) -> None:
    image, mask = torch.rand(3, 50, 60), blobs((50, 60), [(25, 30)], 6)
    out_img, out_mask = PairedAugment(AugmentConfig(crop=crop))(image, mask, gen(0))
    assert out_img.shape == (3, *expected) and out_mask.shape == expected


def test_plain_crop_is_an_exact_window() -> None:
    """Without zoom/rotation/elastic no pixel is interpolated: the crop is a sub-array."""
    image = torch.arange(40 * 50, dtype=torch.float32).reshape(1, 40, 50)
    mask = (image[0] % 7).long()
    cfg = AugmentConfig(crop=(16, 20), fg_crop_prob=0.0, zoom=None, flip=False, rotate90=False,
                        elastic_prob=0.0, **NO_INTENSITY)
    for seed in range(5):
        out_img, out_mask = PairedAugment(cfg)(image, mask, gen(seed))
        y0, x0 = divmod(int(out_img[0, 0, 0]), 50)
        torch.testing.assert_close(out_img, image[:, y0:y0 + 16, x0:x0 + 20], rtol=0, atol=1e-3)
        assert torch.equal(out_mask, mask[y0:y0 + 16, x0:x0 + 20])


def test_identity_config_returns_input() -> None:
    image, mask = torch.rand(2, 30, 31), blobs((30, 31), [(10, 10)], 5)
    out_img, out_mask = PairedAugment(IDENTITY)(image, mask, gen(0))
    torch.testing.assert_close(out_img, image, rtol=0, atol=1e-4)
    assert torch.equal(out_mask, mask)


def test_flips_and_rot90_are_exact() -> None:
    image = torch.rand(1, 32, 32, generator=gen(3))
    cfg = AugmentConfig(crop=None, zoom=None, flip=True, rotate90=True, elastic_prob=0.0,
                        **NO_INTENSITY)
    views = [torch.rot90(f, k, (-2, -1)) for f in (image, image.flip(-1)) for k in range(4)]
    seen = set()
    for seed in range(12):
        out, _ = PairedAugment(cfg)(image, None, gen(seed))
        # every output is one of the 8 dihedral views, pixel for pixel
        match = [i for i, v in enumerate(views) if torch.allclose(out, v, atol=1e-4)]
        assert len(match) == 1
        seen.add(match[0])
    assert len(seen) >= 4


def test_foreground_crop_probability() -> None:
    mask = torch.zeros(200, 200, dtype=torch.int64)
    mask[160:166, 170:176] = 1  # one small nucleus in a large empty field
    image = mask.float().unsqueeze(0)

    def hit_rate(p: float, n: int = 300) -> float:
        cfg = AugmentConfig(crop=32, fg_crop_prob=p, zoom=None, flip=False, rotate90=False,
                            elastic_prob=0.0, **NO_INTENSITY)
        aug, g = PairedAugment(cfg), gen(123)
        return sum(bool((aug(image, mask, g)[1] > 0).any()) for _ in range(n)) / n

    q, n = hit_rate(0.0), 300
    assert q < 0.15  # a uniform crop seldom finds it
    assert hit_rate(1.0) == 1.0
    expected = 0.5 + 0.5 * q
    assert abs(hit_rate(0.5) - expected) < 4 * math.sqrt(expected * (1 - expected) / n)


def test_zoom_scales_objects() -> None:
    mask = blobs((80, 80), [(40, 40)], 10)
    image = mask.float().unsqueeze(0)
    area = mask.sum().item()
    fixed = AugmentConfig(crop=64, fg_crop_prob=1.0, zoom=(2.0, 2.0), elastic_prob=0.0,
                          **NO_INTENSITY)
    _, m = PairedAugment(fixed)(image, mask, gen(0))
    assert m.sum().item() / area == pytest.approx(4.0, rel=0.1)
    ranged = AugmentConfig(crop=96, fg_crop_prob=1.0, zoom=(0.5, 2.0), elastic_prob=0.0,
                           **NO_INTENSITY)
    aug, g = PairedAugment(ranged), gen(1)
    ratios = [aug(image, mask, g)[1].sum().item() / area for _ in range(40)]
    assert 0.2 < min(ratios) < 0.8 and 1.5 < max(ratios) < 4.5  # both ways, within 0.5-2x


def test_elastic_displacement_magnitude() -> None:
    sigma = 10.0
    fields = torch.stack([elastic_displacement((33, 33), 3, sigma, gen(s)) for s in range(200)])
    assert fields.shape == (200, 2, 33, 33)
    # the 3x3 control points carry the raw N(0, sigma) draws...
    control = fields[:, :, ::16, ::16]
    assert control.std().item() == pytest.approx(sigma, rel=0.1)
    # ...and the bicubic upsampling keeps the field smooth between them
    assert fields.diff(dim=-1).abs().max() < sigma
    assert elastic_displacement((8, 12, 12), 3, 2.0, gen(0)).shape == (3, 8, 12, 12)


def test_elastic_end_to_end_displaces_by_sigma() -> None:
    """With a coordinate ramp as image, output minus output position is the displacement."""
    n = 101
    ramp = torch.arange(n, dtype=torch.float32)
    image = torch.stack(torch.meshgrid(ramp, ramp, indexing="ij"))  # (2, n, n): y, x
    cfg = AugmentConfig(crop=None, zoom=None, flip=False, rotate90=False, elastic_prob=1.0,
                        elastic_sigma=10.0, **NO_INTENSITY)
    aug, g = PairedAugment(cfg), gen(5)
    centre = torch.stack([aug(image, None, g)[0][:, 50, 50] - 50 for _ in range(300)])
    assert centre.std().item() == pytest.approx(10.0, rel=0.15)


def test_extra_masks_follow_and_keep_dtype() -> None:
    mask = blobs((64, 64), [(20, 20), (44, 40)], 9)
    weights = torch.where(mask > 0, 1.0, 3.0)
    image = (mask > 0).float().unsqueeze(0)
    aug = PairedAugment(ALL_GEOMETRY)
    out_img, out_mask, out_labels, out_w = aug(image, mask, gen(2), mask.clone(), weights)
    assert torch.equal(out_labels, out_mask)
    assert out_w.dtype == torch.float32
    assert ((out_w < 2) == (out_mask > 0)).float().mean() > 0.99
    # a tensor in the generator slot is taken as the first extra mask
    assert len(aug(image, mask, weights)) == 3


def test_intensity_changes_image_not_mask() -> None:
    image, mask = torch.full((1, 32, 32), 0.5), blobs((32, 32), [(16, 16)], 6)
    cfg = AugmentConfig(crop=None, zoom=None, flip=False, rotate90=False, elastic_prob=0.0,
                        noise_prob=1.0, noise_std=(0.1, 0.1), blur_prob=0.0,
                        brightness_prob=0.0, contrast_prob=0.0)
    out_img, out_mask = PairedAugment(cfg)(image, mask, gen(0))
    assert torch.equal(out_mask, mask)
    assert out_img.std().item() == pytest.approx(0.1, rel=0.15)
    bright = AugmentConfig(crop=None, zoom=None, flip=False, rotate90=False, elastic_prob=0.0,
                           brightness=0.2, brightness_prob=1.0, noise_prob=0.0, blur_prob=0.0,
                           contrast_prob=0.0)
    x = torch.rand(1, 16, 16, generator=gen(1))
    shift = PairedAugment(bright)(x, None, gen(4))[0] - x
    assert shift.std() < 1e-5 and 0 < shift.abs().mean() <= 0.2


def test_gaussian_blur() -> None:
    delta = torch.zeros(1, 21, 21)
    delta[0, 10, 10] = 1.0
    out = gaussian_blur(delta, 1.5)
    assert out.sum().item() == pytest.approx(1.0, abs=1e-4)
    var = (out[0].sum(1) * (torch.arange(21.0) - 10) ** 2).sum()
    assert var.item() == pytest.approx(1.5**2, rel=0.05)
    const = torch.full((2, 6, 8, 8), 0.3)
    torch.testing.assert_close(gaussian_blur(const, 1.0), const)


def test_bad_shapes_raise() -> None:
    aug = PairedAugment(AugmentConfig(crop=16))
    with pytest.raises(ValueError, match=r"image must be \(C, \*spatial\) with 2 spatial dims, got shape \(16, 16\)"):
        aug(torch.rand(16, 16), torch.zeros(16, 16, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"mask shape \(15, 16\) != image spatial \(16, 16\)"):
        aug(torch.rand(1, 16, 16), torch.zeros(15, 16, dtype=torch.int64))


@pytest.mark.parametrize("shape", [(33, 40), (9, 17, 12)])
def test_elastic_matches_f_interpolate(shape) -> None:
    """The separable upsampling equals F.interpolate (bicubic 2D, trilinear 3D)."""
    ndim = len(shape)
    field = elastic_displacement(shape, 3, 10.0, gen(0))
    coarse = torch.randn((1, ndim) + (3,) * ndim, generator=gen(0)) * 10.0
    mode = "bicubic" if ndim == 2 else "trilinear"
    ref = torch.nn.functional.interpolate(coarse, size=shape, mode=mode, align_corners=True)[0]
    torch.testing.assert_close(field, ref, rtol=1e-4, atol=1e-4)


def test_large_instance_labels_survive() -> None:
    mask = torch.zeros(20, 20, dtype=torch.int64)
    mask[5:15, 5:15] = 2**40 + 3  # not representable in float32
    image = (mask > 0).float().unsqueeze(0)
    _, out = PairedAugment(ALL_GEOMETRY)(image, mask, gen(0))
    assert set(out.unique().tolist()) <= {0, 2**40 + 3}


def test_config_round_trips_through_json_and_validates() -> None:
    import dataclasses
    import json

    cfg = AugmentConfig(crop=(32, 48), zoom=(0.5, 2.0), gamma=(0.8, 1.2))
    back = AugmentConfig(**json.loads(json.dumps(dataclasses.asdict(cfg))))
    assert back == cfg and hash(back) == hash(cfg)
    with pytest.raises(ValueError, match=r"zoom factors must be positive"):
        AugmentConfig(zoom=(0.0, 2.0))
    with pytest.raises(ValueError, match=r"elastic_prob must be in \[0, 1\], got 1.5"):
        AugmentConfig(elastic_prob=1.5)
