"""Untrusted input (issue 35): a server that never stops sending cannot fill the disk; a
``.pth`` whose pickle would run code, and an ``.onnx`` of garbage, are refused in one line
with exit status 2 by every command that takes them. Each crafted file is made here."""
from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from restore.cli import main
from restore.models import download as dl
from restore.models import manifest as wm
from tests import ROOT
from tests.restore.models.weightserver import PAYLOAD, serving, write_manifest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


# --------------------------------------------------------------------------- 1. downloads
@pytest.fixture
def server():
    """The weights server of tests/restore/models, with ``runaway.bin`` streaming forever."""
    with serving({"good.bin": PAYLOAD, "small.bin": PAYLOAD[:30_000]}, forever={"runaway.bin"}) as srv:
        yield srv


@pytest.fixture
def part_sizes(monkeypatch):
    """The size of every ``.part`` at the moment it is deleted (what the download had written)."""
    sizes: list[int] = []
    real = Path.unlink

    def unlink(self, missing_ok=False):
        if self.name.endswith(".part") and self.is_file():
            sizes.append(self.stat().st_size)
        return real(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    return sizes


def test_every_downloadable_model_has_a_ceiling():
    with wm.MANIFEST.open("rb") as f:
        models = tomllib.load(f)["models"]
    for name, e in models.items():
        if "url" in e:
            limit = e.get("bytes", e.get("max_bytes"))
            assert isinstance(limit, int) and 0 < limit <= 1 << 30, name  # stated, and bounded
    assert models["parsenet"]["max_bytes"] == 128 << 20  # its size is unpublished (~81 MiB)
    assert dl.MAX_BYTES == 4 << 30  # for a caller that states neither


@pytest.mark.parametrize("how", ["max_bytes", "size", "default cap"])
def test_runaway_server_stops_at_the_ceiling(tmp_path, server, part_sizes, monkeypatch, how):
    ceiling = 20_000
    kwargs = {"max_bytes": {"max_bytes": ceiling}, "size": {"size": ceiling}, "default cap": {}}[how]
    monkeypatch.setattr(dl, "MAX_BYTES", ceiling if how == "default cap" else dl.MAX_BYTES)
    dest = tmp_path / "cache" / "runaway.pth"
    start = time.monotonic()
    with pytest.raises(dl.DownloadError) as e:
        dl.download(f"{server.base}/runaway.bin", dest, sha256="0" * 64, progress=False, **kwargs)
    assert time.monotonic() - start < 5
    msg = str(e.value)
    assert "\n" not in msg and f"more than {ceiling}" in msg and "deleted" in msg
    assert part_sizes and max(part_sizes) <= ceiling  # never wrote past the ceiling
    assert sorted(p.name for p in dest.parent.iterdir()) == []  # no .part, no file


def test_stated_length_over_the_ceiling_is_not_fetched(tmp_path, server):
    dest = tmp_path / "good.pth"
    with pytest.raises(dl.DownloadError, match=r"offers 307200 bytes, more than 10000 \(its stated maximum\)"):
        dl.download(f"{server.base}/good.bin", dest, sha256="0" * 64, max_bytes=10_000, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_part_over_the_ceiling_is_discarded_not_resumed(tmp_path, server):
    dest = tmp_path / "small.pth"
    (tmp_path / "small.pth.part").write_bytes(b"\x00" * 50_000)  # e.g. left by a killed runaway download
    body = PAYLOAD[:30_000]
    got = dl.download(f"{server.base}/small.bin", dest, sha256=hashlib.sha256(body).hexdigest(),
                      max_bytes=40_000, progress=False)
    assert got.read_bytes() == body and server.requests == [("/small.bin", None)]  # from zero, no Range


def test_cli_fetch_from_a_runaway_server(tmp_path, server, monkeypatch, capsys):
    write_manifest(tmp_path / "manifest.toml", {"runaway": {
        "file": "runaway.pth", "url": f"{server.base}/runaway.bin", "max_bytes": 50_000, "sha256": "0" * 64,
        "arch": "Other", "task": "test", "licence": "MIT"}})
    monkeypatch.setenv("RESTORE_MANIFEST", str(tmp_path / "manifest.toml"))
    monkeypatch.setenv("RESTORE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("RESTORE_URL_BASE", raising=False)
    assert main(["weights", "fetch", "runaway", "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "more than 50000 (its stated maximum)" in err
    assert list((tmp_path / "cache").iterdir()) == []


# --------------------------------------------------------------------------- 2. pickled code
class _Payload:
    """Unpickled, it would create ``marker``: the test fails if the file appears."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def evil_pth(folder: Path, fmt: str = "zip") -> tuple[Path, Path]:
    """(a .pth whose pickle calls os.system, the marker file the call would create)."""
    marker = folder / f"ran-{fmt}"
    path = folder / f"evil-{fmt}.pth"
    obj = {"params_ema": {"w": torch.zeros(2)}, "x": _Payload(marker)}
    if fmt == "bare":  # a plain pickle, protocol 5 (STACK_GLOBAL): what pickle.dump writes
        path.write_bytes(pickle.dumps(obj, protocol=5))
    else:
        torch.save(obj, path, _use_new_zipfile_serialization=fmt == "zip")
    return path, marker


def one_line_refusal(err: str, path: Path) -> None:
    err = err.strip()
    assert err.count("\n") == 0, err
    assert f"{path}: refused: the file holds Python objects other than tensors" in err
    assert "weights_only=False" not in err and "Traceback" not in err


@pytest.mark.parametrize("fmt", ["zip", "legacy", "bare"])
def test_pickled_code_never_runs(tmp_path, fmt):
    from gan.weightio import RefusedPickle, read_state_dict

    path, marker = evil_pth(tmp_path, fmt)
    with pytest.raises(RefusedPickle) as e:
        read_state_dict(path)
    one_line_refusal(str(e.value), path)
    assert "system" in str(e.value) and not marker.exists()


def test_any_foreign_global_is_refused(tmp_path):
    import argparse

    from gan.weightio import RefusedPickle, read_state_dict

    path = tmp_path / "old.pth"  # old training scripts pickled their argparse options beside the weights
    torch.save({"state_dict": {"w": torch.zeros(1)}, "args": argparse.Namespace(lr=1)}, path)
    with pytest.raises(RefusedPickle, match=r"\(argparse\.Namespace: "):
        read_state_dict(path)


def test_damaged_pth_is_one_line_not_a_refusal(tmp_path):
    from gan.weightio import RefusedPickle, read_state_dict

    good = tmp_path / "good.pth"
    torch.save({"w": torch.zeros(1000)}, good)
    rng = np.random.default_rng(0)  # 200 random files: ~5% reached torch's legacy reader as
    noise = [(f"noise{k}.pth", rng.bytes(3000)) for k in range(200)]  # IndexError, KeyError, ...
    for name, data in [("cut.pth", good.read_bytes()[:700])] + noise:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match="cannot read it as PyTorch weights") as e:
            read_state_dict(tmp_path / name)
        assert not isinstance(e.value, RefusedPickle) and "\n" not in str(e.value)


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / "a.png")
    return folder


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RESTORE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cli_faces_refuses_pickled_code(tmp_path, photos, cache, capsys):
    path, marker = evil_pth(tmp_path)
    assert main(["faces", "--weights", str(path), str(photos), "-o", str(tmp_path / "out"), "--quiet"]) == 2
    one_line_refusal(capsys.readouterr().err, path)
    assert not marker.exists()


def test_export_source_refuses_pickled_code(tmp_path, cache):
    from restore.export.cli import load_source

    path, marker = evil_pth(tmp_path)
    with pytest.raises(ValueError) as e:
        load_source(str(path))
    one_line_refusal(str(e.value), path)
    assert not marker.exists()


@pytest.mark.slow
def test_cli_export_refuses_pickled_code(tmp_path, cache, capsys):
    """``restore export`` itself (seconds: it imports the ONNX exporter before loading)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    path, marker = evil_pth(tmp_path)
    assert main(["export", str(path), "-o", str(tmp_path / "x.onnx")]) == 2
    one_line_refusal(capsys.readouterr().err, path)
    assert not marker.exists() and not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("extra", [[], ["--name", "mine", "--arch", "GFPGAN"], ["--name", "mine", "--arch", "UNet"]])
def test_cli_weights_import_refuses_pickled_code(tmp_path, cache, capsys, extra):
    path, marker = evil_pth(tmp_path)
    assert main(["weights", "import", str(path), *extra]) == 2
    one_line_refusal(capsys.readouterr().err, path)
    assert not marker.exists()
    assert not cache.exists() or [p.name for p in cache.iterdir()] == []  # nothing kept


@pytest.mark.slow
def test_real_command_refuses_pickled_code(tmp_path, photos):
    """The same through a fresh ``python -m restore`` (a few seconds: torch is imported)."""
    path, marker = evil_pth(tmp_path)
    argv = [sys.executable, "-m", "restore", "faces", "--weights", str(path), str(photos), "-o", str(tmp_path / "out")]
    proc = subprocess.run([*argv, "--quiet"], capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
                          env={**os.environ, "RESTORE_HOME": str(tmp_path / "cache")})
    assert proc.returncode == 2
    one_line_refusal(proc.stderr, path)
    assert not marker.exists()


# --------------------------------------------------------------------------- 3. garbage .onnx
def onnx_bytes() -> bytes:
    """A small valid ONNX model with this toolkit's metadata (what a truncated export is cut from)."""
    import json

    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, "h", "w"])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    for key, value in (("arch", "Restorer"), ("name", "restorer"), ("input_range", [-1, 1])):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture(params=["random", "truncated", "foreign"])
def bad_onnx(request, tmp_path):
    pytest.importorskip("onnxruntime")
    path = tmp_path / f"{request.param}.onnx"
    if request.param == "random":
        path.write_bytes(np.random.default_rng(1).bytes(4000))
    elif request.param == "truncated":
        data = onnx_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:  # a readable ONNX file, but its metadata names no network of ours
        data = onnx_bytes().replace(b"Restorer", b"Nothing!")
        path.write_bytes(data)
    return path


@pytest.mark.parametrize("command", ["segment", "translate", "sketch", "faces"])
def test_cli_garbage_onnx_is_one_line(bad_onnx, command, photos, tmp_path, cache, capsys):
    style = ["--style", str(photos / "a.png")] if command == "sketch" else []
    code = main([command, "--weights", str(bad_onnx), str(photos), "-o", str(tmp_path / "out"), "--quiet", *style])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "Traceback" not in err, err
    assert f"{bad_onnx}: " in err


def test_onnx_network_refuses_garbage_in_one_line(tmp_path):
    pytest.importorskip("onnxruntime")
    from restore.export.backend import OnnxNetwork

    path = tmp_path / "x.onnx"
    path.write_bytes(b"\x08\x07" + np.random.default_rng(2).bytes(500))
    with pytest.raises(ValueError, match=r"x\.onnx: not a readable ONNX model") as e:
        OnnxNetwork(path)
    assert "\n" not in str(e.value)
