"""Every network of the registry through the same checks (as timm's tests run over ``list_models()``):
it builds from its tiny preset (and each variant its descriptor names), its descriptor's ports
describe inputs it takes, save -> load gives the same outputs, and bf16 stays near fp32. The
ONNX export of each is in tests/restore/export/test_export.py. No list of networks is kept
here: a new network file is checked as soon as it exists."""
from __future__ import annotations

import ast

import pytest
import torch

from gan.nets.descriptor import KINDS, Descriptor, pixels_in, pixels_out, unit_in
from gan.nets.registry import descriptor, descriptor_of, networks
from gan.serialize import build_model, load_model, save_model
from tests import ROOT

REGISTERED = [(name, variant) for name, d in networks().items() for variant in d.test_configs()]
# bf16 against fp32 on random weights, relative to the output's largest value: the worst seen
# here (2-core AMD EPYC, torch 2.14) was 0.0024 mean and 0.013 max, so these bounds are about 4x
# that; a broken autocast path is far above them. A sigmoid output (HED's edge probabilities,
# saturated by random weights) may flip a pixel sitting at 0.5: its largest error is not bounded.
BF16_MEAN_ERROR, BF16_MAX_ERROR = 0.01, 0.05


def inputs(d: Descriptor, config, seed: int = 0) -> list[torch.Tensor]:
    """Random inputs the ports say the network takes (batch 2, about 40 px or a fixed side)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    want = 40 if getattr(config, "dims", 2) == 2 else 16
    for p in d.inputs(config, want):
        side = p.side or -(-want // p.multiple) * p.multiple
        x = torch.rand((2, p.channels) + (side,) * p.dims, generator=g)
        out.append(x * 2 - 1 if p.range.startswith("[-1, 1]") else x)
    return out


def first(y):
    return y[0] if isinstance(y, (tuple, list)) else y


def randomized(net: torch.nn.Module) -> torch.nn.Module:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return net.eval()


def test_the_registry_finds_every_network_file():
    names = set(networks())
    assert {"UNet", "UNETR", "UNetGenerator", "Restorer", "PatchDiscriminator", "GFPGAN", "StyleGAN2Discriminator",
            "FacialComponentDiscriminator", "Colorizer", "ACPatchDiscriminator", "HED", "ResNetArcFace"} <= names
    for d in networks().values():
        assert d.kind in KINDS and d.model.__module__.startswith("gan.nets.")
    with pytest.raises(ValueError, match="unknown architecture 'NoSuchNet'; known: ACPatchDiscriminator"):
        descriptor("NoSuchNet")
    with pytest.raises(ValueError, match="Linear is not a known architecture"):
        descriptor_of(torch.nn.Linear(1, 1))


def test_descriptors_live_only_in_their_network_files():
    """No network is registered outside its own file: only gan/nets/*.py define DESCRIPTORS."""
    defined = []
    for path in ROOT.glob("*/**/*.py"):
        if ".venv" in path.parts or "tests" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        if any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "DESCRIPTORS" for t in n.targets)
               for n in tree.body):
            defined.append(path.relative_to(ROOT).parts[:2])
    assert defined and all(parts == ("gan", "nets") for parts in defined), defined


@pytest.mark.parametrize("arch,variant", REGISTERED)
def test_builds_runs_and_round_trips(tmp_path, arch, variant):
    d = networks()[arch]
    config = d.test_configs()[variant]
    torch.manual_seed(0)
    net = randomized(d.make(config))
    assert descriptor_of(net) is d and net.config == config
    # rebuilt from the config's JSON form, as a saved file does
    assert type(build_model(arch, config.to_dict())) is d.model
    xs = inputs(d, config)
    with torch.inference_mode():
        want = first(net(*xs))
    assert torch.isfinite(want).all()
    if d.output == "image":  # an image network gives the input's size times its scale
        assert want.shape[-2:] == tuple(s * d.scale for s in xs[0].shape[-2:])
    path = save_model(net, tmp_path / f"{arch}.safetensors", {"task": "test"})
    loaded, meta = load_model(path)
    assert meta["arch"] == arch and meta["task"] == "test" and type(loaded) is d.model
    with torch.inference_mode():
        assert torch.equal(first(loaded(*xs)), want)


@pytest.mark.parametrize("arch,variant", REGISTERED)
def test_bf16_stays_near_fp32(arch, variant):
    d = networks()[arch]
    config = d.test_configs()[variant]
    torch.manual_seed(0)
    net = randomized(d.make(config))
    xs = inputs(d, config, seed=2)
    with torch.inference_mode():
        a = first(net(*xs)).float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            b = first(net(*xs)).float()
    assert torch.isfinite(b).all()
    scale = a.abs().max().clamp(min=1e-6)
    mean, worst = float((a - b).abs().mean() / scale), float((a - b).abs().max() / scale)
    assert mean < BF16_MEAN_ERROR, f"{arch} {variant}: bf16 off by {mean:.3g} on average"
    assert worst < BF16_MAX_ERROR or d.output == "probability", f"{arch} {variant}: bf16 off by {worst:.3g} at worst"
    assert mean > 0  # bf16 really ran (an autocast that changed nothing would give 0)


def test_pixel_scaling_is_the_wrappers_old_formula():
    x = torch.arange(256.0)
    assert torch.equal(pixels_in(x, "[-1, 1]"), x / 127.5 - 1) and torch.equal(pixels_in(x, "[0, 1]"), x / 255)
    y = torch.linspace(-1.5, 1.5, 3001)
    assert torch.equal(pixels_out(y, "[-1, 1]"), ((y.clamp(-1, 1) + 1) * 127.5).round())
    assert torch.equal(pixels_out(y, "[0, 1]"), (y.clamp(0, 1) * 255).round())
    with pytest.raises(ValueError, match="no pixel scaling for the range 'logits'"):
        pixels_in(x, "logits")
    u = torch.linspace(0, 1, 101)
    assert torch.equal(unit_in(u, "[-1, 1] (white paper 1, lines -1)"), u * 2 - 1) and torch.equal(unit_in(u, "[0, 1]"), u)
