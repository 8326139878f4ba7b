"""The videos of a ``restore faces`` run: ``OUT/restored/<sub>/<stem>.mp4`` each, one
``report.json`` entry each, the runner's promises (done, skipped, or one ``error:`` line)."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, TextIO

from restore.batch import BatchReport, Item, describe_error, isatty

__all__ = ["run_faces_videos", "video_output"]


def video_output(out: Path, file: Path, rel: Path, codec: str = "libx264") -> Path:
    """Where a video's restoration goes: .mp4 for H.264/H.265, .mkv for other codecs."""
    return out / "restored" / rel / f"{file.stem}{'.mp4' if codec in ('libx264', 'libx265', 'h264') else '.mkv'}"


def run_faces_videos(fr: Any, videos: list[Item], out: Path, *, skip_existing: bool = False, quiet: bool = False,
                     crf: int = 18, codec: str = "libx264", stream: TextIO | None = None) -> BatchReport:
    """Restore the faces of each video in turn (frames streamed; see ``restore.video.faces``) and
    merge their entries into ``OUT/report.json``; returns the videos' part of the run's report."""
    from tqdm import tqdm

    from restore.faces.folder import REPORT, load_report, write_report

    from .faces import restore_video

    stream = sys.stderr if stream is None else stream
    report = BatchReport()
    entries = load_report(out / REPORT)
    for file, rel in videos:
        dst = video_output(out, file, rel, codec)
        if skip_existing and dst.exists():
            report.skipped += 1
            entries.setdefault(str(file), {"input": str(file), "output": str(dst), "error": None, "skipped": True})
            continue
        bar = tqdm(desc=file.name, unit="frame", file=stream, leave=False, disable=quiet or not isatty(stream))

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            entry = restore_video(fr, file, dst, crf=crf, codec=codec, progress=progress)
        except KeyboardInterrupt:
            bar.close()
            raise
        except Exception as e:  # noqa: BLE001 - one video's failure: its line, then the next
            reason = describe_error(e)
            report.failed.append((file, reason))
            bar.write(f"error: {file}: {reason}", file=stream)
            entries[str(file)] = {"input": str(file), "output": None, "error": reason}
            if os.environ.get("RESTORE_DEBUG"):
                raise
        else:
            report.done += 1
            entries[str(file)] = entry
        finally:
            bar.close()
    out.mkdir(parents=True, exist_ok=True)
    write_report(out / REPORT, list(entries.values()))
    if not quiet:
        print(report.summary("videos"), file=stream)
    return report
