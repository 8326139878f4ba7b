"""``restore faces --bg realesrgan`` and its choice by ``--bg auto``: which weights, the first line,
every runner (one photo at a time, the pipeline, a job sent to a Ray worker), alpha, grey, 16-bit."""
from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from gan.serialize import save_model
from restore.cli import main
from restore.faces import background
from tests.restore.upscale.test_upscaler import network


@pytest.fixture(scope="module")
def face_photo():
    return cv2.resize(data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def x2_file(tmp_path_factory):
    """A tiny RRDBNet x2 (the published layout's flags) standing in for the registry's float16 copy."""
    from restore.models.wheels import rounded_note

    return str(save_model(network("rrdb-x2"), tmp_path_factory.mktemp("w") / "x2.safetensors",
                          meta={"weights_note": rounded_note("a-wheel")}))


@pytest.fixture
def cached_x2(monkeypatch, x2_file):
    """Real-ESRGAN weights "in the cache" (the tiny x2 in place of the published ones)."""
    asked = []

    def cached(upscale):
        asked.append(upscale)
        return x2_file

    monkeypatch.setattr(background, "cached_upscaler", cached)
    return asked


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_which_weights_and_when(monkeypatch):
    from restore.models import cache
    from restore.models.manifest import WeightsError

    assert background.preferred(2) == ("realesrgan-x2plus", "realesrgan-x4plus")
    assert background.preferred(4) == ("realesrgan-x4plus", "realesrgan-x2plus")
    assert background.cached_upscaler(2) is None  # the tests' empty cache
    assert background.resolve_bg("auto", 2, None) == "restorer"
    assert background.resolve_bg("auto", 1, "given") == "restorer"  # not upscaled: the restorer's
    assert background.resolve_bg("auto", 2, "given") == "realesrgan"
    assert background.resolve_bg("none", 2, "given") == "none"
    # only the x4plus at hand (the registry's float16 copy): it serves 2x too; a damaged x2plus is passed over
    at_hand = {"realesrgan-x4plus": "x4.safetensors"}

    def find_cached(name):
        if name == "realesrgan-x2plus" and "damaged" in at_hand:
            raise WeightsError("damaged")
        return at_hand.get(name)

    monkeypatch.setattr(cache, "find_cached", find_cached)
    assert background.cached_upscaler(2) == background.cached_upscaler(4) == "realesrgan-x4plus"
    assert background.resolve_bg("auto", 2, None) == "realesrgan"
    at_hand.update({"damaged": 1})
    assert background.cached_upscaler(2) == "realesrgan-x4plus"
    at_hand.update({"realesrgan-x2plus": "x2.pth"})
    del at_hand["damaged"]
    assert background.cached_upscaler(2) == "realesrgan-x2plus" and background.cached_upscaler(4) == "realesrgan-x4plus"


def test_auto_takes_realesrgan_when_cached_and_every_runner_agrees(tmp_path, capsys, weights, face_photo,
                                                                    cached_x2):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        Image.fromarray(np.roll(face_photo, 9 * i, axis=1)[16:112, 16:112]).save(src / f"p{i}.png")
    outs = {}
    for name, extra in (("one", ["--no-pipeline"]), ("pipe", [])):
        outs[name] = tmp_path / name
        code, err = run(capsys, "faces", src, "-o", outs[name], "--weights", weights, "--upscale", 2, *extra)
        assert code == 0, err
        first = err.splitlines()[0]
        assert first.startswith("restore faces: restoring with") and "background by Real-ESRGAN: " in first
        assert "x2.safetensors (the published weights rounded to float16 (from the ncnn files of a-wheel))" in first
        assert "x2 network" in first and "tiles of 400 (pad 10)" in first
    assert cached_x2 and set(cached_x2) == {2}
    for i in range(2):
        a = np.array(Image.open(outs["one"] / "restored" / f"p{i}.png"))
        b = np.array(Image.open(outs["pipe"] / "restored" / f"p{i}.png"))
        assert a.shape == (192, 192, 3) and np.array_equal(a, b)


def test_the_background_is_the_upscalers_and_the_job_travels(tmp_path, weights, face_photo, x2_file):
    from functools import partial

    from restore.faces.job import FacesJob
    from restore.faces.restorer import FaceRestorer
    from restore.upscale.upscaler import Upscaler

    make = partial(FaceRestorer, weights=weights, detector="mtcnn", precision="fp32", upscale=2, bg="realesrgan",
                   bg_upscaler=x2_file, parse=False)
    job = pickle.loads(pickle.dumps(FacesJob(make, out=tmp_path)))  # as a Ray worker gets it: settings only
    fr = job.model
    assert fr.bg == "realesrgan" and fr.upscaler.tile == 400 and fr.upscaler.scale == 2
    up = Upscaler(x2_file, precision="fp32", tile=400)
    grey16 = (face_photo[..., 1].astype(np.uint16) * 257)[:60, :70]
    rgba = np.dstack([face_photo, np.arange(128 * 128).reshape(128, 128) % 251]).astype(np.uint8)[16:112, 16:112]
    for image in (grey16, rgba):
        result = fr.with_options(bg="realesrgan").restore(image)
        assert result.image.dtype == image.dtype
        assert result.image.shape == (2 * image.shape[0], 2 * image.shape[1]) + image.shape[2:]
        want = up(image)  # alpha too goes through the network, as RealESRGANer does
        if not result.faces:  # no face: the upscaler's picture exactly
            assert np.array_equal(result.image, want)
        else:
            assert np.array_equal(result.image[..., 3], want[..., 3])
    # another outscale, from the same network (Real-ESRGAN's outscale: any number)
    other = fr.with_options(upscale=3)
    assert other.upscaler.model is fr.upscaler.model and other.upscaler.scale == 3
    assert other.restore(face_photo[:30, :40]).image.shape == (90, 120, 3)
    with pytest.raises(ValueError, match="1, 2 or 4"):
        fr.with_options(upscale=3, bg="none")


def test_without_weights_auto_says_how_and_realesrgan_is_one_line(tmp_path, capsys, weights, face_photo):
    Image.fromarray(face_photo).save(tmp_path / "a.png")
    code, err = run(capsys, "faces", tmp_path / "a.png", "-o", tmp_path / "out", "--weights", weights,
                    "--upscale", 2, "--tile", 64)
    assert code == 0
    first = err.splitlines()[0]
    assert "background by the background restorer, then Lanczos" in first
    assert "restore weights fetch realesrgan-x2plus" in first
    code, err = run(capsys, "faces", tmp_path / "a.png", "-o", tmp_path / "out2", "--weights", weights,
                    "--upscale", 2, "--bg", "realesrgan")
    assert code == 2 and "Traceback" not in err
    assert "needs Real-ESRGAN's weights" in err and "restore weights fetch realesrgan-x2plus" in err
