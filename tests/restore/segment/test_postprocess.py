"""Post-processing (islands, holes, instance splitting, dense CRF) and overlays."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from restore.segment.overlay import PALETTE, colour_of, overlay, save_overlay, to_display
from restore.segment.crf import _BilateralFilter, _Grid, dense_crf
from restore.segment.postprocess import fill_holes, remove_small, split_instances


def disc(shape, centre, r):
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    return sum((g - c) ** 2 for g, c in zip(grids, centre)) <= r * r


# -- remove_small ------------------------------------------------------------------------------
def test_remove_small_per_class_2d():
    lab = np.zeros((12, 12), np.uint8)
    lab[1:5, 1:5] = 1          # 16 px, kept
    lab[8, 8] = 1              # 1 px island of class 1, removed
    lab[6:8, 1:3] = 2          # 4 px of class 2, removed at min_size 5
    lab[1:4, 8:11] = 2         # 9 px of class 2, kept
    lab[4, 4] = 2              # 1 px of class 2 touching class 1: its own piece, removed
    out = remove_small(lab, 5)
    assert out.dtype == lab.dtype and lab[8, 8] == 1  # input untouched
    assert out[8, 8] == 0 and out[4, 4] == 0 and (out[6:8, 1:3] == 0).all()
    assert (out[1:4, 8:11] == 2).all() and out[1:5, 1:5].sum() == 15  # 16 px minus the class-2 pixel
    assert np.array_equal(remove_small(lab, 1), lab)


def test_remove_small_3d_and_connectivity():
    vol = np.zeros((6, 8, 8), np.int32)
    vol[1:4, 1:4, 1:4] = 3     # 27 voxels
    vol[5, 6, 6] = 3           # 1 voxel
    vol[4, 4, 4] = 3           # touches the cube only by a corner
    out = remove_small(vol, 2)
    assert out[5, 6, 6] == 0 and out[4, 4, 4] == 0 and (out[1:4, 1:4, 1:4] == 3).all()
    assert remove_small(vol, 2, connectivity=3)[4, 4, 4] == 3  # corner-connected piece is kept


# -- fill_holes --------------------------------------------------------------------------------
def test_fill_holes_2d():
    lab = np.zeros((14, 14), np.uint8)
    lab[1:8, 1:8] = 1
    lab[3:6, 3:6] = 0          # 9 px hole inside class 1
    lab[2, 2] = 0              # 1 px hole
    lab[9:13, 1:7] = 2         # class 2 touching the bottom of ...
    lab[9:13, 7:13] = 1        # ... class 1: the gap between them is bordered by both
    lab[10:12, 6:8] = 0
    lab[1:6, 10:13] = 2
    lab[1:3, 10] = 0           # notch open to the border side: not a hole
    out = fill_holes(lab)
    assert (out[3:6, 3:6] == 1).all() and out[2, 2] == 1
    assert (out[10:12, 6:8] == 0).all()      # enclosed by two classes: left alone
    assert out[0, 0] == 0 and (out[1:3, 10] == 0).all()
    small = fill_holes(lab, max_size=4)
    assert small[2, 2] == 1 and (small[3:6, 3:6] == 0).all()


def test_fill_holes_3d_and_instances():
    vol = np.zeros((7, 7, 7), np.uint16)
    vol[1:6, 1:6, 1:6] = 300
    vol[2:5, 2:5, 2:5] = 0     # cavity
    out = fill_holes(vol)
    assert out.dtype == np.uint16 and (out[1:6, 1:6, 1:6] == 300).all()
    vol[3, 3, 0:2] = 0         # tunnel to the border: no longer a hole
    assert (fill_holes(vol)[2:5, 2:5, 2:5] == 0).all()


# -- split_instances ---------------------------------------------------------------------------
@pytest.mark.parametrize("gap", [20, 17, 15])
def test_split_two_touching_discs(gap):
    shape = (64, 80)
    fg = disc(shape, (32, 25), 10) | disc(shape, (32, 25 + gap), 10)
    inst = split_instances(fg)
    assert inst.dtype == np.uint16 and inst.max() == 2
    assert np.array_equal(inst > 0, fg)
    # each disc centre in its own instance, and the instances are about the same size
    assert inst[32, 25] != inst[32, 25 + gap]
    sizes = np.bincount(inst.ravel())[1:]
    assert sizes.min() / sizes.max() > 0.85


def test_split_keeps_single_objects_whole():
    shape = (64, 80)
    assert split_instances(disc(shape, (32, 40), 12)).max() == 1
    yy, xx = np.mgrid[:64, :80]
    ellipse = ((yy - 32) / 8.0) ** 2 + ((xx - 40) / 25.0) ** 2 <= 1
    assert split_instances(ellipse).max() == 1
    # a tiny object next to big ones still gets a label; min_size drops it
    fg = disc(shape, (10, 10), 1) | disc(shape, (40, 40), 12)
    assert split_instances(fg).max() == 2
    assert split_instances(fg, min_size=10).max() == 1
    assert split_instances(np.zeros(shape, bool)).max() == 0
    # diagonal neighbours are separate objects at connectivity 1, one at full connectivity
    assert split_instances(np.eye(6, dtype=bool)).max() == 6
    assert split_instances(np.eye(6, dtype=bool), connectivity=2).max() == 1


def test_split_3d_and_prob():
    shape = (28, 32, 48)
    fg = disc(shape, (14, 16, 15), 8) | disc(shape, (14, 16, 30), 8)
    assert split_instances(fg).max() == 2
    assert split_instances(disc(shape, (14, 16, 24), 9)).max() == 1
    # two overlapping discs whose seam the probability map marks as uncertain
    shape = (48, 64)
    fg = disc(shape, (24, 24), 10) | disc(shape, (24, 36), 10)
    prob = np.ones(shape)
    prob[:, 29:32] = 0.2
    assert split_instances(fg, prob=prob, min_distance=3).max() == 2


# -- dense CRF ---------------------------------------------------------------------------------
def _scene(h=48, w=56, seed=0):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    truth = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (h / 3) ** 2
    image = 0.2 + 0.5 * truth.float() + 0.03 * torch.randn(h, w, generator=g)
    p = torch.where(truth, 0.62, 0.38) + 0.25 * torch.randn(h, w, generator=g)
    return truth, image, p.clamp(0.02, 0.98)


def test_dense_crf_follows_image_edges():
    truth, image, p = _scene()
    probs = torch.stack([1 - p, p])
    before = ((probs.argmax(0) == 1) == truth).float().mean().item()
    q = dense_crf(probs, image[None], bilateral_sxy=20)
    after = ((q.argmax(0) == 1) == truth).float().mean().item()
    assert before < 0.85 and after > 0.98 and after > before
    assert q.shape == probs.shape and q.dtype == torch.float32
    assert torch.allclose(q.sum(0), torch.ones_like(q[0]), atol=1e-5) and (q >= 0).all()
    # RGB input, grey stored as RGB and a single foreground channel all work the same way
    rgb = torch.stack([image, image * 0.8, image * 0.5])
    assert ((dense_crf(probs, rgb, bilateral_sxy=20).argmax(0) == 1) == truth).float().mean() > 0.98
    q1 = dense_crf(p[None], image[None].repeat(3, 1, 1), bilateral_sxy=20)
    assert q1.shape == (1, *p.shape) and torch.allclose(q1[0], q[1], atol=1e-5)
    assert torch.allclose(dense_crf(probs, image, iterations=0), probs / probs.sum(0), atol=1e-6)


def test_dense_crf_validates_shapes():
    with pytest.raises(ValueError, match=r"image \(1, 8, 9\) and probs \(2, 8, 8\) differ in size"):
        dense_crf(torch.rand(2, 8, 8), torch.rand(1, 8, 9))
    with pytest.raises(ValueError, match=r"probs must be \(K, H, W\), got \(8, 8\)"):
        dense_crf(torch.rand(8, 8), torch.rand(1, 8, 8))


def _exact(feat: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
    k = torch.exp(-torch.cdist(feat.T.double(), feat.T.double()) ** 2 / 2)
    return (vals.double() @ k).float()


@pytest.mark.parametrize("channels,step", [(1, 0.5), (1, 1.0), (3, 0.7), (3, 1.0)])
def test_bilateral_grid_matches_exact_kernel(channels, step):
    """The normalised message of the grid is within a few percent of the O(N^2) sum."""
    truth, image, _ = _scene(20, 22)
    g = torch.Generator().manual_seed(1)
    img = image[None] + 0.05 * torch.rand(channels, 20, 22, generator=g)
    yy, xx = torch.meshgrid(torch.arange(20.0), torch.arange(22.0), indexing="ij")
    feat = torch.cat([yy[None] / 5, xx[None] / 5, img * 255 / 13]).reshape(2 + channels, -1)
    # structured values (the object, a ramp): the message then depends on the kernel's shape;
    # a kernel 20% too wide or narrow gives mean errors of 0.02-0.035 here
    vals = torch.stack([truth.float().flatten() * 0.9 + 0.05, xx.flatten() / 22 + 0.1])
    grid = _Grid(feat, step, torch.float32)
    approx = grid(vals) / grid(torch.ones(1, 20 * 22))
    exact = _exact(feat, vals) / _exact(feat, torch.ones(1, 20 * 22))
    err = ((approx - exact).abs() / exact)
    assert err.mean() < 0.008 and err.max() < 0.09


def test_bilateral_tiles_agree_with_whole_image():
    truth, image, _ = _scene(64, 60)
    img = image[None].repeat(3, 1, 1) * torch.tensor([1.0, 0.9, 0.7])[:, None, None]
    whole = _BilateralFilter(img, 6, 13, step=1.0)
    tiled = _BilateralFilter(img, 6, 13, max_cells=20000, step=1.0)
    assert len(whole.tiles) == 1 and len(tiled.tiles) > 2 and whole.step == tiled.step == 1.0
    vals = torch.rand(1, 64, 60, generator=torch.Generator().manual_seed(2))
    ones = torch.ones(1, 64, 60)
    a = whole(vals) / whole(ones)
    b = tiled(vals) / tiled(ones)
    assert ((a - b).abs() / a).mean() < 0.005  # 0.012 without the halo


# -- overlay -----------------------------------------------------------------------------------
def test_overlay_fill_and_contours():
    image = np.full((20, 24), 1000, np.uint16)
    image[:, 12:] = 3000
    labels = np.zeros((20, 24), np.uint16)
    labels[4:12, 4:12] = 1
    labels[4:12, 12:20] = 2     # touching instance
    labels[14:18, 2:6] = 25     # past the palette: cycles
    out = overlay(image, labels)
    assert out.shape == (20, 24, 3) and out.dtype == np.uint8
    assert (out[0, 0] == to_display(image)[0, 0]).all()  # background untouched
    assert (out[8, 8] != out[4, 8]).any()                 # interior fill differs from contour
    assert (out[4, 8] == PALETTE[1]).all() and (out[8, 11] == PALETTE[1]).all()
    assert (out[8, 12] == PALETTE[2]).all()               # the touching neighbour's own contour
    assert (colour_of(np.array([25])) == PALETTE[(25 - 1) % (len(PALETTE) - 1) + 1]).all()
    plain = overlay(image, labels, contours=False)
    assert (plain[8, 8] == plain[4, 8]).all()
    assert (overlay(image, labels, alpha=0.0, contours=False) == to_display(image)).all()


def test_to_display_and_volume(tmp_path):
    f = np.linspace(-1, 5, 64, dtype=np.float32).reshape(8, 8)
    d = to_display(f)
    assert d.shape == (8, 8, 3) and d.dtype == np.uint8 and d.min() == 0 and d.max() == 255
    rgb = np.random.default_rng(0).integers(0, 255, (8, 8, 4), dtype=np.uint8)
    assert np.array_equal(to_display(rgb), rgb[..., :3])
    assert to_display(np.zeros((4, 4), np.float32)).max() == 0  # flat image does not crash
    vol = np.random.default_rng(1).random((3, 8, 8))
    lab = np.zeros((3, 8, 8), np.uint8)
    lab[1, 2:6, 2:6] = 1
    out = overlay(vol, lab)
    assert out.shape == (3, 8, 8, 3) and (out[1, 2, 2] == PALETTE[1]).all()
    with pytest.raises(ValueError, match=r"image \(8, 9\) and labels \(8, 8\) differ in size"):
        overlay(np.zeros((8, 9)), np.zeros((8, 8), np.uint8))
    from PIL import Image
    p = save_overlay(tmp_path / "x_overlay.png", vol[0], lab[1])
    assert np.array(Image.open(p)).shape == (8, 8, 3)
