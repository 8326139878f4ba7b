"""``restore segment`` on OME-Zarr, Zarr and NIfTI volumes: one after another, block by block
(``restore.segment.blocks``), each done, skipped or named in one ``error:`` line.

    OUT/<sub>/<stem>_mask.ome.zarr      (or _mask.ome.zarr.zip, _mask.ozx, _mask.nii.gz, _mask.nii)
    OUT/<sub>/<stem>_overlay.png        the middle plane (at most 2048 px a side) and its labels
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import TextIO

import numpy as np

from restore.runners.inputs import Item
from restore.runners.report import (
    BatchReport,
    debugging,
    describe_error,
    isatty,
    printable,
)

from .blocks import segment_volume
from .outputs import mask_name
from .segmenter import Segmenter
from .volume import Volume, store_stem
from .volumes import open_volume

__all__ = ["run_volumes", "volume_outputs"]

OVERLAY_SIDE = 2048


def volume_outputs(out: Path, file: Path, rel: Path, ext: str = ".png") -> tuple[Path, Path]:
    """The mask (in the input's format) and the overlay of volume ``file``."""
    folder = out / rel
    return folder / mask_name(file), folder / f"{store_stem(file)}_overlay{ext}"


def run_volumes(seg: Segmenter, volumes: list[Item], out: Path, *, instances: bool = False, min_size: int = 16,
                fill_holes: bool = False, block: tuple[int, ...] | None = None, halo: tuple[int, ...] | None = None,
                axes: str | None = None, missing: str = "error", ext: str = ".png", quality: int = 95,
                skip_existing: bool = False, quiet: bool = False, stream: TextIO | None = None) -> BatchReport:
    """Segment each volume in turn; an interrupted one resumes from its written blocks."""
    from tqdm import tqdm

    stream = sys.stderr if stream is None else stream
    report = BatchReport()
    for file, rel in volumes:
        mask, overlay_path = volume_outputs(out, file, rel, ext)
        if skip_existing and mask.exists() and overlay_path.exists():
            report.skipped += 1
            continue
        bar = tqdm(desc=printable(file.name), unit="block", file=stream, leave=False,
                   disable=quiet or not isatty(stream))

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        staged = mask.with_name(f".{mask.name}.staged.zarr")  # a .nii.gz, decompressed once (kept to resume)
        vol = None
        try:
            mask.parent.mkdir(parents=True, exist_ok=True)
            vol = open_volume(file, axes=axes, missing=missing, staged=staged)
            summary = segment_volume(seg, vol, mask, instances=instances, min_size=min_size, fill_holes=fill_holes,
                                     block=block, halo=halo, progress=progress,
                                     preview=lambda labels: write_overlay(vol, labels, overlay_path, quality))
        except Exception as e:
            reason = describe_error(e)
            report.failed.append((file, reason))
            bar.write(printable(f"error: {file}: {reason}"), file=stream)
            if debugging():
                raise
        else:
            report.done += 1
            shutil.rmtree(staged, ignore_errors=True)
            what = f"{summary['labels']} objects" if summary["labels"] is not None else "classes"
            note = (f"{what} in {summary['blocks']} block(s) of {'x'.join(map(str, summary['block']))}"
                    f"{', resumed' if summary['resumed'] else ''}")
            report.notes[file] = [note]
            if not quiet:
                bar.write(printable(f"note: {file}: {note}"), file=stream)
        finally:
            bar.close()
            if vol is not None:
                vol.close()
    if not quiet:
        print(printable(report.summary("volumes")), file=stream)
    return report


def write_overlay(vol: Volume, labels, path: Path, quality: int = 95) -> None:
    """The middle plane of the volume with its ``labels`` (an array of the volume's shape)
    coloured in, at most 2048 px a side: a preview, read a band of rows at a time."""
    from restore.imagewrite import write_image

    from .overlay import overlay

    n = len(vol.spatial)
    step = max(1, -(-max(vol.spatial[-2:]) // OVERLAY_SIDE))
    z = vol.spatial[0] // 2 if n == 3 else None
    plane = ((slice(z, z + 1),) if n == 3 else ()) + tuple(slice(0, s) for s in vol.spatial[-2:])
    image = vol.read_rows(plane, step)
    band = max(step, (1 << 24) // max(1, vol.spatial[-1]) // step * step)
    rows = [np.asarray(labels[((z,) if n == 3 else ()) + (slice(y, min(y + band, vol.spatial[-2])),)])[::step, ::step]
            for y in range(0, vol.spatial[-2], band)]
    image = image[0] if n == 3 else image
    write_image(path, overlay(image, np.concatenate(rows).astype(np.int64)), quality=quality)
