"""GFP-GAN: parity with gfpgan 1.3.8's GFPGANv1Clean, published-checkpoint loading, saving,
training gradients and reduced precision."""
from __future__ import annotations

import copy

import pytest
import torch

import gan  # noqa: F401  (the torchvision shim, before gfpgan/basicsr)
from gan.nets.gfpgan import GFPGAN, GFPGAN_PRESETS, GFPGANConfig, config_from_state_dict, load_published
from gan.precision import autocast, cast_model, cpu_has_bf16, resolve_precision, run
from gan.serialize import load_model, save_model
from tests.gan.nets.test_stylegan2 import randomize_

PUBLISHED_ARGS = dict(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None, fix_decoder=False,
                      num_mlp=8, input_is_latent=True, different_w=True, narrow=1, sft_half=True)
SMALL = dict(out_size=64, num_style_feat=64, channel_multiplier=1, num_mlp=2, narrow=0.125)  # published flags
OTHER_FLAGS = dict(out_size=32, num_style_feat=32, channel_multiplier=2, num_mlp=2, narrow=0.125,
                   input_is_latent=False, different_w=False, sft_half=False)


def reference(**kw):
    arch = pytest.importorskip("gfpgan.archs.gfpganv1_clean_arch")
    torch.manual_seed(0)
    args = {**PUBLISHED_ARGS, **kw, "decoder_load_path": None, "fix_decoder": False}
    return randomize_(arch.GFPGANv1Clean(**args)).eval()


def faces(n: int, size: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.clamp(-1, 1) - b.clamp(-1, 1)).double() ** 2).item()
    return 10 * torch.log10(torch.tensor(4.0 / mse)).item()


@pytest.mark.parametrize("kw", [SMALL, OTHER_FLAGS], ids=["published-flags", "other-flags"])
@pytest.mark.parametrize("batch", [1, 2])
def test_matches_gfpganv1clean(kw, batch):
    ref = reference(**kw)
    config = config_from_state_dict(ref.state_dict(), input_is_latent=kw.get("input_is_latent", True))
    assert config == GFPGANConfig(**kw)
    ours = load_published(ref.state_dict(), config)
    assert list(ours.state_dict()) == list(ref.state_dict())
    x = faces(batch, kw["out_size"])
    with torch.no_grad():
        want, want_rgbs = ref(x, return_rgb=True, randomize_noise=False)
        got = ours(x)
        got2, rgbs, latent = ours(x, return_rgb=True, return_latents=True)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got2, want, rtol=1e-5, atol=1e-5)
    assert len(rgbs) == len(want_rgbs)
    for a, b in zip(rgbs, want_rgbs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert latent.shape == (batch, ours.config.num_latent, kw["num_style_feat"])
    # The same in grad mode (out-of-place ops) and channels-last (the fast inference layout).
    torch.testing.assert_close(ours(x), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(run(cast_model(ours, "fp32"), x), want, rtol=1e-5, atol=1e-5)


def test_published_checkpoint_loads_strictly(tmp_path):
    """The full GFPGANv1.3/1.4 layout: 285 entries (270 parameters, 15 noise maps)."""
    ref = reference()
    state = ref.state_dict()
    assert len(state) == 285 and sum(1 for _ in ref.parameters()) == 270
    torch.save({"params_ema": state, "params": {}}, tmp_path / "GFPGANv1.4.pth")
    del ref
    model = load_published(tmp_path / "GFPGANv1.4.pth")
    assert model.config == GFPGAN_PRESETS["published"] == GFPGANConfig()
    assert not model.training
    got = model.state_dict()
    assert list(got) == list(state) and len(got) == 285
    assert all(torch.equal(got[k], state[k]) for k in state)


def test_load_published_takes_params_or_a_bare_state_dict(tmp_path):
    torch.manual_seed(0)
    model = randomize_(GFPGAN(GFPGAN_PRESETS["tiny"]))
    state = model.state_dict()
    torch.save({"params": state}, tmp_path / "params.pth")
    for source in (tmp_path / "params.pth", str(tmp_path / "params.pth"), state):
        loaded = load_published(source)
        assert loaded.config == GFPGAN_PRESETS["tiny"]
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())
    assert loaded.stylegan_decoder.noises.noise0.data_ptr() != state["stylegan_decoder.noises.noise0"].data_ptr()


def test_load_published_errors_name_the_keys(tmp_path):
    state = GFPGAN(GFPGAN_PRESETS["tiny"]).state_dict()
    bad = {k: v for k, v in state.items() if k != "final_conv.weight"}
    bad["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing final_conv.weight.*unexpected extra.weight"):
        load_published(bad, GFPGAN_PRESETS["tiny"])
    with pytest.raises(ValueError, match="mis-shaped"):
        load_published(state, GFPGANConfig(**{**GFPGAN_PRESETS["tiny"].to_dict(), "num_style_feat": 64}))
    with pytest.raises(ValueError, match="not a GFPGANv1Clean"):
        load_published({"conv.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="state dict of tensors"):
        load_published({"params_ema": {"a": 1}})
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"):
        load_published(tmp_path / "junk.pth")


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_config_read_back_from_shapes(name):
    cfg = GFPGAN_PRESETS[name]
    assert config_from_state_dict(GFPGAN(cfg).state_dict()) == cfg
    other = GFPGANConfig(**{**cfg.to_dict(), "different_w": False, "sft_half": False})
    assert config_from_state_dict(GFPGAN(other).state_dict()) == other


def test_config_checks_and_input_checks():
    with pytest.raises(ValueError, match="power of two"):
        GFPGANConfig(out_size=96)
    with pytest.raises(ValueError, match="even number"):
        GFPGANConfig(out_size=32, narrow=0.03)  # 15 decoder channels
    model = GFPGAN(GFPGAN_PRESETS["tiny"])
    with pytest.raises(ValueError, match="32 x 32"):
        model(torch.zeros(1, 3, 64, 64))


def test_deterministic_and_random_noise():
    torch.manual_seed(0)
    model = randomize_(GFPGAN(GFPGAN_PRESETS["tiny"])).eval()
    x = faces(2, 32)
    with torch.inference_mode():
        a, b = model(x), model(x)
        c = model(x, randomize_noise=True)
    assert a.shape == (2, 3, 32, 32)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_safetensors_round_trip(tmp_path):
    torch.manual_seed(0)
    model = randomize_(GFPGAN(GFPGAN_PRESETS["tiny"])).eval()
    save_model(model, tmp_path / "face.safetensors", meta={"source": "test"})
    loaded, meta = load_model(tmp_path / "face.safetensors")
    assert isinstance(loaded, GFPGAN) and loaded.config == model.config and meta["arch"] == "GFPGAN"
    x = faces(1, 32)
    with torch.inference_mode():
        assert torch.equal(loaded(x), model(x))


def test_every_parameter_gets_a_gradient():
    """In training (fresh noise, the U-Net's RGB outputs for the pyramid loss) every parameter
    gets a gradient, except the mapping MLP, which input_is_latent=True leaves unused (as in
    the reference: the published checkpoints carry it all the same)."""
    torch.manual_seed(0)
    model = randomize_(GFPGAN(GFPGAN_PRESETS["small"])).train()
    image, rgbs = model(faces(2, 128), return_rgb=True, randomize_noise=True)
    assert image.shape == (2, 3, 128, 128) and [r.shape[-1] for r in rgbs] == [8, 16, 32, 64, 128]
    (image.square().mean() + sum(r.square().mean() for r in rgbs)).backward()
    no_grad = {n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0}
    assert no_grad == {n for n, _ in model.named_parameters() if n.startswith("stylegan_decoder.style_mlp.")}
    # With z codes instead of w, the mapping MLP is used and learns too.
    model = GFPGAN(GFPGANConfig(**{**GFPGAN_PRESETS["tiny"].to_dict(), "input_is_latent": False}))
    model(faces(2, 32), randomize_noise=True).square().mean().backward()
    assert all(p.grad is not None for p in model.stylegan_decoder.style_mlp.parameters())


def test_precision_checks():
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("auto", "cpu") in ("fp32", "bf16")  # which, per kind of CPU: tests/gan/test_precision.py
    with pytest.raises(ValueError, match="CUDA"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        autocast("fp8", "cpu")
    if not cpu_has_bf16():
        with pytest.raises(ValueError, match="no native bf16"):
            resolve_precision("bf16", "cpu")


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bf16 (AVX512-BF16/AMX)")
def test_bf16_error_against_fp32():
    """Measured, not assumed: bf16 (cast model, or autocast of the float32 one) against fp32
    on the tiny model with random weights (not representative of the published model)."""
    torch.manual_seed(0)
    model = randomize_(GFPGAN(GFPGAN_PRESETS["tiny"])).eval()
    x = faces(2, 32)
    want = run(model, x, "fp32")
    by_autocast = run(model, x, "bf16")
    by_cast = run(cast_model(copy.deepcopy(model), "bf16"), x, "bf16")
    assert by_autocast.dtype == by_cast.dtype == torch.float32
    assert psnr(by_autocast, want) > 35 and psnr(by_cast, want) > 35
    with pytest.raises(ValueError, match="cast_model"):
        run(cast_model(GFPGAN(GFPGAN_PRESETS["tiny"]), "bf16"), x, "fp32")
