"""restore.Segmenter: shapes, volumes, scale handling, bundled weights lookup."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gan import UNet, save_model, segmenter_config
from restore import Segmenter
from restore.models.cache import resolve_weights
from restore.models.manifest import WeightsError


def discs(size: int, radius: int, step: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    img = np.zeros((size, size), np.uint8)
    for cy in range(step // 2, size, step):
        for cx in range(step // 2, size, step):
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < radius**2] = 200
    return img


class Threshold(torch.nn.Module):
    """A stand-in network: foreground where the normalised input is bright."""

    def __init__(self, config):
        super().__init__()
        self.config = config

    def forward(self, x):
        fg = (x[:, :1] - 0.5) * 20
        return torch.cat([-fg, fg], 1)


@pytest.fixture
def make(tmp_path):
    def build(dims: int = 2, diameter: float = 0, **kw) -> Segmenter:
        torch.manual_seed(0)
        path = save_model(UNet(segmenter_config("tiny", dims=dims)), tmp_path / f"m{dims}.safetensors",
                          {"diameter": diameter})
        return Segmenter(path, tile=32, **kw)

    return build


def test_labels_shape_and_dtype(make):
    seg = make()
    img = discs(70, 6, 20)
    labels = seg(img)
    assert labels.shape == img.shape and labels.dtype == np.uint8
    assert seg(np.dstack([img] * 3)).shape == img.shape  # colour input
    assert seg.probabilities(img).shape == (2, 70, 70)


def test_volume_with_2d_model_goes_slice_by_slice(make):
    seg = make()
    vol = np.stack([discs(40, 5, 20)] * 3)
    assert seg.probabilities(vol).shape == (2, 3, 40, 40)
    assert seg(vol).shape == vol.shape


def test_3d_model_on_volume(make):
    seg = make(dims=3)
    vol = np.stack([discs(24, 5, 12)] * 8)
    assert seg(vol).shape == vol.shape
    with pytest.raises(ValueError, match="3D"):
        seg(discs(24, 5, 12))


def test_auto_diameter_rescales_to_the_model(make):
    seg = make(diameter=24)
    seg.model = Threshold(seg.model.config)
    big = discs(192, 24, 64)  # 48 px objects: twice the model's 24
    x = np.ascontiguousarray(big[None] / 200.0, dtype=np.float32)
    assert seg._scale_factor(x) == pytest.approx(0.5, rel=0.1)
    assert seg._scale_factor(np.ascontiguousarray(discs(96, 12, 32)[None] / 200.0, dtype=np.float32)) == 1.0
    seg.diameter = 12.0
    assert seg._scale_factor(x) == 2.0
    seg.diameter = None
    assert seg._scale_factor(x) == 1.0
    # whatever the working scale, labels come back at the input's size and find every object
    seg.diameter = "auto"
    labels = seg(big, instances=True)
    assert labels.shape == big.shape and labels.max() == 9


def test_instances_and_postprocessing(make):
    seg = make()
    seg.model = Threshold(seg.model.config)
    img = discs(64, 6, 32)
    img[2, 2] = 255  # a one-pixel speck
    inst = seg(img, instances=True, min_size=10)
    assert inst.max() == 4 and inst[2, 2] == 0


def test_weights_lookup(tmp_path):
    with pytest.raises(WeightsError, match="no weights named"):
        resolve_weights("no-such-model")
    (tmp_path / "run").mkdir()
    with pytest.raises(WeightsError, match="model.safetensors"):
        resolve_weights(tmp_path / "run")
    save_model(UNet(segmenter_config("tiny")), tmp_path / "run" / "model.safetensors")
    assert resolve_weights(tmp_path / "run").name == "model.safetensors"
