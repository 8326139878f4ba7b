"""Segment a volume larger than memory, block by block: ``segment_volume``.

    summary = segment_volume(segmenter, open_volume("embryo.ome.zarr"), Path("out/embryo_mask.ome.zarr"),
                             instances=True)

The volume is cut into blocks (64 x 512 x 512 voxels, 2048 x 2048 pixels in 2D); each is read
with a margin (the halo) around it, segmented in memory by the ``Segmenter`` as any image is
(overlap-tile inference, post-processing, instance splitting: the halo gives objects at the
block's border their whole context), and only its core is kept. What every block shares is
measured once, on an even sample of the whole volume: the intensity levels that map to 0 and 1
and the zoom (``--diameter``). Memory is that of one block whatever the volume's size.

Instance labels are made consistent across block borders in three passes (as dask-image's
``label`` and the distributed cellpose do): (1) each block numbers its own objects 1..n (halo
included) and keeps the slabs along its borders; (2) an object on one side of a border and one on the other are the same when
their labels of the voxels both blocks saw (the halo of one and the core of the other, on
each side of the border) overlap by more than half their union (a one-to-one match), joined
by connected components over all blocks; (3) every block is relabelled through that table into consecutive
labels 1..N. Class masks need only (1).

Everything lives in a hidden work folder beside the output (``.<name>.partial``) until the
output is complete, then moves into place: a run that is stopped resumes from the blocks its
log says are written (the settings, levels and zoom are kept there too; different settings
start again).
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .volume import Volume

__all__ = ["Grid", "segment_volume"]

VERSION = 1


@dataclass(frozen=True)
class Grid:
    """Blocks of ``block`` voxels over ``shape``, each read with ``halo`` more on every side."""
    shape: tuple[int, ...]
    block: tuple[int, ...]
    halo: tuple[int, ...]

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(-(-n // b) for n, b in zip(self.shape, self.block))

    def __len__(self) -> int:
        return int(np.prod(self.counts))

    def index(self, flat: int) -> tuple[int, ...]:
        return tuple(int(i) for i in np.unravel_index(flat, self.counts))

    def core(self, flat: int) -> tuple[slice, ...]:
        return tuple(slice(i * b, min((i + 1) * b, n)) for i, b, n in zip(self.index(flat), self.block, self.shape))

    def outer(self, flat: int) -> tuple[slice, ...]:
        return tuple(slice(max(0, c.start - h), min(n, c.stop + h)) for c, h, n in zip(self.core(flat), self.halo,
                                                                                       self.shape))

    def neighbours(self, flat: int) -> list[tuple[int, int]]:
        """(axis, flat index) of the next block along each axis, where there is one."""
        idx = self.index(flat)
        return [(a, int(np.ravel_multi_index(idx[:a] + (idx[a] + 1,) + idx[a + 1:], self.counts)))
                for a in range(len(idx)) if idx[a] + 1 < self.counts[a]]


def default_grid(spatial: tuple[int, ...], model_dims: int, block: tuple[int, ...] | None = None,
                 halo: tuple[int, ...] | None = None, instances: bool = True) -> Grid:
    """64 x 512 x 512 blocks (2048 x 2048 in 2D), about 16 M voxels: one block's probabilities,
    labels and instance split fit in well under 2 GB. The halo: 32 px in the plane (the U-Net's
    own tiles overlap by more; this is context for the block's border objects), 8 planes in z."""
    if block is None:
        block = (64, 512, 512) if len(spatial) == 3 else (2048, 2048)
    if halo is None:
        halo = (16 if instances or model_dims == 3 else 0, 32, 32) if len(spatial) == 3 else (32, 32)
    block = tuple(max(1, min(b, n)) for b, n in zip(block[-len(spatial):], spatial))
    halo = tuple(min(h, n, b) for h, n, b in zip(halo[-len(spatial):], spatial, block))  # one neighbour deep
    return Grid(tuple(spatial), block, halo)


def chunks_for(block: tuple[int, ...]) -> tuple[int, ...]:
    """Storage chunks that tile a block exactly: at most 32 planes and 256 px a side."""
    limits = (32, 256, 256)[-len(block):]
    out = []
    for b, m in zip(block, limits):
        c = min(b, m)
        while b % c:
            c -= 1
        out.append(c)
    return tuple(out)


# --------------------------------------------------------------------------- the run's state
class WorkFolder:
    """The hidden folder of an unfinished run: its settings, the blocks its log says are done."""

    def __init__(self, out: Path, settings: dict[str, Any]) -> None:
        self.path = out.with_name(f".{out.name}.partial")
        self.settings = {"version": VERSION, **settings}
        self.resumed = False
        old = self._read_json("settings.json")
        if old is not None and old == json.loads(json.dumps(self.settings)):
            self.resumed = True
        else:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path.mkdir(parents=True)
            self._write_json("settings.json", self.settings)
        self.done: dict[int, dict[int, int]] = {1: {}, 3: {}}
        log = self.path / "done.log"
        if log.exists():
            for line in log.read_text().splitlines():
                parts = line.split()
                if len(parts) == 3 and line.endswith("."):  # a torn last line (a crash mid-write) is not done
                    self.done[int(parts[0])][int(parts[1])] = int(parts[2].rstrip("."))
        self._log = open(log, "a")

    def _read_json(self, name: str) -> Any:
        try:
            return json.loads((self.path / name).read_text())
        except (OSError, ValueError):
            return None

    def _write_json(self, name: str, value: Any) -> None:
        tmp = self.path / f".{name}.tmp"
        tmp.write_text(json.dumps(value))
        os.replace(tmp, self.path / name)

    def remember(self, name: str, make: Callable[[], Any]) -> Any:
        """``make()`` once per run: kept, so a resumed run uses the same value."""
        value = self._read_json(name)
        if value is None:
            value = make()
            self._write_json(name, value)
        return value

    def mark(self, stage: int, flat: int, count: int = 0) -> None:
        self._log.write(f"{stage} {flat} {count}.\n")
        self._log.flush()
        os.fsync(self._log.fileno())
        self.done[stage][flat] = count

    def close(self) -> None:
        self._log.close()


# --------------------------------------------------------------------------- the passes
def segment_volume(seg, vol: Volume, out: Path, *, instances: bool = False, min_size: int = 16,
                   fill_holes: bool = False, block: tuple[int, ...] | None = None,
                   halo: tuple[int, ...] | None = None, progress: Callable[[int, int], None] | None = None,
                   preview: Callable[[Any], None] | None = None) -> dict:
    """Segment ``vol`` into ``out`` (``<stem>_mask.ome.zarr``, ``.ome.zarr.zip``/``.ozx``, or
    ``.nii``/``.nii.gz``), a block at a time; see the module's docstring. Returns a summary
    (labels, blocks, resumed, levels, zoom). ``progress(done, total)`` after each block;
    ``preview(labels)``: given the finished label array (zarr) before it moves into place."""
    from .outputs import finish_output, new_labels

    grid = default_grid(vol.spatial, seg.dims, block, halo, instances)
    seg = _whole_planes(seg, grid)
    options = dict(instances=instances, min_size=min_size, fill_holes=fill_holes)
    settings = {"input": str(vol.path), "shape": list(vol.spatial), "dtype": str(vol.dtype), "model": str(seg.path),
                "diameter": seg.diameter, "tile": seg.tile, "block": list(grid.block), "halo": list(grid.halo),
                "output": out.name, **options}
    work = WorkFolder(out, settings)
    try:
        levels = tuple(work.remember("levels.json", lambda: _levels(seg, vol)))
        zoom = float(work.remember("zoom.json", lambda: _zoom(seg, vol, grid, levels)))
        if instances:
            split = work.remember("split.json", lambda: _split(seg, vol, grid, levels, zoom, options))
            options["split"] = tuple(split) if split else None
        chunks = chunks_for(grid.block)
        total = len(grid) * (2 if instances else 1)
        if instances:
            first = new_labels(work.path / "blocks.zarr", vol, np.uint32, chunks, resume=work.resumed)
        else:
            first = new_labels(work.path / "result", vol, np.uint8 if seg.num_classes < 256 else np.uint16,
                               chunks, out=out, resume=work.resumed)
        (work.path / "faces").mkdir(exist_ok=True)
        for flat in range(len(grid)):
            if flat not in work.done[1]:
                core = grid.core(flat)
                labels, inner = _block_labels(seg, vol, grid, flat, levels, zoom, options)
                count = 0
                if instances:
                    labels, count = _number(labels)
                    _save_slabs(work.path / "faces" / f"{flat}.npz", labels, grid, flat)
                first[core] = labels[inner]
                work.mark(1, flat, count)
            if progress:
                progress(flat + 1, total)
        found, final = None, first
        if instances:
            lut = _join(grid, work)
            found = int(lut.max())
            final = new_labels(work.path / "result", vol, np.uint16 if found < 65536 else np.uint32, chunks,
                               out=out, resume=bool(work.done[3]))
            offsets = _offsets(grid, work)
            for flat in range(len(grid)):
                if flat not in work.done[3]:
                    core = grid.core(flat)
                    local = np.asarray(first[core]).astype(np.int64)
                    final[core] = np.where(local > 0, lut[offsets[flat] + local], 0).astype(final.dtype)
                    work.mark(3, flat)
                if progress:
                    progress(len(grid) + flat + 1, total)
        if preview is not None:
            preview(final)
        finish_output(work.path / "result", vol, out, grid.block)
        resumed = work.resumed
    finally:
        work.close()
    shutil.rmtree(work.path, ignore_errors=True)
    return {"labels": found, "blocks": len(grid), "block": list(grid.block), "resumed": resumed,
            "levels": list(levels), "zoom": zoom}


MAX_PLANE_TILE = 1024  # a 2D U-Net's activations on a 1024 px tile: ~70 MB a feature map of 16 channels


def _whole_planes(seg, grid: Grid):
    """A 2D model sees each plane of a block (halo included: 576 px by default) as one tile, not
    four overlapping 512 px tiles: that was 1.8x the network's work of the in-memory path."""
    side = max(min(n, b + 2 * h) for n, b, h in zip(grid.shape[-2:], grid.block[-2:], grid.halo[-2:]))
    if seg.dims != 2 or side <= seg.tile or side > MAX_PLANE_TILE:
        return seg
    return seg.with_options(tile=side)


def _levels(seg, vol: Volume) -> list[float]:
    from .preprocess import intensity_levels

    return list(intensity_levels(vol.sample()))


def _zoom(seg, vol: Volume, grid: Grid, levels: tuple[float, float]) -> float:
    """The zoom for ``--diameter``, measured on the block at the volume's centre."""
    if not seg.model_diameter or seg.diameter is None:
        return 1.0
    return float(seg.zoom_for(vol.read(_centre(vol, grid)), levels))


def _centre(vol: Volume, grid: Grid) -> tuple[slice, ...]:
    return tuple(slice(max(0, n // 2 - b // 2), max(0, n // 2 - b // 2) + b) for n, b in zip(vol.spatial, grid.block))


def _split(seg, vol: Volume, grid: Grid, levels, zoom: float, options: dict) -> list | None:
    """The instance split's scale, from the objects wholly inside the centre block."""
    from .postprocess import instance_scale

    labels = seg(vol.read(_centre(vol, grid)), levels=levels, factor=zoom,
                 **{k: v for k, v in options.items() if k != "instances"})
    found = instance_scale(labels > 0)
    return list(found) if found else None


def _block_labels(seg, vol: Volume, grid: Grid, flat: int, levels, zoom: float,
                  options: dict) -> tuple[np.ndarray, tuple[slice, ...]]:
    """The labels of the block with its halo, and where its core lies in them."""
    outer, core = grid.outer(flat), grid.core(flat)
    labels = seg(vol.read(outer), levels=levels, factor=zoom, **options)
    return labels, tuple(slice(c.start - o.start, c.stop - o.start) for c, o in zip(core, outer))


def _number(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """The block's objects (halo included) numbered 1..n, one numbering for core and halo."""
    values, inverse = np.unique(labels, return_inverse=True)
    if values[0] != 0:
        inverse = inverse + 1
    return inverse.reshape(labels.shape).astype(np.uint32), int(len(values) - (values[0] == 0))


def _save_slabs(path: Path, labels: np.ndarray, grid: Grid, flat: int) -> None:
    """What the join compares across each border, in this block's numbering: along each axis,
    the halo beyond the core's far face (``hi_halo``) and the core's last ``halo`` planes before
    it (``hi_core``); the same at the near face (``lo_halo``, ``lo_core``). Across the other
    axes, the core's extent (so a slab faces exactly one neighbour's slab)."""
    outer, core = grid.outer(flat), grid.core(flat)
    inner = [slice(c.start - o.start, c.stop - o.start) for c, o in zip(core, outer)]
    slabs = {}
    for a in range(labels.ndim):
        def cut(lo: int, hi: int) -> np.ndarray:
            idx = list(inner)
            idx[a] = slice(max(lo, 0), max(hi, 0))
            return labels[tuple(idx)]
        h, c = grid.halo[a], inner[a]
        slabs[f"hi_halo{a}"], slabs[f"hi_core{a}"] = cut(c.stop, c.stop + h), cut(c.stop - h, c.stop)
        slabs[f"lo_halo{a}"], slabs[f"lo_core{a}"] = cut(c.start - h, c.start), cut(c.start, c.start + h)
    slabs["present"] = np.unique(labels[tuple(inner)])  # the objects with voxels in the core
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez_compressed(tmp, **slabs)
    os.replace(tmp, path)


def _offsets(grid: Grid, work: WorkFolder) -> np.ndarray:
    counts = np.array([work.done[1][f] for f in range(len(grid))], np.int64)
    return np.concatenate([[0], np.cumsum(counts)[:-1]])


def _join(grid: Grid, work: WorkFolder) -> np.ndarray:
    """The table from every block's labels (offset to one numbering) to the volume's: objects
    that cross a block border joined (connected components of the matches), numbered 1..N."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    offsets = _offsets(grid, work)
    total = int(offsets[-1] + work.done[1][len(grid) - 1]) + 1
    pairs = []
    for flat in range(len(grid)):
        mine = np.load(work.path / "faces" / f"{flat}.npz")
        for axis, other in grid.neighbours(flat):
            theirs = np.load(work.path / "faces" / f"{other}.npz")
            # the planes both blocks saw: past this core's face (our halo, their core) and before it
            ours = np.concatenate([mine[f"hi_halo{axis}"], mine[f"hi_core{axis}"]], axis=axis)
            same = np.concatenate([theirs[f"lo_core{axis}"], theirs[f"lo_halo{axis}"]], axis=axis)
            pairs.append(_matches(ours, same, offsets[flat], offsets[other]))
    edges = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(total, total))
    _, component = connected_components(graph, directed=False)
    # numbered 1..N over the objects that have voxels in some core (one seen only in a halo is
    # no object of the volume's); node 0, the background, has no edges and stays 0
    present = np.zeros(total, bool)
    for flat in range(len(grid)):
        ids = np.load(work.path / "faces" / f"{flat}.npz")["present"].astype(np.int64)
        present[offsets[flat] + ids[ids > 0]] = True
    used = np.zeros(component.max() + 1, bool)
    used[component[present]] = True
    number = np.cumsum(used) * used
    return np.where(present, number[component], 0).astype(np.int64)


def _matches(a: np.ndarray, b: np.ndarray, off_a: int, off_b: int) -> np.ndarray:
    """(label in a, label in b) + offsets for the objects that are one: two blocks' labels of
    the same voxels (the overlap of their halos and cores) whose intersection over union is
    above one half. Such a match is one to one, so a border never chains objects together."""
    both = (a > 0) & (b > 0)
    if not both.any():
        return np.zeros((0, 2), np.int64)
    pair, inter = np.unique(np.stack([a[both], b[both]], 1).astype(np.int64), axis=0, return_counts=True)
    area_a, area_b = np.bincount(a.ravel()), np.bincount(b.ravel())
    union = area_a[pair[:, 0]] + area_b[pair[:, 1]] - inter
    return pair[inter * 2 > union] + np.array([off_a, off_b])


def iter_regions(shape: tuple[int, ...], step: tuple[int, ...]):
    """(slices) covering ``shape`` in steps of ``step`` (row-major)."""
    for start in itertools.product(*(range(0, n, s) for n, s in zip(shape, step))):
        yield tuple(slice(a, min(a + s, n)) for a, s, n in zip(start, step, shape))
