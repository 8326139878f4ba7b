"""Volumes larger than memory, read a region at a time: OME-Zarr (a folder, or zipped), plain
Zarr arrays and NIfTI.

    vol = open_volume("embryo.ome.zarr")            # VolumeError (a ValueError): one line
    vol.spatial, vol.axes, vol.spacing              # (z, y, x) sizes, stored axis names, voxel size
    block = vol.read((slice(0, 64), slice(0, 512), slice(0, 512)))   # (z, y, x[, c]) numpy

Regions are given in (z, y, x) order whatever the storage order (NIfTI keeps x fastest; its
voxel axes i, j, k are x, y, z here). Only the chunks a region touches are read: zarr for Zarr,
and ``os.pread`` of whole rows for an uncompressed ``.nii`` (a memory map would count every
page read towards the process's resident memory, which is what the benchmark bounds). A
``.nii.gz`` cannot be read out of order: it is decompressed once, in order, into a Zarr copy
in the run's work folder (``staged``).

Told apart by name (``restore.formats.is_store``); what cannot be read is a ``VolumeError``
naming the file and the reason: a store with chunks missing (zarr would read them as zeros),
a chunk that does not decode, a NIfTI header that does not parse or data shorter than it says,
axes that cannot be told apart (a plain Zarr array of 3 dimensions: ``axes="zyx"`` says).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Volume", "VolumeError", "store_stem"]

class VolumeError(ValueError):
    """A volume that cannot be read: one line, naming the file."""


def store_stem(path: str | os.PathLike) -> str:
    """``embryo`` for embryo.ome.zarr, embryo.zarr, embryo.ome.zarr.zip, embryo.ozx, embryo.nii.gz."""
    name = Path(path).name
    for suffix in (".ome.zarr.zip", ".zarr.zip", ".ome.zarr", ".zarr", ".ozx", ".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


@dataclass
class Volume:
    """An opened volume: what it holds, and ``read`` of a (z, y, x) region."""
    path: Path
    kind: str  # "ome-zarr", "zarr" or "nifti"
    axes: str  # the stored array's axis names, e.g. "czyx" ("zyx" for NIfTI, as read)
    spatial: tuple[int, ...]  # (z, y, x) or (y, x) sizes
    spacing: tuple[float, ...]  # voxel size along each spatial axis
    units: tuple[str | None, ...]
    dtype: np.dtype
    channels: int | None  # None: no channel axis
    reader: Callable[[tuple[slice, ...]], np.ndarray]  # stored-order region -> (*spatial[, C])
    meta: dict[str, Any] = field(default_factory=dict)  # the NIfTI header, the OME-Zarr version, ...
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.spatial)) * (self.channels or 1) * self.dtype.itemsize

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        """The voxels of ``region`` ((z, y, x) slices), as (*spatial[, C]) numpy."""
        try:
            return self.reader(region)
        except VolumeError:
            raise
        except Exception as e:  # noqa: BLE001 - a codec's or the file system's, whatever its type
            where = ", ".join(f"{s.start}:{s.stop}" for s in region)
            raise VolumeError(f"{self.path}: cannot read the region [{where}]: {type(e).__name__}: {e}") from None

    def sample(self, max_voxels: int = 1 << 24) -> np.ndarray:
        """An even subsample of the whole volume (at most ``max_voxels``, read as a few whole
        planes, strided): for the intensity levels every block shares."""
        n = len(self.spatial)
        planes = self.spatial[0] if n == 3 else 1
        take = np.unique(np.linspace(0, planes - 1, min(planes, 9)).round().astype(int))
        plane = int(np.prod(self.spatial[-2:]))
        step = max(1, int(np.ceil(np.sqrt(plane * len(take) / max_voxels))))
        parts = []
        for z in take:
            region = ((slice(z, z + 1),) if n == 3 else ()) + (slice(0, self.spatial[-2]), slice(0, self.spatial[-1]))
            parts.append(self.read_rows(region, step))
        return np.concatenate([p.reshape(-1, *p.shape[n:]) for p in parts])

    def read_rows(self, region: tuple[slice, ...], step: int) -> np.ndarray:
        """``read(region)[..., ::step, ::step]`` a band of rows at a time (bounded memory)."""
        y0, y1 = region[-2].start, region[-2].stop
        band = max(step, (1 << 24) // max(1, self.spatial[-1]) // step * step)
        out = [_stride(self.read(region[:-2] + (slice(y, min(y + band, y1)), region[-1])), step, self.channels)
               for y in range(y0, y1, band)]
        return np.concatenate(out, axis=len(region) - 2)

    def close(self) -> None:
        for close in self.closers:
            close()
        self.closers.clear()


def _stride(a: np.ndarray, step: int, channels: int | None) -> np.ndarray:
    if channels is None:
        return a[..., ::step, ::step]
    return a[..., ::step, ::step, :]
