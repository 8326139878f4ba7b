"""Open a volume ``restore segment`` reads region by region: OME-Zarr and Zarr stores (folders or
zipped: ``restore.segment.zarr_io``) and NIfTI (``restore.segment.nifti``); see
``restore.segment.volume.Volume``.

    vol = open_volume("embryo.ome.zarr")            # VolumeError (a ValueError): one line
    block = vol.read((slice(0, 64), slice(0, 512), slice(0, 512)))   # (z, y, x[, c]) numpy
"""
from __future__ import annotations

import os
from pathlib import Path

from .nifti import open_nifti
from .volume import Volume, VolumeError, store_stem
from .zarr_io import open_zarr

__all__ = ["Volume", "VolumeError", "open_volume", "store_stem"]


def open_volume(path: str | os.PathLike, *, axes: str | None = None, missing: str = "error",
                staged: Path | None = None, max_bytes: int | None = None) -> Volume:
    """Open ``path`` (``restore.formats.is_store``). ``axes``: the stored axis names of a plain
    Zarr array (e.g. "zyx", "cyx"; OME-Zarr and NIfTI say their own). ``missing``: "error"
    (default) or "fill" (read absent chunks as the array's fill value, as zarr does).
    ``staged``: where a ``.nii.gz`` is decompressed to (default: beside it, hidden).
    ``max_bytes``: refuse a volume larger than this (the app's cap), before reading it."""
    path = Path(path)
    name = path.name.lower()
    if not path.exists():
        raise VolumeError(f"{path}: no such file or folder")
    if name.endswith((".nii", ".nii.gz")):
        vol = open_nifti(path, staged=staged, max_bytes=max_bytes)
    else:
        vol = open_zarr(path, axes, missing, max_bytes)
    if max_bytes is not None and vol.nbytes > max_bytes:
        vol.close()
        raise VolumeError(f"{path}: {vol.nbytes / 2**30:.2f} GiB of voxels, more than the {max_bytes / 2**30:.2f} "
                          "GiB allowed here")
    return vol
