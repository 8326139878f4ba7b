"""Running a command's ``Job``: on a Ray cluster (``--ray``), pipelined on this machine (the
default), or one input after another (``--no-pipeline``); the same outputs, report and
one-line-per-file rules in all three, and the same sweep of what a killed run left in OUT."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from .inputs import Item
from .job import Job
from .outputs import sweep_temporaries
from .pipeline import run_pipeline
from .report import BatchReport
from .sequential import run_batch

__all__ = ["run_job"]


def run_job(job: Job, items: Sequence[Item], *, pipeline: bool = True, ray: str | None = None,
            ray_workers: int | None = None, ray_gpus_per_worker: float = 0, ray_cpus_per_worker: float | None = None,
            skip_existing: bool = False, quiet: bool = False, stream: TextIO | None = None,
            ignored: Sequence[tuple[Path, str]] = (), on_done: Callable[[Path, Any], None] | None = None,
            ) -> BatchReport:
    """Run ``job`` on ``items``: on a Ray cluster (``ray``), pipelined (the default), or one input
    after another. ``job.out`` is swept of the temporaries a killed run left before the run
    (so a resumed run finds none) and after it (once its writers are done: Ray's workers too)."""
    common = dict(skip_existing=skip_existing, desc=job.desc, quiet=quiet, stream=stream, ignored=ignored)
    sweep_temporaries(job.out)
    try:
        if ray is not None:
            from .ray import run_on_ray

            return run_on_ray(job, items, address=ray, workers=ray_workers, gpus_per_worker=ray_gpus_per_worker,
                              cpus_per_worker=ray_cpus_per_worker, on_done=on_done, **common)
        if pipeline:
            return run_pipeline(items, job.outputs, job.load, job.compute, job.save, batch=job.batch,
                                size=job.size, on_done=on_done, **common)

        def process(file: Path, rel: Path) -> None:
            (result,) = job.compute([job.load(file, rel)])
            if isinstance(result, BaseException):
                raise result
            value = job.save(file, rel, result)
            if on_done is not None:
                on_done(file, value)

        return run_batch(items, process, job.outputs, **common)
    finally:
        sweep_temporaries(job.out)
