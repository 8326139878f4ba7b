"""A film through an image-to-image generator (``restore translate``), frame by frame, its sound
and timestamps kept: ``translate_video(Translator(...), "clip.mp4", "out/clip.mp4")``."""
from __future__ import annotations

import os
import time
from typing import Any

from restore import budget
from restore.video.io import probe
from restore.video.stream import FramePipeline

__all__ = ["translate_video"]


def translate_video(translator: Any, src: str | os.PathLike, dst: str | os.PathLike, *, crf: int = 18,
                    codec: str = "libx264", progress: Any = None) -> dict:
    """Every frame of ``src`` through ``translator`` (RGB uint8 in and out) into ``dst``;
    returns its report entry (input, output, frames, fps, duration, seconds, error)."""
    t0 = time.perf_counter()
    info = probe(src)
    with FramePipeline(src, dst, info, crf=crf, codec=codec) as pipe:  # decoded ahead, encoded behind
        for frame, _ in pipe:
            budget.check()  # a request's time budget (restore.budget), between frames
            pipe.write(translator(frame.rgb), frame.pts)
            if progress is not None:
                progress(frame.index + 1, info.frames)
    return {"input": str(src), "output": str(dst), "frames": pipe.frames, "fps": round(info.fps, 3),
            "duration": round(info.duration, 3), "seconds": round(time.perf_counter() - t0, 3), "error": None}
