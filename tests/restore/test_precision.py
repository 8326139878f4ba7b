"""``--precision`` on every batch command: the measured defaults (auto for the photo tasks, fp32
for segmentation), bf16 within 45 dB of fp32 where the CPU has it natively, and a clear refusal
(exit 2) where it has not or the device cannot (fp16 on a CPU)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gan.precision import cpu_has_bf16, resolve_precision
from restore.cli import build_parser, main
from tests import ROOT

PHOTO = ROOT / "examples" / "faces" / "two_faces_small.jpg"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b) ** 2).mean())
    return 100.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_defaults_are_the_measured_ones():
    p = build_parser()
    assert p.parse_args(["faces", "x", "-o", "o"]).precision == "auto"
    assert p.parse_args(["translate", "x", "-o", "o", "--weights", "w"]).precision == "auto"
    assert p.parse_args(["sketch", "x", "-o", "o"]).precision == "auto"
    assert p.parse_args(["segment", "x", "-o", "o"]).precision == "fp32"
    # what auto is on a CPU (bf16 only where it measured faster: AMX, or AMD's AVX512-BF16, not
    # Intel's alone), per kind of CPU and GPU, written out: tests/gan/test_precision.py
    assert resolve_precision("auto", "cpu") in ("fp32", "bf16")


def test_translate_bf16_against_fp32_or_a_clear_refusal(tmp_path, capsys):
    args = ["translate", str(PHOTO), "--weights", "restorer", "--quiet"]
    assert main(args + ["-o", str(tmp_path / "fp32"), "--precision", "fp32"]) == 0
    code = main(args + ["-o", str(tmp_path / "bf16"), "--precision", "bf16"])
    if not cpu_has_bf16():  # no native bf16: refused before any work, in one line
        assert code == 2 and "no native bf16" in capsys.readouterr().err
        return
    assert code == 0
    a = np.asarray(Image.open(tmp_path / "fp32" / "two_faces_small.png"))
    b = np.asarray(Image.open(tmp_path / "bf16" / "two_faces_small.png"))
    assert a.shape == b.shape and not np.array_equal(a, b)  # bf16 really ran
    assert psnr(a, b) >= 45


@pytest.mark.parametrize("command", ["faces", "segment", "sketch"])
def test_fp16_on_a_cpu_is_a_usage_error(command, tmp_path, capsys):
    extra = {"faces": [], "segment": [], "sketch": ["--extract", "--style", str(PHOTO)]}[command]
    assert main([command, str(PHOTO), "-o", str(tmp_path), "--precision", "fp16", *extra]) == 2
    assert "fp16 needs a CUDA device" in capsys.readouterr().err
