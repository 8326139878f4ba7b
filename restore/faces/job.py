"""``restore faces`` as a ``restore.runners.job.Job``: read, detect, restore in shared calls, write.

    OUT/restored/sub/x.png     the restored photo (its layout: grey, RGB, RGBA; 8 or 16 bit;
                               .jpg / .webp with --format: 8-bit, JPEG's alpha flattened on white)
    OUT/faces/sub/x_<k>.png    face k, aligned: the input crop | the restored crop

``save`` returns the photo's ``report.json`` entry (``restore.faces.folder``). The faces of all
inputs given to one ``compute`` go through the network together in calls of the restorer's
``batch_size``; ``fixed_batch`` pads every call to that size, so the bytes do not depend on
how photos were grouped (one at a time, the pipeline, a Ray actor's batch).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from restore.imageio import read_alpha, read_image
from restore.imagewrite import write_image
from restore.runners.job import Job

from .restorer import FaceRestorer


class FacesJob(Job):
    desc = "faces"

    def __init__(self, make_model: Callable[..., FaceRestorer] | None = None, *, model: FaceRestorer | None = None,
                 out: Path, aligned: bool = False, ext: str = ".png", quality: int = 95) -> None:
        super().__init__(make_model, model=model)
        self.out, self.aligned, self.ext, self.quality = Path(out), aligned, ext, quality
        self.seconds: dict[str, float] = {}  # input -> seconds so far (failed inputs keep theirs)

    def setup(self, fr: FaceRestorer) -> FaceRestorer:
        import copy

        fr = copy.copy(fr)  # the caller's restorer keeps its own setting
        fr.fixed_batch = True  # calls of one size: every grouping gives the same bytes (restore_crops)
        return fr

    @property
    def batch(self) -> int:  # faces per network call
        return self.model.batch_size

    def outputs(self, path: Path, rel: Path) -> list[Path]:
        return [self.out / "restored" / rel / f"{path.stem}{self.ext}"]

    def read(self, path: Path, rel: Path) -> dict:
        t0 = time.perf_counter()
        image = read_image(path)
        alpha = read_alpha(path, image.shape[:2])
        if alpha is not None:
            image = np.dstack([image, alpha.astype(image.dtype) * (257 if image.dtype == np.uint16 else 1)])
        return {"image": image, "seconds": time.perf_counter() - t0, "input": str(path)}

    def prepare(self, job: dict) -> dict:
        t0 = time.perf_counter()
        if not self.aligned:
            job["prep"] = self.model.prepare(job.pop("image"))
        job["seconds"] += time.perf_counter() - t0
        self.seconds[job["input"]] = round(job["seconds"], 3)
        return job

    def size(self, job: dict) -> int:
        return 1 if self.aligned else len(job["prep"].crops)

    def compute(self, jobs: list[dict]) -> list:
        """(restored photo, faces, small, pairs, quality, seconds) per job; the faces of all jobs in shared calls."""
        fr = self.model
        t0 = time.perf_counter()
        if self.aligned:
            done = []
            for job in jobs:
                h, w = job["image"].shape[:2]
                image, record = fr.restore_aligned_record(job["image"], (h * fr.upscale, w * fr.upscale))
                done.append((image, [{**fr.aligned_face_record(h, w), **record}], 0, [], None))
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
                                 [np.concatenate([f.cropped, f.restored], axis=1) for f in result.faces],
                                 result.quality))
                k += n
        share = (time.perf_counter() - t0) / max(1, len(jobs))
        for job in jobs:
            job["seconds"] += share
            self.seconds[job["input"]] = round(job["seconds"], 3)
        return [r if isinstance(r, BaseException) else r + (job["seconds"],) for r, job in zip(done, jobs)]

    def save(self, path: Path, rel: Path, result: tuple) -> dict:
        restored, faces, small, pairs, quality, spent = result
        t0 = time.perf_counter()
        written: list[Path] = []
        try:
            crop_dir = self.out / "faces" / rel
            for k, pair in enumerate(pairs):
                written.append(crop_dir / f"{path.stem}_{k}{self.ext}")
                write_image(written[-1], pair, compress_level=1, quality=self.quality)
            k = len(pairs)
            while (stale := crop_dir / f"{path.stem}_{k}{self.ext}").exists():  # from an earlier run
                stale.unlink()
                k += 1
            if restored.ndim == 3 and restored.shape[2] == 2:  # grey + alpha: PNG as RGBA
                restored = restored[..., [0, 0, 0, 1]]
            write_image(self.outputs(path, rel)[0], restored, compress_level=1, quality=self.quality)
        except BaseException:
            for p in written:  # no half set of crops beside a failed input
                p.unlink(missing_ok=True)
            raise
        finally:
            self.seconds[str(path)] = round(spent + time.perf_counter() - t0, 3)
        entry = {"input": str(path), "output": str(self.outputs(path, rel)[0]), "faces": faces,
                 "small_faces": small, "seconds": self.seconds[str(path)], "error": None}
        if quality is not None:  # --scores: the restored photo's no-reference scores
            entry["quality"] = quality
        return entry
