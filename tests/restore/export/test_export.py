"""``restore export``: every network to ONNX, checked by onnxruntime against PyTorch; the file's
interface (first input, dynamic axes, metadata); refusal of a file that does not match."""
from __future__ import annotations

import copy
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

import gan  # noqa: F401  (the torchvision shim)
from gan.nets.colorizer import Colorizer
from gan.nets.gfpgan import GFPGAN_PRESETS, GFPGAN, config_from_state_dict, load_published
from gan.nets.hed import HED
from gan.nets.pix2pix import UNetGenerator
from gan.nets.restorer import Restorer
from gan.nets.unet import UNet
from gan.nets.unetr import UNETR
from gan.nets.registry import networks
from gan.serialize import save_model

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from restore.export.onnx import ExportError, export_onnx, read_metadata  # noqa: E402
from restore.export.specs import photo  # noqa: E402


def randomized(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter perturbed (zero-initialised noise weights and biases would hide paths)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return net.eval()


def session(path) -> "ort.InferenceSession":
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 2.0) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak ** 2 / mse)


def tiny(kind: str) -> torch.nn.Module:
    from gan.presets import COLORIZER_PRESETS, PIX2PIX_PRESETS, UNET_PRESETS, UNETR_PRESETS

    torch.manual_seed(0)
    if kind == "restorer":
        return randomized(Restorer(PIX2PIX_PRESETS["tiny-restorer"]))
    if kind == "pix2pix":
        return randomized(UNetGenerator(PIX2PIX_PRESETS["tiny"]))
    if kind == "unet2d":
        return randomized(UNet(UNET_PRESETS["tiny"]))
    if kind == "unet-valid":
        return randomized(UNet(UNET_PRESETS["tiny"].__class__(**{**UNET_PRESETS["tiny"].to_dict(), "padding": "valid"})))
    if kind in ("residual", "attention", "multires"):  # the U-Net variants
        return randomized(UNet(UNET_PRESETS["tiny"].__class__(**{**UNET_PRESETS["tiny"].to_dict(), "kind": kind})))
    if kind == "unet3d":
        return randomized(UNet(UNET_PRESETS["tiny"].__class__(**{**UNET_PRESETS["tiny"].to_dict(), "dims": 3})))
    if kind == "unetr":
        return randomized(UNETR(UNETR_PRESETS["tiny"]))
    if kind == "colorizer":
        return randomized(Colorizer(COLORIZER_PRESETS["tiny"]))
    if kind == "colorizer-match":  # + the sketch-keyed correspondence (the reference's XDoG inside)
        return randomized(Colorizer(replace(COLORIZER_PRESETS["tiny"], match_level=0)))
    if kind == "hed":
        return randomized(HED())
    raise KeyError(kind)


REGISTERED = [(name, variant) for name, d in networks().items() for variant in d.test_configs()]


@pytest.mark.parametrize("arch,variant", REGISTERED)
def test_every_network_exports_and_matches(tmp_path, arch, variant):
    """Every network of the registry, in its tiny preset and each variant its descriptor names
    (no list kept here: a new network file is tested as soon as it exists)."""
    d = networks()[arch]
    torch.manual_seed(0)
    net = randomized(d.make(d.test_configs()[variant]))
    tile = 16 if variant.endswith("3d") else 48
    kind = f"{arch}-{variant}"
    before = copy.deepcopy(net.state_dict())
    result = export_onnx(net, tmp_path / f"{kind}.onnx", name=kind, source_sha256="ab" * 32, tile=tile)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # the caller's model untouched
    kind_, value = result.score
    assert kind_ == ("equal" if d.output == "logits" else "psnr")
    assert value >= (0.999 if kind_ == "equal" else 45)
    meta = read_metadata(result.path)
    assert meta["name"] == kind and meta["source_sha256"] == "ab" * 32 and meta["precision"] == "fp32"
    assert meta["arch"] == arch and isinstance(meta["config"], dict)
    assert meta["input_range"] and meta["check"][kind_] == pytest.approx(value, abs=1e-3)
    s = session(result.path)
    first = s.get_inputs()[0]
    assert first.type == "tensor(float)" and not isinstance(first.shape[0], int)  # the batch axis is dynamic
    # batch 3 (the export saw 2) gives what PyTorch gives, picture for picture
    from restore.export.specs import spec_for

    spec = spec_for(net, tile=tile)
    xs = [torch.cat([i.example, i.example[:1]]) for i in spec.inputs]
    with torch.inference_mode():
        want = spec.module(*xs).numpy()
    got = s.run(None, {i.name: x.numpy() for i, x in zip(spec.inputs, xs)})[0]
    assert got.shape == want.shape
    assert spec.compare(want, got)[1] >= (45 if spec.output != "logits" else 0.999)


@pytest.mark.parametrize("kind,sides", [("restorer", (48, 80)), ("colorizer", (40, 72)), ("colorizer-match", (40, 72)),
                                        ("hed", (37, 50)),
                                        ("unet2d", (40, 56))])
def test_dynamic_sides(tmp_path, kind, sides):
    net = tiny(kind)
    result = export_onnx(net, tmp_path / "d.onnx", dynamic=True, tile=32)
    from restore.export.specs import spec_for

    spec = spec_for(net, tile=sides[0])
    h, w = sides
    xs = []
    for i in spec.inputs:
        x = i.example
        if i.dynamic:  # a picture of another size
            x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        xs.append(x)
    with torch.inference_mode():
        want = spec.module(*xs).numpy()
    got = session(result.path).run(None, {i.name: x.numpy() for i, x in zip(spec.inputs, xs)})[0]
    assert got.shape == want.shape
    assert spec.compare(want, got)[1] >= (0.999 if spec.output == "logits" else 45)


def test_dynamic_refused_for_fixed_size_networks(tmp_path):
    with pytest.raises(ExportError, match="one input size only"):
        export_onnx(randomized(GFPGAN(GFPGAN_PRESETS["tiny"])), tmp_path / "g.onnx", dynamic=True)
    assert not (tmp_path / "g.onnx").exists()


def test_a_file_that_does_not_match_is_not_written(tmp_path, monkeypatch):
    import restore.export.onnx as onnx_mod

    monkeypatch.setattr(onnx_mod, "_check", lambda *a: ("psnr", 21.5))
    with pytest.raises(ExportError, match=r"21\.5 dB.*nothing written"):
        export_onnx(tiny("restorer"), tmp_path / "r.onnx", tile=32)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary


def test_fp16_export_keeps_float32_io_and_reports_its_error(tmp_path):
    result = export_onnx(tiny("restorer"), tmp_path / "r16.onnx", fp16=True, tile=64)
    s = session(result.path)
    assert s.get_inputs()[0].type == "tensor(float)" and s.get_outputs()[0].type == "tensor(float)"
    assert read_metadata(result.path)["precision"] == "fp16"
    kind, value = result.score
    assert kind == "psnr" and 30 <= value < 200
    assert (tmp_path / "r16.onnx").stat().st_size < 0.75 * export_onnx(tiny("restorer"), tmp_path / "r.onnx",
                                                                        tile=64).path.stat().st_size


def test_gfpgan_published_layout_against_the_reference_network(tmp_path):
    """GFP-GAN in the published layout (GFPGANv1Clean's flags and parameter names, random weights):
    onnxruntime's output against gfpgan 1.3.8's own network on a real face."""
    from tests.gan.nets.test_gfpgan import SMALL, reference

    ref = reference(**SMALL)
    ours = load_published(ref.state_dict(), config_from_state_dict(ref.state_dict()))
    result = export_onnx(ours, tmp_path / "gfpgan.onnx", name="gfpgan-test")
    face = photo((64, 64))[:1] * 2 - 1  # the astronaut, a real face
    with torch.no_grad():
        want = ref(face, return_rgb=False, randomize_noise=False)[0].numpy()
    got = session(result.path).run(None, {"input": face.numpy()})[0]
    assert psnr(want, got) >= 45
    assert session(result.path).get_inputs()[0].shape[1:] == [3, 64, 64]


def test_cli_export(tmp_path, capsys, monkeypatch):
    from restore.cli import main

    monkeypatch.setenv("RESTORE_HOME", str(tmp_path / "cache"))
    net = tiny("pix2pix")
    src = save_model(net, tmp_path / "run" / "generator.safetensors")
    assert main(["export", str(tmp_path / "run"), "-o", str(tmp_path / "g.onnx"), "--dynamic", "--tile", "64"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "PSNR" in out and "UNetGenerator" in out
    meta = read_metadata(tmp_path / "g.onnx")
    from restore.models.manifest import sha256

    assert meta["source_sha256"] == sha256(src) and meta["dynamic"] is True
    assert main(["export", str(src), "-o", str(tmp_path / "g17.onnx"), "--opset", "17", "--tile", "64"]) == 0
    import onnx

    assert read_metadata(tmp_path / "g17.onnx")["opset"] == 17
    assert {o.domain: o.version for o in onnx.load(str(tmp_path / "g17.onnx")).opset_import}[""] == 17
    assert main(["export", "restorer", "-o", str(tmp_path / "r.txt")]) == 2
    assert main(["export", "no-such-model", "-o", str(tmp_path / "x.onnx")]) == 2
    assert "no weights named" in capsys.readouterr().err
    g = randomized(GFPGAN(GFPGAN_PRESETS["tiny"]))
    save_model(g, tmp_path / "g.safetensors")
    assert main(["export", str(tmp_path / "g.safetensors"), "-o", str(tmp_path / "g2.onnx"), "--dynamic"]) == 2
    assert "one input size only" in capsys.readouterr().err and not (tmp_path / "g2.onnx").exists()
    assert json.loads(json.dumps(meta["config"])) == net.config.to_dict()
    torch.save({"params_ema": g.state_dict()}, tmp_path / "published_style.pth")  # a GFP-GAN .pth of one's own
    assert main(["export", str(tmp_path / "published_style.pth"), "-o", str(tmp_path / "p.onnx")]) == 0
    assert "GFPGAN" in capsys.readouterr().out and read_metadata(tmp_path / "p.onnx")["name"] == "published_style"
