"""`restore segment` and `restore eval segment` end to end, through main() as a user runs them."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gan import UNet, save_model, segmenter_config
from restore.cli import main
from tests.badfiles import BAD_REASONS, make_mixed_folder


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    return str(save_model(UNet(segmenter_config("tiny")), path, {"diameter": 0}))


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_mixed_folder_every_good_file_done_each_bad_one_line(tmp_path, capsys, weights):
    files = make_mixed_folder(tmp_path / "in")
    out = tmp_path / "out"
    code, _, err = run(capsys, "segment", tmp_path / "in", "-o", out, "--weights", weights, "--quiet",
                       "--tile", 32)
    assert code == 1
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == len(files["bad"])
    for bad in files["bad"]:
        (line,) = [line for line in lines if bad.name in line]
        assert BAD_REASONS[bad.name] in line
    for good in files["good"]:
        rel = good.parent.relative_to(tmp_path / "in")
        mask = out / rel / f"{good.stem}_mask.png"
        assert mask.is_file() and (out / rel / f"{good.stem}_overlay.png").is_file(), good
        with Image.open(good) as im:
            size = im.size
        assert Image.open(mask).size in (size, size[::-1])  # EXIF-rotated input: rotated size
    for vol in files["volume"]:
        assert (out / f"{vol.stem}_mask.tif").is_file()
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".*"))


def test_skip_existing_resumes(tmp_path, capsys, weights):
    inp = tmp_path / "in"
    inp.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8)).save(inp / f"im{i}.png")
    out = tmp_path / "out"
    assert run(capsys, "segment", inp, "-o", out, "--weights", weights, "--quiet")[0] == 0
    (out / "im1_mask.png").unlink()
    stamp = (out / "im0_mask.png").stat().st_mtime_ns
    code, _, err = run(capsys, "segment", inp, "-o", out, "--weights", weights, "--skip-existing")
    assert code == 0
    assert (out / "im1_mask.png").is_file() and (out / "im0_mask.png").stat().st_mtime_ns == stamp
    assert "skipped 2" in err


def test_instances_are_16_bit(tmp_path, capsys, weights):
    img = np.zeros((48, 48), np.uint8)
    img[8:20, 8:20] = img[28:40, 26:40] = 200
    Image.fromarray(img).save(tmp_path / "a.png")
    code, _, _ = run(capsys, "segment", tmp_path / "a.png", "-o", tmp_path / "o", "--weights", weights,
                     "--instances", "--min-size", 0, "--quiet")
    assert code == 0
    assert Image.open(tmp_path / "o" / "a_mask.png").mode.startswith("I;16")


def test_usage_errors_exit_2_without_traceback(tmp_path, capsys, weights):
    code, _, err = run(capsys, "segment", tmp_path / "missing", "-o", tmp_path / "o", "--weights", weights)
    assert code == 2 and "missing" in err and "Traceback" not in err
    (tmp_path / "a.png").write_bytes(b"")
    code, _, err = run(capsys, "segment", tmp_path / "a.png", "-o", tmp_path / "o", "--weights", "nope")
    assert code == 2 and "nope" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as e:
        main(["segment"])
    assert e.value.code == 2


def test_tampered_weights_rejected(tmp_path, capsys, weights):
    data = bytearray(open(weights, "rb").read())
    data[-100] ^= 0xFF
    (tmp_path / "bad.safetensors").write_bytes(bytes(data[: len(data) // 2]))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    code, _, err = run(capsys, "segment", tmp_path / "a.png", "-o", tmp_path / "o", "--weights",
                       tmp_path / "bad.safetensors")
    assert code == 2 and "bad.safetensors" in err


def test_eval_segment(tmp_path, capsys):
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    gt = np.zeros((10, 10), np.uint8)
    gt[:, :5] = 1
    pred = np.zeros((10, 10), np.uint8)
    pred[:, :4] = 1
    Image.fromarray(gt).save(tmp_path / "gt" / "x.png")
    Image.fromarray(pred).save(tmp_path / "pred" / "x_mask.png")
    code, out, _ = run(capsys, "eval", "segment", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt",
                       "--json", tmp_path / "s.json")
    assert code == 0
    assert "0.8" in out  # IoU 40/50 = 0.8; Dice 80/90 = 0.889
    import json

    scores = json.loads((tmp_path / "s.json").read_text())
    (row,) = scores["images"]
    assert row["iou"] == pytest.approx(0.8) and row["dice"] == pytest.approx(80 / 90)
    assert scores["mean"]["iou"] == pytest.approx(0.8)
