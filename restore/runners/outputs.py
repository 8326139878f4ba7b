"""The outputs of a run, never half-written: each input's outputs named and claimed before any
work (two inputs that would write the same file: the second fails), ``--skip-existing``
(an input is finished when all its outputs exist), the outputs a failed input created or
replaced removed, and the temporaries a killed run left swept away.

Every output is written under a temporary name and renamed (``restore.imagewrite.atomic_write``:
``.<name>.<pid>-<8 hex>.tmp``, hidden, so folder searches skip it); a process killed mid-write
(SIGKILL, a Ray worker lost) leaves that temporary behind. ``sweep_temporaries`` removes them:
every runner (``restore.runners.choose.run_job``) sweeps OUT when it starts, so a run resumed
with ``--skip-existing`` after a kill finds no half-written file, and again when it ends.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from .inputs import Item
from .report import BatchReport, describe_error

__all__ = ["Planned", "claim_outputs", "output_path", "plan_outputs", "remove_new", "stamp", "sweep_temporaries"]

Planned = tuple[Path, Path, list[Path], list[int | None]]  # (file, rel, its outputs, their mtimes before)


def output_path(out_dir: str | os.PathLike, rel: str | os.PathLike, file: str | os.PathLike,
                suffix: str = "", ext: str = ".png") -> Path:
    """``OUT/rel/<stem><suffix><ext>``, e.g. output_path(out, rel, f, "_mask")."""
    return Path(out_dir) / rel / f"{Path(file).stem}{suffix}{ext}"


def claim_outputs(file: Path, rel: Path, outputs: Callable[[Path, Path], list[Path]],
                  claimed: dict[Path, Path]) -> list[Path]:
    """The outputs of one input, claimed for it; ValueError (its reason) when naming them fails
    or another input already claimed one of them."""
    try:
        outs = [Path(p) for p in outputs(file, rel)]
    except Exception as e:
        raise ValueError(describe_error(e)) from e
    clash = next((claimed[o] for o in outs if o in claimed), None)
    if clash is not None:
        raise ValueError(f"would overwrite the output of {clash} (same name); rename one of them")
    claimed.update((o, file) for o in outs)
    return outs


def plan_outputs(items: Sequence[Item], outputs: Callable[[Path, Path], list[Path]], skip_existing: bool,
                 report: BatchReport, fail: Callable[[Path, str, BaseException], None],
                 advance: Callable[[], object] = lambda: None) -> list[Planned]:
    """The items to do, with their outputs claimed and stamped: names, clashes (``fail``) and
    ``--skip-existing`` (counted in ``report``) settled before any work, as ``run_batch`` does."""
    todo: list[Planned] = []
    claimed: dict[Path, Path] = {}
    for file, rel in items:
        try:
            outs = claim_outputs(file, rel, outputs, claimed)
        except ValueError as e:
            fail(file, str(e), e)
            continue
        if skip_existing and outs and all(o.exists() for o in outs):
            report.skipped += 1
            advance()
            continue
        todo.append((file, rel, outs, [stamp(o) for o in outs]))
    return todo


def stamp(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def remove_new(outs: list[Path], before: list[int | None]) -> None:
    """Delete the outputs a failed call created or replaced, so no half-new set remains."""
    for p, t in zip(outs, before):
        now = stamp(p)
        if now is not None and now != t:
            try:
                p.unlink()
            except OSError:
                pass


def sweep_temporaries(folder: str | os.PathLike) -> None:
    """Remove the temporary files of ``atomic_write`` that a killed writer left under ``folder``
    (only while no writer of the run is alive: a live writer's file has such a name too)."""
    from restore.imagewrite import TEMPORARY

    folder = Path(folder)
    if folder.is_dir():
        for tmp in folder.rglob(".*.tmp"):
            if TEMPORARY.match(tmp.name):
                tmp.unlink(missing_ok=True)
