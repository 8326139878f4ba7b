"""The bundled restorer's network (gan.restorer): size, identity start, any input size, learning."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gan.nets.restorer import Restorer, RestorerConfig
from gan.presets import PIX2PIX_PRESETS
from gan.serialize import load_model, save_model


def tiny(**kw) -> Restorer:
    return Restorer(RestorerConfig(**{"base_channels": 4, "depth": 2, "blocks": 1, "max_channels": 16, **kw}))


def test_preset_fits_a_bundled_file_and_runs_on_any_size():
    cfg = PIX2PIX_PRESETS["restorer"]
    assert isinstance(cfg, RestorerConfig) and cfg.residual and cfg.pixel_unshuffle == 2
    g = Restorer(cfg).eval()
    assert sum(p.numel() for p in g.parameters()) * 4 <= 20e6  # float32 file under 20 MB
    assert cfg.size_divisor == 16
    x = torch.rand(1, 3, 70, 45) * 2 - 1
    with torch.inference_mode():
        assert g(x).shape == x.shape


def test_starts_as_the_identity():
    # The tail is zero-initialised: before training the output is the input, so a restorer
    # can only learn away from "leave the photo alone", never start by damaging it.
    x = torch.rand(2, 3, 24, 40) * 2 - 1
    assert torch.equal(tiny()(x), x)
    assert not torch.equal(tiny(residual=False)(x), x)


@pytest.mark.parametrize("size", [(16, 16), (5, 9), (33, 18)])
@pytest.mark.parametrize("unshuffle", [1, 2])
def test_any_size(size, unshuffle):
    g = tiny(pixel_unshuffle=unshuffle, in_channels=2, out_channels=3, residual=False)
    assert g(torch.rand(1, 2, *size)).shape == (1, 3, *size)
    assert g.config.size_divisor == 4 * unshuffle


def test_every_parameter_gets_a_gradient_and_the_loss_falls():
    torch.manual_seed(0)
    g = tiny(base_channels=8)
    clean = F.avg_pool2d(torch.rand(4, 3, 32, 32) * 2 - 1, 5, 1, 2)  # smooth: noise is separable
    noisy = clean + 0.2 * torch.randn_like(clean)
    opt = torch.optim.Adam(g.parameters(), 3e-3)
    losses = []
    for step in range(80):
        loss = F.l1_loss(g(noisy), clean)
        opt.zero_grad()
        loss.backward()
        if step == 1:  # the zero tail passes no gradient on the very first step
            missing = [n for n, p in g.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
            assert not missing, missing
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.7 * losses[0]  # measured: 0.159 -> 0.093


def test_save_load_same_output(tmp_path):
    torch.manual_seed(1)
    g = tiny().eval()
    for p in g.parameters():  # leave the identity start, so the check means something
        p.data.normal_(0, 0.1)
    path = save_model(g, tmp_path / "r.safetensors", {"task": "translation"})
    h, meta = load_model(path)
    x = torch.rand(1, 3, 20, 20)
    assert meta["arch"] == "Restorer"
    assert torch.equal(g(x), h(x))


def test_bad_configs():
    with pytest.raises(ValueError, match=r"residual=True needs in_channels == out_channels"):
        RestorerConfig(in_channels=1, out_channels=3)  # residual needs equal channels
    with pytest.raises(ValueError, match=r"depth and blocks must be >= 0"):
        RestorerConfig(depth=-1)
