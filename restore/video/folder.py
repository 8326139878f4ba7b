"""The videos of a run, one after another, with the runners' promises (done, skipped, or one
``error:`` line each; the temporaries a killed run left in OUT swept): ``restore faces``
(``OUT/restored/<sub>/<stem>.mp4``, one ``report.json`` entry each:
``restore.faces.folder.run_faces_videos``) and ``restore translate`` (``OUT/<sub>/<stem>.mp4``)."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from restore.runners.inputs import Item
from restore.runners.outputs import sweep_temporaries
from restore.runners.report import BatchReport, describe_error, isatty, printable

__all__ = ["run_videos", "video_output"]


def video_output(folder: Path, file: Path, codec: str = "libx264", suffix: str = "") -> Path:
    """Where a video's result goes in ``folder``: ``<stem><suffix>``, .mp4 for H.264/H.265, .mkv
    for other codecs."""
    return folder / f"{file.stem}{suffix}{'.mp4' if codec in ('libx264', 'libx265', 'h264') else '.mkv'}"


def run_videos(process: Callable[..., dict], videos: list[Item], out: Path, *, subfolder: str = "",
               skip_existing: bool = False, quiet: bool = False, crf: int = 18, codec: str = "libx264",
               stream: TextIO | None = None, suffix: str = "") -> tuple[BatchReport, dict[str, dict]]:
    """``process(src, dst, crf=, codec=, progress=) -> report entry`` for each video, into
    ``OUT/<subfolder>/<sub>/<stem><suffix>.mp4``; returns the run's report and the entries by input."""
    from tqdm import tqdm

    stream = sys.stderr if stream is None else stream
    report = BatchReport()
    entries: dict[str, dict] = {}
    sweep_temporaries(out)  # what a killed run left: a resumed one finds no half-written film
    try:
        for file, rel in videos:
            dst = video_output(out / subfolder / rel, file, codec, suffix)
            if skip_existing and dst.exists():
                report.skipped += 1
                entries[str(file)] = {"input": str(file), "output": str(dst), "error": None, "skipped": True}
                continue
            bar = tqdm(desc=printable(file.name), unit="frame", file=stream, leave=False, disable=quiet or not isatty(stream))

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            try:
                entry = process(file, dst, crf=crf, codec=codec, progress=progress)
            except Exception as e:  # noqa: BLE001 - one video's failure: its line, then the next
                reason = describe_error(e)
                report.failed.append((file, reason))
                bar.write(printable(f"error: {file}: {reason}"), file=stream)
                entries[str(file)] = {"input": str(file), "output": None, "error": reason}
                if os.environ.get("RESTORE_DEBUG"):
                    raise
            else:
                report.done += 1
                entries[str(file)] = entry
            finally:
                bar.close()
    finally:
        sweep_temporaries(out)
    if not quiet:
        print(report.summary("videos"), file=stream)
    return report, entries
