"""Real-ESRGAN's U-Net discriminator against basicsr 1.4.2's ``UNetDiscriminatorSN`` with the same
random weights (the spectral-norm vectors u, v included): in eval mode (stored vectors) and in
training mode (one power iteration per forward, the vectors updated alike). The registry tests
(build, save/load, bf16, ONNX export) run its ``tiny`` preset like every other network."""
from __future__ import annotations

import math

import pytest
import torch

import gan  # noqa: F401  (the torchvision shim, before basicsr)
from gan.nets.unet_disc import PRESETS, UNetDiscriminatorConfig, UNetDiscriminatorSN, load_published

MAX_ABS, MIN_PSNR = 1e-5, 50.0


def reference(config: UNetDiscriminatorConfig):
    from basicsr.archs.discriminator_arch import UNetDiscriminatorSN as Ref

    return Ref(config.num_in_ch, num_feat=config.num_feat, skip_connection=config.skip_connection)


def randomized_pair(config: UNetDiscriminatorConfig, seed: int = 0):
    """(ours, basicsr's) with the same perturbed weights and power-iteration vectors."""
    torch.manual_seed(seed)
    ref = reference(config)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    ours = UNetDiscriminatorSN(config)
    ours.load_state_dict(ref.state_dict(), strict=True)  # basicsr's names, u and v included
    return ours, ref


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    spread = float(b.max() - b.min())
    return math.inf if mse == 0 else 10 * math.log10(spread**2 / mse)


@pytest.mark.parametrize("config", [PRESETS["tiny"], UNetDiscriminatorConfig(num_feat=16, skip_connection=False),
                                    UNetDiscriminatorConfig(num_in_ch=1, num_feat=8)], ids=["tiny", "noskip", "grey"])
def test_equals_basicsr_in_eval_and_training(config):
    ours, ref = randomized_pair(config)
    assert list(ours.state_dict()) == list(ref.state_dict())
    x = torch.rand(2, config.num_in_ch, 32, 40, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a, b = ours.eval()(x), ref.eval()(x)
    assert a.shape == (2, 1, 32, 40)
    assert float((a - b).abs().max()) < MAX_ABS and psnr(a, b) >= MIN_PSNR
    # training mode: the power iteration updates u and v in both, identically
    ours.train()
    ref.train()
    for _ in range(2):
        with torch.no_grad():
            a, b = ours(x), ref(x)
        assert float((a - b).abs().max()) < MAX_ABS and psnr(a, b) >= MIN_PSNR
    for (k, v), w in zip(ours.state_dict().items(), ref.state_dict().values()):
        assert torch.allclose(v, w, atol=1e-6), k


def test_real_esrgan_default_has_the_published_shapes(tmp_path):
    """The published netD layout: 4.38 M parameters, and a ``params`` .pth in basicsr's layout
    loads strictly (a foreign one is refused naming its keys)."""
    ours = UNetDiscriminatorSN(PRESETS["default"])
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference(PRESETS["default"]).parameters())
    tiny, ref = randomized_pair(PRESETS["tiny"])
    torch.save({"params": ref.state_dict()}, tmp_path / "netD.pth")
    loaded = load_published(tmp_path / "netD.pth").eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), tiny.eval()(x))
    torch.save({"params": {"conv0.weight": torch.zeros(8, 3, 3, 3)}}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="missing"):
        load_published(tmp_path / "bad.pth")
