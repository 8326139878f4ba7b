"""A film's faces restored: tracked across frames, landmarks smoothed (less flicker inside the
faces than the input's grain), the frame count, timestamps and sound kept."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("av")

from restore.faces.detect import Detection  # noqa: E402
from restore.faces.track import FaceTracker  # noqa: E402
from restore.video.io import probe  # noqa: E402
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
    from skimage import data, transform

    from restore.faces.restorer import FaceRestorer
    from restore.faces.video import restore_video
    from restore.video.io import read_frames

    src = make_clip(tmp_path / "clip.mp4", list(range(16)), size=(192, 192), jpeg=40)  # the astronaut, clean
    clean = transform.resize(data.astronaut(), (192, 192), anti_aliasing=True) * 255
    # the bundled restorer restores faces at their own scale, in its pass over the whole frame
    fr = FaceRestorer("restorer", "mtcnn", precision="fp32")
    done = []
    entry = restore_video(fr, src, tmp_path / "out" / "clip.mp4", progress=lambda i, n: done.append((i, n)))
    out = tmp_path / "out" / "clip.mp4"
    assert entry["frames"] == 16 == probe(out).frames and done[-1] == (16, 16)
    assert video_pts(out) == video_pts(src) and audio_packets(out) == audio_packets(src)
    assert entry["faces_per_frame"]["min"] >= 1
    face = np.s_[25:65, 67:100]  # the face's box (MTCNN on the clean frame)
    error = lambda path: np.mean([np.abs(f.rgb[face] - clean[face]).mean() for f in read_frames(path)])  # noqa: E731
    assert error(out) < error(src)  # the faces were restored: nearer the clean face than the input is
    assert len(entry["tracks"]) == 1 and entry["tracks"][0] == {"id": 0, "first_frame": 0, "last_frame": 15,
                                                                "frames": 16}
    f = entry["flicker"]
    assert f["output"] < 0.5 * f["input"]  # well below the input's grain inside the faces (measured: 0.30x)
    plain = restore_video(fr, src, tmp_path / "plain.mp4", tracker=FaceTracker(window=1), temporal=1.0)
    assert plain["flicker"]["output"] > f["output"]  # frame by frame, the restorer flickers more
    # A film of the degraded example photo: there the previous face must be moved into this frame's
    # alignment before the blend (blended where it was aligned before, 4.60 against the input's 5.31).
    picture = np.asarray(Image.open(EXAMPLES / "astronaut_degraded.jpg").convert("RGB"))
    old = make_clip(tmp_path / "old.mp4", list(range(16)), size=(192, 192), picture=picture, jpeg=40)
    f = restore_video(fr, old, tmp_path / "old_restored.mp4")["flicker"]
    assert f["output"] < 0.5 * f["input"]  # measured: 1.97 against 5.31
    assert set(entry) >= {"input", "output", "frames", "fps", "duration", "tracks", "faces_per_frame", "flicker",
                          "seconds", "error"}


def test_restore_faces_cli_takes_videos_beside_photos(tmp_path, capsys, monkeypatch):
    import json

    from restore.cli import main

    monkeypatch.setenv("RESTORE_HOME", str(tmp_path / "cache"))  # no published face weights: the restorer
    folder = tmp_path / "in"
    (folder / "films").mkdir(parents=True)
    picture = np.asarray(Image.open(EXAMPLES / "astronaut_degraded.jpg").convert("RGB"))
    make_clip(folder / "films" / "visit.mp4", list(range(6)), size=(160, 160), picture=picture)
    Image.fromarray(picture[:256, :256]).save(folder / "photo.png")
    (folder / "films" / "broken.mov").write_bytes(b"not a film at all")
    out = tmp_path / "out"
    args = ["faces", str(folder), "-o", str(out), "--detector", "mtcnn", "--bg", "none", "--precision", "fp32"]
    assert main(args) == 1  # the broken film failed, alone
    err = capsys.readouterr().err
    assert "error:" in err and "broken.mov" in err and "videos: done 1, skipped 0, failed 1" in err
    film = out / "restored" / "films" / "visit.mp4"
    assert probe(film).frames == 6 and (out / "restored" / "photo.png").is_file()
    entries = {Path(e["input"]).name: e for e in json.loads((out / "report.json").read_text())}
    assert set(entries) == {"visit.mp4", "photo.png", "broken.mov"}
    assert entries["visit.mp4"]["frames"] == 6 and entries["visit.mp4"]["error"] is None
    assert entries["broken.mov"]["error"] and entries["photo.png"]["faces"]
    mtime = film.stat().st_mtime_ns
    assert main(args + ["--skip-existing"]) == 1  # the finished film is skipped, the broken one tried again
    assert film.stat().st_mtime_ns == mtime and "videos: done 0, skipped 1, failed 1" in capsys.readouterr().err
    assert main(args + ["--temporal", "0"]) == 2 and "--temporal must be in (0, 1]" in capsys.readouterr().err


def test_restore_translate_takes_videos(tmp_path, capsys):
    from restore.cli import main

    (tmp_path / "in").mkdir()
    src = make_clip(tmp_path / "in" / "clip.mp4", [0, 1, 2, 4, 5, 7], size=(64, 96))
    whole = make_clip(tmp_path / "whole.mkv", list(range(20)), size=(64, 96)).read_bytes()
    (tmp_path / "in" / "cut.mkv").write_bytes(whole[: len(whole) // 2])  # decodes 8 frames, then ends early
    out = tmp_path / "out"
    assert main(["translate", str(tmp_path / "in"), "-o", str(out), "--weights", "restorer", "--quiet"]) == 1
    assert "cut.mkv: truncated file" in capsys.readouterr().err
    assert not (out / "cut.mp4").exists() and not list(out.glob(".*.tmp"))  # nothing half-written left
    film = out / "clip.mp4"
    assert probe(film).frames == 6 and video_pts(film) == video_pts(src) and audio_packets(film) == audio_packets(src)
    assert main(["translate", str(src), "-o", str(out), "--weights", "restorer", "--skip-existing"]) == 0
    assert "videos: done 0, skipped 1, failed 0" in capsys.readouterr().err
