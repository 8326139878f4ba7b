"""``restore faces`` on files and folders: outputs, face crops and ``report.json``.

For each input ``DIR/sub/x.jpg`` (``rel`` = ``sub``) it writes

    OUT/restored/sub/x.png     the restored photo (its layout: grey, RGB, RGBA; 8 or 16 bit;
                               .jpg / .webp with --format: 8-bit, JPEG's alpha flattened on white)
    OUT/faces/sub/x_<k>.png    face k, aligned: the input crop | the restored crop
    OUT/report.json            one object per input: input, output, faces (box, landmarks,
                               score), small_faces, seconds, error (null or the reason), notes
                               (what reading or writing it involved, e.g. the first frame of a GIF)

through ``restore.batch.run_batch`` (bad files reported in one line, atomic writes,
``--skip-existing``). The report is written atomically at the end (also after Ctrl-C); with
``skip_existing`` the entries of an earlier report for inputs not redone are kept.
"""
from __future__ import annotations

import copy
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from restore.batch import BatchReport, Item, run_batch
from restore.imageio import read_alpha, read_image
from restore.imagewrite import atomic_write, write_image
from restore.pipeline import run_pipeline

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


def run_faces_batch(fr: FaceRestorer, items: list[Item], out: Path, *, aligned: bool = False,
                    skip_existing: bool = False, quiet: bool = False, ignored: Sequence[tuple[Path, str]] = (),
                    ext: str = ".png", quality: int = 95, pipeline: bool = True) -> BatchReport:
    """Restore every input; returns the runner's report (its ``exit_code`` is the command's).
    ``ext`` (".png", ".jpg", ".webp") is the format of the restored photos and face crops.

    ``pipeline`` (the default): ``restore.pipeline`` reads and detects the next photos while the
    networks work and writes behind them, and the faces of several photos share network calls
    of ``fr.batch_size``; False: one photo after another (``run_batch``). Both run the same three
    steps below (``load``, ``compute``, ``save``); only the grouping of faces into network calls
    differs (see ``FaceRestorer.restore_crops``)."""
    fr = copy.copy(fr)  # the caller's restorer keeps its own setting
    fr.fixed_batch = True  # calls of one size: both paths give the same bytes (restore_crops)
    report_path = out / REPORT
    previous = load_report(report_path) if skip_existing else {}
    entries: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    counts = {"faces": 0, "small": 0}

    def outputs(path: Path, rel: Path) -> list[Path]:
        return [out / "restored" / rel / f"{path.stem}{ext}"]

    def load(path: Path, rel: Path) -> dict:
        t0 = time.perf_counter()
        image = read_image(path)
        alpha = read_alpha(path, image.shape[:2])
        if alpha is not None:
            image = np.dstack([image, alpha.astype(image.dtype) * (257 if image.dtype == np.uint16 else 1)])
        job = {"image": image} if aligned else {"prep": fr.prepare(image)}
        job["seconds"] = time.perf_counter() - t0
        seconds[str(path)] = round(job["seconds"], 3)
        return job

    def faces_in(job: dict) -> int:
        return 1 if aligned else len(job["prep"].crops)

    def compute(jobs: list[dict]) -> list:
        """(restored photo, faces, small, pairs) per job; the faces of all jobs in shared calls."""
        t0 = time.perf_counter()
        if aligned:
            done = []
            for job in jobs:
                h, w = job["image"].shape[:2]
                done.append((fr.restore_aligned(job["image"], (h * fr.upscale, w * fr.upscale)),
                             [fr.aligned_face_record(h, w)], 0, []))
        else:
            crops = [c for job in jobs for c in job["prep"].crops]
            restored = fr.restore_crops(crops) if crops else []
            done, k = [], 0
            for job in jobs:
                n = len(job["prep"].crops)
                try:
                    result = fr.finish(job["prep"], restored[k:k + n])
                except Exception as e:  # noqa: BLE001 - this photo's failure, not the group's
                    done.append(e)
                else:
                    done.append((result.image, [f.to_dict() for f in result.faces], result.small_faces,
                                 [np.concatenate([f.cropped, f.restored], axis=1) for f in result.faces]))
                k += n
        share = (time.perf_counter() - t0) / max(1, len(jobs))
        for job in jobs:
            job["seconds"] += share
        return [r if isinstance(r, BaseException) else r + (job["seconds"],) for r, job in zip(done, jobs)]

    def save(path: Path, rel: Path, result: tuple) -> dict:
        restored, faces, small, pairs, spent = result
        t0 = time.perf_counter()
        written: list[Path] = []
        try:
            crop_dir = out / "faces" / rel
            for k, pair in enumerate(pairs):
                written.append(crop_dir / f"{path.stem}_{k}{ext}")
                write_image(written[-1], pair, compress_level=1, quality=quality)
            k = len(pairs)
            while (stale := crop_dir / f"{path.stem}_{k}{ext}").exists():  # from an earlier run
                stale.unlink()
                k += 1
            if restored.ndim == 3 and restored.shape[2] == 2:  # grey + alpha: PNG as RGBA
                restored = restored[..., [0, 0, 0, 1]]
            write_image(outputs(path, rel)[0], restored, compress_level=1, quality=quality)
        except BaseException:
            for p in written:  # no half set of crops beside a failed input
                p.unlink(missing_ok=True)
            raise
        finally:
            seconds[str(path)] = round(spent + time.perf_counter() - t0, 3)
        return {"input": str(path), "output": str(outputs(path, rel)[0]), "faces": faces,
                "small_faces": small, "seconds": seconds[str(path)], "error": None}

    def done(path: Path, entry: dict) -> None:
        counts["faces"] += len(entry["faces"])
        counts["small"] += entry["small_faces"]
        entries[str(path)] = entry

    def process(path: Path, rel: Path) -> None:  # one photo after another: the same three steps
        (result,) = compute([load(path, rel)])
        if isinstance(result, BaseException):
            raise result
        done(path, save(path, rel, result))

    report = BatchReport()
    try:
        if pipeline:
            report = run_pipeline(items, outputs, load, compute, save, batch=fr.batch_size, size=faces_in,
                                  skip_existing=skip_existing, desc="faces", quiet=quiet, ignored=ignored,
                                  on_done=done)
        else:
            report = run_batch(items, process, outputs, skip_existing=skip_existing, desc="faces", quiet=quiet,
                               ignored=ignored)
    finally:
        failed = dict((str(p), reason) for p, reason in report.failed)
        merged = dict(previous)
        for path, rel in items:
            key, written = str(path), outputs(path, rel)[0]
            if key in failed:
                merged[key] = {"input": key, "output": None, "faces": [], "small_faces": 0,
                               "seconds": seconds.get(key), "error": failed[key]}
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
              f"report: {report_path}", file=sys.stderr)
    return report

