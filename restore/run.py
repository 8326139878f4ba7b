"""Running a command's ``restore.job.Job``: on a Ray cluster (``--ray``), pipelined on this
machine (the default), or one input after another (``--no-pipeline``); and the command-line
options that choose."""
from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from restore.batch import BatchReport, Item, run_batch
from restore.job import Job
from restore.pipeline import run_pipeline

__all__ = ["add_runner_args", "ray_options", "ray_usage_error", "run_job"]


def add_runner_args(parser: argparse.ArgumentParser,
                 no_pipeline: str = "one image after another (no reading ahead or writing behind)") -> None:
    """The choice of runner: ``--no-pipeline`` (its help: ``no_pipeline``), and ``--ray
    [local|auto|ADDRESS]``, ``--ray-workers``, ``--ray-gpus-per-worker``, ``--ray-cpus-per-worker``."""
    parser.add_argument("--no-pipeline", action="store_true", help=no_pipeline)
    g = parser.add_argument_group("cluster (Ray Data; pip install 'unet-restore[ray]')")
    g.add_argument("--ray", nargs="?", const="local", default=None, metavar="local|auto|ADDRESS",
                   help="run through Ray Data: local starts a cluster on this machine (the default when the flag "
                        "is given alone), auto joins the one `ray start` made, ADDRESS (ray://host:10001 or "
                        "host:6379) a remote one; OUT must be a folder every node sees")
    g.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="actors that each load the models once and restore batches (default: as many as the "
                        "cluster's CPUs, or GPUs with --ray-gpus-per-worker, allow)")
    g.add_argument("--ray-gpus-per-worker", type=float, default=0, metavar="G",
                   help="GPUs each actor holds (e.g. 1, or 0.5 to share one between two); the models run on "
                        "the GPU Ray gives the actor, whatever --device says")
    g.add_argument("--ray-cpus-per-worker", type=float, default=None, metavar="C",
                   help="CPUs each actor holds, its torch threads (default: 1 beside a GPU, else as many as a local "
                        "run uses, so the outputs are a local run's bit for bit; fewer when --ray-workers asks for "
                        "more actors than fit)")


def run_job(job: Job, items: Sequence[Item], *, pipeline: bool = True, ray: str | None = None,
            ray_workers: int | None = None, ray_gpus_per_worker: float = 0, ray_cpus_per_worker: float | None = None,
            skip_existing: bool = False, quiet: bool = False, stream: TextIO | None = None,
            ignored: Sequence[tuple[Path, str]] = (), on_done: Callable[[Path, Any], None] | None = None,
            ) -> BatchReport:
    """Run ``job`` on ``items``: on a Ray cluster (``ray``), pipelined (the default), or one input
    after another; the same outputs, report and one-line-per-file rules in all three."""
    common = dict(skip_existing=skip_existing, desc=job.desc, quiet=quiet, stream=stream, ignored=ignored)
    if ray is not None:
        from restore.ray.runner import run_on_ray

        return run_on_ray(job, items, address=ray, workers=ray_workers, gpus_per_worker=ray_gpus_per_worker,
                          cpus_per_worker=ray_cpus_per_worker, on_done=on_done, **common)
    if pipeline:
        return run_pipeline(items, job.outputs, job.load, job.compute, job.save, batch=job.batch, size=job.size,
                            on_done=on_done, **common)

    def process(file: Path, rel: Path) -> None:
        (result,) = job.compute([job.load(file, rel)])
        if isinstance(result, BaseException):
            raise result
        value = job.save(file, rel, result)
        if on_done is not None:
            on_done(file, value)

    return run_batch(items, process, job.outputs, **common)


def ray_options(args: argparse.Namespace) -> dict:
    """run_job's Ray keywords from a command line made with ``add_runner_args``."""
    return dict(ray=args.ray, ray_workers=args.ray_workers, ray_gpus_per_worker=args.ray_gpus_per_worker,
                ray_cpus_per_worker=args.ray_cpus_per_worker)


def ray_usage_error(args: argparse.Namespace) -> str | None:
    """Why the command line's Ray options cannot work (None when they can)."""
    if args.ray is None:
        return None
    if args.ray_workers is not None and args.ray_workers < 1:
        return "--ray-workers must be at least 1"
    if args.ray_gpus_per_worker < 0 or (args.ray_cpus_per_worker is not None and args.ray_cpus_per_worker <= 0):
        return "--ray-gpus-per-worker must be >= 0 and --ray-cpus-per-worker > 0"
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        return "--ray needs Ray Data: pip install 'unet-restore[ray]' (or pip install 'ray[data]')"
    if str(args.out).startswith(("s3:", "gs:")):
        return "OUT must be a local or network-mounted folder (s3:// and gs:// are not supported yet)"
    return None

