"""``restore faces`` on files and folders: outputs, face crops and ``report.json``.

For each input ``DIR/sub/x.jpg`` (``rel`` = ``sub``) it writes OUT/restored/sub/x.png and
OUT/faces/sub/x_<k>.png (``restore.faces.job``), and for the whole run

    OUT/report.json            one object per input: input, output, faces (box, landmarks,
                               score), small_faces, seconds, error (null or the reason), notes
                               (what reading or writing it involved, e.g. the first frame of a GIF)

through ``restore.runners.choose.run_job`` (bad files reported in one line, atomic writes,
``--skip-existing``). The report is written atomically at the end (also after Ctrl-C); with
``skip_existing`` the entries of an earlier report for inputs not redone are kept.
Films (``run_faces_videos``): OUT/restored/sub/x.mp4 each and their own report entries
(frames, tracks, flicker; ``restore.faces.video``).
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from restore.imagewrite import atomic_write
from restore.runners.choose import run_job
from restore.runners.inputs import Item
from restore.runners.report import BatchReport

from .job import FacesJob
from .restorer import FaceRestorer

REPORT = "report.json"


def load_report(path: Path) -> dict[str, dict]:
    """input -> entry of an earlier report; empty when there is none or it is unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {e["input"]: e for e in data if isinstance(e, dict) and "input" in e} if isinstance(data, list) else {}


def write_report(path: Path, entries: list[dict]) -> None:
    with atomic_write(path) as tmp:
        # one line per input: greppable, and diffable between runs
        tmp.write_text("[\n" + ",\n".join(json.dumps(e) for e in entries) + "\n]\n")


def run_faces_batch(fr: FaceRestorer | None, items: list[Item], out: Path, *, aligned: bool = False,
                    skip_existing: bool = False, quiet: bool = False, ignored: Sequence[tuple[Path, str]] = (),
                    ext: str = ".png", quality: int = 95, pipeline: bool = True,
                    make_restorer: Callable[..., FaceRestorer] | None = None, min_identity: float | None = None,
                    **ray_options) -> BatchReport:
    """Restore every input; returns the runner's report (its ``exit_code`` is the command's).
    ``ext`` (".png", ".jpg", ".webp") is the format of the restored photos and face crops.

    ``pipeline`` (the default): ``restore.runners.pipeline`` reads and detects the next photos while the
    networks work and writes behind them, and the faces of several photos share network calls
    of ``fr.batch_size``; False: one photo after another (``run_batch``). ``min_identity``: the
    summary counts faces whose identity fell under it (and what the guard did); ``ray_options``
    (``ray="local"``, ...; see ``restore.runners.choose.run_job``): through Ray Data, where each actor makes
    its restorer with ``make_restorer`` (else gets a copy of ``fr``). All run the same steps
    (``FacesJob``); only the grouping of faces into network calls differs, not the bytes."""
    job = FacesJob(make_restorer, model=fr, out=out, aligned=aligned, ext=ext, quality=quality)
    report_path = out / REPORT
    previous = load_report(report_path) if skip_existing else {}
    entries: dict[str, dict] = {}
    counts = {"faces": 0, "small": 0, "measured": 0, "under": 0, "blended": 0, "input": 0}

    def done(path: Path, entry: dict) -> None:
        counts["faces"] += len(entry["faces"])
        counts["small"] += entry["small_faces"]
        for face in entry["faces"]:
            guard = face.get("guard") or {}
            before = guard.get("identity_before", face.get("identity"))
            if before is not None:
                counts["measured"] += 1
                counts["under"] += min_identity is not None and before < min_identity
            if (action := guard.get("action")) in ("blended", "input"):
                counts[action] += 1
        entries[str(path)] = entry

    report = BatchReport()
    try:
        report = run_job(job, items, pipeline=pipeline, skip_existing=skip_existing, quiet=quiet, ignored=ignored,
                         on_done=done, **ray_options)
    finally:
        failed = dict((str(p), reason) for p, reason in report.failed)
        merged = dict(previous)
        for path, rel in items:
            key, written = str(path), job.outputs(path, rel)[0]
            if key in failed:
                merged[key] = {"input": key, "output": None, "faces": [], "small_faces": 0,
                               "seconds": job.seconds.get(key), "error": failed[key]}
            elif key in entries:
                merged[key] = {**entries[key], "notes": report.notes.get(path, [])}
            elif key not in merged and skip_existing and written.exists():  # skipped, no earlier entry
                merged[key] = {"input": key, "output": str(written), "faces": None, "small_faces": None,
                               "seconds": None, "error": None, "skipped": True}
        order = [str(p) for p, _ in items if str(p) in merged]
        rest = [k for k in merged if k not in set(order)]  # earlier inputs not named this time
        out.mkdir(parents=True, exist_ok=True)
        write_report(report_path, [merged[k] for k in order + rest])
    if not quiet:
        print(f"faces: {counts['faces']} restored; {counts['small']} smaller than --min-face left as they were; "
              f"{_identity_summary(counts, min_identity)}report: {report_path}", file=sys.stderr)
    return report


def _identity_summary(counts: dict[str, int], threshold: float | None) -> str:
    """The summary's identity part: how many faces fell under the threshold, what the guard did."""
    if not counts["measured"] or threshold is None:
        return ""
    guarded = counts["blended"] + counts["input"]
    guard = (f" ({counts['blended']} blended back toward the input, {counts['input']} left as the input)"
             if guarded else "")
    return f"{counts['under']} of {counts['measured']} under identity {threshold:g}{guard}; "


def run_faces_videos(fr: FaceRestorer, videos: list[Item], out: Path, *, skip_existing: bool = False,
                     quiet: bool = False, crf: int = 18, codec: str = "libx264", temporal: float = 0.35,
                     stream: TextIO | None = None) -> BatchReport:
    """Restore the faces of each video in turn (frames streamed; see ``restore.faces.video``) and
    merge their entries into ``OUT/report.json``; returns the videos' part of the run's report."""
    from restore.video.folder import run_videos

    from .video import restore_video

    def process(src: Path, dst: Path, **kw) -> dict:
        return restore_video(fr, src, dst, temporal=temporal, **kw)

    entries = load_report(out / REPORT)
    report, new = run_videos(process, videos, out, subfolder="restored", skip_existing=skip_existing, quiet=quiet,
                             crf=crf, codec=codec, stream=stream)
    for key, entry in new.items():
        if not entry.get("skipped") or key not in entries:
            entries[key] = entry
    out.mkdir(parents=True, exist_ok=True)
    write_report(out / REPORT, list(entries.values()))
    return report
