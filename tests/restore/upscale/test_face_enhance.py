"""``restore upscale --face-enhance``: the faces through ``restore faces``' models and paste-back,
the rest the upscaler's picture, as ``inference_realesrgan.py --face_enhance`` (tiny random
networks; the detector replaced by one that returns a fixed face, as MTCNN needs a real one)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gan.nets.gfpgan import GFPGAN, GFPGAN_PRESETS
from gan.serialize import save_model
from restore.cli import main
from restore.faces.align import estimate_affine, inverse_affine, template
from restore.faces.detect import Detection
from restore.imageio import read_alpha, read_image
from restore.imagewrite import write_png
from tests.gan.nets.test_stylegan2 import randomize_
from tests.restore.upscale.test_upscaler import network, picture

LANDMARKS = template(512) * (28 / 512) + (14, 10)  # a 28 px face, its crop's corner at (14, 10)


@pytest.fixture
def nets(tmp_path, monkeypatch):
    from restore.faces import restorer

    monkeypatch.setenv("RESTORE_HOME", str(tmp_path / "cache"))  # no cached models: the given ones only
    face = Detection(np.array([14.0, 10, 42, 38]), LANDMARKS, 0.99)  # the crop square
    monkeypatch.setattr(restorer, "detect", lambda detector, image, max_side=0: [face])
    torch.manual_seed(0)
    gfpgan = save_model(randomize_(GFPGAN(GFPGAN_PRESETS["tiny"])).eval(), tmp_path / "face.safetensors")
    return save_model(network("rrdb-x2"), tmp_path / "x2.safetensors"), gfpgan


def face_box(scale: float, margin: int = 2) -> tuple[slice, slice]:
    """Where in the output the pasted face square can reach."""
    inv = inverse_affine(estimate_affine(LANDMARKS, 32), scale, gfpgan=True)
    corners = np.array([[0, 0, 1], [32, 0, 1], [0, 32, 1], [32, 32, 1]], float) @ inv.T
    (x0, y0), (x1, y1) = np.floor(corners.min(0)).astype(int) - margin, np.ceil(corners.max(0)).astype(int) + margin
    return slice(max(y0, 0), y1), slice(max(x0, 0), x1)


@pytest.mark.parametrize("kind, scale", [("rgb", "2"), ("rgba", "3")])
def test_faces_change_only_around_the_face(nets, tmp_path, capsys, kind, scale):
    x2, gfpgan = nets
    write_png(tmp_path / "a.png", picture(48, 56, kind))
    base = ["upscale", str(tmp_path / "a.png"), "--weights", str(x2), "-s", scale, "--precision", "fp32", "--quiet"]
    assert main([*base, "-o", str(tmp_path / "plain")]) == 0
    assert main([*base[:-1], "-o", str(tmp_path / "faces"), "--face-enhance", "--face-weights", str(gfpgan)]) == 0
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith(f"restore upscale: {x2}, x2 network")
    assert "faces restored by" in first and "face.safetensors" in first
    plain, faces = read_image(tmp_path / "plain" / "a_out.png"), read_image(tmp_path / "faces" / "a_out.png")
    s = float(scale)
    assert plain.shape == faces.shape == (int(48 * s), int(56 * s), 3)
    ys, xs = face_box(s)
    outside = np.ones(plain.shape[:2], bool)
    outside[ys, xs] = False
    assert np.array_equal(plain[outside], faces[outside])  # the upscaler's own pixels
    changed = np.abs(plain[ys, xs].astype(int) - faces[ys, xs]).max(-1)
    assert (changed > 8).mean() > 0.2  # the face was restored and pasted there
    if kind == "rgba":  # alpha as the upscaler enlarges it
        assert np.array_equal(read_alpha(tmp_path / "plain" / "a_out.png", plain.shape[:2]),
                              read_alpha(tmp_path / "faces" / "a_out.png", plain.shape[:2]))


def test_upscale_alpha_is_the_upscalers():
    from restore.faces.background import upscale_alpha
    from restore.upscale.upscaler import Upscaler

    for alpha in ("realesrgan", "bilinear"):
        for scale in (None, 3.0):
            up = Upscaler(network("rrdb-x2"), precision="fp32", alpha=alpha, scale=scale)
            for image in (picture(20, 24, "rgba"), picture(20, 24, "rgba").astype(np.uint16) * 257):
                assert np.array_equal(up(image)[..., 3], upscale_alpha(up, image[..., 3]))


@pytest.mark.parametrize("outscale", [4, 3.5])
def test_equals_realesrgan_face_enhance(tmp_path, monkeypatch, outscale):
    """inference_realesrgan.py --face_enhance: GFPGANer(upscale=outscale, bg_upsampler=the
    RealESRGANer), the same random weights (a 64 px GFPGANv1Clean, a small RRDBNet x2) and the
    same landmarks on both sides (``tests/restore/faces/test_gfpgan_pipeline.py``'s setup)."""
    from gan.nets.gfpgan import GFPGANConfig
    from restore.faces import restorer
    from restore.upscale.face_enhance import FaceEnhancer
    from tests.restore.faces.test_gfpgan_pipeline import (
        SMALL,
        FakeRetinaFace,
        detections,
        gfpganer,
        landmarks,
        photo,
        psnr,
    )
    from tests.restore.upscale.test_upscaler import bgr
    from tests.restore.upscale.test_upscaler import reference as realesrganer

    monkeypatch.setenv("RESTORE_HOME", str(tmp_path / "cache"))
    # one face inside, one across the bottom-right corner (its crop padded with GFP-GAN's grey)
    faces = [landmarks(40, (12, 8), 8.0), landmarks(36, (56, 46), -5.0)]
    monkeypatch.setattr(FakeRetinaFace, "faces", faces)
    monkeypatch.setattr(restorer, "detect", lambda detector, image, max_side=0: detections(faces))
    torch.manual_seed(0)
    face = randomize_(GFPGAN(GFPGANConfig(**SMALL))).eval()
    up = network("rrdb-x2")
    bg = realesrganer("rrdb-x2", up, tmp_path, tile=0, tile_pad=10, pre_pad=0, half=False)  # the command's defaults
    ref = gfpganer(monkeypatch, tmp_path, face.state_dict(), outscale, bg, face_size=64)
    image = photo(72, 80)
    want = bgr(ref.enhance(bgr(image), has_aligned=False, only_center_face=False, paste_back=True)[2])
    ours = FaceEnhancer(up, face_weights=face, detector="mtcnn", scale=outscale, precision="fp32", parse=False,
                        colour="model")  # GFPGANer's own colours
    got = ours(image)
    assert got.shape == want.shape == (int(72 * outscale), int(80 * outscale), 3)
    value = psnr(got, want)
    print(f"restore upscale --face-enhance -s {outscale} against Real-ESRGAN's: {value:.2f} dB")
    assert value >= 45
