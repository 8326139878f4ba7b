"""The Faces tab's video path through the app's server (tests/apps/conftest.py): a film with
sound in, the restored film out; bad films are one-line errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.apps.conftest import EXAMPLES, MAX_FRAMES, rgb

pytestmark = pytest.mark.slow
pytest.importorskip("gradio_client")
pytest.importorskip("av")
from gradio_client import handle_file  # noqa: E402


def test_faces_video(client, tmp_path):
    """A film with sound through the Faces tab: every frame back at its timestamp, the sound
    packet for packet, the faces steadied; a broken film, an audio-only file and one too long
    are one-line errors."""
    pytest.importorskip("av")
    from restore.video.io import probe
    from tests.restore.video.test_video_io import audio_packets, make_clip, video_pts

    picture = rgb(EXAMPLES / "faces" / "astronaut_degraded.jpg")
    src = make_clip(tmp_path / "visit.mov", list(range(10)), size=(160, 160), picture=picture, jpeg=40)
    video, status = client.predict(handle_file(src), "auto", "mtcnn", 1.0, 1, "none", 0.35, api_name="/faces_video")
    out = Path(video["video"] if isinstance(video, dict) else video)
    assert out.name == "visit_restored.mp4" and probe(out).frames == 10
    assert video_pts(out) == video_pts(src) and audio_packets(out) == audio_packets(src)
    assert "10 frames at 25 fps, 1 audio stream(s) kept; 1 face track(s)" in status and "flicker" in status
    (tmp_path / "broken.mp4").write_bytes(b"not a film at all")
    with pytest.raises(Exception, match=r"^broken\.mp4: not a readable video"):
        client.predict(handle_file(tmp_path / "broken.mp4"), "auto", "mtcnn", 1.0, 1, "none", 0.35,
                       api_name="/faces_video")
    make_clip(tmp_path / "whole.mp4", [0, 1])
    import av

    with av.open(str(tmp_path / "whole.mp4")) as c, av.open(str(tmp_path / "sound.mp4"), "w") as o:
        a = o.add_stream_from_template(c.streams.audio[0])  # the film's sound alone: no picture
        for packet in c.demux(c.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = a
                o.mux(packet)
    with pytest.raises(Exception, match=r"^sound\.mp4: no video stream"):
        client.predict(handle_file(tmp_path / "sound.mp4"), "auto", "mtcnn", 1.0, 1, "none", 0.35,
                       api_name="/faces_video")
    long = make_clip(tmp_path / "long.mp4", list(range(MAX_FRAMES + 1)), size=(32, 32), audio=False)
    with pytest.raises(Exception, match=rf"^long\.mp4: video too long: {MAX_FRAMES + 1} frames"):
        client.predict(handle_file(long), "auto", "mtcnn", 1.0, 1, "none", 0.35, api_name="/faces_video")
