"""Faces followed across the frames of a film, their landmarks smoothed, so the alignment, the
restored face and the paste mask do not jitter from one near-identical frame to the next
(GFPGAN's users see that flicker at the face boundary: its issues 465 and 533, facexlib 48).

    tracker = FaceTracker()
    for frame in frames:
        tracks = tracker.update(frame, detections)   # [(track id, Detection with smoothed landmarks)]

- Matching: each detection takes the free track whose last box overlaps it most (IoU >= 0.3),
  greedily by overlap; the others start new tracks. A track not seen for ``patience`` frames ends.
- Smoothing: the landmarks are the mean of the track's last ``window`` frames (a causal filter:
  the frames stream, nothing waits for the future), unless a landmark is more than a fifth of
  the face's size from that mean: then the track follows the detection at once (a turn of the
  head must not lag behind).
- A scene cut (the mean absolute change of a 32 x 32 grey thumbnail above ``cut`` levels)
  ends every track.

Hand-written because no maintained library does this for 5-point face landmarks: trackers such
as norfair or motpy follow boxes, not the landmarks the alignment needs.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from .detect import Detection

__all__ = ["FaceTracker", "Track"]


@dataclass
class Track:
    id: int
    first: int  # frame index
    last: int
    frames: int = 0  # frames with this face
    history: deque = field(default_factory=lambda: deque(maxlen=8))  # the last landmarks (5, 2)
    box: np.ndarray | None = None

    def to_dict(self) -> dict:
        return {"id": self.id, "first_frame": self.first, "last_frame": self.last, "frames": self.frames}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


class FaceTracker:
    """See the module's docstring."""

    def __init__(self, window: int = 5, min_iou: float = 0.3, patience: int = 5, cut: float = 30.0,
                 follow: float = 0.2) -> None:
        self.window, self.min_iou, self.patience, self.cut, self.follow = window, min_iou, patience, cut, follow
        self.frame = -1
        self.active: list[Track] = []
        self.ended: list[Track] = []
        self.cuts = 0
        self.steady: dict[int, bool] = {}  # track id -> followed smoothly into this frame (no new start, no jump)
        self._thumb: np.ndarray | None = None
        self._next_id = 0

    def _scene_cut(self, image: np.ndarray) -> bool:
        import cv2

        grey = image if image.ndim == 2 else image[..., :3].astype(np.float32).mean(axis=2)
        thumb = cv2.resize(grey.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
        cut = self._thumb is not None and float(np.abs(thumb - self._thumb).mean()) > self.cut
        self._thumb = thumb
        return cut

    def update(self, image: np.ndarray, detections: list[Detection]) -> list[tuple[int, Detection]]:
        """The frame's faces with their track ids and smoothed landmarks, in detection order."""
        self.frame += 1
        if self._scene_cut(image):
            self.cuts += 1
            self.ended += self.active
            self.active = []
        pairs = sorted(((iou(t.box, d.box), ti, di) for ti, t in enumerate(self.active)
                        for di, d in enumerate(detections)), reverse=True)
        match: dict[int, Track] = {}
        used: set[int] = set()
        for overlap, ti, di in pairs:
            if overlap < self.min_iou:
                break
            if ti not in used and di not in match:
                used.add(ti)
                match[di] = self.active[ti]
        out = []
        for di, d in enumerate(detections):
            track = match.get(di)
            if track is None:
                track = Track(self._next_id, self.frame, self.frame)
                self._next_id += 1
                self.active.append(track)
            recent = list(track.history)[-self.window:]
            moved = float(np.abs(d.landmarks - np.mean(recent, axis=0)).max()) if recent else 0.0
            jumped = moved > self.follow * max(d.size, 1.0)
            self.steady[track.id] = bool(recent) and not jumped
            if jumped:
                track.history.clear()  # real motion: follow it now, no lag
            track.history.append(np.asarray(d.landmarks, np.float64))
            track.box, track.last = np.asarray(d.box, np.float64), self.frame
            track.frames += 1
            smooth = np.mean(list(track.history)[-self.window:], axis=0)
            out.append((track.id, replace(d, landmarks=smooth.astype(np.float32))))
        gone = [t for t in self.active if self.frame - t.last >= self.patience]
        self.ended += gone
        self.active = [t for t in self.active if t not in gone]
        return out

    def tracks(self) -> list[Track]:
        """Every track so far, in the order they started."""
        return sorted(self.ended + self.active, key=lambda t: t.id)
