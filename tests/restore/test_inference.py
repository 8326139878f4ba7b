"""The inference base: the wrappers take the commands' precision defaults (so the Python API gives
the CLI's numbers), resolve it once, and hand it to the networks they build inside."""
from __future__ import annotations

import pytest

import gan.precision
from restore.runners.args import DEFAULT_PRECISION


@pytest.fixture
def bf16_cpu(monkeypatch):
    """A CPU where bf16 measured faster (an AMD core with AVX512-BF16): auto is bf16 there."""
    monkeypatch.setattr(gan.precision, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(gan.precision, "cpu_bf16_is_fast", lambda: True)


def test_the_api_defaults_are_the_commands(bf16_cpu):
    from restore import Colorizer, FaceRestorer, Segmenter, Translator
    from restore.cli import build_parser

    parser = build_parser()
    made = {"translate": Translator(), "sketch": Colorizer(), "segment": Segmenter(),
            "faces": FaceRestorer(detector="mtcnn", parse=False)}
    for task, wrapper in made.items():
        argv = [task, "x", "-o", "o"] + (["--weights", "restorer"] if task == "translate" else [])
        cli_default = parser.parse_args(argv).precision
        assert cli_default == DEFAULT_PRECISION[task]
        assert wrapper.precision == gan.precision.resolve_precision(cli_default), task
    assert made["translate"].precision == made["faces"].precision == "bf16"  # auto, on this CPU
    assert made["segment"].precision == "fp32"  # masks flip in bf16: fp32 unless asked


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_face_restorer_runs_its_background_in_its_own_precision(bf16_cpu, precision):
    """The background restorer (and the faces at their own scale) in the FaceRestorer's precision,
    not in the Translator's default: an inner autocast would override the outer one."""
    from restore import FaceRestorer

    fr = FaceRestorer("restorer", "mtcnn", precision=precision, parse=False)
    assert fr.precision == fr.translator.precision == fr.face_translator.precision == precision
    fr = FaceRestorer(None, "mtcnn", precision=precision, parse=False)  # the best face model here
    assert fr.translator.precision == precision


def test_a_network_of_another_kind_is_refused_with_its_kind(tmp_path):
    from gan.nets.unet import PRESETS, UNet
    from gan.serialize import save_model
    from restore import Colorizer, Translator

    path = save_model(UNet(PRESETS["tiny"]), tmp_path / "seg.safetensors")
    with pytest.raises(ValueError, match=r"seg\.safetensors is not an image-to-image generator \(UNet: segmenter\)"):
        Translator(path)
    with pytest.raises(ValueError, match=r"is not a sketch colorizer \(UNet: segmenter\)"):
        Colorizer(path)
