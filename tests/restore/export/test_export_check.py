"""The parity check of ``export_onnx`` on real files that do not match PyTorch (issue 34): the
network that reaches ``torch.onnx.export`` has other weights than the one the reference output
came from, so onnxruntime runs a genuine, different graph. The check must refuse it (and leave
nothing behind); its score must be onnxruntime's against PyTorch's, never PyTorch's against
itself."""
from __future__ import annotations

import math

import pytest
import torch

from tests.restore.export.test_export import tiny

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from restore.export.onnx import ExportError, MIN_EQUAL, MIN_PSNR, export_onnx  # noqa: E402


@pytest.fixture()
def altered_export(monkeypatch):
    """torch.onnx.export of the module with its last ``layers`` parameters scaled by ``factor``
    (in a copy: the reference PyTorch computed stays the original's)."""
    real = torch.onnx.export
    setting = {"factor": 1.0, "layers": 0, "exported": 0}

    def export(module, *args, **kwargs):
        import copy

        module = copy.deepcopy(module)
        with torch.no_grad():
            for p in list(module.parameters())[-setting["layers"]:] if setting["layers"] else []:
                p.mul_(setting["factor"])
        setting["exported"] += 1
        return real(module, *args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", export)
    return setting


@pytest.mark.parametrize("kind,tile,score", [("restorer", 32, " dB"), ("unet2d", 32, "% equal pixels")])
def test_an_export_that_does_not_match_is_refused(tmp_path, altered_export, kind, tile, score):
    altered_export.update(factor=-1.0, layers=2)  # the last layer (weight and bias) negated
    path = tmp_path / f"{kind}.onnx"
    with pytest.raises(ExportError, match=rf"onnxruntime's output does not match PyTorch's \(-?[0-9.]+{score}; "
                                          rf"needs [0-9.]+.*\): nothing written to {path}"):
        export_onnx(tiny(kind), path, tile=tile)
    assert altered_export["exported"] == 1  # the file was made and run; then refused
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary


def test_the_score_is_onnxruntime_s_against_pytorch_s(tmp_path, altered_export):
    """A small change (the last layer's weights 2% larger) passes the 45 dB floor and is scored
    lower than an unaltered export: a check of PyTorch against itself would give both infinity."""
    plain = export_onnx(tiny("restorer"), tmp_path / "plain.onnx", tile=32)
    altered_export.update(factor=1.02, layers=2)
    nudged = export_onnx(tiny("restorer"), tmp_path / "nudged.onnx", tile=32)
    (kind, clean), (_, lower) = plain.score, nudged.score
    assert kind == "psnr" and math.isfinite(lower) and MIN_PSNR["fp32"] <= lower < clean - 5


def test_a_mask_export_with_some_pixels_flipped_is_refused(tmp_path, altered_export):
    """Segmentation: the share of equal mask pixels, with a floor of 99.9%: a graph whose class
    biases moved by 10% (8% of the pixels change class) is refused."""
    altered_export.update(factor=0.9, layers=1)  # the head's bias
    with pytest.raises(ExportError, match=r"\(9[0-9]\.[0-9]{3}% equal pixels; needs 0\.999\)"):
        export_onnx(tiny("unet2d"), tmp_path / "m.onnx", tile=32)
    assert MIN_EQUAL["fp32"] == 0.999 and list(tmp_path.iterdir()) == []
