"""Where a volume's labels go: a Zarr array in the run's work folder while blocks are written,
then the output in the input's own format, moved into place whole.

- ``<stem>_mask.ome.zarr`` (an OME-Zarr or Zarr input): an OME-Zarr labels image (``multiscales``
  with the input's axes, units and voxel size, a pyramid for viewers, ``image-label``);
- ``<stem>_mask.ome.zarr.zip`` / ``<stem>_mask.ozx`` (a zipped one): the same, zipped (stored,
  not deflated: the chunks are compressed already), the store's root at the zip's root;
- ``<stem>_mask.nii.gz`` / ``.nii`` (NIfTI): the input's header, affine and voxel sizes.
"""
from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from .nifti import write_nifti
from .volume import Volume, store_stem
from .zarr_io import finish_mask_group, new_mask_array

__all__ = ["finish_output", "mask_name", "new_labels"]


def mask_name(path: Path) -> str:
    """The output's file name for input ``path``: its stem, ``_mask``, its own format's suffix."""
    name = path.name.lower()
    stem = store_stem(path)
    for suffix in (".nii.gz", ".nii", ".ome.zarr.zip", ".zarr.zip", ".ozx"):
        if name.endswith(suffix):
            return f"{stem}_mask{'.ome.zarr.zip' if suffix == '.zarr.zip' else suffix}"
    return f"{stem}_mask.ome.zarr"


def _is_nifti(out: Path) -> bool:
    return out.name.lower().endswith((".nii", ".nii.gz"))


def new_labels(path: Path, vol: Volume, dtype, chunks: tuple[int, ...], *, out: Path | None = None,
               resume: bool = False):
    """A label array at ``path`` in the work folder (opened again when ``resume`` and it is
    there): the OME-Zarr output's own full-resolution array when ``out`` is OME-Zarr, else plain."""
    import zarr

    ome = out is not None and not _is_nifti(out)
    if resume:
        try:
            arr = zarr.open_array(path / "0" if ome else path, mode="r+")
            if arr.dtype == np.dtype(dtype) and arr.shape == tuple(vol.spatial):
                return arr
        except Exception:  # noqa: BLE001 - absent, or half made: made again
            pass
    shutil.rmtree(path, ignore_errors=True)
    if ome:
        return new_mask_array(path, vol, np.dtype(dtype), chunks)
    return zarr.create_array(path, shape=vol.spatial, chunks=chunks, dtype=dtype, fill_value=0)


def finish_output(result: Path, vol: Volume, out: Path, block: tuple[int, ...]) -> None:
    """Turn the finished work array ``result`` into ``out``, replacing an older ``out`` only once
    the new one is complete."""
    import zarr

    if _is_nifti(out):
        write_nifti(vol, zarr.open_array(result, mode="r"), out)
        return
    finish_mask_group(result, vol, name=store_stem(out).removesuffix("_mask") + " labels", block=block)
    if out.name.lower().endswith((".zip", ".ozx")):
        tmp = out.with_name(f".{out.name}.tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            for file in sorted(p for p in result.rglob("*") if p.is_file()):
                z.write(file, file.relative_to(result).as_posix())
        os.replace(tmp, out)
        return
    old = out.with_name(f".{out.name}.old")
    if out.exists():
        os.replace(out, old)
    os.replace(result, out)
    shutil.rmtree(old, ignore_errors=True)
