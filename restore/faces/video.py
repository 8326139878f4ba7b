"""The faces of a film restored frame by frame, tracked and smoothed, the sound kept.

    entry = restore_video(FaceRestorer(...), "clip.mp4", "out/restored/clip.mp4")
    entry["frames"], entry["tracks"], entry["flicker"]

Each frame: ``FaceRestorer.prepare`` finds the faces (in the reader thread of
``FramePipeline``, ahead of the networks), ``FaceTracker`` gives them track ids and smoothed
landmarks, the faces are aligned again from those (``FaceRestorer.realign``) and restored
(``restore_crops``: the faces of ``group`` frames share the network calls); each restored face
is blended with its track's previous one (``temporal``: the weight of the new frame) while the
track moves smoothly, so what the network makes of the grain does not flicker from frame to
frame. The previous face is first moved into this frame's alignment (``_follow``: the change of
the track's similarity transform): blending it where it was aligned before, without that,
smeared every edge by the landmarks' sub-pixel wander and left the flicker almost where it
was (measured on a still 16-frame clip with grain: 4.6 grey levels against the input's 5.3;
moved first, 2.0). A jump or a new track starts afresh. Then the faces are pasted back
(``finish``) and the frame is encoded at its own timestamp, in the writer thread
(``VideoWriter``: audio copied, written under a temporary name). Memory holds a few groups of
frames, whatever the length of the film.
"""
from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from restore import budget
from restore.video.io import probe
from restore.video.stream import FramePipeline

from .track import FaceTracker

__all__ = ["restore_video", "temporal_error"]


def restore_video(fr: Any, src: str | os.PathLike, dst: str | os.PathLike, *, crf: int = 18, codec: str = "libx264",
                  tracker: FaceTracker | None = None, temporal: float = 0.35, group: int | None = None,
                  progress: Any = None) -> dict:
    """Restore the faces of ``src`` into ``dst``; returns its report entry: input, output,
    frames, fps, duration, tracks, faces per frame (min, mean, max), flicker (mean absolute
    frame-to-frame change inside the face boxes: input and output), seconds, error.
    ``group``: frames whose faces share the network calls (``fr.batch_size`` faces a call;
    default: that many frames, at least 4).
    ``progress``: called with (frames done, frames in all) after each frame."""
    if (why := temporal_error(temporal, "temporal")) is not None:
        raise ValueError(why)
    t0 = time.perf_counter()
    info = probe(src)
    tracker = tracker or FaceTracker()
    group = max(1, group or max(4, fr.batch_size))
    counts: list[int] = []
    flicker_in: list[float] = []
    flicker_out: list[float] = []
    previous: tuple[np.ndarray, np.ndarray] | None = None
    faces: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # track id -> its last restored face (float32), affine
    identity: dict[int, list[float]] = {}  # track id -> each frame's identity cosine (restore.faces.trust)
    guarded: dict[int, int] = {}  # track id -> frames whose face the guard changed
    with FramePipeline(src, dst, info, load=fr.prepare, ahead=2 * group, crf=crf, codec=codec) as pipe:
        for frames in pipe.groups(group):
            budget.check()  # a request's time budget (restore.budget), between groups of frames
            # tracking is sequential, frame after frame; the faces of the whole group share the calls
            tracks = [tracker.update(frame.rgb, prep.found) for frame, prep in frames]
            for (_, prep), tracked in zip(frames, tracks):
                fr.realign(prep, [d for _, d in tracked])
            crops = [c for _, prep in frames for c in prep.crops]
            done = iter(fr.restore_crops(crops) if crops else [])
            for (frame, prep), tracked in zip(frames, tracks):
                restored = [next(done) for _ in prep.crops]

                def smooth(made: list[np.ndarray], tracked=tracked, prep=prep) -> list[np.ndarray]:
                    out = []
                    for (tid, _), affine, face in zip(tracked, prep.affines, made):
                        now = face.astype(np.float32)
                        if tracker.steady.get(tid) and tid in faces and temporal < 1:
                            now = temporal * now + (1 - temporal) * _follow(*faces[tid], affine)
                        faces[tid] = now, affine
                        out.append(np.clip(np.rint(now), 0, 255).astype(np.uint8))
                    return out

                result = fr.finish(prep, restored, smooth=smooth)
                for (tid, _), face in zip(tracked, result.faces):
                    if face.identity is not None:
                        identity.setdefault(tid, []).append(face.identity)
                    if face.trust.get("guard", {}).get("action") in ("blended", "input"):
                        guarded[tid] = guarded.get(tid, 0) + 1
                pipe.write(result.image, frame.pts)
                counts.append(len(prep.found))
                boxes = [d.box for _, d in tracked]
                if previous is not None and boxes:
                    flicker_in.append(_change(previous[0], frame.rgb, boxes))
                    flicker_out.append(_change(previous[1], result.image, boxes, fr.upscale))
                previous = (frame.rgb, result.image)
                if progress is not None:
                    progress(frame.index + 1, info.frames)
    return {"input": str(src), "output": str(dst), "frames": pipe.frames, "fps": round(info.fps, 3),
            "duration": round(info.duration, 3), "tracks": [_with_identity(t.to_dict(), identity, guarded)
                                                            for t in tracker.tracks()],
            "scene_cuts": tracker.cuts,
            "faces_per_frame": {"min": min(counts, default=0), "mean": _mean(counts) or 0,
                                "max": max(counts, default=0)},
            "flicker": {"input": _mean(flicker_in), "output": _mean(flicker_out)},
            "seconds": round(time.perf_counter() - t0, 3), "error": None}


def _with_identity(track: dict, identity: dict[int, list[float]], guarded: dict[int, int]) -> dict:
    """A track's report entry with its identity over its frames (min and mean cosine) and how
    many of its frames the guard changed, where identity was measured."""
    values = identity.get(track.get("id"))
    if values:
        track["identity"] = {"min": round(min(values), 4), "mean": round(float(np.mean(values)), 4),
                             "frames": len(values), "guarded": guarded.get(track.get("id"), 0)}
    return track


def temporal_error(weight: float, name: str = "--temporal") -> str | None:
    """Why ``weight`` cannot be the temporal weight (None when it can), called ``name`` in the
    message: the CLI and the app refuse it before any work, ``restore_video`` too."""
    return None if 0 < weight <= 1 else f"{name} must be in (0, 1], not {weight}"


def _follow(face: np.ndarray, was: np.ndarray, now: np.ndarray) -> np.ndarray:
    """A track's last restored face moved into this frame's alignment: aligned with ``was``,
    warped by now o was^-1 (the face's own motion between the two frames, as the landmarks saw it)."""
    import cv2

    if np.allclose(was, now):  # held still (the usual case): no resampling
        return face
    step = now[:, :2] @ cv2.invertAffineTransform(was)
    step[:, 2] += now[:, 2]
    return cv2.warpAffine(face, step, face.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _mean(values: list) -> float | None:
    return round(float(np.mean(values)), 3) if values else None


def _change(a: np.ndarray, b: np.ndarray, boxes: list[np.ndarray], scale: int = 1) -> float:
    """Mean absolute change (grey levels, 8-bit) between two frames inside the face boxes."""
    total, n = 0.0, 0
    for box in boxes:
        x0, y0, x1, y1 = (np.asarray(box, np.float64) * scale).round().astype(int)
        x0, y0 = max(x0, 0), max(y0, 0)
        pa, pb = a[y0:y1, x0:x1].astype(np.float32), b[y0:y1, x0:x1].astype(np.float32)
        if pa.size and pa.shape == pb.shape:
            if a.dtype == np.uint16:
                pa, pb = pa / 257, pb / 257
            total += float(np.abs(pa - pb).sum())
            n += pa.size
    return total / n if n else 0.0
