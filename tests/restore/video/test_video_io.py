"""``restore.video.io``: streamed reading and writing keep the frame count, the timestamps
(constant and variable rate) and the audio packets, byte for byte; bad files fail in one line."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from restore.video.io import VideoWriter, probe, read_frames  # noqa: E402


def make_clip(path: Path, pts: list[int], size=(96, 128), rate: int = 25, audio: bool = True, seed: int = 0,
              picture: np.ndarray | None = None, jpeg: int | None = None, rotation: int = 0) -> Path:
    """A short film: the astronaut (or ``picture``) with fresh noise (and, with ``jpeg``, fresh
    JPEG damage at that quality) in every frame, a 440 Hz tone beside it; ``rotation``: the
    display matrix a phone writes when it was held upright."""
    import io

    from PIL import Image
    from skimage import data, transform

    g = np.random.default_rng(seed)
    picture = data.astronaut() if picture is None else picture
    base = (transform.resize(picture, size, anti_aliasing=True) * 255).astype(np.float32)
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=rate)
        v.width, v.height, v.pix_fmt = size[1], size[0], "yuv420p"
        v.time_base = Fraction(1, rate)
        v.options = {"crf": "10"}  # the grain survives, as in a film scanned well
        if rotation:
            v.set_display_rotation(rotation)
        if audio:
            a = c.add_stream("aac", rate=16000)
            a.layout = "mono"
        for i, p in enumerate(pts):
            img = np.clip(base + g.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
            if jpeg:
                buf = io.BytesIO()
                Image.fromarray(img).save(buf, "JPEG", quality=jpeg)
                img = np.asarray(Image.open(buf).convert("RGB"))
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = p, Fraction(1, rate)
            for packet in v.encode(frame):
                c.mux(packet)
        for packet in v.encode():
            c.mux(packet)
        if audio:
            seconds = (pts[-1] + 1) / rate
            t = np.arange(int(16000 * seconds)) / 16000
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            for k in range(0, tone.shape[1], 1024):
                samples = np.ascontiguousarray(tone[:, k:k + 1024])
                chunk = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
                chunk.sample_rate, chunk.pts = 16000, k
                for packet in a.encode(chunk):
                    c.mux(packet)
            for packet in a.encode():
                c.mux(packet)
    return path


def mux_silence(container) -> None:
    """A mono AAC stream of 1,024 silent samples into an open output ``container``."""
    a = container.add_stream("aac", rate=16000)
    a.layout = "mono"
    chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
    chunk.sample_rate, chunk.pts = 16000, 0
    for packet in list(a.encode(chunk)) + list(a.encode()):
        container.mux(packet)


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def video_pts(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [int(f.pts * f.time_base / Fraction(1, 1000)) for f in c.decode(s)]  # in ms


@pytest.mark.parametrize("pts", [list(range(30)), [0, 1, 2, 4, 5, 7, 8, 9, 12, 13, 15, 16, 18, 21, 22, 24]],
                         ids=["constant-rate", "variable-rate"])
def test_a_copy_keeps_frames_timestamps_and_sound(tmp_path, pts):
    src = make_clip(tmp_path / "clip.mp4", pts)
    info = probe(src)
    assert info.frames == len(pts) and info.audio_streams == 1 and (info.width, info.height) == (128, 96)
    frames = list(read_frames(src))
    assert len(frames) == len(pts) and frames[0].rgb.shape == (96, 128, 3) and frames[0].rgb.dtype == np.uint8
    with VideoWriter(tmp_path / "out.mp4", info, crf=18) as out:
        for f in frames:
            out.write(255 - f.rgb, f.pts)  # any processing: here, the negative
    assert not list(tmp_path.glob(".*.tmp"))
    got = probe(tmp_path / "out.mp4")
    assert got.frames == len(pts) and got.audio_streams == 1
    assert video_pts(tmp_path / "out.mp4") == video_pts(src)  # the same timestamps
    assert audio_packets(tmp_path / "out.mp4") == audio_packets(src)  # the sound, packet for packet
    back = np.stack([f.rgb for f in read_frames(tmp_path / "out.mp4")]).astype(float)
    want = 255 - np.stack([f.rgb for f in frames]).astype(float)
    assert np.abs(back - want).mean() < 6  # crf 18 on grainy frames: close to the frames written


def test_odd_sides_silent_films_and_failures(tmp_path):
    src = make_clip(tmp_path / "silent.mp4", list(range(5)), audio=False)
    info = probe(src)
    assert info.audio_streams == 0
    with VideoWriter(tmp_path / "odd.mp4", info) as out:
        for f in read_frames(src):
            out.write(f.rgb[:95, :127], f.pts)  # odd sides: padded by an edge pixel for yuv420p
    assert probe(tmp_path / "odd.mp4").frames == 5
    with pytest.raises(RuntimeError, match=r"^interrupted$"):
        with VideoWriter(tmp_path / "broken.mp4", info) as out:
            out.write(np.zeros((96, 128, 3), np.uint8), 0)
            raise RuntimeError("interrupted")
    assert not (tmp_path / "broken.mp4").exists() and not list(tmp_path.glob(".*.tmp"))
    (tmp_path / "junk.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    with pytest.raises(ValueError, match="not a readable video|no video stream"):
        probe(tmp_path / "junk.mp4")
    with av.open(str(tmp_path / "tone.m4a"), "w") as c:  # audio only
        mux_silence(c)
    with pytest.raises(ValueError, match="no video stream"):
        probe(tmp_path / "tone.m4a")


def test_rotation_metadata_is_kept(tmp_path):
    src = make_clip(tmp_path / "phone.mov", list(range(4)), rotation=90)  # as a phone held upright writes it
    info = probe(src)
    assert info.rotation == 90 and (info.width, info.height) == (128, 96)  # the stored picture, not turned
    for name in ("out.mov", "out.mp4"):
        with VideoWriter(tmp_path / name, info) as out:
            for f in read_frames(src):
                assert f.rgb.shape == (96, 128, 3)  # frames as stored: the player turns them
                out.write(f.rgb, f.pts)
        assert probe(tmp_path / name).rotation == 90
    assert probe(make_clip(tmp_path / "flat.mp4", [0, 1])).rotation == 0


def test_truncated_and_empty_films_fail_in_one_line(tmp_path):
    data = make_clip(tmp_path / "whole.mkv", list(range(20))).read_bytes()
    assert len(list(read_frames(tmp_path / "whole.mkv"))) == 20  # (its sound outlasts it a little: no error)
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) // 2])  # a copy stopped halfway: FFmpeg decodes 8 frames
    with pytest.raises(ValueError, match="truncated file: the video ends at"):
        list(read_frames(tmp_path / "cut.mkv"))
    data = make_clip(tmp_path / "whole.mp4", list(range(20))).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # .mp4: the index is at the end, now missing
    with pytest.raises(ValueError, match="not a readable video"):
        probe(tmp_path / "cut.mp4")
    with av.open(str(tmp_path / "empty.mkv"), "w") as c:  # a video stream with no frame in it, beside sound
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        mux_silence(c)
    with pytest.raises(ValueError, match="no frames"):
        probe(tmp_path / "empty.mkv")
