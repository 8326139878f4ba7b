"""Videos in and out, streamed through PyAV (FFmpeg's libraries, in its wheel): frames are
decoded one at a time and encoded as they come, so memory does not grow with the film.

    info = probe("clip.mp4")                       # frames, fps, duration, rotation, audio streams
    with VideoWriter("out.mp4", like=info, crf=18) as out:
        for frame in read_frames("clip.mp4"):      # Frame(rgb HxWx3 uint8, pts, time_base)
            out.write(frame.rgb, frame.pts)        # the same timestamps: constant or variable rate
    # on leaving the block: the audio packets of clip.mp4 copied in (no re-encoding), the file
    # renamed onto out.mp4; an exception leaves nothing at out.mp4

Why PyAV rather than OpenCV's VideoCapture/VideoWriter: OpenCV drops the audio and the
timestamps (it writes a constant rate) and cannot copy packets; PyAV gives the packets and
their timestamps as FFmpeg has them.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from restore import budget
from restore.formats import VIDEO_EXTENSIONS
from restore.imagewrite import atomic_write

__all__ = ["Frame", "VideoInfo", "VideoWriter", "VIDEO_EXTENSIONS", "probe", "read_frames"]

@dataclass
class Frame:
    rgb: np.ndarray  # H x W x 3 uint8, as stored (rotation is metadata, kept, not applied)
    pts: int | None  # in ``time_base`` units
    time_base: Fraction
    index: int


@dataclass
class VideoInfo:
    path: Path
    width: int
    height: int
    frames: int  # counted by decoding when the container does not say
    fps: float  # average
    duration: float  # seconds
    time_base: Fraction
    rotation: int  # degrees, from the stream's display matrix
    audio_streams: int
    codec: str


def _open(path: str | os.PathLike):
    import av

    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise ValueError(f"not a readable video ({e.__class__.__name__}: {e})") from None


def _video_stream(container):
    if not container.streams.video:
        raise ValueError("no video stream (an audio-only file?)")
    return container.streams.video[0]


def probe(path: str | os.PathLike, count: bool = True) -> VideoInfo:
    """What a video holds. ``count``: decode to count the frames when the container has no
    count (some .webm/.mkv), so ``frames`` is always the number a reader will give."""
    with _open(path) as c:
        v = _video_stream(c)
        frames = int(v.frames or 0)
        if count and not frames:
            for _ in c.decode(video=0):
                frames += 1
                if frames % 64 == 0:
                    budget.check()  # a long film without a count: an app request's budget holds here too
        if count and not frames:
            raise ValueError("no frames: the video stream is empty")
        rate = v.average_rate or v.guessed_rate or Fraction(25)
        duration = float(v.duration * v.time_base) if v.duration else (
            float(c.duration / 1_000_000) if c.duration else frames / float(rate))
        return VideoInfo(Path(path), v.codec_context.width, v.codec_context.height, frames, float(rate), duration,
                         v.time_base, _rotation(c, v), len(c.streams.audio), v.codec_context.name)


def _rotation(container, stream) -> int:
    """Degrees the player turns the picture: the display matrix, which FFmpeg gives to every
    decoded frame (PyAV >= 14 has no stream-level reader); 0 when absent."""
    import av

    with contextlib.suppress(av.error.FFmpegError, StopIteration):
        container.seek(0)
        return int(round(next(container.decode(stream)).rotation)) % 360
    return 0


def read_frames(path: str | os.PathLike) -> Iterator[Frame]:
    """Every frame of the first video stream, decoded one at a time, as RGB uint8. A file that
    ends well before the duration its container states (a copy or download cut short: FFmpeg
    decodes what is there without complaint) raises ValueError after its last frame."""
    with _open(path) as c:
        stream = _video_stream(c)
        stream.thread_type = "AUTO"  # FFmpeg's frame threads: decoding beside the networks
        end, start = 0.0, None
        for i, frame in enumerate(c.decode(stream)):
            tb = frame.time_base or stream.time_base
            if frame.pts is not None:
                t = float(frame.pts * tb)
                start = t if start is None else start
                end = max(end, t - start)
            yield Frame(frame.to_ndarray(format="rgb24"), frame.pts, tb, i)
        stated = float(stream.duration * stream.time_base) if stream.duration else (c.duration or 0) / 1_000_000
        # the audio may outlast the picture a little (AAC padding, a last word): only a clear gap counts
        if start is not None and stated and end < 0.8 * stated - 0.1:
            raise ValueError(f"truncated file: the video ends at {end:.2f} s of the {stated:.2f} s its container "
                             "states")


class VideoWriter:
    """Encode frames (H.264 yuv420p by default) with the given timestamps into a temporary file
    beside ``path``, with ``like``'s audio packets copied in beside them (no re-encoding,
    interleaved by time); on a clean exit rename it onto ``path``, on an exception delete it."""

    def __init__(self, path: str | os.PathLike, like: VideoInfo, *, crf: int = 18, codec: str = "libx264",
                 preset: str = "medium") -> None:
        self.path, self.like, self.crf, self.codec, self.preset = Path(path), like, crf, codec, preset
        self.frames = 0
        self._out = self._src = self._video = self._audio = None
        self._pending = None  # the next audio packet, not yet due

    def __enter__(self) -> VideoWriter:
        import av

        self._file = atomic_write(self.path)  # .<name>.<pid>-<hex>.tmp beside it; fsync and rename
        self.tmp = self._file.__enter__()
        fmt = _format(self.path)
        # mp4/mov: the index first, so a browser (the app's player) plays it before it is all downloaded
        self._out = av.open(str(self.tmp), "w", format=fmt, options={"movflags": "+faststart"} if fmt in ("mp4", "mov")
                            else {})
        return self

    def _start(self, width: int, height: int) -> None:
        """The streams, before the first packet (the muxer writes its header then)."""
        v = self._out.add_stream(self.codec, rate=Fraction(self.like.fps).limit_denominator(1001 * 1000))
        v.width, v.height = width, height
        v.pix_fmt = "yuv420p"
        v.time_base = v.codec_context.time_base = self.like.time_base  # frames keep their own timestamps
        if self.codec in ("libx264", "libx265"):
            v.options = {"crf": str(self.crf), "preset": self.preset}
        if self.like.rotation:
            v.set_display_rotation(self.like.rotation)  # the display matrix, as the player reads it
        self._video = v
        if self.like.audio_streams:
            self._src = _open(self.like.path)
            self._audio = {a.index: self._out.add_stream_from_template(a) for a in self._src.streams.audio}
            self._packets = self._src.demux(*self._src.streams.audio)

    def write(self, rgb: np.ndarray, pts: int | None) -> None:
        """One frame (H x W x 3 uint8; odd sides are padded by one edge pixel for yuv420p)."""
        import av

        if rgb.shape[0] % 2 or rgb.shape[1] % 2:
            rgb = np.pad(rgb, ((0, rgb.shape[0] % 2), (0, rgb.shape[1] % 2), (0, 0)), mode="edge")
        if self._video is None:
            self._start(rgb.shape[1], rgb.shape[0])
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[..., :3]), format="rgb24")
        frame.pts, frame.time_base = pts, self.like.time_base
        for packet in self._video.encode(frame):
            self._out.mux(packet)
        self.frames += 1
        if pts is not None:
            self._mux_audio(float(pts * self.like.time_base))

    def _mux_audio(self, until: float | None) -> None:
        """Copy the audio packets due by ``until`` seconds (all of them for None)."""
        if self._audio is None:
            return
        while True:
            packet = self._pending
            if packet is None:
                packet = next(self._packets, None)
                if packet is None:
                    return
                if packet.dts is None:  # the demuxer's flush packet
                    continue
            if until is not None and packet.pts is not None and float(packet.pts * packet.time_base) > until:
                self._pending = packet
                return
            self._pending = None
            packet.stream = self._audio[packet.stream.index]
            self._out.mux(packet)

    def __exit__(self, exc_type, exc, tb) -> None:
        error = exc
        try:
            if exc is None:
                if self._video is None:
                    raise ValueError("no frames to write")
                for packet in self._video.encode():  # flush the encoder
                    self._out.mux(packet)
                self._mux_audio(None)
        except BaseException as e:
            error = e
            raise
        finally:
            self._out.close()
            if self._src is not None:
                self._src.close()
            # renamed onto ``path`` when whole; deleted (``path`` untouched) after any error
            self._file.__exit__(type(error) if error else None, error, error.__traceback__ if error else None)


def _format(path: Path) -> str:
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}.get(
        path.suffix.lower(), "mp4")
