"""StyleGAN2 in plain torch: parity with gfpgan's clean generator and basicsr's discriminator."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gan  # noqa: F401  (the torchvision shim, before gfpgan/basicsr)
from gan.nets.stylegan2 import StyleGAN2Config, StyleGAN2Generator, log2_size
from gan.nets.stylegan2_disc import StyleGAN2Discriminator, StyleGAN2DiscriminatorConfig

TINY_G = dict(out_size=32, num_style_feat=32, num_mlp=2, channel_multiplier=1, narrow=0.0625)
TINY_D = dict(out_size=32, channel_multiplier=1, narrow=0.0625)


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Perturb every parameter and buffer by 10% of its spread (1 where it is constant): the
    noise strengths start at zero and would otherwise hide the noise path."""
    gen = torch.Generator().manual_seed(seed)
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            spread = t.std().item() if t.numel() > 1 and t.std() > 0 else 1.0
            t.add_(torch.randn(t.shape, generator=gen) * 0.1 * spread)
    return model


def test_log2_size_and_config_checks():
    assert log2_size(8) == 3 and log2_size(512) == 9
    for bad in (4, 48, 2048):
        with pytest.raises(ValueError, match="power of two"):
            log2_size(bad)
    with pytest.raises(ValueError, match=r"leave a layer without channels"):
        StyleGAN2Config(narrow=0.001)
    assert StyleGAN2Config(out_size=512).num_latent == 16


@pytest.mark.parametrize("batch", [1, 3])  # 1: the weights are modulated; 3: the activations
def test_generator_matches_gfpgan_clean(batch):
    ref_mod = pytest.importorskip("gfpgan.archs.stylegan2_clean_arch")
    torch.manual_seed(0)
    ref = randomize_(ref_mod.StyleGAN2GeneratorClean(**TINY_G)).eval()
    ours = StyleGAN2Generator(StyleGAN2Config(**TINY_G)).eval()
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    z1, z2 = torch.randn(batch, 32), torch.randn(batch, 32)
    with torch.no_grad():
        for kw in (dict(), dict(truncation=0.7, truncation_latent=torch.randn(1, 32)), dict(inject_index=3)):
            styles = [z1, z2] if "inject_index" in kw else [z1]
            want, lat_ref = ref(styles, randomize_noise=False, return_latents=True, **kw)
            got, lat = ours(styles, randomize_noise=False, return_latents=True, **kw)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(lat, lat_ref, rtol=1e-5, atol=1e-5)
        w = torch.randn(batch, ours.num_latent, 32)  # one w per layer, as GFP-GAN feeds it
        torch.testing.assert_close(ours([w], input_is_latent=True, randomize_noise=False),
                                   ref([w], input_is_latent=True, randomize_noise=False)[0], rtol=1e-5, atol=1e-5)


def test_generator_noise_and_gradients():
    torch.manual_seed(0)
    g = randomize_(StyleGAN2Generator(**TINY_G))
    z = torch.randn(2, 32)
    with torch.no_grad():
        a, b = g([z], randomize_noise=False), g([z], randomize_noise=False)
        c = g([z])  # fresh noise by default, as the reference
    assert a.shape == (2, 3, 32, 32)
    assert torch.equal(a, b) and not torch.equal(a, c)
    g([z]).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g.parameters())


def native_fused_leaky_relu(x, bias, negative_slope=0.2, scale=2**0.5):
    """basicsr's fused bias-act without its CUDA kernel (the formula of its reference code)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return F.leaky_relu(x + bias.view(shape), negative_slope) * scale


@pytest.mark.parametrize("batch", [4, 2, 8])
def test_discriminator_matches_basicsr(batch, monkeypatch):
    """basicsr's StyleGAN2Discriminator runs on a CPU once its fused bias-act (a CUDA extension
    with no CPU path) is replaced by the formula it implements; its upfirdn2d has a native CPU
    path, so the blur is the real reference."""
    arch = pytest.importorskip("basicsr.archs.stylegan2_arch")
    fused = pytest.importorskip("basicsr.ops.fused_act.fused_act")
    monkeypatch.setattr(fused, "fused_leaky_relu", native_fused_leaky_relu)
    monkeypatch.setattr(arch, "fused_leaky_relu", native_fused_leaky_relu)
    torch.manual_seed(0)
    ref = randomize_(arch.StyleGAN2Discriminator(**TINY_D)).eval()
    ours = StyleGAN2Discriminator(StyleGAN2DiscriminatorConfig(**TINY_D)).eval()
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(batch, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)


def test_discriminator_shapes_and_gradients():
    torch.manual_seed(0)
    d = StyleGAN2Discriminator(out_size=64, channel_multiplier=1, narrow=0.0625)
    x = torch.randn(4, 3, 64, 64, requires_grad=True)
    out = d(x)
    assert out.shape == (4, 1)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in d.parameters())
    assert d(torch.randn(3, 3, 64, 64)).shape == (3, 1)  # a batch below the stddev group


def test_discriminator_config_round_trips_through_json():
    import json

    c = StyleGAN2DiscriminatorConfig(out_size=64, narrow=0.25)
    c2 = StyleGAN2DiscriminatorConfig(**json.loads(json.dumps(c.to_dict())))
    assert c2 == c and isinstance(c2.resample_kernel, tuple)
    assert math.isclose(c2.narrow, 0.25)
