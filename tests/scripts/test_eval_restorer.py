"""scripts/eval_restorer.py's measures on photos with no clean original (--real)."""
from __future__ import annotations

import numpy as np
from skimage import data

from gan.data.degrade import jpeg
from restore.imagewrite import write_png
from tests.scripts.test_data_scripts import _load

evaluate = _load("eval_restorer")


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    return (jpeg(img / 255.0, quality) * 255).round().astype(np.uint8)


def test_blockiness_sees_jpeg_blocks_and_not_a_clean_photo():
    photo = data.astronaut()
    clean = evaluate.blockiness(photo)
    assert 0.9 < clean < 1.1
    assert evaluate.blockiness(_jpeg(photo, 10)) > clean + 0.2
    shifted = np.roll(_jpeg(photo, 10), 4, axis=(0, 1))  # blocks off the 8 px grid: not counted
    assert evaluate.blockiness(shifted) < evaluate.blockiness(_jpeg(photo, 10)) - 0.2


def test_real_photos_reports_change_per_photo(tmp_path):
    photo = data.astronaut()[:128, :128]
    write_png(tmp_path / "a.png", photo)
    write_png(tmp_path / "b.png", photo[::-1])
    same = evaluate.real_photos(lambda x: x, tmp_path)
    assert [r["image"] for r in same["images"]] == ["a.png", "b.png"] and same["mean"]["mean_abs_change"] == 0
    for shift in (3, -3):  # darker too: a uint8 difference would wrap around to ~253
        shifted = evaluate.real_photos(lambda x: np.clip(x.astype(int) + shift, 0, 255).astype(np.uint8), tmp_path)
        assert 2 < shifted["mean"]["mean_abs_change"] <= 3, shift
    brighter = evaluate.real_photos(lambda x: np.clip(x.astype(int) + 3, 0, 255).astype(np.uint8), tmp_path)
    assert brighter["images"][0]["blockiness_in"] == same["images"][0]["blockiness_out"]
