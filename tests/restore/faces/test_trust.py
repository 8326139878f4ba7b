"""restore.faces.trust: identity per face, the guard, colours kept, the records, with a small
stand-in embedding (the pixels of a 4x4 thumbnail) so that the guard's logic is tested exactly;
dlib's embedding itself is tested in test_identity.py."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from restore.faces.trust import GUARD_STEPS, Trust, cosine, make_trust


class Thumbnail:
    """An embedding whose cosine falls as a face moves away from another: its 4x4 thumbnail,
    centred. Counts its calls and faces."""

    name = "thumbnail"

    def __init__(self) -> None:
        self.calls, self.faces = 0, 0

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        self.calls += 1
        self.faces += len(crops)
        out = np.stack([cv2.resize(c, (4, 4), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
                        for c in crops])
        return out - out.mean(axis=1, keepdims=True)


def _cos(a, b):
    return cosine(a, b)


@pytest.fixture
def faces():
    rng = np.random.default_rng(0)
    source = [cv2.resize(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), (64, 64), interpolation=cv2.INTER_CUBIC)
              for _ in range(3)]
    other = [255 - s for s in source]  # "somebody else": anti-correlated thumbnails
    close = [np.clip(s.astype(int) + 3, 0, 255).astype(np.uint8) for s in source]
    return source, other, close


def test_identity_per_face_without_a_guard_changes_nothing(faces):
    source, other, close = faces
    t = Trust(Thumbnail())
    out, records, changed = t.apply(source[:2], [close[0], other[1]])
    assert out[0] is close[0] and out[1] is other[1] and changed == [False, False]
    assert records[0]["identity"] > 0.99 and records[1]["identity"] < -0.9
    assert records[0]["identity_model"] == "thumbnail" and "guard" not in records[0]


def test_the_guard_blends_back_until_it_passes(faces):
    source, other, close = faces
    model = Thumbnail()
    t = Trust(model, min_identity=0.5)
    timings: dict = {}
    out, records, changed = t.apply(source, [close[0], other[1], other[2]], timings)
    assert model.calls == 2  # inputs and results in one call, the failing faces' blends in one more
    assert records[0]["guard"] == {"threshold": 0.5, "action": "kept"} and not changed[0]
    emb = model.embed([source[1], out[1]])
    for k in (1, 2):
        g = records[k]["guard"]
        assert g["action"] == "blended" and g["identity_before"] < -0.9 and changed[k]
        assert records[k]["identity"] >= 0.5
        # the first (most restored) fidelity that passes: the next one up would not have
        up = round(g["fidelity"] + 0.1, 1)
        if up <= 0.9:
            w = up
            blend = np.rint(w * other[k].astype(np.float32) + (1 - w) * source[k].astype(np.float32)).astype(np.uint8)
            e = model.embed([source[k], blend])
            assert _cos(*e) < 0.5
    assert abs(_cos(*emb) - records[1]["identity"]) < 1e-3
    assert timings["identity"] > 0


def test_nothing_passes_the_input_is_kept(faces):
    source, other, _ = faces
    t = Trust(Thumbnail(), min_identity=1.0)  # only the input itself reaches 1
    out, records, changed = t.apply(source[:1], other[:1])
    assert np.array_equal(out[0], source[0]) and changed == [True]
    assert records[0]["guard"]["action"] == "input" and records[0]["guard"]["fidelity"] == 0.0
    assert records[0]["identity"] == 1.0


def test_guard_steps_go_from_restored_to_input():
    assert GUARD_STEPS[0] == 0.9 and GUARD_STEPS[-1] == 0.1 and list(GUARD_STEPS) == sorted(GUARD_STEPS)[::-1]


def test_options_are_checked():
    with pytest.raises(ValueError, match="needs a face-recognition embedding"):
        Trust(None, min_identity=0.5)
    with pytest.raises(ValueError, match="cosine similarity"):
        Trust(Thumbnail(), min_identity=2)
    with pytest.raises(ValueError, match="colour"):
        make_trust("off", colour="vivid")
    assert make_trust("off", face_prior=True).colour == "keep"
    assert make_trust("off", face_prior=False).colour == "model"
    assert not make_trust("off", face_prior=False).active


def test_colours_kept_before_identity(faces):
    source, _, _ = faces
    tinted = [np.clip(s.astype(int) + [40, 0, -40], 0, 255).astype(np.uint8) for s in source]
    t = Trust(Thumbnail(), colour="keep")
    out, records, changed = t.apply(source, tinted)
    assert changed == [True] * 3
    for s, o, tint in zip(source, out, tinted):
        assert np.abs(o.astype(int) - s).mean() < np.abs(tint.astype(int) - s).mean() / 2


def test_a_films_tracks_carry_their_identity(tmp_path, weights):
    """``restore_video`` with identity on: each track's min and mean over its frames, and how
    many frames the guard changed (a guard of 1.0 keeps every input face)."""
    pytest.importorskip("av")
    from restore.faces.restorer import FaceRestorer
    from restore.faces.video import restore_video
    from tests.restore.video.test_video_io import make_clip

    src = make_clip(tmp_path / "clip.mp4", list(range(4)), size=(160, 160), jpeg=60)
    model = Thumbnail()
    fr = FaceRestorer(weights, "mtcnn", precision="fp32", bg="none", identity=model)
    (track,) = restore_video(fr, src, tmp_path / "out.mp4")["tracks"]
    ident = track["identity"]
    assert ident["frames"] == 4 and ident["min"] <= ident["mean"] <= 1 and ident["guarded"] == 0
    guarded = fr.with_options(min_identity=1.0)
    (track,) = restore_video(guarded, src, tmp_path / "guarded.mp4")["tracks"]
    assert track["identity"]["min"] >= 1.0 - 1e-6 and track["identity"]["guarded"] == 4


def test_own_scale_faces_the_guard_changed_are_pasted(weights):
    """A model restoring at its own scale leaves its faces in the photo; a face the guard sends
    back to the input must still be pasted over them (guard at 1.0: every face is the input's)."""
    from skimage import data

    from restore.faces.restorer import FaceRestorer

    small = cv2.resize(data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    fr = FaceRestorer(weights, "mtcnn", precision="fp32", bg="none", identity=Thumbnail())
    assert fr.own_scale
    plain = fr.restore(small)
    guarded = fr.with_options(min_identity=1.0).restore(small)
    assert guarded.faces[0].trust["guard"]["action"] == "input"
    x0, y0, x1, y1 = np.round(plain.faces[0].box).astype(int)
    face = np.s_[y0 + 4:y1 - 4, x0 + 4:x1 - 4]
    off = lambda img: np.abs(img[face].astype(int) - small[face]).mean()  # noqa: E731
    assert off(plain.image) > 2 and off(guarded.image) < off(plain.image) / 2
