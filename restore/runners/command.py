"""A batch command's ``run(args)``, the same for ``restore faces``, ``segment``, ``sketch`` and
``translate``: the options checked, the inputs found, the model and job made, the images run
(``run_job``, as the command line chose) and the films after them; exit status 0 all done,
1 some inputs failed, 2 a usage error (one ``restore NAME: error:`` line).

    def run(args):
        make = partial(Segmenter, weights=args.weights, ...)
        return run_command(args, "segment", lambda: SegmentJob(make, model=make(), out=args.out, ...))
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from restore.models.manifest import WeightsError

from .args import ray_usage_error, run_options
from .choose import run_job
from .inputs import Inputs, Item, UsageError, scan_inputs
from .report import BatchReport, printable

__all__ = ["run_command", "usage_error"]


def usage_error(name: str, why: str) -> int:
    """``restore NAME: error: WHY`` on stderr; the exit status of a usage error."""
    print(printable(f"restore {name}: error: {why}"), file=sys.stderr)
    return 2


def run_command(args: argparse.Namespace, name: str, make: Callable[[], Any], *,
                images: Callable[[Any, Inputs], BatchReport] | None = None,
                videos: Callable[[Any, Sequence[Item]], BatchReport] | None = None,
                stores: Callable[[Any, Sequence[Item]], BatchReport] | None = None,
                check: Callable[[], str | None] | None = None) -> int:
    """Run a batch command made with ``restore.runners.args``'s options (``paths``, ``--out``,
    ``--skip-existing``, ``--quiet``, the runner's).

    ``check()``: a usage error of the command's own (None when none), asked after the Ray
    options'. ``make()``, once the inputs are found: what the command runs, a ``Job`` unless
    ``images`` says otherwise; UsageError, WeightsError and ValueError are usage errors.
    ``images(made, found)``: the images' run (default: ``run_job`` with the command line's
    runner). ``videos(made, films)``: the films, one after another; None: the command takes
    none (a film is an ignored file). ``stores(made, volumes)``: OME-Zarr/NIfTI volumes, chunk by
    chunk on this machine (None: not taken)."""
    why = ray_usage_error(args)
    if why is None and check is not None:
        why = check()
    if why is not None:
        return usage_error(name, why)
    try:
        found = scan_inputs(args.paths, exclude=[args.out], videos=videos is not None, stores=stores is not None)
        made = make()
    except (UsageError, WeightsError, ValueError) as e:
        return usage_error(name, str(e))
    codes = []
    if found.items or not (found.videos or found.stores):
        report = (images(made, found) if images is not None
                  else run_job(made, found.items, ignored=found.ignored, **run_options(args)))
        codes.append(report.exit_code)
    if found.videos:  # frame after frame on this machine (a film's frames depend on each other)
        codes.append(videos(made, found.videos).exit_code)
    if found.stores:  # region by region on this machine (a volume may not fit in memory)
        codes.append(stores(made, found.stores).exit_code)
    return max(codes)
