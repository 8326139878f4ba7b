"""RestoreFormer: parity with gfpgan 1.3.8's ``RestoreFormer`` (random weights in its layout),
the published ``RestoreFormer.pth`` layout loaded key for key, config read back, errors."""
from __future__ import annotations

import pytest
import torch

import gan  # noqa: F401  (the torchvision shim, before gfpgan/basicsr)
from gan.nets.codeformer import is_codeformer
from gan.nets.gfpgan import GFPGAN, GFPGAN_PRESETS
from gan.nets.restoreformer import (PRESETS, RestoreFormer, RestoreFormerConfig, config_from_state_dict,
                                    is_restoreformer, load_published)
from gan.precision import cast_model, run
from tests.gan.nets.test_gfpgan import faces
from tests.gan.nets.test_stylegan2 import randomize_

# The reference's own arguments for a small network of the published design (three levels,
# attention at the lowest, 16 x 16, 8 heads): the same code paths as the 512 px one, in a second.
SMALL_REF = dict(n_embed=64, embed_dim=64, ch=32, ch_mult=(1, 2, 4), num_res_blocks=2, attn_resolutions=(16,),
                 resolution=64, z_channels=64, head_size=8)
SMALL = RestoreFormerConfig(resolution=64, ch=32, ch_mult=(1, 2, 4), num_res_blocks=2, z_channels=64, embed_dim=64,
                            n_embed=64, head_size=8)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """dB over the [-1, 1] range; inf for equal tensors."""
    mse = torch.mean((a.clamp(-1, 1) - b.clamp(-1, 1)).double() ** 2).item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(4.0 / mse)).item()


def reference(**kw):
    arch = pytest.importorskip("gfpgan.archs.restoreformer_arch")
    torch.manual_seed(0)
    return randomize_(arch.RestoreFormer(**kw)).eval()


def test_matches_gfpgan_restoreformer():
    ref = reference(**SMALL_REF)
    state = ref.state_dict()
    assert config_from_state_dict(state) == SMALL
    ours = load_published({"params_ema": state})
    assert list(ours.state_dict()) == list(state)
    x = faces(2, 64)
    with torch.no_grad():
        want = ref(x)[0]
        got = ours(x)
    assert psnr(got, want) >= 45
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)  # bit for bit here (the same ops)
    # channels-last, as the face restorer runs it
    torch.testing.assert_close(run(cast_model(ours, "fp32"), x), want, rtol=1e-4, atol=1e-4)


def test_published_checkpoint_loads_strictly():
    """The full RestoreFormer.pth layout: 405 entries, 72.7 M parameters, as GFPGANer reads it
    (``params_ema`` if there, else ``params``)."""
    ref = reference()
    state = ref.state_dict()
    assert len(state) == 405 and sum(p.numel() for p in ref.parameters()) == 72_680_003
    del ref
    model = load_published({"params": state})
    assert model.config == PRESETS["published"] == RestoreFormerConfig() and not model.training
    got = model.state_dict()
    assert list(got) == list(state) and all(torch.equal(got[k], state[k]) for k in state)
    assert is_restoreformer(state) and not is_codeformer(state)


def test_load_published_reads_a_pth(tmp_path):
    torch.manual_seed(0)
    state = randomize_(RestoreFormer(PRESETS["tiny"])).state_dict()
    torch.save({"params_ema": state, "params": {}}, tmp_path / "tiny.pth")
    loaded = load_published(tmp_path / "tiny.pth", PRESETS["tiny"])
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())


def test_tells_the_layouts_apart():
    gfpgan = GFPGAN(GFPGAN_PRESETS["tiny"]).state_dict()
    tiny = RestoreFormer(PRESETS["tiny"]).state_dict()
    assert is_restoreformer(tiny) and not is_restoreformer(gfpgan) and not is_codeformer(tiny)
    with pytest.raises(ValueError, match="not a RestoreFormer state dict"):
        load_published(gfpgan)


def test_load_published_errors_name_the_keys(tmp_path):
    state = RestoreFormer(PRESETS["tiny"]).state_dict()
    bad = {k: v for k, v in state.items() if k != "quant_conv.weight"}
    bad["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing quant_conv.weight.*unexpected extra.weight"):
        load_published(bad, PRESETS["tiny"])
    with pytest.raises(ValueError, match="mis-shaped"):
        load_published(state, RestoreFormerConfig(**{**PRESETS["tiny"].to_dict(), "n_embed": 32}))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"):
        load_published(tmp_path / "junk.pth")


def test_config_checks_and_input_checks():
    with pytest.raises(ValueError, match="halve"):
        RestoreFormerConfig(resolution=100)
    with pytest.raises(ValueError, match="multiples of 32"):
        RestoreFormerConfig(ch=48)
    with pytest.raises(ValueError, match="heads"):
        RestoreFormerConfig(head_size=3)
    assert RestoreFormerConfig(ch_mult=[1, 2]).ch_mult == (1, 2)  # JSON's list
    with pytest.raises(ValueError, match="32 x 32"):
        RestoreFormer(PRESETS["tiny"])(torch.zeros(1, 3, 64, 64))
