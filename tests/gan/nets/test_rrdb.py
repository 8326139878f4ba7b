"""Real-ESRGAN's two generators against their reference code, with random weights in the
published layouts: RRDBNet against basicsr 1.4.2's ``RRDBNet`` (a dependency), SRVGGNetCompact
against realesrgan 0.3.0's (a test extra; skipped where it is missing). Small inputs (16-24 px),
so the whole file runs in seconds. The registry tests (build, save/load, bf16, ONNX export) run
the ``tiny`` presets through the same checks as every other network."""
from __future__ import annotations

import math

import pytest
import torch

import gan  # noqa: F401  (the torchvision shim, before basicsr)
from gan.nets.rrdb import PRESETS as RRDB_PRESETS
from gan.nets.rrdb import RRDBNet, RRDBNetConfig
from gan.nets.rrdb import config_from_state_dict as rrdb_config
from gan.nets.rrdb import load_published as load_rrdb
from gan.nets.srvgg import PRESETS as SRVGG_PRESETS
from gan.nets.srvgg import SRVGGConfig, SRVGGNetCompact
from gan.nets.srvgg import config_from_state_dict as srvgg_config
from gan.nets.srvgg import load_published as load_srvgg

MAX_ABS, MIN_PSNR = 1e-4, 50.0  # float rounding only


def perturbed(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter moved off its initial value (basicsr zero-fills the dense blocks' biases
    and PReLU starts at 0.25 everywhere: a slope or bias read from the wrong place would hide)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    return net.eval()


def agree(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(max abs difference, PSNR over the reference's spread)."""
    assert a.shape == b.shape
    diff = float((a - b).abs().max())
    mse = float(((a.double() - b.double()) ** 2).mean())
    spread = float(a.max() - a.min()) or 1.0
    return diff, math.inf if mse == 0 else 10 * math.log10(spread**2 / mse)


def assert_parity(want: torch.Tensor, got: torch.Tensor) -> None:
    diff, psnr = agree(want, got)
    assert diff < MAX_ABS or psnr >= MIN_PSNR, f"max abs diff {diff:.3g}, {psnr:.1f} dB"


# ----- RRDBNet ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scale,side", [(4, 16), (2, 20), (1, 24)])
def test_rrdbnet_equals_basicsr(scale, side):
    from basicsr.archs.rrdbnet_arch import RRDBNet as Reference

    torch.manual_seed(scale)
    ref = perturbed(Reference(3, 3, scale=scale, num_feat=16, num_block=2, num_grow_ch=8))
    ours = load_rrdb({"params_ema": ref.state_dict()})
    assert ours.config == RRDBNetConfig(scale=scale, num_feat=16, num_block=2, num_grow_ch=8)
    x = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want, got = ref(x), ours(x)
    assert got.shape == (2, 3, side * scale, side * scale)
    assert_parity(want, got)


def test_rrdbnet_pads_odd_sides_as_realesrganer():
    """x2plus on an odd-sized picture: RealESRGANer mirror-pads the bottom and right to even
    sides and crops the output; the network does the same inside forward."""
    from basicsr.archs.rrdbnet_arch import RRDBNet as Reference

    torch.manual_seed(0)
    ref = perturbed(Reference(3, 3, scale=2, num_feat=8, num_block=1, num_grow_ch=4))
    ours = load_rrdb(ref.state_dict())
    x = torch.rand(1, 3, 15, 18)
    with torch.inference_mode():
        want = ref(torch.nn.functional.pad(x, (0, 0, 0, 1), mode="reflect"))[..., :30, :36]
        got = ours(x)
    assert got.shape == (1, 3, 30, 36)
    assert_parity(want, got)


@pytest.mark.parametrize("preset,blocks,scale", [("x4plus", 23, 4), ("x2plus", 23, 2), ("anime_6B", 6, 4)])
def test_published_rrdb_layouts_load_strictly(preset, blocks, scale):
    """The published configs: basicsr's own state dict (same names, same shapes) loads with
    strict=True, and the config is read back from the shapes alone."""
    from basicsr.archs.rrdbnet_arch import RRDBNet as Reference

    ref = Reference(3, 3, scale=scale, num_feat=64, num_block=blocks, num_grow_ch=32)
    state = ref.state_dict()
    assert rrdb_config(state) == RRDB_PRESETS[preset]
    with torch.device("meta"):
        ours = RRDBNet(RRDB_PRESETS[preset])
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in state.items()}
    assert list(ours.state_dict()) == list(state)


def test_x4plus_forward_equals_basicsr():
    """The full published x4plus shape (23 blocks, 16.7 M parameters) on a 12 px input."""
    from basicsr.archs.rrdbnet_arch import RRDBNet as Reference

    torch.manual_seed(0)
    ref = perturbed(Reference(3, 3, scale=4, num_feat=64, num_block=23, num_grow_ch=32), seed=3)
    ours = load_rrdb({"params": ref.state_dict()}, RRDB_PRESETS["x4plus"])
    x = torch.rand(1, 3, 12, 12)
    with torch.inference_mode():
        assert_parity(ref(x), ours(x))


def test_published_files_read_params_ema_then_params_then_bare(tmp_path):
    torch.manual_seed(0)
    a, b = RRDBNet(RRDB_PRESETS["tiny"]).state_dict(), perturbed(RRDBNet(RRDB_PRESETS["tiny"])).state_dict()
    for name, payload, want in [("ema.pth", {"params_ema": a, "params": b}, a), ("params.pth", {"params": b}, b),
                                ("bare.pth", a, a)]:
        torch.save(payload, tmp_path / name)
        model = load_rrdb(tmp_path / name)
        assert not model.training and all(torch.equal(model.state_dict()[k], v) for k, v in want.items())


def test_foreign_or_damaged_checkpoints_are_one_line_errors(tmp_path):
    srvgg = SRVGGNetCompact(SRVGG_PRESETS["tiny"]).state_dict()
    with pytest.raises(ValueError, match="not a basicsr RRDBNet state dict") as e:
        load_rrdb({"params": srvgg})
    assert "\n" not in str(e.value)
    rrdb = RRDBNet(RRDB_PRESETS["tiny"]).state_dict()
    with pytest.raises(ValueError, match="does not fit") as e:  # the right names, another config
        load_rrdb(rrdb, RRDBNetConfig(num_feat=8, num_block=3, num_grow_ch=4))
    assert "missing body.2.rdb1.conv1.bias" in str(e.value) and "\n" not in str(e.value)
    torch.save({"params_ema": rrdb}, tmp_path / "x.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "x.pth").read_bytes()[:2000])
    with pytest.raises(ValueError, match="cut.pth: cannot read it as PyTorch weights"):
        load_rrdb(tmp_path / "cut.pth")
    with pytest.raises(ValueError, match="scale must be 1, 2 or 4"):
        RRDBNetConfig(scale=3)


# ----- SRVGGNetCompact -------------------------------------------------------------------------


@pytest.mark.parametrize("act_type,upscale,num_conv", [("prelu", 4, 3), ("prelu", 2, 2), ("relu", 3, 2),
                                                       ("leakyrelu", 4, 1)])
def test_srvgg_equals_realesrgan(act_type, upscale, num_conv):
    srvgg_arch = pytest.importorskip("realesrgan.archs.srvgg_arch", reason="realesrgan==0.3.0 (test extra) missing")
    torch.manual_seed(upscale)
    ref = perturbed(srvgg_arch.SRVGGNetCompact(3, 3, num_feat=16, num_conv=num_conv, upscale=upscale,
                                               act_type=act_type))
    config = None if act_type == "prelu" else SRVGGConfig(num_feat=16, num_conv=num_conv, upscale=upscale,
                                                          act_type=act_type)
    ours = load_srvgg({"params": ref.state_dict()}, config)
    assert ours.config == SRVGGConfig(num_feat=16, num_conv=num_conv, upscale=upscale, act_type=act_type)
    x = torch.rand(2, 3, 17, 23, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        got = ours(x)
        want = ref(x)
    assert got.shape == (2, 3, 17 * upscale, 23 * upscale)
    assert_parity(want, got)


@pytest.mark.parametrize("preset,num_conv", [("animevideov3", 16), ("general-x4v3", 32)])
def test_published_srvgg_layouts(preset, num_conv):
    """The published names, written out (body.0 conv, body.1 PReLU, ..., body.{2n+2} the last
    conv to 48 channels), whether or not realesrgan is installed."""
    c = SRVGG_PRESETS[preset]
    state = SRVGGNetCompact(c).state_dict()
    want = {"body.0.weight": (64, 3, 3, 3), "body.0.bias": (64,)}
    for i in range(num_conv + 1):
        want[f"body.{2 * i + 1}.weight"] = (64,)
        if i < num_conv:
            want[f"body.{2 * i + 2}.weight"], want[f"body.{2 * i + 2}.bias"] = (64, 64, 3, 3), (64,)
    want[f"body.{2 * num_conv + 2}.weight"], want[f"body.{2 * num_conv + 2}.bias"] = (48, 64, 3, 3), (48,)
    assert {k: tuple(v.shape) for k, v in state.items()} == want
    assert srvgg_config(state) == c


def test_srvgg_by_hand():
    """No reference needed: with no body convs and ReLU, the output is the pixel-shuffled last
    conv of relu(first conv) plus the nearest-upsampled input."""
    net = perturbed(SRVGGNetCompact(SRVGGConfig(num_feat=4, num_conv=0, upscale=2, act_type="relu")))
    x = torch.rand(1, 3, 5, 6)
    c0, c1 = net.body[0], net.body[2]
    with torch.inference_mode():
        h = torch.nn.functional.conv2d(x, c0.weight, c0.bias, padding=1).clamp(min=0)
        h = torch.nn.functional.conv2d(h, c1.weight, c1.bias, padding=1)
        want = torch.nn.functional.pixel_shuffle(h, 2) + x.repeat_interleave(2, -1).repeat_interleave(2, -2)
        assert_parity(want, net(x))


def test_srvgg_without_slopes_needs_its_activation():
    state = SRVGGNetCompact(SRVGGConfig(num_feat=8, num_conv=1, act_type="relu")).state_dict()
    with pytest.raises(ValueError, match="no PReLU slopes: give act_type"):
        load_srvgg(state)
    assert load_srvgg(state, SRVGGConfig(num_feat=8, num_conv=1, act_type="leakyrelu")).config.act_type == "leakyrelu"
    with pytest.raises(ValueError, match="not an SRVGGNetCompact state dict"):
        load_srvgg(RRDBNet(RRDB_PRESETS["tiny"]).state_dict())
