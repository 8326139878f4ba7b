"""``backend="onnxruntime"``: each task's networks run from their ONNX export (made once into the
weights cache, reused) and give PyTorch's results; a given ``.onnx`` file runs too."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gan  # noqa: F401
from gan.nets.gfpgan import GFPGAN, GFPGAN_PRESETS
from gan.serialize import save_model

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from restore.export.backend import OnnxNetwork  # noqa: E402
from tests.restore.export.test_export import randomized  # noqa: E402
from tests.restore.sketch.test_sketch import hed_file  # noqa: E402,F401  (the fixture: HED's real weights)

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def home(cache, monkeypatch) -> Path:
    monkeypatch.setenv("RESTORE_HOME", str(cache))
    return cache


def psnr8(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def photo(name: str = "astronaut_degraded.jpg") -> np.ndarray:
    return np.asarray(Image.open(EXAMPLES / "faces" / name).convert("RGB"))


def test_translator_on_onnxruntime_matches_torch_and_reuses_its_export(home, monkeypatch):
    from restore.translate import Translator

    image = photo()[:200, :264]
    want = Translator("restorer", tile=128, precision="fp32")(image)
    fast = Translator("restorer", tile=128, backend="onnxruntime")
    assert isinstance(fast.model, OnnxNetwork) and fast.model.config.size_divisor == 16
    got = fast(image)
    assert got.shape == want.shape and psnr8(want, got) >= 45
    files = sorted((home / "onnx").glob("Restorer-*.onnx"))
    assert len(files) == 1 and "-dyn-" in files[0].name  # one file for every tile size
    import restore.export.onnx as onnx_mod

    monkeypatch.setattr(onnx_mod, "export_onnx", lambda *a, **k: pytest.fail("exported again"))
    again = Translator("restorer", tile=256, backend="onnxruntime")  # another tile: the same file
    assert again.model.path == files[0]
    assert psnr8(Translator("restorer", tile=256, precision="fp32")(image), again(image)) >= 45  # tiles of 256 on both


def test_segmenter_on_onnxruntime_gives_the_same_masks(home):
    from restore.imageio import read_image
    from restore.segment.segmenter import Segmenter

    image = read_image(EXAMPLES / "nuclei" / "dsb2018_heldout.png")
    torch_seg = Segmenter("nuclei", tile=128)
    onnx_seg = Segmenter("nuclei", tile=128, backend="onnxruntime")
    assert onnx_seg.model_diameter == torch_seg.model_diameter  # the weights' metadata came along
    want, got = torch_seg(image), onnx_seg(image)
    assert (want == got).mean() >= 0.999
    other = onnx_seg.with_options(tile=160)  # same padding: one file with dynamic sides serves every tile
    assert other.model.path == onnx_seg.model.path and "-dyn-" in other.model.path.name
    assert (torch_seg.with_options(tile=160)(image) == other(image)).mean() >= 0.999


def test_valid_padding_segmenter_gets_one_export_per_tile(home, tmp_path):
    from restore.segment.segmenter import Segmenter
    from tests.restore.export.test_export import tiny

    weights = save_model(tiny("unet-valid"), tmp_path / "valid.safetensors")
    image = (np.random.default_rng(0).random((90, 110)) * 255).astype(np.uint8)
    seg = Segmenter(str(weights), tile=60, backend="onnxruntime", diameter=None)
    other = seg.with_options(tile=80)  # valid convolutions: a file per tile size
    assert other.model.path != seg.model.path
    assert other.model.session.get_inputs()[0].shape[2:] == [other.tile, other.tile]
    for s in (seg, other):
        want = Segmenter(str(weights), tile=s.tile, diameter=None).probabilities(image)
        assert np.allclose(s.probabilities(image), want, atol=1e-4)


def test_colorizer_on_onnxruntime_matches_torch_at_any_size(home):
    from restore.sketch.colorizer import Colorizer, read_sketch

    sketch = read_sketch(EXAMPLES / "sketch" / "monkey.png")  # 200 x 227: not a multiple of the divisor
    ref = photo()
    torch_col, onnx_col = Colorizer(precision="fp32"), Colorizer(backend="onnxruntime")
    assert psnr8(torch_col(sketch, ref), onnx_col(sketch, ref)) >= 45
    hints = np.zeros((*sketch.shape[:2], 4), np.float32)
    hints[40:60, 40:60] = (1.0, 0.0, 0.0, 1.0)
    assert psnr8(torch_col(sketch, ref, hints), onnx_col(sketch, ref, hints)) >= 45


def test_face_restorer_on_onnxruntime_and_from_a_given_onnx_file(home, tmp_path):
    from restore.export.onnx import export_onnx
    from restore.faces.restorer import FaceRestorer

    torch.manual_seed(0)
    net = randomized(GFPGAN(GFPGAN_PRESETS["tiny"]))
    weights = save_model(net, tmp_path / "tiny_gfpgan.safetensors")
    image = photo()
    want = FaceRestorer(str(weights), "mtcnn", bg="none", precision="fp32").restore(image)
    fr = FaceRestorer(str(weights), "mtcnn", bg="none", backend="onnxruntime")
    assert isinstance(fr.model, OnnxNetwork) and fr.is_gfpgan and fr.face_size == 32
    got = fr.restore(image)
    assert len(got.faces) == len(want.faces) >= 1
    assert psnr8(want.image, got.image) >= 45
    file = export_onnx(net, tmp_path / "face.onnx").path
    given = FaceRestorer(str(file), "mtcnn", bg="none")  # a .onnx file: onnxruntime, config from its metadata
    assert isinstance(given.model, OnnxNetwork) and "onnxruntime" in given.model_info
    assert (given.backend, given.precision) == ("onnxruntime", "fp32")  # the file's own, whatever auto says
    assert psnr8(want.image, given.restore(image).image) >= 45


def test_cli_backend(home, tmp_path, capsys):
    from restore.cli import main

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(photo()[:128, :160]).save(src / "a.png")
    assert main(["translate", str(src), "-o", str(tmp_path / "t"), "--weights", "restorer", "--quiet"]) == 0
    assert main(["translate", str(src), "-o", str(tmp_path / "o"), "--weights", "restorer", "--backend",
                 "onnxruntime", "--quiet"]) == 0
    a, b = (np.asarray(Image.open(tmp_path / d / "a.png")) for d in ("t", "o"))
    assert psnr8(a, b) >= 45
    capsys.readouterr()
    assert main(["translate", str(src), "-o", str(tmp_path / "x"), "--weights", "restorer", "--backend",
                 "onnxruntime", "--precision", "bf16"]) == 2
    assert "for the torch backend" in capsys.readouterr().err


def test_the_app_runtime_on_onnxruntime(home):
    from restore.apps.runtime import Runtime

    rt = Runtime("cpu", backend="onnxruntime")
    assert "**backend:** onnxruntime" in rt.describe() and set(rt.precision.values()) == {"fp32"}
    assert isinstance(rt.translator("restorer").model, OnnxNetwork)
    assert isinstance(rt.segmenter("nuclei").model, OnnxNetwork)
    with pytest.raises(ValueError, match="torch backend"):
        Runtime("cpu", "bf16", backend="onnxruntime")


def test_hed_extraction_on_onnxruntime(home, hed_file):
    from restore.sketch.extract import extract

    image = photo()[::2, ::2]  # 256 x 256
    want = extract(image, "hed", weights=hed_file)
    got = extract(image[:200, :230], "hed", weights=hed_file, backend="onnxruntime")  # any size: one dynamic file
    assert psnr8(extract(image[:200, :230], "hed", weights=hed_file) * 255, got * 255) >= 45
    assert psnr8(want * 255, extract(image, "hed", weights=hed_file, backend="onnxruntime") * 255) >= 45
    assert len(list((home / "onnx").glob("HED-*-dyn-*.onnx"))) == 1
