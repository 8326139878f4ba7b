"""Faces restored at their own scale by a model that is not a face prior (restore.faces.own_scale)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from restore import FaceRestorer
from restore.faces.detect import Detection, merge
from restore.faces.own_scale import box_feather, face_region
from restore.translate import Translator


@pytest.fixture(scope="module")
def small():
    return cv2.resize(data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)


def test_an_image_to_image_model_restores_faces_in_place(small, weights):
    fr = FaceRestorer(weights, "mtcnn", bg="none")
    assert fr.own_scale and not FaceRestorer(weights, "mtcnn", bg="none", own_scale=False).own_scale
    result = fr.restore(small)
    (face,) = result.faces
    y0, y1, x0, x1 = face_region(face.box, 256, 256)
    outside = np.ones((256, 256), bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(result.image[outside], small[outside])  # --bg none: the rest untouched
    # inside the face box: the network's own output on the region, at the photo's scale
    own = Translator(weights)(np.ascontiguousarray(small[y0:y1, x0:x1]))
    bx0, by0, bx1, by1 = np.round(face.box).astype(int)
    got = result.image[by0:by1, bx0:bx1].astype(int)
    want = own[by0 - y0:by1 - y0, bx0 - x0:bx1 - x0].astype(int)
    assert np.abs(got - small[by0:by1, bx0:bx1]).mean() > 2  # it did change the face
    assert np.abs(got - want).max() <= 1
    assert face.restored.shape == (512, 512, 3)  # the aligned crop of the result, for the report


def test_with_the_background_the_whole_photo_pass_restores_the_faces(small, weights):
    fr = FaceRestorer(weights, "mtcnn")  # bg=restorer with the same model: one pass, no crops
    assert fr.face_translator is fr.translator
    out = fr.restore(small).image
    np.testing.assert_array_equal(out, Translator(weights)(small))


@pytest.mark.parametrize("upscale", [1, 2])
def test_own_scale_layouts_fidelity_and_upscale(small, weights, upscale):
    fr = FaceRestorer(weights, "mtcnn", bg="none", upscale=upscale)
    deep = small.astype(np.uint16) * 257 + 3
    res = fr.restore(deep)
    assert res.image.dtype == np.uint16 and res.image.shape == (256 * upscale, 256 * upscale, 3)
    grey = fr.restore(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)).image
    assert grey.shape == (256 * upscale, 256 * upscale)
    full = fr.restore(small).image.astype(np.float32)
    none = fr.with_options(fidelity=0.0).restore(small).image.astype(np.float32)
    base = cv2.resize(small, (256 * upscale,) * 2, interpolation=cv2.INTER_LINEAR).astype(np.float32)
    (face,) = fr.restore(small).faces
    x0, y0, x1, y1 = (face.box * upscale).astype(int)
    core = (slice(y0 + 8, y1 - 8), slice(x0 + 8, x1 - 8))
    assert np.abs(none[core] - base[core]).mean() < 1.5  # fidelity 0: the input's face (resampled once)
    assert np.abs(full[core] - base[core]).mean() > 2


def test_feather_ramps_only_away_from_the_photo_border():
    m = box_feather((10, 20), (False, True, True, False), 4)
    assert m[0, -1] == 1 and m[-1, -1] < 0.2 and m[5, 0] < 0.2 and m[0, 10] == 1


def test_merge_adds_only_faces_not_already_found():
    a = Detection(np.array([0, 0, 10, 10.0]), np.zeros((5, 2)), 0.9)
    b = Detection(np.array([1, 1, 11, 11.0]), np.zeros((5, 2)), 0.8)
    c = Detection(np.array([50, 50, 80, 80.0]), np.zeros((5, 2)), 0.7)
    merged = merge([a], [b, c])
    assert [d.score for d in merged] == [0.7, 0.9]  # largest first; b overlaps a


def test_faces_found_only_on_the_restored_copy_are_restored_too(small, weights):
    """The detector sees the photo and its restored background; a face it finds only on the
    latter (as on heavily degraded photos) is kept."""
    fr = FaceRestorer(weights, "mtcnn")
    cleaned = fr.translator(small)
    real = fr.detector

    def detector(img):  # blind on the photo itself, MTCNN on the restored copy
        return real(img) if np.array_equal(img, cleaned) else []

    fr.detector = detector
    assert len(fr.prepare(small).found) == 1
    assert FaceRestorer(weights, "mtcnn", bg="none").with_options().prepare(small).found  # sanity: MTCNN sees it
    fr.bg = "resize"  # no restored copy: nothing to find it on
    assert fr.prepare(small).found == []


@pytest.mark.parametrize("bg", ["none", "resize"])
def test_a_copy_with_another_background_still_restores_the_faces(small, weights, bg):
    """The app keeps one restorer built with bg=restorer (whose whole-photo pass restores the
    faces) and copies it per request with another background: the copy must restore the faces
    itself, as one built with that background does (it once pasted the input's faces back)."""
    shared = FaceRestorer(weights, "mtcnn")
    got = shared.with_options(bg=bg).restore(small).image
    np.testing.assert_array_equal(got, FaceRestorer(weights, "mtcnn", bg=bg).restore(small).image)
