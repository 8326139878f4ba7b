"""Segmentation losses: the U-Net weight map against hand-computed values, CE, Dice, Dice+CE."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from gan.losses.segmentation import (SEG_LOSSES, class_balance_weights, dice_ce_loss, dice_loss, seg_loss,
                                     unet_weight_map, weighted_cross_entropy)

W0, SIGMA = 10.0, 5.0


def border(d1: float, d2: float) -> float:
    return W0 * math.exp(-((d1 + d2) ** 2) / (2 * SIGMA**2))


def two_pixels() -> np.ndarray:
    inst = np.zeros((5, 9), np.int32)
    inst[2, 1], inst[2, 7] = 1, 2
    return inst


def test_weight_map_by_hand() -> None:
    inst = two_pixels()
    w = unet_weight_map(inst, W0, SIGMA, class_balance=True)
    n, n_fg = 45, 2
    w_bg, w_fg = n / (2 * (n - n_fg)), n / (2 * n_fg)
    # background pixels: class weight + border term from the two nearest cells
    assert w[2, 4] == pytest.approx(w_bg + border(3, 3), rel=1e-5)
    assert w[0, 4] == pytest.approx(w_bg + border(math.sqrt(13), math.sqrt(13)), rel=1e-5)
    assert w[2, 2] == pytest.approx(w_bg + border(1, 5), rel=1e-5)
    assert w[4, 0] == pytest.approx(w_bg + border(math.sqrt(5), math.sqrt(53)), rel=1e-5)
    # pixels inside cells get the class weight only
    assert w[2, 1] == pytest.approx(w_fg) and w[2, 7] == pytest.approx(w_fg)
    assert w.dtype == np.float32 and w.shape == inst.shape


def test_class_balance() -> None:
    inst = np.zeros((10, 10), np.int32)
    inst[:2, :] = 3  # 20 % foreground
    wc = class_balance_weights(inst)
    assert wc[0, 0] == pytest.approx(100 / 40) and wc[5, 5] == pytest.approx(100 / 160)
    assert wc.mean() == pytest.approx(1.0)
    # class balance off: far background is 1, a lone cell adds no border term
    w = unet_weight_map(inst, class_balance=False)
    np.testing.assert_allclose(w, 1.0)
    np.testing.assert_allclose(class_balance_weights(np.zeros((4, 4), np.int32)), 1.0)


def brute_force(inst: np.ndarray, w0: float = W0, sigma: float = SIGMA) -> np.ndarray:
    """Eq. 2 with a full-image distance transform per instance, no bounding boxes."""
    labels = [k for k in np.unique(inst) if k > 0]
    d = np.sort(np.stack([ndimage.distance_transform_edt(inst != k) for k in labels]), axis=0)
    bord = w0 * np.exp(-((d[0] + d[1]) ** 2) / (2 * sigma**2))
    return class_balance_weights(inst) + np.where(inst == 0, bord, 0)


def random_instances(shape, n, radius, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grids = np.indices(shape)
    inst = np.zeros(shape, np.int32)
    for k in range(1, n + 1):
        c = [rng.uniform(0, s) for s in shape]
        inst[sum((g - ci) ** 2 for g, ci in zip(grids, c)) < radius**2] = k
    return inst


def test_bounding_boxes_match_full_distance_transforms() -> None:
    inst = random_instances((64, 64), 12, 4, seed=0)
    w = unet_weight_map(inst, W0, SIGMA)
    # reach 4 sigma drops border terms below w0 * exp(-8)
    np.testing.assert_allclose(w, brute_force(inst), atol=W0 * math.exp(-8) + 1e-5)
    assert w.max() > 3  # there are narrow gaps, so the border term matters here


def test_sparse_labels_same_as_consecutive() -> None:
    inst = random_instances((40, 40), 5, 4, seed=1)
    sparse = np.where(inst > 0, inst * 1000 + 7, 0)
    np.testing.assert_allclose(unet_weight_map(sparse), unet_weight_map(inst))


def test_weight_map_3d() -> None:
    inst = np.zeros((5, 6, 7), np.int32)
    inst[1, 2, 2], inst[3, 2, 2] = 1, 2
    w = unet_weight_map(inst, W0, SIGMA, class_balance=False)
    assert w.shape == inst.shape
    assert w[2, 2, 2] == pytest.approx(1 + border(1, 1), rel=1e-5)
    assert w[2, 2, 5] == pytest.approx(1 + border(math.sqrt(10), math.sqrt(10)), rel=1e-5)
    vol = random_instances((16, 24, 24), 6, 4, seed=2)
    np.testing.assert_allclose(unet_weight_map(vol), brute_force(vol),
                               atol=W0 * math.exp(-8) + 1e-5)


def test_weight_map_rejects_float_input() -> None:
    with pytest.raises(TypeError, match=r"instances must be integer labels, got float32"):
        unet_weight_map(np.zeros((4, 4), np.float32))


# --- pixel losses ------------------------------------------------------------------------------


def batch(c: int = 3, shape=(2, 8, 8), seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape[0], c, *shape[1:], generator=g)
    target = torch.randint(c, shape, generator=g)
    return logits, target


def test_weighted_ce_matches_torch() -> None:
    logits, target = batch()
    ones = torch.ones(target.shape)
    torch.testing.assert_close(weighted_cross_entropy(logits, target, ones),
                               F.cross_entropy(logits, target))
    cw = torch.tensor([0.2, 1.0, 3.0])
    torch.testing.assert_close(weighted_cross_entropy(logits, target, class_weights=cw),
                               F.cross_entropy(logits, target, weight=cw))
    ignored = target.clone()
    ignored[0, :3] = -100
    torch.testing.assert_close(weighted_cross_entropy(logits, ignored),
                               F.cross_entropy(logits, ignored, ignore_index=-100))


def test_weight_map_scales_per_pixel_terms() -> None:
    logits, target = batch()
    base = weighted_cross_entropy(logits, target)
    torch.testing.assert_close(weighted_cross_entropy(logits, target, 2 * torch.ones(2, 8, 8)),
                               2 * base)
    one_pixel = torch.zeros(2, 8, 8)
    one_pixel[1, 3, 4] = 5.0
    term = F.cross_entropy(logits[1:2, :, 3, 4], target[1:2, 3, 4])
    torch.testing.assert_close(weighted_cross_entropy(logits, target, one_pixel),
                               5.0 * term / target.numel())


def test_binary_single_channel_ce() -> None:
    logits, target = batch(c=2)
    one = logits[:, 1:] - logits[:, :1]  # same model as two-class softmax
    torch.testing.assert_close(weighted_cross_entropy(one, target),
                               F.cross_entropy(logits, target))


def test_dice_perfect_and_wrong() -> None:
    _, target = batch(c=3)
    perfect = 30.0 * F.one_hot(target, 3).movedim(-1, 1).float()
    assert dice_loss(perfect, target).item() < 1e-4
    assert dice_loss(perfect, target, include_background=True).item() < 1e-4
    wrong = 30.0 * F.one_hot((target + 1) % 3, 3).movedim(-1, 1).float()
    assert dice_loss(wrong, target, smooth=1e-6).item() > 0.99
    fg = (target > 0).long()
    assert dice_loss(30.0 * (2 * fg - 1).unsqueeze(1).float(), fg).item() < 1e-4  # sigmoid


def test_dice_ce_is_the_sum_and_weights_apply() -> None:
    logits, target = batch()
    wm = torch.rand(target.shape) + 0.5
    torch.testing.assert_close(dice_ce_loss(logits, target, wm),
                               dice_loss(logits, target)
                               + weighted_cross_entropy(logits, target, wm))
    torch.testing.assert_close(dice_ce_loss(logits, target, dice_weight=0.0, ce_weight=2.0),
                               2 * F.cross_entropy(logits, target))


@pytest.mark.parametrize("name", sorted(SEG_LOSSES))
@pytest.mark.parametrize("spatial", [(6, 6), (4, 5, 5)])
def test_gradients_flow(name: str, spatial) -> None:
    logits, target = batch(c=2, shape=(2, *spatial))
    logits.requires_grad_(True)
    loss = seg_loss(name)(logits, target, torch.rand(target.shape) + 1)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_training_lowers_every_loss() -> None:
    logits, target = batch(c=3)
    for name, fn in SEG_LOSSES.items():
        x = torch.zeros_like(logits, requires_grad=True)
        opt = torch.optim.Adam([x], lr=0.3)
        first = fn(x, target).item()
        for _ in range(30):
            opt.zero_grad()
            fn(x, target).backward()
            opt.step()
        assert fn(x, target).item() < 0.5 * first, name


def test_unknown_loss_name() -> None:
    with pytest.raises(ValueError, match="dice_ce"):
        seg_loss("focal")
