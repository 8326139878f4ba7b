"""``--ray``: a command's job (``restore.runners.job.Job``) through Ray Data, with the runners' promises.

    input list -> blocks -> an actor pool (the models load once per actor; each batch of inputs
    is read, restored and written by the one-machine pipeline in the actor, atomically into OUT)
    -> one row per input back to the driver, which settles it

The driver plans as every runner does (names, clashes, ``--skip-existing``), so a cluster run
resumes like a local one; every input comes back as one row (done, or its one-line reason),
so the summary, the ``note:`` lines and the faces' ``report.json`` are the local run's. Ray
Data retries a task or restarts an actor whose process died (its defaults for actor pools:
``max_restarts=-1``, ``max_task_retries=-1``); the retry rewrites the same outputs atomically,
and the temporary files a killed writer left (``.<name>.<pid>-<hex>.tmp``) are swept once the
workers are done (``restore.runners.outputs.sweep_temporaries``, as every runner's run ends).

Reading and writing stay in the actors, beside the networks, rather than in Ray tasks of their
own: a task stage would start worker processes that import torch for nothing, and send every
photo through the object store twice; here only paths and report rows travel.
"""
from __future__ import annotations

import io
import json
import logging
import math
import os
import pickle
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from .inputs import Item
from .job import Job
from .outputs import plan_outputs, remove_new
from .pipeline import run_pipeline
from .report import (BatchReport, debugging, describe_error, finish_report, interrupted, printable, progress_bar,
                     record_notes, start_report)

__all__ = ["connect", "run_on_ray"]

CALLS_PER_ACTOR = 2  # batches in an actor at once (see JobStage)
FORWARDED_ENV = ("RESTORE_HOME", "RESTORE_DEBUG")  # where the weights are cached; tracebacks


def connect(address: str, quiet: bool = True) -> bool:
    """Join (``auto``, an address) or start (``local``) a cluster unless this process already
    has one; True when this call connected (so the caller disconnects)."""
    import ray

    if ray.is_initialized():
        return False
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    kwargs: dict[str, Any] = dict(runtime_env={"env_vars": env} if env else None, log_to_driver=False,
                                  logging_level=logging.WARNING if quiet else logging.INFO)
    if address == "local":  # a new cluster of this machine, even when `ray start` made one
        ray.init(address="local", include_dashboard=False, **kwargs)
    else:
        ray.init(address=address, **kwargs)
    return True


class JobStage:
    """Ray actor: the job's model, made once; each batch of inputs goes through the one-machine
    pipeline (``restore.runners.pipeline``: reading ahead and writing behind in threads of this actor),
    so an input crosses the cluster as a path and a report row, never as pixels.

    Two batches run at once (``CALLS_PER_ACTOR``) but take turns at reading and at the networks
    (a lock each), so the next batch is read and detected while this one is restored and the
    last one is written: the pipeline does not drain between batches, and the actor's threads
    are shared as a local run shares them."""

    def __init__(self, job: Job, threads: int = 1) -> None:
        import ray
        import torch

        torch.set_num_threads(threads)  # its CPUs (Ray sets OMP_NUM_THREADS so, unless the user did)
        if ray.get_gpu_ids():  # Ray gave this actor a GPU (--ray-gpus-per-worker): use it
            job.use_device("cuda")
        self.job = job
        self.reading, self.computing = threading.Lock(), threading.Lock()
        _ = job.model  # load now: a model that cannot load fails the pool at once, not per batch

    def __call__(self, batch: dict) -> dict:
        items = [(Path(str(f)), Path(str(r))) for f, r in zip(batch["file"], batch["rel"])]
        values: dict[Path, Any] = {}
        log = io.StringIO()  # the batch's error lines, and their tracebacks when RESTORE_DEBUG is set
        report = run_pipeline(items, self.job.outputs, self.load, self.compute, self.job.save,
                              batch=self.job.batch, size=self.job.size, quiet=True, stream=log,
                              on_done=values.__setitem__)
        failed = dict(report.failed)
        trace = log.getvalue() if debugging() else ""  # the driver prints the error lines itself
        rows: dict[str, list] = {"i": [], "error": [], "notes": [], "data": []}
        for i, (file, _) in zip(batch["i"], items):
            rows["i"].append(int(i))
            reason = failed.get(file, "" if file in values else "not processed")
            rows["error"].append(reason + (f"\n{trace}" if reason and trace else ""))
            rows["notes"].append(json.dumps(report.notes.get(file, [])))
            rows["data"].append(pickle.dumps(values.get(file), protocol=5))
        return rows

    def load(self, file: Path, rel: Path) -> Any:
        with self.reading:
            return self.job.load(file, rel)

    def compute(self, values: list) -> list:
        with self.computing:  # one batch at the networks: two would fight over the threads
            return self.job.compute(values)


def plan_workers(todo: int, workers: int | None, gpus_per_worker: float, cpus_per_worker: float | None,
                 ) -> tuple[int, float]:
    """(actors, CPUs each) for the cluster. CPUs each, unless given: 1 beside a GPU; else this
    process's torch threads (a local run's), so each actor computes as a local run does, bit for
    bit (oneDNN splits some convolutions' sums by thread count); fewer when ``workers`` asks for
    more actors than that fits. Actors, unless given: as many as the GPUs (or CPUs) hold, no
    more than there are inputs."""
    import ray
    import torch

    res = ray.cluster_resources()
    cpus = res.get("CPU", 1)
    if cpus_per_worker is None:
        cpus_per_worker = 1 if gpus_per_worker else min(cpus, torch.get_num_threads())
        if workers:
            cpus_per_worker = max(1, min(cpus_per_worker, math.floor(cpus / workers)))
    if workers is None:
        fit = res.get("GPU", 0) / gpus_per_worker if gpus_per_worker else cpus / cpus_per_worker
        workers = max(1, min(todo, math.floor(fit + 1e-9)))
    return workers, cpus_per_worker


def batch_rows(todo: int, workers: int) -> int:
    """Inputs per actor call: few enough that the actors finish together and a retry redoes
    little (the batches overlap in an actor, so a small one costs no drained pipeline), no more
    than 8."""
    return max(1, min(8, todo // (4 * workers)))


def run_on_ray(job: Job, items: Sequence[Item], *, address: str = "local", workers: int | None = None,
               gpus_per_worker: float = 0, cpus_per_worker: float | None = None, skip_existing: bool = False,
               desc: str = "", quiet: bool = False, stream: TextIO | None = None,
               ignored: Sequence[tuple[Path, str]] = (), on_done: Callable[[Path, Any], None] | None = None,
               ) -> BatchReport:
    """Run ``job`` on ``items`` through Ray Data; see the module's docstring."""
    import ray
    import ray.data

    stream = sys.stderr if stream is None else stream
    report = start_report(ignored, quiet, stream)
    bar = progress_bar(items, desc, quiet, stream)

    def fail(file: Path, reason: str, exc: BaseException | None = None) -> None:
        first, _, trace = reason.partition("\n")
        report.failed.append((file, first))
        bar.write(printable(f"error: {file}: {first}"), file=stream)
        if trace:
            stream.write(trace)
        bar.update()

    todo = plan_outputs(items, job.outputs, skip_existing, report, fail, bar.update)
    settled: set[int] = set()
    connected = False
    try:
        if todo:
            connected = connect(address, quiet)
            ctx = ray.data.DataContext.get_current()
            ctx.enable_progress_bars = False
            logging.getLogger("ray.data").setLevel(logging.WARNING)
            n, cpus = plan_workers(len(todo), workers, gpus_per_worker, cpus_per_worker)
            if not quiet:
                each = f"{cpus:g} CPU" + (f", {gpus_per_worker:g} GPU" if gpus_per_worker else "")
                print(printable(f"{desc}: {len(todo)} input(s) on Ray ({address}), {n} worker(s) of {each}"),
                      file=stream)
            ds = ray.data.from_items([{"i": i, "file": str(f), "rel": str(r)} for i, (f, r, _, _) in enumerate(todo)],
                                     override_num_blocks=min(len(todo), 1000))
            ds = ds.map_batches(JobStage, fn_constructor_kwargs={"job": job, "threads": max(1, int(cpus))},
                                batch_size=batch_rows(len(todo), n), compute=ray.data.ActorPoolStrategy(
                                    size=n, max_concurrent_calls_per_actor=CALLS_PER_ACTOR,
                                    enable_true_multi_threading=True),
                                num_cpus=cpus,
                                num_gpus=gpus_per_worker or None)
            for row in ds.iter_rows():
                i = int(row["i"])
                file, _, outs, before = todo[i]
                settled.add(i)
                if row["error"]:
                    remove_new(outs, before)
                    fail(file, row["error"])
                    continue
                report.done += 1
                record_notes(report, file, json.loads(row["notes"]), bar, quiet, stream)
                if on_done is not None:
                    on_done(file, pickle.loads(row["data"]))
                bar.update()
    except KeyboardInterrupt:
        _abandon(todo, settled, connected)
        interrupted(report, bar, desc, quiet, stream)
        raise
    except Exception as e:  # noqa: BLE001 - the cluster itself failed: every input not yet back
        reason = f"ray: {describe_error(e)}"
        for i in range(len(todo)):
            if i not in settled:
                remove_new(*todo[i][2:])
                fail(todo[i][0], reason)
                settled.add(i)
    finally:
        if connected:
            ray.shutdown()
    return finish_report(report, bar, desc, quiet, stream)


def _abandon(todo: list, settled: set[int], connected: bool) -> None:
    """Ctrl-C: stop the cluster's work (when this run started it), keep what is whole."""
    import ray

    if connected:
        ray.shutdown()
    for i in range(len(todo)):
        if i not in settled:
            remove_new(*todo[i][2:])
