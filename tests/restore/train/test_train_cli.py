"""`restore train segmenter` on a small real image, both data layouts, 2D and 3D, every model."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from gan.serialize import load_model
from restore.cli import main
from restore.train.seg_data import find_pairs
from tests import DATA


def real_folder(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    shutil.copy(DATA / "dsb2018_crop.tif", root / "images" / "a.tif")
    shutil.copy(DATA / "dsb2018_crop_mask.tif", root / "masks" / "a_mask.tif")
    return root


def train(tmp_path: Path, data: Path, *extra: str) -> dict:
    out = tmp_path / "run"
    code = main(["train", "segmenter", "--data", str(data), "--out", str(out), "--preset", "tiny",
                 "--batch-size", "2", "--threads", "1", "--quiet", *extra])
    assert code == 0
    return json.loads((out / "summary.json").read_text())


def test_short_run_on_real_image_lowers_loss_and_segments(tmp_path, capsys):
    data = real_folder(tmp_path / "data")
    summary = train(tmp_path, data, "--steps", "60", "--crop", "64", "--val-every", "20", "--lr", "3e-3")
    losses = [h["loss"] for h in summary["history"]]
    assert losses[-1] < losses[0], losses
    model, meta = load_model(tmp_path / "run" / "model.safetensors")
    assert meta["task"] == "segment" and model.config.kind == "plain"
    # the run folder is what `restore segment --weights` takes
    code = main(["segment", str(data / "images"), "-o", str(tmp_path / "seg"), "--weights", str(tmp_path / "run"),
                 "--diameter", "none", "--quiet"])
    assert code == 0 and (tmp_path / "seg" / "a_mask.png").is_file()
    assert "best validation IoU" in capsys.readouterr().out


def test_ctc_layout(tmp_path):
    root = tmp_path / "ctc"
    (root / "01").mkdir(parents=True)
    (root / "01_GT" / "SEG").mkdir(parents=True)
    (root / "01_ST" / "SEG").mkdir(parents=True)
    shutil.copy(DATA / "dsb2018_crop.tif", root / "01" / "t000.tif")
    shutil.copy(DATA / "dsb2018_crop.tif", root / "01" / "t001.tif")
    shutil.copy(DATA / "dsb2018_crop_mask.tif", root / "01_GT" / "SEG" / "man_seg001.tif")
    shutil.copy(DATA / "dsb2018_crop_mask.tif", root / "01_ST" / "SEG" / "man_seg000.tif")
    pairs = find_pairs(root)
    assert [(p.image.name, p.mask.name) for p in pairs] == [("t001.tif", "man_seg001.tif")]  # gold first
    shutil.rmtree(root / "01_GT")
    assert [p.mask.parent.parent.name for p in find_pairs(root)] == ["01_ST"]
    train(tmp_path, root, "--steps", "4", "--crop", "32")


@pytest.mark.parametrize("model", ["residual", "attention", "multires", "unetr"])
def test_every_model_trains(tmp_path, model):
    summary = train(tmp_path, real_folder(tmp_path / "d"), "--model", model, "--steps", "3", "--crop", "32")
    assert summary["steps"] == 3
    assert load_model(tmp_path / "run" / "model.safetensors")[0].config.dims == 2


def test_3d_training_on_volumes(tmp_path):
    rng = np.random.default_rng(0)
    zz, yy, xx = np.mgrid[:16, :32, :32]
    for sub in ("images", "masks"):
        (tmp_path / "v" / sub).mkdir(parents=True)
    for i in range(2):
        mask = np.zeros((16, 32, 32), np.uint16)
        for k in range(1, 4):
            c = rng.integers(5, 27, 3)
            mask[(zz - c[0] % 12 - 2) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < 16] = k
        tifffile.imwrite(tmp_path / "v" / "images" / f"s{i}.tif", ((mask > 0) * 150 + rng.integers(0, 50, mask.shape)).astype(np.uint8))
        tifffile.imwrite(tmp_path / "v" / "masks" / f"s{i}.tif", mask)
    train(tmp_path, tmp_path / "v", "--dims", "3", "--steps", "3", "--crop", "16")
    model, _ = load_model(tmp_path / "run" / "model.safetensors")
    assert model.config.dims == 3


def test_bad_data_folder_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main(["train", "segmenter", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "r")])
    assert code == 2
    assert "images/ + masks/" in capsys.readouterr().err


def test_task_word_runs_the_same_trainer(tmp_path):
    """`restore train segment` is `restore train segmenter` (the task's word as an alias)."""
    code = main(["train", "segment", "--data", str(real_folder(tmp_path / "d")), "--out", str(tmp_path / "run"),
                 "--preset", "tiny", "--steps", "2", "--crop", "32", "--batch-size", "2", "--threads", "1", "--quiet"])
    assert code == 0
    _, meta = load_model(tmp_path / "run" / "model.safetensors")
    assert meta["task"] == "segment"
