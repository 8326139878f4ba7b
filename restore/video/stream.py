"""A film's frames through the networks as a pipeline: decoded (and whatever needs no big network
done to them) in a reader thread ahead of the networks, encoded in a writer thread behind them,
and handed to the networks in groups, so several frames' faces share one network call.

    with FramePipeline(src, dst, like=info, load=fr.prepare, ahead=8) as pipe:
        for group in pipe.groups(4):          # [(Frame, load(frame.rgb)), ...], in order
            ...                               # the networks
            for frame, image in done:
                pipe.write(image, frame.pts)  # queued for the writer thread, in order

Memory holds ``ahead`` frames in front of the networks and ``behind`` after them, whatever the
length of the film. Threads, as in ``restore.runners.pipeline``: FFmpeg's decoder and encoder and
PyTorch release the GIL. An error in any of the three ends the run; ``VideoWriter`` then leaves
nothing at ``dst``.
"""
from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from .io import Frame, VideoInfo, VideoWriter, read_frames

__all__ = ["FramePipeline"]

_END = object()


class FramePipeline:
    """See the module's docstring. ``load(rgb)`` runs in the reader thread (None: nothing)."""

    def __init__(self, src: str | os.PathLike, dst: str | os.PathLike, like: VideoInfo, *,
                 load: Callable[[np.ndarray], Any] | None = None, ahead: int = 8, behind: int = 4,
                 crf: int = 18, codec: str = "libx264") -> None:
        self.src, self.load, self.ahead, self.behind = src, load, max(1, ahead), max(1, behind)
        self.writer = VideoWriter(dst, like, crf=crf, codec=codec)
        self._written: deque[Future] = deque()

    def __enter__(self) -> FramePipeline:
        self.writer.__enter__()
        self._frames = read_frames(self.src)
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="video-read")
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix="video-write")
        return self

    def _next(self) -> Any:
        frame = next(self._frames, _END)
        if frame is _END:
            return _END
        return frame, (self.load(frame.rgb) if self.load is not None else None)

    def __iter__(self) -> Iterator[tuple[Frame, Any]]:
        """(frame, load(frame)) in order; the reader works ``ahead`` frames in front."""
        queue: deque[Future] = deque(self._reader.submit(self._next) for _ in range(self.ahead))
        while queue:
            item = queue.popleft().result()  # re-raises the reader's error here
            if item is _END:
                return
            queue.append(self._reader.submit(self._next))
            yield item

    def groups(self, n: int) -> Iterator[list[tuple[Frame, Any]]]:
        """The frames in groups of ``n`` (the last one shorter)."""
        group: list[tuple[Frame, Any]] = []
        for item in self:
            group.append(item)
            if len(group) >= n:
                yield group
                group = []
        if group:
            yield group

    def write(self, rgb: np.ndarray, pts: int | None) -> None:
        """Queue one frame for the encoder; waits while ``behind`` frames are queued already."""
        while len(self._written) >= self.behind:
            self._written.popleft().result()
        self._written.append(self._encoder.submit(self.writer.write, rgb, pts))

    @property
    def frames(self) -> int:
        return self.writer.frames

    def __exit__(self, exc_type, exc, tb) -> None:
        error = exc
        try:
            while self._written:  # every queued frame encoded (or the encoder's error raised)
                future = self._written.popleft()
                if error is None:
                    future.result()
        except BaseException as e:
            error = e
            raise
        finally:
            self._reader.shutdown(wait=True, cancel_futures=True)
            self._encoder.shutdown(wait=True, cancel_futures=True)
            self._frames.close()  # the reader is idle now: the container is closed here
            self.writer.__exit__(type(error) if error else None, error, error.__traceback__ if error else None)
