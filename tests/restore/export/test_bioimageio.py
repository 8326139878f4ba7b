"""``restore export SEGMENTER --format bioimageio``: packages the zoo's own model test
(``bioimageio.core.test_model``) passes for both weight formats, the bundled 2D model and a tiny
3D one; ``restore segment --weights MODEL.zip`` gives the masks of the weights it came from;
malformed or unsupported packages are one line and exit status 2."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import gan  # noqa: F401  (the torchvision shim)
from gan.nets.unet import UNet, UNetConfig
from gan.serialize import save_model
from restore.cli import main

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
core = pytest.importorskip("bioimageio.core")

# bioimageio.core loads the TorchScript weights with torch.jit.load, which torch 2.9+ calls deprecated
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "nuclei" / "dsb2018_heldout.png"


def export(source: str, out: Path, *extra: str) -> Path:
    assert main(["export", source, "--format", "bioimageio", "-o", str(out), *extra]) == 0
    return out


@pytest.fixture(scope="module")
def nuclei_zip(tmp_path_factory) -> Path:
    return export("nuclei", tmp_path_factory.mktemp("bioimageio") / "nuclei.zip")


@pytest.fixture(scope="module")
def tiny3d_zip(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = UNet(UNetConfig(base_channels=8, depth=2, dims=3, out_channels=1)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape) * 0.05)
    folder = tmp_path_factory.mktemp("run3d")
    save_model(net, folder / "model.safetensors", {"diameter": "12"})
    return export(str(folder), folder / "tiny3d.zip", "--author", "A. Tester", "--licence", "MIT")


def rdf_of(path: Path) -> dict:
    with zipfile.ZipFile(path) as z:
        return yaml.safe_load(z.read("rdf.yaml"))


def zoo_test(path: Path) -> None:
    """bioimageio.core's model test: every step passes, test outputs reproduced by both formats."""
    summary = core.test_model(str(path))
    failed = [(d.name, [e.msg[:200] for e in d.errors]) for d in summary.details if d.status == "failed"]
    assert summary.status == "passed", failed
    names = " ".join(d.name for d in summary.details)
    assert "Reproduce test outputs from test inputs (torchscript)" in names
    assert "Reproduce test outputs from test inputs (onnx)" in names


def test_bundled_model_package(nuclei_zip, capsys):
    rdf = rdf_of(nuclei_zip)
    assert rdf["format_version"].startswith("0.5.") and rdf["type"] == "model"
    assert [a.get("id", a["type"]) for a in rdf["inputs"][0]["axes"]] == ["batch", "channel", "y", "x"]
    assert rdf["inputs"][0]["axes"][2]["size"] == {"min": 16, "step": 16}  # depth 4: multiples of 16
    assert rdf["inputs"][0]["preprocessing"] == [{"id": "scale_range", "kwargs": {
        "axes": ["channel", "y", "x"], "min_percentile": 1.0, "max_percentile": 99.8}}]
    assert rdf["outputs"][0]["postprocessing"] == [{"id": "softmax", "kwargs": {"axis": "channel"}}]
    assert rdf["outputs"][0]["axes"][1]["channel_names"] == ["background", "foreground"]
    assert set(rdf["weights"]) == {"torchscript", "onnx"}
    assert rdf["license"] == "Apache-2.0"
    assert any(c.get("doi") == "10.1007/978-3-319-24574-4_28" for c in rdf["cite"])
    assert rdf["config"]["unet-restore"]["diameter"] == 24
    with zipfile.ZipFile(nuclei_zip) as z:
        card = z.read("README.md").decode()
        assert "# Model card: `nuclei`" in card and "## Validation" in card
        assert z.read("cover.png")[:8] == b"\x89PNG\r\n\x1a\n"
    zoo_test(nuclei_zip)


def test_tiny_3d_package(tiny3d_zip):
    rdf = rdf_of(tiny3d_zip)
    assert [a.get("id", a["type"]) for a in rdf["inputs"][0]["axes"]] == ["batch", "channel", "z", "y", "x"]
    assert rdf["outputs"][0]["postprocessing"] == [{"id": "sigmoid"}]
    assert rdf["authors"] == [{"name": "A. Tester"}] and rdf["license"] == "MIT"
    assert rdf["config"]["unet-restore"]["config"]["dims"] == 3
    zoo_test(tiny3d_zip)


def test_segment_with_package_gives_the_same_masks(nuclei_zip, tmp_path):
    for weights, out in (("nuclei", "a"), (str(nuclei_zip), "b")):
        assert main(["segment", str(EXAMPLE), "-o", str(tmp_path / out), "--weights", weights, "--quiet"]) == 0
    from restore.imageio import read_image

    a = read_image(tmp_path / "a" / "dsb2018_heldout_mask.png")
    b = read_image(tmp_path / "b" / "dsb2018_heldout_mask.png")
    assert a.max() > 0 and np.array_equal(a, b)


def test_package_from_elsewhere_runs_as_described(nuclei_zip, tmp_path):
    """Without our config section, the package runs as any zoo package would: its own
    scale_range, its TorchScript or ONNX network, softmax: the same masks at the image's scale."""
    from restore.imageio import read_image
    from restore.segment.bioimageio import PackageNetwork
    from restore.segment.segmenter import Segmenter

    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(nuclei_zip) as z, zipfile.ZipFile(foreign, "w") as o:
        for n in z.namelist():
            data = z.read(n)
            if n == "rdf.yaml":
                rdf = yaml.safe_load(data)
                del rdf["config"]["unet-restore"]
                data = yaml.safe_dump(rdf).encode()
            o.writestr(n, data)
    image = read_image(EXAMPLE)
    ours = Segmenter("nuclei", diameter=None)(image)
    for backend in ("torch", "onnxruntime"):
        seg = Segmenter(str(foreign), diameter=None, backend=backend)
        assert isinstance(seg.source, PackageNetwork)
        assert (seg(image) == ours).mean() > 0.999


def rewrite(src: Path, dst: Path, change) -> Path:
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as o:
        for n in z.namelist():
            data = z.read(n)
            if n == "rdf.yaml":
                rdf = yaml.safe_load(data)
                change(rdf)
                data = yaml.safe_dump(rdf).encode()
            o.writestr(n, data)
    return dst


@pytest.mark.parametrize("case, words", [
    ("no-inputs", "no field 'inputs'"),
    ("keras", "field 'weights' has keras_hdf5"),
    ("not-zip", "not a readable zip"),
    ("no-rdf", "no rdf.yaml"),
    ("bad-axis", "field 'inputs.0.axes.2'"),
])
def test_malformed_package_one_line(nuclei_zip, tmp_path, capsys, case, words):
    bad = tmp_path / f"{case}.zip"
    if case == "no-inputs":
        rewrite(nuclei_zip, bad, lambda r: r.pop("inputs"))
    elif case == "keras":
        rewrite(nuclei_zip, bad, lambda r: r.update(weights={"keras_hdf5": {"source": "weights.h5",
                                                                             "tensorflow_version": "2.15"}}))
    elif case == "not-zip":
        bad.write_bytes(b"not a zip at all")
    elif case == "no-rdf":
        with zipfile.ZipFile(bad, "w") as z:
            z.writestr("README.md", "hello")
    else:
        def time_axis(r):  # read as a package from elsewhere (ours are rebuilt from their config)
            del r["config"]["unet-restore"]
            r["inputs"][0]["axes"][2].update(type="time")

        rewrite(nuclei_zip, bad, time_axis)
    assert main(["segment", str(EXAMPLE), "-o", str(tmp_path / "out"), "--weights", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err


def test_export_refuses_what_is_not_a_segmenter(tmp_path, capsys):
    assert main(["export", "restorer", "--format", "bioimageio", "-o", str(tmp_path / "r.zip")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a segmenter" in err[0]
    assert not (tmp_path / "r.zip").exists()


class _Sigmoid(torch.nn.Module):
    """A zoo-style network: probabilities out (its own sigmoid), optionally channel-last."""

    def __init__(self, net: torch.nn.Module, channel_last: bool = False) -> None:
        super().__init__()
        self.net, self.channel_last = net, channel_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channel_last:
            return torch.sigmoid(self.net(x.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)
        return torch.sigmoid(self.net(x))


@pytest.mark.parametrize("layout", ["0.4 bcyx", "0.5 byxc"])
def test_zoo_style_package(tmp_path, layout):
    """A package written the way other zoo U-Nets are (format 0.4 with axes strings, or 0.5 with
    the channel last; zero-mean-unit-variance preprocessing; a sigmoid inside the network, no
    postprocessing): the segmenter's probabilities are the package's own, computed directly."""
    from restore.imageio import read_image
    from restore.segment.segmenter import Segmenter

    torch.manual_seed(1)
    net = UNet(UNetConfig(base_channels=8, depth=2, out_channels=1)).eval()
    last = layout.endswith("c")
    wrapped = _Sigmoid(net, channel_last=last).eval()
    example = torch.zeros((1, 64, 64, 1) if last else (1, 1, 64, 64))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(wrapped, example, check_trace=False).save(str(tmp_path / "weights.pt"))
    if layout.startswith("0.4"):
        rdf = {"format_version": "0.4.10", "type": "model", "name": "zoo style unet",
               "inputs": [{"name": "raw", "axes": "bcyx", "data_type": "float32",
                           "shape": {"min": [1, 1, 64, 64], "step": [0, 0, 16, 16]},
                           "preprocessing": [{"name": "zero_mean_unit_variance",
                                              "kwargs": {"mode": "per_sample", "axes": "xy"}}]}],
               "outputs": [{"name": "probs", "axes": "bcyx", "data_type": "float32",
                            "shape": {"reference_tensor": "raw", "scale": [1, 1, 1, 1], "offset": [0, 0, 0, 0]}}],
               "weights": {"torchscript": {"source": "weights.pt"}}}
    else:
        space = [{"type": "space", "id": a, "size": {"min": 64, "step": 16}} for a in "yx"]
        rdf = {"format_version": "0.5.4", "type": "model", "name": "zoo style unet",
               "inputs": [{"id": "raw", "axes": [{"type": "batch"}, *space,
                                                 {"type": "channel", "channel_names": ["dapi"]}],
                           "preprocessing": [{"id": "zero_mean_unit_variance", "kwargs": {"axes": ["y", "x"]}}]}],
               "outputs": [{"id": "probs", "axes": [{"type": "batch"}] + [
                   {"type": "space", "id": a, "size": {"tensor_id": "raw", "axis_id": a}} for a in "yx"] + [
                   {"type": "channel", "channel_names": ["foreground"]}]}],
               "weights": {"torchscript": {"source": "weights.pt", "pytorch_version": "2.0"}}}
    package = tmp_path / "zoo.zip"
    with zipfile.ZipFile(package, "w") as z:
        z.writestr("rdf.yaml", yaml.safe_dump(rdf))
        z.write(tmp_path / "weights.pt", "weights.pt")
    image = read_image(EXAMPLE).astype(np.float32)  # 256 x 128: sides the package allows
    seg = Segmenter(str(package), diameter=None)
    got = seg.probabilities(image)
    x = (image - image.mean()) / (image.std() + 1e-6)
    with torch.no_grad():
        want = torch.sigmoid(net(torch.from_numpy(x)[None, None]))[0].numpy()
    assert got.shape == want.shape == (1, *image.shape)
    assert np.abs(got - want).max() < 1e-4
    odd = image[:100, :90]  # sides it does not allow: padded to them and cropped back
    assert seg.probabilities(odd).shape == (1, 100, 90)
