"""Imported and published weights: files recognised by their sha256, own models by name and
architecture, pickled code refused, one-time conversion to safetensors (GFP-GAN's checked
against its own loader), the ``restore weights`` CLI, and the real manifest."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

from restore.cli import main
from restore.models import cache as wc
from restore.models import manifest as wm
from restore.models.cache import load_network
from restore.models.published import load_checkpoint, read_state

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
from tests.restore.models.weightserver import PAYLOAD, TAMPERED, closed_port_url, leftovers


# --------------------------------------------------------------------------- import, conversion
def test_import_recognises_a_published_file(env, tmp_path):
    src = tmp_path / "Downloads" / "whatever.pth"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    assert wc.import_file(src) == env / "good.pth"
    assert wc.find_cached("good").read_bytes() == PAYLOAD and src.exists()


def test_import_refuses_tampered_and_unknown_files(env, tmp_path):
    src = tmp_path / "x.pth"
    src.write_bytes(TAMPERED)
    with pytest.raises(wm.WeightsError, match=r"is not good: its sha256 is \w+, the manifest's is \w+") as e:
        wc.import_file(src, "good")
    assert "\n" not in str(e.value)
    with pytest.raises(wm.WeightsError, match="matches no model in the manifest.*--name NAME --arch ARCH"):
        wc.import_file(src)
    assert leftovers(env) == []


def tiny_unet():
    from gan.nets.unet import UNet, UNetConfig

    cfg = {"in_channels": 1, "out_channels": 2, "base_channels": 4, "depth": 2}
    torch.manual_seed(0)
    return UNet(UNetConfig(**cfg)).eval(), cfg


def test_import_own_model_with_name_and_arch(env, tmp_path):
    model, cfg = tiny_unet()
    src = tmp_path / "mine.pth"
    torch.save({"params_ema": model.state_dict()}, src)
    out = wc.import_file(src, "my-unet", arch="UNet", config=cfg)
    assert out == env / "my-unet.safetensors" and wc.resolve_weights("my-unet") == out
    loaded, meta = load_network("my-unet")
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert meta["source_file"] == "mine.pth"
    with pytest.raises(wm.WeightsError, match="does not fit UNet"):
        wc.import_file(src, "wrong", arch="UNet", config={**cfg, "depth": 3})


def test_published_file_of_our_architecture_is_converted_once(env, server, tmp_path, monkeypatch):
    model, cfg = tiny_unet()
    pth = tmp_path / "pub.pth"
    torch.save({"params_ema": model.state_dict()}, pth)
    server.files["pub.pth"] = pth.read_bytes()
    manifest = Path(wm.manifest_path())
    manifest.write_text(manifest.read_text() + (
        f'[models.pub]\nfile = "pub.pth"\nurl = "{server.base}/pub.pth"\nsha256 = "{wm.sha256(pth)}"\n'
        f'arch = "UNet"\ntask = "test"\nlicence = "MIT"\n[models.pub.config]\n'
        + "".join(f"{k} = {v}\n" for k, v in cfg.items())))
    wc.fetch("pub", progress=False)
    conv = env / "pub.safetensors"
    assert conv.is_file() and wc.find_cached("pub") == conv  # later loads skip torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load after conversion"))
    loaded, meta = load_network("pub")
    assert meta["source_sha256"] == wm.sha256(pth) and meta["arch"] == "UNet"
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    path = tmp_path / "evil.pth"
    torch.save({"params_ema": Evil()}, path)
    with pytest.raises(wm.RefusedWeights, match=r"evil\.pth: refused: .*builtins\.print") as e:
        read_state(path)
    assert "\n" not in str(e.value) and "weights_only=False" not in str(e.value)


def test_gfpgan_checkpoint_converts_and_matches(env, tmp_path, monkeypatch):
    gfpgan = pytest.importorskip("gan.nets.gfpgan")
    from gan import serialize

    if "GFPGAN" not in serialize.ARCHITECTURES:  # until gan/serialize.py registers it
        monkeypatch.setitem(serialize.ARCHITECTURES, "GFPGAN", (gfpgan.GFPGANConfig, gfpgan.GFPGAN))
    cfg = gfpgan.GFPGAN_PRESETS["tiny"]
    torch.manual_seed(0)
    model = gfpgan.GFPGAN(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)  # noise-injection weights start at zero: randomize everything
    src = tmp_path / "GFPGANtiny.pth"
    torch.save({"params_ema": model.state_dict()}, src)
    out = wc.import_file(src, "tiny-gfpgan", arch="GFPGAN", config=cfg.to_dict())
    loaded, meta = load_network(out)
    assert meta["arch"] == "GFPGAN"
    x = torch.rand(1, 3, cfg.out_size, cfg.out_size) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6)
    with pytest.raises(wm.WeightsError, match="does not load as GFPGAN .*mis-shaped") as e:
        load_checkpoint(src, "GFPGAN", {**cfg.to_dict(), "sft_half": not cfg.sft_half})
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------------- CLI
def test_cli_list_fetch_verify_import(env, server, tmp_path, capsys):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"good\s+test\s+0\.3 MB\s+missing\s+MIT", out) and re.search(r"small .*bundled", out)
    assert f"cache: {env}" in out

    assert main(["weights", "fetch", "good", "--quiet"]) == 0
    assert f"good: {env / 'good.pth'}" in capsys.readouterr().out
    assert main(["weights", "fetch", "tampered", "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "fails its sha256 check" in err and "deleted" in err
    assert main(["weights", "fetch", "nope"]) == 2

    assert main(["weights", "verify"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"OK\s+good\s", out) and re.search(r"not fetched\s+short", out) and re.search(r"OK\s+small", out)
    (env / "good.pth").write_bytes(TAMPERED)
    assert main(["weights", "verify"]) == 1
    assert re.search(r"MISMATCH\s+good\s", capsys.readouterr().out)

    src = tmp_path / "dl.pth"
    src.write_bytes(PAYLOAD)
    assert main(["weights", "import", str(src)]) == 0
    assert f"-> {env / 'good.pth'}" in capsys.readouterr().out
    src.write_bytes(TAMPERED)
    assert main(["weights", "import", str(src), "--name", "good"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is not good" in err
    assert main(["weights", "import", str(src), "--arch", "UNet"]) == 2


def test_cli_offline_fetch(env, monkeypatch, capsys):
    monkeypatch.setenv("RESTORE_URL_BASE", closed_port_url())
    assert main(["weights", "fetch", "good"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot download" in err and str(env / "good.pth") in err


# --------------------------------------------------------------------------- the real manifest
def test_real_manifest_entries():
    with wm.MANIFEST.open("rb") as f:
        models = tomllib.load(f)["models"]
    assert {"nuclei", "gfpgan-v1.3", "gfpgan-v1.4", "retinaface-resnet50", "parsenet"} <= set(models)
    for name, e in models.items():
        assert re.fullmatch(r"[0-9a-f]{64}", e["sha256"]), name
        assert {"file", "arch", "task", "licence"} <= set(e), name
        if "url" in e:
            packed = "." + e["packed"] if "packed" in e else ""  # served compressed (restore.models.wheel_files)
            assert e["url"].startswith("https://") and e["url"].endswith("/" + e["file"] + packed) and "source" in e, name
        else:
            assert (wm.WEIGHTS_DIR / e["file"]).is_file(), name
    assert models["gfpgan-v1.4"]["bytes"] == models["gfpgan-v1.3"]["bytes"] == 348_632_874
    assert "bytes" not in models["parsenet"]  # unpublished: the sha256 and a ceiling are checked
    assert models["parsenet"]["max_bytes"] == 128 << 20
    gfpgan = pytest.importorskip("gan.nets.gfpgan")
    for name in ("gfpgan-v1.3", "gfpgan-v1.4"):  # the manifest's config is the published preset
        assert gfpgan.GFPGANConfig(**models[name]["config"]) == gfpgan.GFPGAN_PRESETS["published"]
