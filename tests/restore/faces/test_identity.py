"""restore.faces.identity: dlib's descriptors of this toolkit's aligned faces. The same person
slightly degraded stays closer than another person; the chip cut from our aligned crop gives
nearly dlib's own descriptor (dlib-bin's detector, 5-point predictor and get_face_chip);
load_identity finds the network in the cache or gives None. Skipped where the .dat (or, for
dlib's own chips, dlib-bin and its predictor) are not at hand (tests/dlibfiles.py)."""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from restore.faces.identity import (
    CHIP,
    DEFAULT_THRESHOLD,
    NAME,
    IdentityModel,
    cosine,
    cut_chip,
    load_identity,
)
from restore.models.manifest import WeightsError
from tests.dlibfiles import WHY, aligned, photo, predictor_dat, recognition_dat


@pytest.fixture(scope="module")
def model():
    dat = recognition_dat()
    if dat is None:
        pytest.skip(WHY)
    from gan.nets.dlib_resnet import load_dat

    return IdentityModel(load_dat(dat), batch=2)


def degrade(face: np.ndarray, seed: int = 0) -> np.ndarray:
    """Mildly worse: blur sigma 1.5, half size and back, noise sigma 6, JPEG 50."""
    h, w = face.shape[:2]
    x = cv2.GaussianBlur(face, (0, 0), 1.5)
    x = cv2.resize(cv2.resize(x, (w // 2, h // 2), interpolation=cv2.INTER_AREA), (w, h))
    x = np.clip(x + np.random.default_rng(seed).normal(0, 6, x.shape), 0, 255).astype(np.uint8)
    return cv2.imdecode(cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, 50])[1], cv2.IMREAD_UNCHANGED)


def test_same_person_degraded_scores_above_two_people(model):
    a, h = aligned("astronaut"), aligned("hopper")
    e = model.embed([a, degrade(a), h, degrade(h)])
    assert e.shape == (4, 128) and e.dtype == np.float32
    same = [cosine(e[0], e[1]), cosine(e[2], e[3])]
    other = [cosine(e[i], e[j]) for i in (0, 1) for j in (2, 3)]
    assert min(same) > DEFAULT_THRESHOLD > max(other), (same, other)
    assert np.allclose(cosine(e[:2], e[2:]), [other[0], other[3]])  # row-wise on (N, D)


def test_our_chip_gives_nearly_dlibs_own_descriptor(model):
    dlib = pytest.importorskip("dlib", reason="dlib-bin is the test oracle (pip install dlib-bin)")
    if predictor_dat() is None:
        pytest.skip(WHY)
    finder, predictor = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(predictor_dat()))
    chips = []
    for which in ("astronaut", "hopper"):
        img = photo(which)
        rect = max(finder(img, 0), key=lambda r: r.area())  # large faces: no upsampling
        theirs = np.asarray(dlib.get_face_chip(img, predictor(img, rect), CHIP, 0.25))
        chips += [theirs, cut_chip(aligned(which, 512)), cut_chip(aligned(which, 256))]
    e = model.embed_chips(np.stack(chips)).reshape(2, 3, -1)  # one call: (face, dlib's / ours 512 / ours 256)
    sims = cosine(e[:, 1:], e[:, :1])
    assert sims.min() > 0.98, sims


def test_batches_and_sizes_agree(model):
    faces = [aligned("astronaut"), aligned("hopper")]
    together = model.embed(faces + [aligned("astronaut", 1024)])  # two calls of the network (batch 2)
    alone = model.embed_chips(model.chips(faces[1:]))
    assert np.abs(together[1] - alone[0]).max() < 1e-5
    assert cosine(together[2], together[0]) > 0.99  # a 1024 px crop, halved twice first
    assert model.embed([]).shape == (0, 128)
    with pytest.raises(ValueError, match="an aligned face is an RGB uint8 square"):
        cut_chip(np.zeros((64, 64), np.uint8))


def test_load_identity_from_the_cache_or_none(tmp_path, monkeypatch):
    monkeypatch.setenv("RESTORE_HOME", str(tmp_path / "cache"))
    assert load_identity() is None and load_identity("dlib") is None
    with pytest.raises(ValueError, match="auto, dlib or arcface"):
        load_identity("facenet")
    dat = recognition_dat()
    if dat is None:
        pytest.skip(WHY)
    (tmp_path / "cache").mkdir()
    target = tmp_path / "cache" / "dlib_face_recognition_resnet_model_v1.dat"
    shutil.copy(dat, target)
    m = load_identity()
    assert isinstance(m, IdentityModel) and m.name == "dlib-resnet-v1" and NAME == "dlib-face-recognition"
    assert m.embed([aligned("hopper", 256)]).shape == (1, 128)
    with open(target, "r+b") as f:  # damaged after it was checked: refused, not silently used
        f.seek(1000)
        f.write(b"\xff")
    with pytest.raises(WeightsError, match="fails its sha256 check"):
        load_identity()


def test_arcface_from_the_cache_is_the_second_choice(tmp_path, monkeypatch):
    """GFP-GAN's arcface_resnet18.pth placed in the cache: ``auto`` takes it when dlib's is not
    there, ``arcface`` asks for it; 512-d embeddings of aligned faces, a face nearest itself."""
    import torch

    from gan.nets.arcface import ResNetArcFace
    from restore.faces.identity import ARCFACE_FILE, ArcFaceIdentity, cosine, load_identity

    monkeypatch.setenv("RESTORE_HOME", str(tmp_path))
    from restore.models.manifest import cache_dir

    assert load_identity("auto") is None and load_identity("arcface") is None
    torch.manual_seed(0)
    cache_dir().mkdir(parents=True, exist_ok=True)
    torch.save(ResNetArcFace().state_dict(), cache_dir() / ARCFACE_FILE)
    model = load_identity("auto")
    assert isinstance(model, ArcFaceIdentity) and model.name == "arcface-resnet18"
    assert isinstance(load_identity("arcface"), ArcFaceIdentity) and load_identity("dlib") is None
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    emb = model.embed([a, np.clip(a.astype(int) + 4, 0, 255).astype(np.uint8), b])
    assert emb.shape == (3, 512) and cosine(emb[0], emb[1]) > cosine(emb[0], emb[2])
