"""Architectures: one shared set of checks, a tiny config per variant (2D and 3D)."""
from __future__ import annotations

import pytest
import torch

from gan import UNETR, UNet, UNetConfig, UNETRConfig, load_model, save_model, segmenter_config

VARIANTS = [(kind, dims) for kind in ("plain", "residual", "attention", "multires", "unetr") for dims in (2, 3)]


def tiny(kind: str, dims: int, **kw):
    cfg = segmenter_config("tiny", kind, dims, in_channels=2, out_channels=3, **kw)
    return (UNETR if kind == "unetr" else UNet)(cfg)


@pytest.mark.parametrize("kind,dims", VARIANTS)
class TestVariant:
    size = {2: 32, 3: 16}

    def test_shape(self, kind, dims):
        torch.manual_seed(0)
        size = 32 if kind == "unetr" else self.size[dims]
        model = tiny(kind, dims).eval()
        x = torch.randn(2, 2, *([size] * dims))
        assert model(x).shape == (2, 3, *([size] * dims))

    def test_every_parameter_gets_a_gradient(self, kind, dims):
        torch.manual_seed(0)
        size = 32 if kind == "unetr" else self.size[dims]
        model = tiny(kind, dims).train()
        model(torch.randn(2, 2, *([size] * dims))).square().mean().backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert not missing, missing

    def test_save_load_same_output(self, kind, dims, tmp_path):
        torch.manual_seed(0)
        size = 32 if kind == "unetr" else self.size[dims]
        model = tiny(kind, dims).eval()
        x = torch.randn(1, 2, *([size] * dims))
        path = save_model(model, tmp_path / "m.safetensors", {"note": "test"})
        loaded, meta = load_model(path)
        assert meta["note"] == "test" and meta["config"] == model.config.to_dict()
        assert type(loaded) is type(model)
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_paper_valid_tile_572_to_388():
    cfg = UNetConfig(padding="valid", norm="none", dropout=0.5)
    assert cfg.output_size(572) == 388
    # The full 64 -> 1024 network is 31 M parameters, as in the paper; run a narrow copy
    # (the tile arithmetic does not depend on the width).
    model = UNet(UNetConfig(padding="valid", norm="none", base_channels=2)).eval()
    assert sum(p.numel() for p in UNet(cfg).parameters()) == pytest.approx(31.03e6, rel=0.01)
    with torch.inference_mode():
        assert model(torch.zeros(1, 1, 572, 572)).shape == (1, 2, 388, 388)


def test_paper_channels_double_64_to_1024():
    model = UNet(UNetConfig(padding="valid", norm="none"))
    convs = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert max(convs) == 1024 and convs[0] == 64


def test_valid_sizes_rejected_and_found():
    cfg = UNetConfig(padding="valid", depth=4)
    with pytest.raises(ValueError, match=r"input size 573 does not fit a valid-padding U-Net of depth 4"):
        cfg.output_size(573)
    assert cfg.valid_input_size(560) == 572  # accepted sizes are 124 + 16k


def test_same_padding_any_size():
    model = UNet(segmenter_config("tiny")).eval()
    for h, w in [(17, 45), (5, 5), (64, 33)]:
        assert model(torch.randn(1, 1, h, w)).shape == (1, 2, h, w)


def test_bad_configs_are_clear():
    with pytest.raises(ValueError, match="kind"):
        UNetConfig(kind="nope")
    with pytest.raises(ValueError, match="padding"):
        UNetConfig(padding="full")
    with pytest.raises(ValueError, match="patch_size"):
        UNETRConfig(patch_size=8)


def test_load_rejects_damaged_file(tmp_path):
    path = save_model(UNet(segmenter_config("tiny")), tmp_path / "m.safetensors")
    data = path.read_bytes()
    (tmp_path / "half.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable"):
        load_model(tmp_path / "half.safetensors")
    with pytest.raises(ValueError, match="not found"):
        load_model(tmp_path / "missing.safetensors")
