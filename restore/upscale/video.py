"""A film enlarged frame by frame (``restore upscale clip.mp4 -o big/``), its sound and timestamps
kept, as Real-ESRGAN's ``inference_realesrgan_video.py`` does (``big/clip_out.mp4``):

    entry = upscale_video(Upscaler("realesr-animevideov3"), "clip.mp4", "big/clip_out.mp4")

Frames are decoded ahead of the network and encoded behind it (``restore.video.stream``'s
``FramePipeline``), the audio packets copied in without re-encoding, and the film written under a
temporary name and renamed when whole (``VideoWriter``): an interrupted run leaves nothing at the
output's name, and ``--skip-existing`` resumes it (``restore.video.folder.run_videos``). The time
budget of an app request (``restore.budget``) is checked before every frame and, inside the
Upscaler, between tiles.
"""
from __future__ import annotations

import os
import time
from typing import Any

from restore import budget
from restore.video.io import probe
from restore.video.stream import FramePipeline

__all__ = ["upscale_video"]


def upscale_video(upscaler: Any, src: str | os.PathLike, dst: str | os.PathLike, *, crf: int = 18,
                  codec: str = "libx264", progress: Any = None) -> dict:
    """Every frame of ``src`` through ``upscaler`` (RGB uint8 in, RGB uint8 ``scale`` times larger
    out) into ``dst``, the sound kept; returns its report entry (input, output, frames, fps,
    duration, size in and out, seconds, error). ``progress(done, total)`` after each frame."""
    t0 = time.perf_counter()
    info = probe(src)
    size = None
    with FramePipeline(src, dst, info, crf=crf, codec=codec) as pipe:  # decoded ahead, encoded behind
        for frame, _ in pipe:
            budget.check()  # a request's time budget (restore.budget), before each frame
            big = upscaler(frame.rgb)
            size = size or [int(big.shape[1]), int(big.shape[0])]
            pipe.write(big, frame.pts)
            if progress is not None:
                progress(frame.index + 1, info.frames)
    return {"input": str(src), "output": str(dst), "frames": pipe.frames, "fps": round(info.fps, 3),
            "duration": round(info.duration, 3), "size_in": [info.width, info.height], "size_out": size,
            "audio_streams": info.audio_streams, "seconds": round(time.perf_counter() - t0, 3), "error": None}
