"""A film's faces restored: tracked across frames, landmarks smoothed (less flicker inside the
faces than the input's grain), the frame count, timestamps and sound kept."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("av")

from restore.faces.detect import Detection  # noqa: E402
from restore.video.io import probe  # noqa: E402
from restore.video.track import FaceTracker  # noqa: E402
from tests.restore.video.test_video_io import audio_packets, make_clip, video_pts  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "faces"


def det(x: float, y: float, size: float = 40.0) -> Detection:
    box = np.array([x, y, x + size, y + size], np.float32)
    marks = np.array([[x + 12, y + 15], [x + 28, y + 15], [x + 20, y + 24], [x + 14, y + 32], [x + 26, y + 32]],
                     np.float32)
    return Detection(box, marks, 0.99)


def test_tracker_keeps_ids_smooths_jitter_follows_motion_and_cuts():
    g = np.random.default_rng(0)
    frame = np.full((120, 160, 3), 100, np.uint8)
    t = FaceTracker(window=3, follow=0.2)
    raw, smooth = [], []
    for _ in range(12):  # two still faces, detected with 1.5 px of jitter
        a = det(10, 10)
        a.landmarks = a.landmarks + g.normal(0, 1.5, (5, 2)).astype(np.float32)
        out = t.update(frame, [a, det(100, 60)])
        assert [i for i, _ in out] == [0, 1]  # the same ids, frame after frame
        raw.append(a.landmarks)
        smooth.append(out[0][1].landmarks)
    jitter = lambda xs: float(np.abs(np.diff(np.stack(xs), axis=0)).mean())  # noqa: E731
    assert jitter(smooth) < 0.7 * jitter(raw)
    moved = t.update(frame, [det(30, 10), det(100, 60)])  # the head moves 20 px: followed at once
    assert moved[0][0] == 0 and np.allclose(moved[0][1].landmarks, det(30, 10).landmarks)
    cut = t.update(np.zeros_like(frame), [det(30, 10)])  # a scene cut: new tracks
    assert cut[0][0] == 2 and t.cuts == 1
    assert [(tr.id, tr.frames) for tr in t.tracks()] == [(0, 13), (1, 13), (2, 1)]


def test_restore_video_keeps_sound_and_time_and_steadies_the_faces(tmp_path):
    from restore.faces.restorer import FaceRestorer
    from restore.video.faces import restore_video

    picture = np.asarray(Image.open(EXAMPLES / "astronaut_degraded.jpg").convert("RGB"))
    src = make_clip(tmp_path / "clip.mp4", list(range(16)), size=(192, 192), picture=picture, jpeg=40)
    fr = FaceRestorer("restorer", "mtcnn", bg="none", precision="fp32")
    done = []
    entry = restore_video(fr, src, tmp_path / "out" / "clip.mp4", progress=lambda i, n: done.append((i, n)))
    out = tmp_path / "out" / "clip.mp4"
    assert entry["frames"] == 16 == probe(out).frames and done[-1] == (16, 16)
    assert video_pts(out) == video_pts(src) and audio_packets(out) == audio_packets(src)
    assert entry["faces_per_frame"]["min"] >= 1
    assert len(entry["tracks"]) == 1 and entry["tracks"][0] == {"id": 0, "first_frame": 0, "last_frame": 15,
                                                                "frames": 16}
    f = entry["flicker"]
    assert f["output"] < 0.95 * f["input"]  # below the input's grain inside the faces, not above it
    plain = restore_video(fr, src, tmp_path / "plain.mp4", tracker=FaceTracker(window=1), temporal=1.0)
    assert plain["flicker"]["output"] > f["output"]  # frame by frame, the restorer flickers more
    assert set(entry) >= {"input", "output", "frames", "fps", "duration", "tracks", "faces_per_frame", "flicker",
                          "seconds", "error"}
