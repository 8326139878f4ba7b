"""Training data of any size (issue 12): every trainer with its default flags on 96 x 96 pairs,
folders of mixed sizes, and a refusal only when nothing is usable, saying what to change."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gan.serialize import load_model
from restore.cli import main
from restore.train.crops import fit_crop, resize_up, size_hint
from tests.restore.train.test_train_gan import photo, save


def ab_folder(root: Path, sizes: list[tuple[int, int]]) -> Path:
    for i, (h, w) in enumerate(sizes):
        target = photo(i, h, w)
        save(root / "A" / f"p{i}.png", (target * 0.7).astype(np.uint8))
        save(root / "B" / f"p{i}.png", target)
    return root


def run(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out + err


def test_fit_crop_rules():
    # the crop adapts: the largest multiple of the divisor that every image allows
    fit = fit_crop([(96, 96), (300, 200)], ["a", "b"], 256, 16)
    assert (fit.crop, fit.resize_up) == (96, False) and "a, 96x96" in fit.message
    assert fit_crop([(300, 400)], ["a"], 256, 16).crop == 256  # large images: the default
    assert fit_crop([(100, 90)], ["a"], 256, 16).crop == 80
    # below one divisor (pix2pix's 8-level U-Net: 256): the divisor, smaller images resized up
    fit = fit_crop([(96, 96), (512, 512)], ["a", "b"], 256, 256, hint="--num-downs 6 trains at their own size")
    assert (fit.crop, fit.resize_up) == (256, True) and "1 of 2 images" in fit.message and "--num-downs 6" in fit.message
    # segmentation never resizes (object scale matters): the borders are mirrored instead
    fit = fit_crop([(12, 40)], ["a"], 256, 16, can_resize=False)
    assert (fit.crop, fit.resize_up) == (16, False) and "mirrored" in fit.message
    assert fit_crop([(60, 256, 256)], ["vol"], 256, 16).crop == 48  # a volume: its shortest axis
    assert resize_up(np.zeros((96, 120, 3), np.uint8), 256).shape == (256, 320, 3)
    assert resize_up(np.zeros((300, 400), np.uint8), 256).shape == (300, 400)
    assert size_hint([(96, 96)], 16, 256).startswith("pass --crop 96 ")
    assert size_hint([(10, 10)], 16, 256).startswith("leave --crop out")  # no crop fits: none suggested


def test_pix2pix_defaults_on_96px_pairs_resize_up_as_pix2pix_does(tmp_path, capsys):
    """The default preset (pix2pix's unet_256, 54 M parameters) with default flags: 2 steps."""
    data = ab_folder(tmp_path / "ab", [(96, 96)] * 4)
    code, text = run(capsys, "train", "pix2pix", "--data", data, "--out", tmp_path / "run", "--steps", 2, "--quiet")
    assert code == 0, text
    assert "crop: 256 px; 4 of 4 images are smaller" in text and "resized up" in text and "--num-downs 6" in text
    _, meta = load_model(tmp_path / "run" / "generator.safetensors")
    assert meta["crop"] == 256


def test_pix2pix_crop_adapts_to_small_and_mixed_sizes(tmp_path, capsys):
    data = ab_folder(tmp_path / "ab", [(96, 96), (128, 160), (200, 150), (96, 130)])
    code, text = run(capsys, "train", "pix2pix", "--data", data, "--out", tmp_path / "run", "--steps", 2,
                     "--preset", "tiny-restorer", "--quiet")
    assert code == 0, text
    assert "crop: 96 px, the largest multiple of the network's 8 px that every image allows" in text
    assert load_model(tmp_path / "run" / "generator.safetensors")[1]["crop"] == 96
    assert str(data / "A" / "p0.png") in text  # the image that decided it
    # clean photos of mixed sizes with a degradation: the same
    clean = tmp_path / "clean"
    for i, (h, w) in enumerate([(100, 120), (150, 90), (300, 260)]):
        save(clean / f"c{i}.jpg", photo(i, h, w))
    code, text = run(capsys, "train", "pix2pix", "--data", clean, "--degrade", "mild", "--out", tmp_path / "run2",
                     "--steps", 2, "--preset", "tiny-restorer", "--quiet")
    assert code == 0 and "crop: 88 px" in text, text


def test_refused_only_when_nothing_is_usable_and_says_what_to_change(tmp_path, capsys):
    data = ab_folder(tmp_path / "ab", [(96, 96)] * 3)
    args = ["train", "pix2pix", "--data", data, "--out", tmp_path / "run", "--steps", 2, "--preset",
            "tiny-restorer", "--quiet"]
    code, text = run(capsys, *args, "--crop", 128)
    assert code == 2
    assert "no usable images" in text and "pass --crop 96" in text and "--skip-bad" not in text
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    # some usable: --skip-bad is offered with how many remain, and works
    save(data / "A" / "big.png", photo(9, 160, 160))
    save(data / "B" / "big.png", photo(9, 160, 160))
    code, text = run(capsys, *args, "--crop", 128)
    assert code == 2 and "pass --skip-bad to train on the other 1" in text and "pass --crop 96" in text
    assert run(capsys, *args, "--crop", 128, "--skip-bad")[0] == 0


def test_segmenter_defaults_on_96px_images(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for i in range(3):
        mask = np.zeros((96, 96), np.uint8)
        yy, xx = np.mgrid[:96, :96]
        for k, (y, x) in enumerate(rng.integers(12, 84, (4, 2))):
            mask[(yy - y) ** 2 + (xx - x) ** 2 < 60] = k + 1
        img = ((mask > 0) * 140 + rng.integers(0, 60, mask.shape)).astype(np.uint8)
        save(tmp_path / "d" / "images" / f"n{i}.png", img)
        save(tmp_path / "d" / "masks" / f"n{i}.png", mask)
    code, text = run(capsys, "train", "segmenter", "--data", tmp_path / "d", "--out", tmp_path / "run",
                     "--steps", 2, "--quiet")
    assert code == 0, text
    # fewer than 5 images: validation takes the last fifth of each, so 76 px of width train
    assert "crop: 64 px, the largest multiple of the network's 16 px" in text


def test_colorizer_and_gfpgan_defaults_on_96px_images(tmp_path, capsys):
    rng = np.random.default_rng(1)
    for i in range(3):
        art = np.full((96, 96, 3), 255, np.uint8)
        art[10:80, 15:85] = rng.integers(0, 255, 3)
        art[10:80, 15:18] = 0
        save(tmp_path / "art" / f"a{i}.png", art)
        save(tmp_path / "faces" / f"f{i}.png", photo(i, 96, 96))
    code, text = run(capsys, "train", "colorizer", "--data", tmp_path / "art", "--out", tmp_path / "c",
                     "--steps", 2, "--quiet")
    assert code == 0 and "padded with white" in text, text
    code, text = run(capsys, "train", "gfpgan", "--data", tmp_path / "faces", "--out", tmp_path / "g",
                     "--steps", 1, "--quiet")  # preset small: 128-px faces, the 96-px ones resized up
    assert code == 0, text


@pytest.mark.parametrize("what", ["pix2pix", "colorizer", "gfpgan", "segmenter"])
def test_help_says_how_small_images_are_handled(what, capsys):
    with pytest.raises(SystemExit):
        main(["train", what, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert {"pix2pix": "resized up", "colorizer": "padded with white", "gfpgan": "resized",
            "segmenter": "mirrored"}[what] in text
