"""NIfTI volumes (CT, MRI) read region by region and their masks written plane by plane.

nibabel parses and checks the header (a broken one is a ``VolumeError``, one line) and writes
the mask's: the input's affine, qform/sform and voxel sizes kept, the intent set to NIfTI's
"label", the data type the labels need. The voxels themselves are read and written here: NIfTI
stores x fastest, so the bytes of planes z0..z1 are one contiguous run, which is exactly a C-order
(z, y, x) array; reading rows with ``os.pread`` and writing planes in order keeps memory bounded
where nibabel's array proxy would map (or, gzipped, decompress) the whole file.
"""
from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .volume import Volume, VolumeError

__all__ = ["open_nifti", "write_nifti"]

STAGE_PLANES = 16  # planes per write when a .nii.gz is decompressed into its Zarr copy


def _header(path: Path):
    import nibabel as nib

    try:
        img = nib.load(path)
    except Exception as e:  # noqa: BLE001 - nibabel raises several kinds for a bad header
        raise VolumeError(f"{path}: not a readable NIfTI file (a broken header?): {type(e).__name__}: {e}") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise VolumeError(f"{path}: not a single-file NIfTI volume ({type(img).__name__})")
    return img


def open_nifti(path: Path, *, staged: Path | None = None, max_bytes: int | None = None) -> Volume:
    """A ``.nii`` read in place, or a ``.nii.gz`` decompressed once into ``staged`` (a Zarr copy).
    ``max_bytes``: a volume whose header declares more is refused before anything is decompressed."""
    img = _header(path)
    hdr = img.header
    shape = tuple(int(n) for n in hdr.get_data_shape())
    if len(shape) < 2 or any(n < 1 for n in shape):
        raise VolumeError(f"{path}: a NIfTI header with shape {shape}: not an image")
    if len(shape) > 3 and any(n > 1 for n in shape[3:]):
        raise VolumeError(f"{path}: shape {shape}: a 4th dimension (time points, or channels?) whose axes cannot be "
                          "told apart from the volume's; segment one 3D volume at a time")
    dtype = np.dtype(hdr.get_data_dtype())
    if dtype.kind not in "uif" or dtype.fields:
        raise VolumeError(f"{path}: NIfTI data type {dtype} is not a grey-level image")
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if max_bytes is not None and size > max_bytes:
        raise VolumeError(f"{path}: {size / 2**20:.1f} MiB of voxels, more than the {max_bytes / 2**20:.1f} MiB "
                          "allowed here")
    nx, ny = shape[0], shape[1]
    nz = shape[2] if len(shape) > 2 else 1
    offset = int(img.dataobj.offset)  # the file's; nibabel's loaded header says 0 (it manages the offset)
    plane = nx * ny * dtype.itemsize
    spatial = (nz, ny, nx) if nz > 1 else (ny, nx)
    zooms = [float(z) for z in hdr.get_zooms()[:3]] + [1.0] * 3
    spacing = (zooms[2], zooms[1], zooms[0]) if nz > 1 else (zooms[1], zooms[0])
    space_unit = hdr.get_xyzt_units()[0]
    units = ({"mm": "millimeter", "micron": "micrometer", "meter": "meter"}.get(space_unit),) * len(spatial)
    meta = {"header": hdr.copy(), "shape": shape}
    native = dtype.newbyteorder("=")

    if not str(path).lower().endswith(".gz"):
        size = path.stat().st_size
        if size < offset + plane * nz:
            raise VolumeError(f"{path}: {size} bytes, shorter than its header says ({offset + plane * nz}): "
                              "a truncated file")
        fd = os.open(path, os.O_RDONLY)

        def reader(region: tuple[slice, ...]) -> np.ndarray:
            zs = region[0] if nz > 1 else slice(0, 1)
            ys, xs = region[-2], region[-1]
            rows = (ys.stop - ys.start) * nx * dtype.itemsize
            out = np.empty((zs.stop - zs.start, ys.stop - ys.start, xs.stop - xs.start), native)
            for i, z in enumerate(range(zs.start, zs.stop)):
                data = os.pread(fd, rows, offset + z * plane + ys.start * nx * dtype.itemsize)
                out[i] = np.frombuffer(data, dtype).reshape(-1, nx)[:, xs]
            return out if nz > 1 else out[0]

        return Volume(path, "nifti", "zyx" if nz > 1 else "yx", spatial, spacing, units, native, None, reader, meta,
                      [lambda: os.close(fd)])
    return _staged(path, hdr, meta, spatial, spacing, units, native, dtype, offset, plane, nz, staged)


def _staged(path, hdr, meta, spatial, spacing, units, native, dtype, offset, plane, nz, staged) -> Volume:
    """A ``.nii.gz``: gzip cannot seek backwards without starting again, so its planes are
    decompressed once, in order, into a Zarr array (kept for a resumed run: ``complete``)."""
    import zarr

    closers = []
    if staged is None:
        staged = Path(tempfile.mkdtemp(prefix="restore-nifti-")) / "staged.zarr"
        closers.append(lambda: shutil.rmtree(staged.parent, ignore_errors=True))
    stamp = f"{path.stat().st_size}:{path.stat().st_mtime_ns}"
    shape3 = (nz,) + spatial[-2:]
    try:
        arr = zarr.open_array(staged, mode="r")
        done = arr.attrs.get("complete") == stamp
    except Exception:  # noqa: BLE001 - absent or half-made: made again
        done = False
    if not done:
        arr = zarr.create_array(staged, shape=shape3, chunks=(min(nz, STAGE_PLANES), min(shape3[1], 256),
                                                              min(shape3[2], 256)),
                                dtype=native, fill_value=0, overwrite=True)
        buf = []
        for k, data in enumerate(read_gzip_planes(path, offset, plane, nz)):
            buf.append(np.frombuffer(data, dtype).reshape(shape3[1:]))
            if len(buf) == STAGE_PLANES or k == nz - 1:
                arr[k + 1 - len(buf): k + 1] = np.stack(buf)
                buf.clear()
        arr.attrs["complete"] = stamp

    def reader(region: tuple[slice, ...]) -> np.ndarray:
        return np.asarray(arr[region]) if nz > 1 else np.asarray(arr[(0,) + tuple(region)])

    return Volume(path, "nifti", "zyx" if nz > 1 else "yx", spatial, spacing, units, native, None, reader, meta,
                  closers)


def write_nifti(vol: Volume, labels, out: Path, *, slab: int = STAGE_PLANES) -> None:
    """The (z, y, x) label array ``labels`` (zarr or numpy) as NIfTI ``out`` (gzipped for .gz),
    with ``vol``'s header: its affine and voxel sizes, intent "label". Written to a temporary
    name and renamed: a reader never sees half a file."""
    hdr = vol.meta["header"].copy()
    hdr.set_data_dtype(np.dtype(labels.dtype))
    hdr.set_slope_inter(1.0, 0.0)
    hdr.set_intent("label")
    hdr["cal_min"], hdr["cal_max"] = 0, 0
    hdr["vox_offset"] = int(hdr.sizeof_hdr) + 4  # the header, the 4-byte "no extensions" flag, the data
    disk = hdr.get_data_dtype()
    nz = labels.shape[0] if labels.ndim == 3 else 1
    tmp = out.with_name(f".{out.name}.tmp")
    opener = (lambda p: gzip.open(p, "wb", compresslevel=1)) if out.name.lower().endswith(".gz") else \
        (lambda p: open(p, "wb"))
    try:
        with opener(tmp) as f:
            f.write(hdr.binaryblock)
            f.write(b"\0" * 4)
            for z in range(0, nz, slab):
                block = np.asarray(labels[z: z + slab]) if labels.ndim == 3 else np.asarray(labels[:])
                f.write(block.astype(disk, copy=False).tobytes())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def read_gzip_planes(path: Path, offset: int, plane_bytes: int, planes: int):
    """The planes of a gzip-compressed NIfTI, in order (a generator of bytes, one plane each)."""
    with gzip.open(path, "rb") as f:
        skip = offset
        while skip:
            got = f.read(min(skip, 1 << 20))
            if not got:
                raise VolumeError(f"{path}: ends inside its header")
            skip -= len(got)
        for k in range(planes):
            data = f.read(plane_bytes)
            if len(data) != plane_bytes:
                raise VolumeError(f"{path}: the data ends at plane {k} of {planes} (a truncated file)")
            yield data
