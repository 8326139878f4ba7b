"""restore.noref: NIQE against basicsr's ``calculate_niqe``, BRISQUE against the PyPI package
``brisque`` 0.2.0 (a test oracle only: it needs libsvm), on real photos; the vendored SVM equals
the package's; what small, flat and grey images give."""
from __future__ import annotations

import math
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from scipy import ndimage

from restore import noref


def real_images() -> dict[str, np.ndarray]:
    camera = skimage.data.camera()
    saturated = camera.copy()
    saturated[40:200, 300:480] = 255  # a flat area: the coefficients there are rounding residues
    ramp = skimage.data.coffee().copy()
    ramp[50:250, 100:400] = np.linspace(20, 220, 300).round().astype(np.uint8)[None, :, None]  # a smooth sky
    return {"astronaut": skimage.data.astronaut(), "coffee": skimage.data.coffee(),
            "chelsea": skimage.data.chelsea(), "camera_grey": camera, "camera_saturated": saturated,
            "coffee_ramp": ramp}


IMAGES = real_images()


def degraded(rgb: np.ndarray) -> np.ndarray:
    """Blurred, noisy: what both scores must call worse."""
    blurred = ndimage.gaussian_filter(rgb.astype(np.float64), (2.0, 2.0, 0))
    noisy = blurred + np.random.default_rng(0).normal(0, 12, rgb.shape)
    return np.clip(noisy, 0, 255).round().astype(np.uint8)


# ---------------------------------------------------------------------------------- NIQE


@pytest.mark.parametrize("name", list(IMAGES))
def test_niqe_matches_basicsr(name):
    """The same float32 steps as basicsr where they decide a sign or a table entry (its Y, its
    resize, its moments); its 7x7 filter separably: measured 5e-14 relative at most over the
    project's 21 test photos and this ramp (where a float64 resize had moved it by 1e-3)."""
    from basicsr.metrics.niqe import calculate_niqe

    import gan  # noqa: F401  (the torchvision shim basicsr needs)

    img = IMAGES[name]
    rgb = np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img  # grey scored as R = G = B
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = float(calculate_niqe(rgb[..., ::-1], crop_border=0, input_order="HWC", convert_to="y"))
    assert noref.niqe(img) == pytest.approx(ref, rel=1e-9)


def test_niqe_needs_two_blocks_a_side():
    astronaut = IMAGES["astronaut"]
    assert math.isnan(noref.niqe(astronaut[:191]))
    assert math.isnan(noref.niqe(astronaut[:, :100]))
    assert math.isfinite(noref.niqe(astronaut[:192, :192]))


# ------------------------------------------------------------------------------- BRISQUE


def package_model() -> dict[str, np.ndarray]:
    """The SVM and feature ranges the brisque package ships, as restore/brisque_svm.npz holds
    them (``np.savez_compressed(noref.BRISQUE_MODEL, **package_model())`` wrote it)."""
    from brisque.models import MODEL_PATH

    lines = (Path(MODEL_PATH) / "svm.txt").read_text().splitlines()
    start = lines.index("SV")
    head = dict(line.split(None, 1) for line in lines[:start])
    assert (head["svm_type"], head["kernel_type"]) == ("epsilon_svr", "rbf")
    rows = [line.split() for line in lines[start + 1:] if line.strip()]
    assert all([f"{i}" for i in range(1, 37)] == [f.split(":")[0] for f in row[1:]] for row in rows)  # dense
    with open(Path(MODEL_PATH) / "normalize.pickle", "rb") as f:
        ranges = pickle.load(f)  # the package's own file, in a test only
    return {"support_vectors": np.array([[float(f.split(":")[1]) for f in row[1:]] for row in rows]),
            "dual_coef": np.array([float(row[0]) for row in rows]), "rho": np.float64(head["rho"]),
            "gamma": np.float64(head["gamma"]), "feature_min": np.array(ranges["min_"], np.float64),
            "feature_max": np.array(ranges["max_"], np.float64)}


@pytest.fixture(scope="module")
def package():
    """``brisque.BRISQUE(url=False)``. Its ``scale_features`` calls ``float()`` on 1-element
    arrays, which numpy 2 refuses; the oracle takes the element instead (same formula). The
    features and the libsvm prediction are the package's own."""
    pytest.importorskip("libsvm")
    brisque = pytest.importorskip("brisque")

    class Oracle(brisque.BRISQUE):
        def scale_features(self, features):
            f = np.array([np.ravel(x)[0] for x in features], np.float64)
            lo, hi = (np.array(self.scale_params[k], np.float64) for k in ("min_", "max_"))
            return -1 + 2.0 / (hi - lo) * (f - lo)

    return Oracle(url=False)


def test_vendored_model_is_the_package_s(package):
    with np.load(noref.BRISQUE_MODEL) as z:
        vendored = {k: z[k] for k in z.files}
    expected = package_model()
    assert sorted(vendored) == sorted(expected)
    for k, v in expected.items():
        np.testing.assert_array_equal(vendored[k], v, err_msg=k)
    assert noref.BRISQUE_MODEL.stat().st_size < 200_000
    assert "Apache License" in noref.BRISQUE_MODEL.with_name("brisque_svm.LICENSE").read_text()


@pytest.mark.parametrize("name", list(IMAGES))
def test_brisque_matches_the_package(package, name):
    """Same arithmetic as the package where it decides a sign (its convolve2d, its kernel and
    grey written as it writes them, its root finder): agreement to ~1e-10, measured 4e-11 at
    most over the project's 42 photos (flat scans and skies included)."""
    img = IMAGES[name]
    rgb = np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img  # the package needs RGB
    assert noref.brisque(img) == pytest.approx(float(package.score(rgb)), abs=1e-6)


def test_brisque_small_and_flat_images_are_nan():
    assert math.isnan(noref.brisque(IMAGES["astronaut"][:31]))
    assert math.isfinite(noref.brisque(IMAGES["astronaut"][:32, :32]))
    assert math.isnan(noref.brisque(np.full((64, 64, 3), 128, np.uint8)))
    assert math.isnan(noref.niqe(np.full((256, 256, 3), 128, np.uint8)))


# ---------------------------------------------------------------------------------- both


def test_degraded_scores_worse():
    for name in ("astronaut", "coffee"):
        clean, bad = noref.scores(IMAGES[name]), noref.scores(degraded(IMAGES[name]))
        assert set(clean) == {"niqe", "brisque"}
        assert bad["niqe"] > clean["niqe"] + 1, name
        assert bad["brisque"] > clean["brisque"] + 10, name


def test_grey_is_scored_as_rgb_with_equal_channels():
    grey = IMAGES["camera_grey"]
    rgb = np.repeat(grey[..., None], 3, 2)
    assert noref.scores(grey) == noref.scores(rgb)
    rgba = np.dstack([IMAGES["chelsea"], np.full(IMAGES["chelsea"].shape[:2], 255, np.uint8)])
    assert noref.scores(rgba) == noref.scores(IMAGES["chelsea"])


def test_inputs_are_checked():
    with pytest.raises(TypeError):
        noref.niqe(IMAGES["astronaut"].astype(np.float32))
    with pytest.raises(ValueError):
        noref.brisque(np.zeros((64, 64, 2), np.uint8))
