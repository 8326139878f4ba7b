"""The Segment tab's NIfTI and zipped OME-Zarr uploads: segmented block by block
(``restore.segment.blocks``) into the request's folder, the mask in the upload's own format.

    x.nii.gz -> x_mask.nii.gz     x.nii -> x_mask.nii     x.ome.zarr.zip / x.zarr.zip -> x_mask.ome.zarr.zip
    x.ozx -> x_mask.ozx           and x_overlay.png, the middle plane with its labels (the page's preview)

An upload is a stranger's file, checked before anything is decoded: gradio refuses files over
its ``max_file_size``; a zip's directory is checked (``restore.segment.zipped``: its declared
unzipped size, member count and names); a ``.nii.gz`` header's declared size is checked before
it is decompressed; every volume's size before a block is read (``open_volume(max_bytes=...)``).
Each refusal is one line in the tab's status (a ``VolumeError``, turned into a message by
``apps/errors.py``), and a failed request leaves nothing behind.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import gradio as gr
import numpy as np

from gan.precision import autocast
from restore import budget
from restore.segment.blocks import iter_regions, segment_volume
from restore.segment.outputs import mask_name
from restore.segment.volume import store_stem
from restore.segment.volume_job import write_overlay
from restore.segment.volumes import open_volume

__all__ = ["VOLUME_TYPES", "segment_store", "volume_cap"]

VOLUME_TYPES = [".nii", ".nii.gz", ".ome.zarr.zip", ".zarr.zip", ".ozx"]  # the upload filter's (gr.File)
# The decoded size of such a volume, in bytes: the voxels a TIFF volume may hold (max_pixels,
# all its slices: 50 M in the app), counted at 4 bytes, a float32 CT's width; so 200 MB with the
# app's caps: 100 M voxels of uint16, 200 M of uint8. Block by block, memory is one block's whatever
# the size, so memory does not set this; the request's time budget and its disk do (the volume's
# .nii.gz copy, the work folder and the mask all live in the request's folder, and the bundled
# model on a CPU segments a few M voxels a second: a bigger volume would only be stopped by the
# budget after minutes). max_pixels * max_pages (50 G voxels) would be hours and 100s of GB.
BYTES_PER_VOXEL = 4
def volume_cap(rt) -> int:
    """The largest volume (bytes of voxels) the app segments block by block, from ``rt.max_pixels``."""
    return int(rt.max_pixels) * BYTES_PER_VOXEL


def _open(path: Path, cap: int, staged: Path):
    # open_volume refuses a zip from its directory (restore.segment.zipped) and a .nii.gz from its
    # header before decompressing anything
    return open_volume(path, max_bytes=cap, staged=staged)


def _table(labels, shape: tuple[int, ...], instances: bool, num_classes: int) -> list[list]:
    """The areas table (apps/handlers.py's AREA_HEADERS) of a label array read a block at a time."""
    counts = np.zeros(max(num_classes, 2), np.int64)
    step = (64, 512, 512)[-len(shape):]
    for region in iter_regions(shape, step):
        block = np.asarray(labels[region])
        if instances:
            n = int(np.count_nonzero(block))
            counts[:2] += (block.size - n, n)
        else:
            found = np.bincount(block.ravel().astype(np.int64))
            counts = np.pad(counts, (0, max(0, len(found) - len(counts))))
            counts[: len(found)] += found
    total = max(int(np.prod(shape)), 1)
    if instances:
        return [["background", int(counts[0]), round(100 * counts[0] / total, 2), "-"],
                ["objects", int(counts[1]), round(100 * counts[1] / total, 2), "-"]]  # counted by the caller
    names = ["background"] + (["foreground"] if len(counts) == 2 else [f"class {c}" for c in range(1, len(counts))])
    return [[name, int(n), round(100 * n / total, 2), "-"] for name, n in zip(names, counts)]


def segment_store(h, file: str, weights: str, tile: int, diameter, instances: bool, min_size: int,
                  fill_holes: bool, crf: bool, progress) -> tuple[str, str, list[list], str]:
    """``Handlers.segment`` for a NIfTI or zipped OME-Zarr upload -> (overlay PNG, mask file in the
    upload's format, areas table, summary). Runs inside the handler's time budget: every block ends
    with ``budget.check()`` (and the model's tiles check it too)."""
    path = Path(file)
    name = path.name  # gradio keeps the visitor's file name
    cap = volume_cap(h.rt)
    folder = h._outdir()
    out = folder / mask_name(path)
    shown = folder / f"{store_stem(path)}_overlay.png"
    staged = folder / ".staged.zarr"  # a .nii.gz, decompressed once (restore.segment.nifti)
    vol, ok = None, False
    table: list[list] = []
    try:
        progress(0, desc="checking the volume")
        vol = _open(path, cap, staged)
        progress(0, desc="loading the model")
        seg = h.rt.segmenter(weights).with_options(tile=int(tile), diameter=diameter)
        if crf:
            gr.Warning("Dense-CRF refinement is not applied to volumes segmented block by block.")
        t0 = time.perf_counter()

        def step(done: int, total: int) -> None:
            progress((done, total), desc="segmenting, block by block", unit="blocks")
            budget.check()

        def preview(labels) -> None:  # the finished labels, before they move into place
            nonlocal table
            write_overlay(vol, labels, shown)
            table = _table(labels, vol.spatial, instances, seg.num_classes)

        with autocast(h.rt.precision["segment"], h.rt.device):
            summary = segment_volume(seg, vol, out, instances=instances, min_size=int(min_size),
                                     fill_holes=fill_holes, progress=step, preview=preview)
        seconds = time.perf_counter() - t0
        ok = True
    finally:
        if vol is not None:
            vol.close()
        # a failed request leaves nothing (its work folder, its staged copy); a done one its files only
        shutil.rmtree(staged if ok else folder, ignore_errors=True)
    if instances:
        table[1][3] = str(summary["labels"])
    size = f"{vol.spatial[-1]}x{vol.spatial[-2]} px" + (f", {vol.spatial[0]} slices" if len(vol.spatial) == 3 else "")
    where = f"; plane {vol.spatial[0] // 2} of {vol.spatial[0]} shown" if len(vol.spatial) == 3 else ""
    found = f"{summary['labels']} objects, " if summary["labels"] is not None else ""
    note = (f"{Path(seg.path).name}: {name}, {size} ({vol.kind}) in {seconds:.1f} s; {found}{summary['blocks']} "
            f"block(s) of {'x'.join(map(str, summary['block']))}{where}; the mask as {out.name}")
    return str(shown), str(out), table, note
