"""Films through ``restore upscale``: frame by frame, the sound and timestamps kept, named as
Real-ESRGAN's video command names them (``<stem>_out.mp4``), resumable, atomic, and inside a
request's time budget. A tiny random-weight RRDBNet made here; films of a few small frames."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gan.nets.rrdb import PRESETS, RRDBNet
from gan.serialize import save_model
from restore.cli import main
from restore.imagewrite import write_png

av = pytest.importorskip("av")

from restore.video.io import probe, read_frames
from tests.restore.video.test_video_io import audio_packets, make_clip, video_pts


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "tiny_rrdb.safetensors"
    return save_model(RRDBNet(PRESETS["tiny"]).eval(), path, {"task": "upscale"})


def test_a_film_is_upscaled_with_its_sound(tiny, tmp_path, capsys):
    """A 6-frame 24x16 film with sound beside a photo: the film 4x the size, every frame at its
    timestamp, the audio packet for packet; each frame what the Upscaler makes of it (up to the
    encoder's loss); --skip-existing redoes nothing; no temporary file is left."""
    from restore.upscale.upscaler import Upscaler

    src = tmp_path / "in"
    src.mkdir()
    film = make_clip(src / "clip.mov", list(range(6)), size=(16, 24))
    write_png(src / "photo.png", np.full((8, 10, 3), 120, np.uint8))
    out = tmp_path / "out"
    assert main(["upscale", str(src), "-o", str(out), "--weights", str(tiny), "--crf", "0"]) == 0
    err = capsys.readouterr().err
    assert "done 1" in err and "videos" in err, err
    got = out / "clip_out.mp4"
    assert sorted(p.name for p in out.iterdir()) == ["clip_out.mp4", "photo_out.png"]
    info = probe(got)
    assert (info.width, info.height, info.frames, info.audio_streams) == (96, 64, 6, 1)
    assert video_pts(got) == video_pts(film) and audio_packets(got) == audio_packets(film)
    up = Upscaler(str(tiny))
    want = np.stack([up(f.rgb) for f in read_frames(film)]).astype(np.float64)
    back = np.stack([f.rgb for f in read_frames(got)]).astype(np.float64)
    assert np.abs(back - want).mean() < 3  # lossless H.264 in yuv420p: only the chroma's rounding
    stamp = got.stat().st_mtime_ns
    assert main(["upscale", str(film), "-o", str(out), "--weights", str(tiny), "--skip-existing"]) == 0
    assert got.stat().st_mtime_ns == stamp and "skipped 1" in capsys.readouterr().err
    assert not list(out.rglob(".*.tmp"))


def test_suffix_scale_and_a_damaged_film(tiny, tmp_path, capsys):
    """--suffix '' and -s 2 (outscale): clip.mp4 at 2x; a damaged film is one line, exit 1, and
    nothing is left under its name."""
    film = make_clip(tmp_path / "clip.mp4", list(range(3)), size=(16, 24), audio=False)
    (tmp_path / "bad.mp4").write_bytes(b"not a film")
    out = tmp_path / "out"
    assert main(["upscale", str(film), str(tmp_path / "bad.mp4"), "-o", str(out), "--weights", str(tiny),
                 "--suffix", "", "-s", "2", "--quiet"]) == 1
    info = probe(out / "clip.mp4")
    assert (info.width, info.height, info.frames, info.audio_streams) == (48, 32, 3, 0)
    lines = [line for line in capsys.readouterr().err.splitlines() if "bad.mp4" in line]
    assert len(lines) == 1 and "not a readable video" in lines[0], lines
    assert sorted(p.name for p in out.iterdir()) == ["clip.mp4"]


def test_the_time_budget_stops_a_film_and_leaves_nothing(tiny, tmp_path):
    from restore.budget import OverBudget, time_budget
    from restore.upscale.upscaler import Upscaler
    from restore.upscale.video import upscale_video

    film = make_clip(tmp_path / "clip.mp4", list(range(6)), size=(16, 24))
    up = Upscaler(str(tiny))
    seen = []

    def slow(rgb):
        seen.append(1)
        import time

        time.sleep(0.2)
        return up(rgb)

    with pytest.raises(OverBudget), time_budget(0.3, "the upscaling"):
        upscale_video(slow, film, tmp_path / "clip_out.mp4")
    assert len(seen) < 6 and not list(tmp_path.glob("*clip_out*")) and not list(tmp_path.glob(".*.tmp"))
