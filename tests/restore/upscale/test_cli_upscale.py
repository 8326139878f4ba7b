"""``restore upscale`` end to end on a small folder, with a tiny model file made here: names as
Real-ESRGAN's command gives them, grey / RGBA / 16-bit kept, a damaged file one line (the rest
done), ``--skip-existing``; and the Upscaler's other options (denoise, the onnxruntime backend)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gan.nets.srvgg import SRVGGConfig, SRVGGNetCompact
from gan.serialize import save_model
from restore.cli import main
from restore.imageio import read_alpha, read_image
from restore.imagewrite import write_png
from restore.upscale.upscaler import Upscaler
from tests.restore.upscale.test_upscaler import bgr, picture, psnr


@pytest.fixture
def tiny(tmp_path):
    torch.manual_seed(0)
    return save_model(SRVGGNetCompact(SRVGGConfig(num_feat=4, num_conv=1)).eval(), tmp_path / "tiny.safetensors")


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    write_png(src / "a.png", picture(20, 24, "rgb"))
    write_png(src / "sub" / "b.png", picture(16, 12, "grey"))
    write_png(src / "c.png", picture(12, 16, "rgba"))
    write_png(src / "d16.png", picture(12, 12, "rgb16"))
    (src / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return src


def test_folder_end_to_end(tiny, folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["upscale", str(folder), "-o", str(out), "--weights", str(tiny)]) == 1  # bad.png failed
    err = capsys.readouterr().err
    print(err)
    assert err.startswith(f"restore upscale: {tiny}, x4 network, fp32 on cpu\n")
    bad = [line for line in err.splitlines() if "bad.png" in line]
    assert len(bad) == 1, err
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert names == ["a_out.png", "c_out.png", "d16_out.png", "sub/b_out.png"]
    up = Upscaler(str(tiny))
    for name, src in (("a_out.png", "a.png"), ("sub/b_out.png", "sub/b.png"), ("d16_out.png", "d16.png")):
        got, want = read_image(out / name), up(read_image(folder / src))
        assert got.dtype == want.dtype and np.array_equal(got, want), name
    assert read_image(out / "d16_out.png").dtype == np.uint16 and read_image(out / "sub/b_out.png").ndim == 2
    c = np.concatenate([read_image(out / "c_out.png"), read_alpha(out / "c_out.png")[..., None]], axis=2)
    assert np.array_equal(c, up(picture(12, 16, "rgba")))  # alpha through the network
    # resumed: nothing redone
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    assert main(["upscale", str(folder), "-o", str(out), "--weights", str(tiny), "--skip-existing"]) == 1
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps
    assert "skipped 4" in capsys.readouterr().err


def test_scale_suffix_and_usage_errors(tiny, folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["upscale", str(folder / "a.png"), "-o", str(out), "--weights", str(tiny), "-s", "2.5",
                 "--suffix", "", "--tile", "8", "--format", "jpg", "--quiet"]) == 0
    assert read_image(out / "a.jpg").shape == (50, 60, 3)
    for argv, why in ((["--denoise", "0.3"], "--denoise needs a model with a weak-denoise twin"),
                      (["--tile", "-1"], "must be >= 0"), (["--weights", "nosuch"], "no weights named 'nosuch'")):
        assert main(["upscale", str(folder / "a.png"), "-o", str(out), "--weights", str(tiny), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and why in err, err


def test_denoise_interpolates_as_realesrgan(tmp_path):
    utils = pytest.importorskip("realesrgan.utils", reason="realesrgan==0.3.0 (test extra) missing")
    from realesrgan.archs.srvgg_arch import SRVGGNetCompact as Ref

    c = SRVGGConfig(num_feat=4, num_conv=1)
    nets = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        nets.append(SRVGGNetCompact(c).eval())
        torch.save({"params": nets[-1].state_dict()}, tmp_path / f"{seed}.pth")
    before = {k: v.clone() for k, v in nets[0].state_dict().items()}
    img = picture(20, 16, "rgb", seed=5)
    ref = utils.RealESRGANer(scale=4, model_path=[str(tmp_path / "1.pth"), str(tmp_path / "2.pth")],
                             dni_weight=[0.3, 0.7], model=Ref(**c.to_dict()), device=torch.device("cpu"), pre_pad=0)
    want = bgr(ref.enhance(bgr(img))[0])
    got = Upscaler(nets[0], denoise=0.3, twin=nets[1], precision="fp32")(img)
    assert psnr(got, want, 255) >= 50
    assert all(torch.equal(v, before[k]) for k, v in nets[0].state_dict().items())  # the caller's is untouched


def test_onnxruntime_backend_equals_torch(tiny, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("RESTORE_HOME", str(tmp_path / "cache"))
    img = picture(20, 24, "rgba", seed=2)
    want = Upscaler(str(tiny), tile=12, precision="fp32")(img)
    got = Upscaler(str(tiny), tile=12, backend="onnxruntime")(img)
    assert psnr(got, want, 255) >= 50
