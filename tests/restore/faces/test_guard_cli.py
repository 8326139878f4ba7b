"""``restore faces --min-identity``: with a deliberately broken face model (a GFP-GAN of random
weights, whose faces are nobody) every face of a folder comes out at or above the threshold, by
dlib's embedding read without dlib; the report says, per face, what the guard did, and the
summary line how many fell under it."""
from __future__ import annotations

import json

import pytest

from restore.cli import main
from tests.dlibfiles import WHY, recognition_dat
from tests.restore.faces.test_pipeline import photo_folder

T = 0.9


@pytest.fixture
def cache_with_dlib(tmp_path, monkeypatch):
    dat = recognition_dat()
    if dat is None:
        pytest.skip(WHY)
    monkeypatch.setenv("RESTORE_HOME", str(tmp_path / "cache"))
    from restore.models.cache import import_file

    import_file(dat, "dlib-face-recognition")
    return tmp_path / "cache"


def test_a_broken_face_model_is_guarded_on_every_face(cache_with_dlib, gfpgan_weights, tmp_path, capsys):
    src = photo_folder(tmp_path / "in")
    out = tmp_path / "out"
    assert main(["faces", str(src), "-o", str(out), "--weights", str(gfpgan_weights), "--detector", "mtcnn",
                 "--bg", "none", "--min-identity", str(T), "--scores"]) == 1  # (the broken file)
    err = capsys.readouterr().err
    assert "identity by dlib-resnet-v1, guard at 0.9" in err.splitlines()[0]
    report = json.loads((out / "report.json").read_text())
    faces = [f for e in report for f in e["faces"]]
    assert len(faces) >= 6
    for f in faces:
        assert f["identity"] >= T and f["identity_model"] == "dlib-resnet-v1"
        g = f["guard"]
        assert g["threshold"] == T and g["action"] in ("kept", "blended", "input")
        if g["action"] != "kept":
            assert g["identity_before"] < T and 0 <= g["fidelity"] < 1
        assert set(f["quality"]) == {"niqe", "brisque"}
    touched = [f for f in faces if f["guard"]["action"] != "kept"]
    assert touched  # random weights make nobody: the guard had work to do
    under = sum(f["guard"].get("identity_before", 1) < T for f in faces)
    assert f"{under} of {len(faces)} under identity 0.9" in err
    assert all(set(e["quality"]) == {"niqe", "brisque"} for e in report if e["error"] is None)
    # without the guard the same faces are measured, not changed
    assert main(["faces", str(src), "-o", str(tmp_path / "plain"), "--weights", str(gfpgan_weights),
                 "--detector", "mtcnn", "--bg", "none", "--quiet"]) == 1
    plain = [f for e in json.loads((tmp_path / "plain" / "report.json").read_text()) for f in e["faces"]]
    assert "guard" not in plain[0] and min(f["identity"] for f in plain) < T


def test_aligned_faces_are_measured_and_guarded_too(cache_with_dlib, gfpgan_weights, tmp_path, capsys):
    """``--aligned`` inputs (face crops) go through the same checks: identity, guard, scores."""
    from PIL import Image

    from tests.dlibfiles import aligned

    src = tmp_path / "crops"
    src.mkdir()
    Image.fromarray(aligned("astronaut", 256)).save(src / "a.png")
    Image.fromarray(aligned("hopper", 256)).save(src / "h.png")
    assert main(["faces", str(src), "-o", str(tmp_path / "out"), "--aligned", "--weights", str(gfpgan_weights),
                 "--min-identity", str(T), "--scores"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    faces = [f for e in report for f in e["faces"]]
    assert len(faces) == 2 and all(f["identity"] >= T and f["guard"]["threshold"] == T for f in faces)
    assert all(set(f["quality"]) == {"niqe", "brisque"} for f in faces)
    under = sum(f["guard"].get("identity_before", 1) < T for f in faces)
    assert f"{under} of 2 under identity 0.9" in capsys.readouterr().err
