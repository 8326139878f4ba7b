"""bioimage.io packages from strangers (``restore segment --weights MODEL.zip``): a zip bomb,
too many members, names outside the package, a lying size, a billion-laughs or huge rdf.yaml,
TorchScript that writes files at load or in its forward, a pickle that runs a command, ONNX
that points at other files: each is one line and exit status 2, nothing is written, memory stays
bounded. Our own packages load their tensors without running the TorchScript file; a package
from elsewhere runs its ONNX weights before its TorchScript; trust is the caller's to give."""
from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import gan  # noqa: F401  (the torchvision shim)
from gan.nets.unet import UNet, UNetConfig
from restore.cli import main
from restore.segment.bioimageio import PackageError, PackageNetwork, load_package
from restore.segment.package_files import MAX_MEMBERS, MAX_TEXT

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
ROOT = Path(__file__).resolve().parents[3]
CONFIG = {"in_channels": 1, "out_channels": 1, "base_channels": 8, "depth": 2, "dims": 2}


def foreign_rdf(weights: dict, ours: bool = False) -> dict:
    space = [{"type": "space", "id": a, "size": {"min": 16, "step": 16}} for a in "yx"]
    rdf = {"format_version": "0.5.4", "type": "model", "name": "stranger",
           "inputs": [{"id": "raw", "axes": [{"type": "batch"}, {"type": "channel", "channel_names": ["c"]}, *space]}],
           "outputs": [{"id": "out", "axes": [{"type": "batch"}, {"type": "channel", "channel_names": ["fg"]}] + [
               {"type": "space", "id": a, "size": {"tensor_id": "raw", "axis_id": a}} for a in "yx"],
               "postprocessing": [{"id": "sigmoid"}]}],
           "weights": weights}
    if ours:
        rdf["config"] = {"unet-restore": {"arch": "UNet", "config": CONFIG, "diameter": 12}}
    return rdf


def package(path: Path, rdf: dict | str, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("rdf.yaml", rdf if isinstance(rdf, str) else yaml.safe_dump(rdf))
        for name, data in members.items():
            z.writestr(name, data)
    return path


def scripted(module: torch.nn.Module, example: torch.Tensor | None = None) -> bytes:
    """The TorchScript file of ``module``: scripted, or traced on ``example``."""
    b = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(module) if example is None else
                       torch.jit.trace(module.eval(), example, check_trace=False), b)
    return b.getvalue()


def one_line(capsys, package_path: Path, tmp_path: Path, *words: str) -> str:
    from PIL import Image

    image = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(0).random((32, 32)) * 255).astype(np.uint8)).save(image)
    capsys.readouterr()
    assert main(["segment", str(image), "-o", str(tmp_path / "out"), "--weights", str(package_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(w in err[0] for w in words), err
    return err[0]


# --------------------------------------------------------------------------- hostile zips
BOMB = """
import json, resource, sys
from restore.segment.bioimageio import PackageError, load_package
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_package(sys.argv[1])
    message = None
except PackageError as e:
    message = str(e)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"message": message, "grew_mib": (after - before) / 1024}))
"""


def test_zip_bomb_stops_early(tmp_path):
    """1 GiB of zeros deflated to ~1 MiB as the weights: refused once the read passes RATIO times
    the compressed size, in a fresh process whose peak memory grows by far less than 1 GiB."""
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("rdf.yaml", yaml.safe_dump(foreign_rdf({"torchscript": {"source": "weights.pt"}})))
        zeros = bytes(1 << 20)
        with z.open("weights.pt", "w", force_zip64=True) as f:
            for _ in range(1024):
                f.write(zeros)
    assert bomb.stat().st_size < 2 << 20  # deflate: ~1000 to 1 on zeros
    out = subprocess.run([sys.executable, "-c", BOMB, str(bomb)], check=True, capture_output=True, text=True, cwd=ROOT,
                         timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["message"] and "weights.torchscript.source (weights.pt)" in result["message"], result
    assert "zip bomb" in result["message"] and "\n" not in result["message"]
    assert result["grew_mib"] < 300, result  # the bomb is 1024 MiB; the read stops near 100 x ~1 MiB


@pytest.mark.parametrize("lie", [False, True])
def test_too_many_members(tmp_path, capsys, lie):
    """Refused from the end record, or (its count lying) from the directory zipfile read."""
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w", zipfile.ZIP_STORED) as z:
        z.writestr("rdf.yaml", yaml.safe_dump(foreign_rdf({"torchscript": {"source": "weights.pt"}})))
        for i in range(MAX_MEMBERS + 1):
            z.writestr(f"f/{i}", b"")
    if lie:
        raw = bytearray(many.read_bytes())
        raw[-22 + 8:-22 + 12] = (1).to_bytes(2, "little") * 2  # members on this disk, and in all
        many.write_bytes(bytes(raw))
    one_line(capsys, many, tmp_path, "many.zip", f"{MAX_MEMBERS + 2} members")


@pytest.mark.parametrize("name", ["../../outside.txt", "/tmp/absolute.txt", "a/../../b.txt", "C:\\\\windows.txt"])
def test_member_names_outside_the_package(tmp_path, capsys, name):
    before = {str(p) for p in tmp_path.parent.rglob("*")}
    bad = package(tmp_path / "traversal.zip", foreign_rdf({"torchscript": {"source": "weights.pt"}}),
                  {name: b"x", "weights.pt": b"y"})
    line = one_line(capsys, bad, tmp_path, "traversal.zip", "outside the package")
    assert repr(name) in line
    assert {str(p) for p in tmp_path.parent.rglob("*")} - before <= {str(p) for p in tmp_path.rglob("*")}


@pytest.mark.parametrize("source", ["../weights.pt", "/etc/hostname", "..\\weights.pt"])
def test_weights_source_outside_the_package(tmp_path, capsys, source):
    bad = package(tmp_path / "source.zip", foreign_rdf({"torchscript": {"source": source}}), {"weights.pt": b"y"})
    one_line(capsys, bad, tmp_path, "weights.torchscript.source", "outside the package")


@pytest.mark.parametrize("declared", [10, 0x7FFFFFF0])
def test_declared_size_that_lies(tmp_path, capsys, declared):
    """A member whose zip headers declare another size than it holds: smaller, damaged (one
    line); larger, not believed: what is read is what the member holds, within the caps."""
    data = scripted(torch.nn.Conv2d(1, 1, 3, padding=1), torch.zeros(1, 1, 16, 16))
    good = package(tmp_path / "good.zip", foreign_rdf({"torchscript": {"source": "weights.pt"}}),
                   {"weights.pt": data})
    raw = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as z:
        info = z.getinfo("weights.pt")
    local = info.header_offset
    raw[local + 22:local + 26] = declared.to_bytes(4, "little")  # local header: uncompressed size
    central = raw.find(b"PK\x01\x02")
    while central >= 0 and raw[central + 46:central + 46 + len("weights.pt")] != b"weights.pt":
        central = raw.find(b"PK\x01\x02", central + 4)
    assert central > 0
    raw[central + 24:central + 28] = declared.to_bytes(4, "little")  # central directory: the same
    bad = tmp_path / "lies.zip"
    bad.write_bytes(bytes(raw))
    if declared < len(data):
        one_line(capsys, bad, tmp_path, "lies.zip", "weights.torchscript.source (weights.pt)", "damaged")
    else:
        assert isinstance(load_package(bad)[1], PackageNetwork)


def test_bomb_inside_the_torchscript_archive(tmp_path):
    """A TorchScript file is a zip too: a deflated storage declaring 200 MiB from ~200 KiB is
    refused from its declared sizes before torch's reader allocates them, trusted or not."""
    src, dst = io.BytesIO(scripted(torch.nn.Conv2d(1, 1, 3, padding=1), torch.zeros(1, 1, 16, 16))), io.BytesIO()
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as o:
        for info in z.infolist():
            if "/data/" in info.filename and "serialization" not in info.filename:
                o.writestr(info.filename, bytes(200 << 20), zipfile.ZIP_DEFLATED, 9)
            else:
                o.writestr(info, z.read(info))
    assert len(dst.getvalue()) < 4 << 20
    for ours in (False, True):
        bad = package(tmp_path / f"inner{ours}.zip", foreign_rdf({"torchscript": {"source": "weights.pt"}}, ours),
                      {"weights.pt": dst.getvalue()})
        with pytest.raises(PackageError, match="weights.torchscript member .*/data/0 declares 209715200 bytes"):
            load_package(bad, trust_torchscript=True)


def test_folder_package_link_outside(tmp_path, capsys):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"not yours")
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "rdf.yaml").write_text(yaml.safe_dump(foreign_rdf({"torchscript": {"source": "weights.pt"}})))
    (folder / "weights.pt").symlink_to(secret)
    one_line(capsys, folder, tmp_path, "weights.torchscript.source (weights.pt)", "link to a file outside")


# --------------------------------------------------------------------------- rdf.yaml
def billion_laughs(levels: int = 9) -> str:
    lines = ["lol0: &lol0 [" + ", ".join(["lol"] * 10) + "]"]
    for i in range(1, levels):
        lines.append(f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 10) + "]")
    return "\n".join(lines + [f"type: *lol{levels - 1}", "format_version: 0.5.4"]) + "\n"


def test_billion_laughs_rdf(tmp_path, capsys):
    """10**9 values through 90 aliases: yaml.safe_load alone shares them, but printing the field
    in an error message would not; refused from the node graph before anything walks it."""
    bad = package(tmp_path / "laughs.zip", billion_laughs(), {})
    one_line(capsys, bad, tmp_path, "laughs.zip", "rdf.yaml", "aliases")


def test_huge_rdf(tmp_path, capsys):
    bad = package(tmp_path / "huge.zip", "type: model\n" + "#" * (MAX_TEXT + 10) + "\n", {})
    one_line(capsys, bad, tmp_path, "huge.zip", "rdf.yaml", "4 MiB")


def test_rdf_nested_too_deeply(tmp_path, capsys):
    bad = package(tmp_path / "deep.zip", "type: " + "[" * 100_000, {})
    one_line(capsys, bad, tmp_path, "deep.zip", "rdf.yaml")


# --------------------------------------------------------------------------- TorchScript
class WritesAtLoad(torch.nn.Module):
    """A TorchScript module whose __setstate__ (run by torch.jit.load) writes a file."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.w

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, str, bool]:
        return (self.w, self.target, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str, bool]) -> None:
        self.w = state[0]
        self.target = state[1]
        self.training = state[2]
        torch.save(self.w, self.target)  # aten::save: any path the user can write


class OverwritesInForward(torch.nn.Module):
    """A TorchScript module whose forward overwrites an existing file (aten::from_file, shared)."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.from_file(self.target, True, 4, dtype=torch.uint8)
        t.fill_(33)
        return x + t.float().sum() * 0


def test_torchscript_can_write_files(tmp_path):
    """Why: what these modules do once torch.jit.load and forward run (the risk being refused)."""
    target = tmp_path / "written.pt"
    module = torch.jit.load(io.BytesIO(scripted(WritesAtLoad(str(target)))))
    assert target.is_file()  # written by loading alone
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"data")
    torch.jit.load(io.BytesIO(scripted(OverwritesInForward(str(victim)))))(torch.zeros(1))
    assert victim.read_bytes() == b"!!!!" and module is not None


@pytest.mark.parametrize("kind, op", [("load", "torch.save"), ("forward", "torch.from_file")])
def test_hostile_torchscript_refused(tmp_path, capsys, monkeypatch, kind, op):
    monkeypatch.delenv("RESTORE_TRUST_TORCHSCRIPT", raising=False)
    target = tmp_path / "target.bin"
    target.write_bytes(b"keep")
    module = WritesAtLoad(str(tmp_path / "new.pt")) if kind == "load" else OverwritesInForward(str(target))
    bad = package(tmp_path / "hostile.zip", foreign_rdf({"torchscript": {"source": "weights.pt"}}),
                  {"weights.pt": scripted(module)})
    one_line(capsys, bad, tmp_path, "hostile.zip", "weights.torchscript", op, "--trust-torchscript")
    assert target.read_bytes() == b"keep" and not (tmp_path / "new.pt").exists()
    # trusted by the caller: it loads (and, as built, writes: inside tmp_path here)
    load_package(bad, trust_torchscript=True)
    assert kind != "load" or (tmp_path / "new.pt").is_file()
    monkeypatch.setenv("RESTORE_TRUST_TORCHSCRIPT", "1")
    assert isinstance(load_package(bad)[1], PackageNetwork)


def test_method_calls_and_getattr_are_scanned_too(tmp_path):
    """Hand-written TorchScript code may reach an operator through a tensor method or getattr."""
    from restore.segment.package_files import check_torchscript

    data = scripted(torch.nn.Conv2d(1, 1, 3, padding=1))
    for line in ("    _x = torch.ones([1]).set_()\n", "    _x = getattr(torch, \"from_file\")\n",
                 "    _x = print(\"hello\")\n", "    _x = torch.ops.aten.save\n"):
        src, dst, injected = io.BytesIO(data), io.BytesIO(), 0
        with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as o:
            for info in z.infolist():
                body = z.read(info)
                if info.filename.endswith(".py") and b"    return" in body:  # conv.py, or a mangled name
                    text = body.decode()
                    at = text.index("    return")
                    body = (text[:at] + line + text[at:]).encode()
                    injected += 1
                o.writestr(info, body)
        assert injected
        with pytest.raises(PackageError, match="outside the operators"):
            check_torchscript(dst.getvalue(), "p.zip", "weights.torchscript")
    check_torchscript(data, "p.zip", "weights.torchscript")  # the plain conv passes


def tiny_unet() -> UNet:
    torch.manual_seed(0)
    net = UNet(UNetConfig(**CONFIG)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape) * 0.05)
    return net


def test_our_package_never_runs_its_torchscript(tmp_path, monkeypatch):
    """A package with config.unet-restore: the network rebuilt, its tensors read from data.pkl
    as data: torch.jit.load is never called, and the outputs are the original network's."""
    net = tiny_unet()
    ours = package(tmp_path / "ours.zip", foreign_rdf({"torchscript": {"source": "weights.pt"}}, ours=True),
                   {"weights.pt": scripted(net, torch.zeros(1, 1, 32, 32))})

    def refuse(*a, **k):
        raise AssertionError("torch.jit.load called")

    monkeypatch.setattr(torch.jit, "load", refuse)
    _, model, meta = load_package(ours)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), net(x), atol=1e-6)
    assert meta["diameter"] == 12


def test_our_config_on_a_hostile_file(tmp_path, capsys):
    """Anyone can write config.unet-restore: a TorchScript file that writes at load, or a
    data.pkl that runs a command, is read as data and refused; nothing runs."""
    target = tmp_path / "new.pt"
    bad = package(tmp_path / "fake_ours.zip", foreign_rdf({"torchscript": {"source": "weights.pt"}}, ours=True),
                  {"weights.pt": scripted(WritesAtLoad(str(target)))})
    one_line(capsys, bad, tmp_path, "fake_ours.zip", "weights.torchscript does not hold the network")
    assert not target.exists()

    marker = tmp_path / "ran.txt"

    class Command:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("weights/data.pkl", pickle.dumps(Command(), protocol=2))
        z.writestr("weights/version", "3\n")
    bad = package(tmp_path / "pickle.zip", foreign_rdf({"torchscript": {"source": "weights.pt"}}, ours=True),
                  {"weights.pt": archive.getvalue()})
    one_line(capsys, bad, tmp_path, "pickle.zip", "weights.torchscript holds something other than tensors")
    assert not marker.exists()


# --------------------------------------------------------------------------- ONNX
def onnx_gain(external: str | None = None) -> bytes:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("raw", TensorProto.FLOAT, [1, 1, "h", "w"])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1, "h", "w"])
    gain = helper.make_tensor("gain", TensorProto.FLOAT, [1], [1.0])
    if external:
        gain = TensorProto(name="gain", data_type=TensorProto.FLOAT, dims=[1],
                           data_location=TensorProto.EXTERNAL)
        gain.external_data.add(key="location", value=external)
    graph = helper.make_graph([helper.make_node("Mul", ["raw", "gain"], ["out"])], "g", [x], [y], [gain])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model.SerializeToString() if external else onnx.shape_inference.infer_shapes(model).SerializeToString()


def test_onnx_before_torchscript_from_elsewhere(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.delenv("RESTORE_TRUST_TORCHSCRIPT", raising=False)
    monkeypatch.setenv("RESTORE_HOME", str(tmp_path / "cache"))
    both = package(tmp_path / "both.zip", foreign_rdf({"torchscript": {"source": "weights.pt"},
                                                       "onnx": {"source": "weights.onnx"}}),
                   {"weights.pt": scripted(torch.nn.Identity()), "weights.onnx": onnx_gain()})
    from restore.segment.package_net import PackageOnnx

    assert isinstance(load_package(both)[1], PackageOnnx)
    trusted = load_package(both, trust_torchscript=True)[1]
    assert isinstance(trusted, PackageNetwork) and not isinstance(trusted, PackageOnnx)


def test_onnx_with_external_data_refused(tmp_path, capsys, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("RESTORE_HOME", str(tmp_path / "cache"))
    bad = package(tmp_path / "external.zip", foreign_rdf({"onnx": {"source": "weights.onnx"}}),
                  {"weights.onnx": onnx_gain(external="../../../../etc/hostname")})
    one_line(capsys, bad, tmp_path, "external.zip", "weights.onnx", "external data")
