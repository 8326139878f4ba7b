"""Face restoration pipeline: detection, alignment, paste-back, model choice (restore.faces)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from matplotlib import cbook
from PIL import Image
from skimage import data

from gan.nets.gfpgan import GFPGAN, GFPGAN_PRESETS
from restore import FaceRestorer
from restore.faces.align import estimate_affine, inverse_affine, parse_mask, paste, template, warp_face
from restore.faces.detect import MTCNNDetector, center_face, detect, make_detector
from restore.faces.restorer import load_face_model
from restore.models.manifest import WeightsError

# Where MTCNN puts the eyes (x, y) in the two public-domain portraits (checked by eye).
ASTRONAUT_EYES = [(205, 102), (247, 104)]
HOPPER_EYES = [(222, 192), (310, 187)]


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


@pytest.fixture(scope="module")
def hopper():
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        return np.array(im.convert("RGB"))


@pytest.fixture(scope="module")
def small(astronaut):
    """The astronaut at 256 px: the pipeline tests need a face, not the detector's full cost."""
    return cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def mtcnn():
    return MTCNNDetector()


@pytest.mark.parametrize("photo, eyes", [("astronaut", ASTRONAUT_EYES), ("hopper", HOPPER_EYES)])
def test_mtcnn_finds_the_face_and_its_landmarks(photo, eyes, request, mtcnn):
    image = request.getfixturevalue(photo)
    faces = detect(mtcnn, image)
    assert len(faces) == 1
    (face,) = faces
    assert face.score > 0.95
    x0, y0, x1, y1 = face.box
    assert (face.landmarks[:, 0] > x0).all() and (face.landmarks[:, 0] < x1).all()
    assert (face.landmarks[:, 1] > y0).all() and (face.landmarks[:, 1] < y1).all()
    np.testing.assert_allclose(face.landmarks[:2], eyes, atol=6)
    assert face.landmarks[3, 1] > face.landmarks[2, 1] > face.landmarks[0, 1]  # eyes, nose, mouth downwards


def test_detection_on_a_shrunk_copy_maps_back_to_the_photo(astronaut, mtcnn):
    big = cv2.resize(astronaut, (1536, 1536), interpolation=cv2.INTER_CUBIC)
    (face,) = detect(mtcnn, big, max_side=512)  # detected at a third of the size
    np.testing.assert_allclose(face.landmarks[:2], np.array(ASTRONAUT_EYES) * 3, atol=18)


@pytest.mark.parametrize("photo", ["astronaut", "hopper"])
def test_alignment_puts_the_face_on_the_ffhq_template(photo, request, mtcnn):
    image = request.getfixturevalue(photo)
    (face,) = detect(mtcnn, image)
    affine = estimate_affine(face.landmarks, 512)
    moved = face.landmarks @ affine[:, :2].T + affine[:, 2]
    assert np.abs(moved - template(512)).max() < 12
    # The aligned crop itself: detected again, its landmarks sit on the template.
    crop = warp_face(image, affine, 512)
    (again,) = detect(mtcnn, crop)
    assert np.abs(again.landmarks - template(512)).max() < 15
    assert np.abs(again.landmarks[:2] - template(512)[:2]).max() < 8  # the eyes, most of all


def _square_support(affine: np.ndarray, size: int, shape: tuple[int, int], upscale: int, grow: int = 3) -> np.ndarray:
    """Where in the output the aligned face square lands (grown by ``grow`` px): geometry only."""
    inv = inverse_affine(affine, upscale)
    corners = np.array([[-0.5, -0.5], [size - 0.5, -0.5], [size - 0.5, size - 0.5], [-0.5, size - 0.5]])
    pts = corners @ inv[:, :2].T + inv[:, 2]
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, np.round(pts).astype(np.int32), 1)
    return cv2.dilate(mask, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)).astype(bool)


@pytest.mark.parametrize("upscale", [1, 2])
def test_paste_back_with_bg_none_leaves_pixels_outside_the_face_untouched(small, weights, upscale):
    fr = FaceRestorer(weights, "mtcnn", bg="none", upscale=upscale, own_scale=False)  # the aligned-crop path
    result = fr.restore(small)
    out = result.image
    assert out.shape == (256 * upscale, 256 * upscale, 3) and out.dtype == np.uint8
    reference = np.repeat(np.repeat(small, upscale, 0), upscale, 1)  # the input, pixels repeated
    (face,) = result.faces
    inside = _square_support(face.affine, fr.face_size, out.shape[:2], upscale)
    assert inside.mean() < 0.25
    np.testing.assert_array_equal(out[~inside], reference[~inside])
    changed = (out != reference).any(axis=2)
    assert changed[inside].sum() > 500 * upscale**2  # and the face itself was replaced
    x0, y0, x1, y1 = (face.box * upscale).astype(int)
    assert changed[y0:y1, x0:x1].mean() > 0.5


def test_fidelity_blends_restored_and_input_faces(small, weights):
    fr = FaceRestorer(weights, "mtcnn", bg="none", fidelity=0.5, own_scale=False)
    (half,) = fr.restore(small).faces
    fr.fidelity = 1.0
    full = fr.restore_aligned(half.cropped)  # the network's own output for the same crop
    assert np.abs(full.astype(int) - half.cropped).mean() > 2  # the network does change it
    expected = np.rint(0.5 * full.astype(np.float32) + 0.5 * half.cropped.astype(np.float32))
    np.testing.assert_array_equal(half.restored, expected.astype(np.uint8))
    fr.fidelity = 0.0
    np.testing.assert_array_equal(fr.restore_aligned(half.cropped), half.cropped)


def test_grey_rgba_and_16_bit_keep_their_layout(small, weights):
    fr = FaceRestorer(weights, "mtcnn", bg="none", own_scale=False)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    result = fr.restore(grey)
    assert result.image.shape == grey.shape and result.image.dtype == np.uint8 and len(result.faces) == 1
    alpha = np.tile(np.linspace(0, 255, 256, dtype=np.uint8), (256, 1))
    out = fr.restore(np.dstack([small, alpha])).image
    assert out.shape == (256, 256, 4)
    np.testing.assert_array_equal(out[..., 3], alpha)
    deep = small.astype(np.uint16) * 257 + 3  # values no 8-bit image has
    result = fr.restore(deep)
    assert result.image.dtype == np.uint16 and len(result.faces) == 1
    inside = _square_support(result.faces[0].affine, fr.face_size, (256, 256), 1)
    np.testing.assert_array_equal(result.image[~inside], deep[~inside])


def test_min_face_skips_and_counts(small, weights):
    result = FaceRestorer(weights, "mtcnn", bg="none", min_face=100).restore(small)
    assert result.faces == [] and result.small_faces == 1
    np.testing.assert_array_equal(result.image, small)


def test_only_center_face(astronaut, hopper, weights):
    pair = np.concatenate([astronaut, hopper[44:556], astronaut[:, :200]], axis=1)  # hopper in the middle
    pair = cv2.resize(pair, (612, 256), interpolation=cv2.INTER_AREA)
    fr = FaceRestorer(weights, "mtcnn", bg="none")
    assert len(fr.restore(pair).faces) == 2
    fr.only_center_face = True
    (centre,) = fr.restore(pair).faces
    assert 256 < centre.box[0] < 512
    assert center_face([], 10, 10) == []


def test_background_restorer_changes_the_whole_photo(small, weights):
    fr = FaceRestorer(weights, "mtcnn", bg="restorer", upscale=2, tile=128)
    assert fr.translator is not None and fr.translator.model is fr.model  # one network for both
    result = fr.restore(small)
    assert result.image.shape == (512, 512, 3)
    assert result.timings["net_background"] > 0 and result.timings["net_faces"] > 0
    corner = cv2.resize(small, (512, 512), interpolation=cv2.INTER_LANCZOS4)[:100, :100]
    assert np.abs(result.image[:100, :100].astype(int) - corner).mean() > 1


def test_restore_aligned_and_a_published_style_gfpgan_checkpoint(tmp_path, astronaut, small):
    torch.manual_seed(0)
    net = GFPGAN(GFPGAN_PRESETS["tiny"])
    for p in net.parameters():  # the noise weights start at zero: randomise everything
        torch.nn.init.normal_(p, std=0.1)
    torch.save({"params_ema": net.state_dict()}, tmp_path / "tiny_gfpgan.pth")
    model, info = load_face_model(tmp_path / "tiny_gfpgan.pth", torch.device("cpu"))
    assert type(model).__name__ == "GFPGAN" and "tiny_gfpgan.pth" in info
    fr = FaceRestorer(str(tmp_path / "tiny_gfpgan.pth"), "mtcnn", precision="fp32", bg="none",
                      colour="model")  # the network's own output, compared with fp32 below
    assert fr.face_size == 32
    crop = cv2.resize(astronaut[40:200, 140:300], (100, 100), interpolation=cv2.INTER_AREA)
    out = fr.restore_aligned(crop)
    assert out.shape == crop.shape and out.dtype == np.uint8
    x = torch.from_numpy(cv2.resize(crop, (32, 32), interpolation=cv2.INTER_AREA)).permute(2, 0, 1)[None] / 127.5 - 1
    with torch.no_grad():
        y = ((net(x.float()).clamp(-1, 1) + 1) * 127.5).round().byte()[0].permute(1, 2, 0).numpy()
    expected = cv2.resize(y, (100, 100), interpolation=cv2.INTER_LANCZOS4)
    assert np.abs(out.astype(int) - expected).max() <= 1  # channels-last may round differently
    assert fr.restore_aligned(crop, (200, 200)).shape == (200, 200, 3)
    assert fr.restore(small).faces[0].restored.shape == (32, 32, 3)


def test_default_model_is_gfpgan_when_cached_else_the_restorer(tmp_path, monkeypatch, weights):
    torch.manual_seed(0)
    pth = tmp_path / "cache" / "GFPGANv1.4.pth"
    pth.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params_ema": GFPGAN(GFPGAN_PRESETS["tiny"]).state_dict()}, pth)
    from restore.models.manifest import sha256

    bundled = tmp_path / "manifest"
    bundled.mkdir()
    (bundled / "restorer.safetensors").write_bytes(open(weights, "rb").read())
    (bundled / "manifest.toml").write_text(
        f'[models.restorer]\nfile = "restorer.safetensors"\nsha256 = "{sha256(weights)}"\narch = "Restorer"\n'
        f'[models."gfpgan-v1.4"]\nfile = "GFPGANv1.4.pth"\nurl = "https://example.invalid/GFPGANv1.4.pth"\n'
        f'sha256 = "{sha256(pth)}"\narch = "GFPGAN"\n'
        f'[models."gfpgan-v1.3"]\nfile = "GFPGANv1.3.pth"\nurl = "https://example.invalid/GFPGANv1.3.pth"\n'
        f'sha256 = "{"0" * 64}"\narch = "GFPGAN"\n')
    monkeypatch.setenv("RESTORE_MANIFEST", str(bundled / "manifest.toml"))
    model, info = load_face_model(None, torch.device("cpu"))
    assert type(model).__name__ == "GFPGAN" and info.startswith("gfpgan-v1.4")
    for f in pth.parent.iterdir():
        f.unlink()
    model, info = load_face_model(None, torch.device("cpu"))
    assert type(model).__name__ == "Restorer" and "restorer" in info and "gfpgan-v1.4" in info
    with pytest.raises(WeightsError, match="restore weights fetch gfpgan-v1.3"):
        load_face_model("gfpgan-v1.3", torch.device("cpu"))


def test_detector_choice_never_downloads():
    detector, why = make_detector("auto")
    assert detector.name == "mtcnn" and "not in the weights cache" in why
    with pytest.raises(WeightsError, match="restore weights fetch retinaface-resnet50"):
        make_detector("retinaface")
    with pytest.raises(ValueError, match=r"detector must be one of auto, retinaface, mtcnn, not 'dlib'"):
        make_detector("dlib")


def test_a_soft_face_mask_stays_inside_the_face_square(astronaut):
    affine = estimate_affine(np.array(ASTRONAUT_EYES + [(225, 129), (202, 139), (245, 142)], float), 512)
    face = np.full((512, 512, 3), 255, np.uint8)
    yy, xx = np.mgrid[:512, :512]
    mask = np.clip(1.2 - np.hypot(yy - 300, xx - 256) / 200, 0, 1).astype(np.float32)
    out = paste(astronaut.copy(), face, affine, 1, mask)
    inside = _square_support(affine, 512, (512, 512), 1)
    np.testing.assert_array_equal(out[~inside], astronaut[~inside])
    assert (out[inside] != astronaut[inside]).any()


def test_parse_mask_keeps_face_classes_and_clears_the_border():
    class FakeParser(torch.nn.Module):
        def forward(self, x):
            logits = torch.zeros(1, 19, 512, 512)
            logits[:, 1, 100:400, 100:400] = 1  # skin in the middle
            logits[:, 17, 400:, :] = 2  # cloth at the bottom
            return logits, x

    mask = parse_mask(FakeParser(), np.zeros((512, 512, 3), np.uint8), torch.device("cpu"))
    assert mask.shape == (512, 512) and mask.dtype == np.float32
    assert mask[250, 250] > 0.99 and mask[480, 250] < 0.01 and mask[:10].max() == 0
