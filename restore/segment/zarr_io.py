"""Zarr and OME-Zarr stores (folders or zipped) as ``Volume``s, read a region at a time (zarr
reads only the chunks a region touches), and the checks a stranger's store needs first: axes
that can be told apart, every chunk present, chunks of a size that can be decoded."""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from .volume import Volume, VolumeError
from .zipped import check_zipped_store

__all__ = ["open_zarr"]

KNOWN_AXES = "tczyx"
MAX_CHUNK_BYTES = 1 << 30  # one chunk is decoded whole: a stranger's 1e12-voxel chunk is refused, not allocated


# A zip's members are the chunks as zarr encoded them and metadata, plus pyramid levels and any
# labels stored beside the image: their declared total may be up to twice the decoded cap.
ZIP_SLACK = 2


def _store(path: Path, max_bytes: int | None):
    import zarr.storage

    if path.is_dir():
        return zarr.storage.LocalStore(path, read_only=True)
    check_zipped_store(path, None if max_bytes is None else max_bytes * ZIP_SLACK)  # from its directory only
    return zarr.storage.ZipStore(path, mode="r")


def open_zarr(path: Path, axes: str | None, missing: str, max_bytes: int | None = None) -> Volume:
    import zarr

    store = _store(path, max_bytes)
    try:
        node = zarr.open(store=store, mode="r")
    except Exception as e:  # noqa: BLE001 - zarr's errors for a folder that is no store vary
        store.close()
        raise VolumeError(f"{path}: not a Zarr store ({type(e).__name__}: {e})") from None
    meta: dict[str, Any] = {}
    if isinstance(node, zarr.Array):
        arr, kind = node, "zarr"
        names = axes or _guess_axes(path, arr.shape)
        spacing = [1.0] * len(names)
        units: list[str | None] = [None] * len(names)
    else:
        arr, names, spacing, units, meta = _ome_level0(path, node)
        kind = "ome-zarr"
        if axes and axes != names:
            store.close()
            raise VolumeError(f"{path}: --axes {axes} disagrees with the store's own axes {names}")
    names = _check_axes(path, names, arr.shape)
    _check_chunks(path, arr, missing)
    meta.setdefault("zarr_format", arr.metadata.zarr_format)
    spatial_axes = [a for a in names if a in "zyx"]
    shape = dict(zip(names, arr.shape))

    def reader(region: tuple[slice, ...]) -> np.ndarray:
        by_axis = dict(zip(spatial_axes, region))
        index = tuple(0 if a == "t" else by_axis.get(a, slice(None)) for a in names)
        kept = [a for a in names if a != "t"]
        block = np.asarray(arr[index])
        return block.transpose([kept.index(a) for a in spatial_axes] + ([kept.index("c")] if "c" in kept else []))

    keep = [names.index(a) for a in spatial_axes]
    return Volume(path, kind, names, tuple(shape[a] for a in spatial_axes), tuple(spacing[i] for i in keep),
                  tuple(units[i] for i in keep), np.dtype(arr.dtype), shape.get("c"), reader, meta, [store.close])


def _ome_level0(path: Path, group) -> tuple[Any, str, list[float], list[str | None], dict]:
    """The full-resolution array of an OME-Zarr image, its axes, voxel size and units."""
    attrs = dict(group.attrs)
    ome = attrs.get("ome", attrs)  # NGFF 0.5 nests under "ome"; 0.4 does not
    multiscales = ome.get("multiscales")
    if not multiscales or not isinstance(multiscales, list):
        raise VolumeError(f"{path}: a Zarr group without OME-Zarr 'multiscales' metadata (open the image's own "
                          "group, or an array with --axes)")
    ms = multiscales[0]
    raw_axes = ms.get("axes")
    try:
        names = "".join(a["name"] if isinstance(a, dict) else str(a) for a in raw_axes)
        units = [a.get("unit") if isinstance(a, dict) else None for a in raw_axes]
        level = ms["datasets"][0]
        arr = group[level["path"]]
    except (KeyError, TypeError, IndexError) as e:
        raise VolumeError(f"{path}: malformed OME-Zarr 'multiscales' metadata ({e})") from None
    scale = [1.0] * len(names)
    for t in list(level.get("coordinateTransformations") or []) + list(ms.get("coordinateTransformations") or []):
        if isinstance(t, dict) and t.get("type") == "scale" and len(t.get("scale", [])) == len(names):
            scale = [a * float(b) for a, b in zip(scale, t["scale"])]
    version = ome.get("version") or ms.get("version") or "0.4"
    return arr, names, scale, units, {"ome_version": str(version), "name": ms.get("name")}


def _guess_axes(path: Path, shape: tuple[int, ...]) -> str:
    if len(shape) == 2:
        return "yx"
    raise VolumeError(f"{path}: a plain Zarr array of shape {tuple(shape)} has no axis names, and its axes cannot be "
                      f"told apart (z, y, x or c, y, x?): pass --axes, e.g. --axes {'zyx' if len(shape) == 3 else 'czyx'}")


def _check_axes(path: Path, names: str, shape: tuple[int, ...]) -> str:
    names = names.lower()
    bad = [a for a in names if a not in KNOWN_AXES]
    if bad or len(set(names)) != len(names) or len(names) != len(shape) or not {"y", "x"} <= set(names):
        raise VolumeError(f"{path}: axes {names!r} for shape {tuple(shape)} cannot be told apart (expected names "
                          "from t, c, z, y, x, each once, y and x among them, one per dimension)")
    if "t" in names and shape[names.index("t")] > 1:
        raise VolumeError(f"{path}: {shape[names.index('t')]} time points; segment one at a time (a single t)")
    return names


def _check_chunks(path: Path, arr, missing: str) -> None:
    """Refuse (``missing="error"``) a store whose chunks are not all there: zarr would read each
    absent one as zeros, and a partly copied store would give masks with holes and no word."""
    grid = arr.cdata_shape if arr.shards is None else tuple(-(-n // s) for n, s in zip(arr.shape, arr.shards))
    chunk = arr.chunks if arr.shards is None else arr.shards
    if int(np.prod(arr.chunks)) * arr.dtype.itemsize > MAX_CHUNK_BYTES:
        raise VolumeError(f"{path}: chunks of {arr.chunks} voxels ({int(np.prod(arr.chunks)) * arr.dtype.itemsize} "
                          f"bytes) are larger than {MAX_CHUNK_BYTES} bytes")
    if missing == "fill":
        return
    present = arr.nchunks_initialized
    total = int(np.prod(grid))
    if present >= total:
        return
    first = next((c for c in itertools.product(*map(range, grid)) if not _chunk_exists(arr, c)), None)
    where = f" (first: chunk {first}, voxels from {tuple(i * s for i, s in zip(first, chunk))})" if first else ""
    raise VolumeError(f"{path}: {total - present} of {total} chunks are missing{where}: a partial copy? "
                      "(--missing-chunks fill reads them as the fill value, as a store written sparse means)")


def _chunk_exists(arr, coords: tuple[int, ...]) -> bool:
    from zarr.core.sync import sync

    key = arr.metadata.encode_chunk_key(coords)
    return bool(sync(arr.store_path.store.exists(f"{arr.store_path.path}/{key}".lstrip("/"))))


# --------------------------------------------------------------------------- the mask's store
def _format(vol: Volume):
    """The input's OME-Zarr version where it was OME-Zarr 0.4 (zarr v2: older viewers read only
    that), else the current one (0.5, zarr v3)."""
    from ome_zarr.format import FormatV04, FormatV05

    return FormatV04() if vol.meta.get("zarr_format") == 2 else FormatV05()


def new_mask_array(path: Path, vol: Volume, dtype: np.dtype, chunks: tuple[int, ...]):
    """The full-resolution array ("0") of a new OME-Zarr labels image at ``path`` (a folder)."""
    import zarr

    fmt = _format(vol)
    group = zarr.open_group(path, mode="w", zarr_format=fmt.zarr_format)
    extra = {"dimension_names": list(_spatial_names(vol))} if fmt.zarr_format == 3 else {}
    return group.create_array("0", shape=vol.spatial, chunks=chunks, dtype=dtype, fill_value=0, **extra)


def _spatial_names(vol: Volume) -> str:
    return "zyx"[-len(vol.spatial):]


def finish_mask_group(path: Path, vol: Volume, *, name: str, block: tuple[int, ...]) -> None:
    """Write the pyramid (each level half the one before in y and x, and in z where z's voxels
    are no longer than the plane's: a viewer of a large volume reads the level it shows), then
    the OME-Zarr metadata: ``multiscales`` with the input's axes, units and voxel size, and
    ``image-label`` (napari and the OME-Zarr readers open it as labels)."""
    import zarr
    from ome_zarr.writer import add_metadata, write_multiscales_metadata

    fmt = _format(vol)
    group = zarr.open_group(path, mode="r+", zarr_format=fmt.zarr_format)
    scale = list(vol.spacing)
    datasets = [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": list(scale)}]}]
    level, prev = 0, group["0"]
    while max(prev.shape[-2:]) > 512:
        factors = [1] * (len(scale) - 2) + [2, 2]
        if len(scale) == 3 and prev.shape[0] > 1 and scale[0] <= scale[-1] * 1.01:
            factors[0] = 2  # z too, once its voxels are no longer than the plane's
        level += 1
        shape = tuple(-(-n // f) for n, f in zip(prev.shape, factors))
        extra = {"dimension_names": list(_spatial_names(vol))} if fmt.zarr_format == 3 else {}
        arr = group.create_array(str(level), shape=shape, chunks=tuple(min(c, n) for c, n in zip(prev.chunks, shape)),
                                 dtype=prev.dtype, fill_value=0, **extra)
        _downsample(prev, arr, factors, block)
        scale = [s * f for s, f in zip(scale, factors)]
        datasets.append({"path": str(level), "coordinateTransformations": [{"type": "scale", "scale": list(scale)}]})
        prev = arr
    axes = [{"name": a, "type": "space", **({"unit": u} if u else {})} for a, u in zip(_spatial_names(vol), vol.units)]
    write_multiscales_metadata(group, datasets, fmt=fmt, axes=axes, name=name)
    add_metadata(group, {"image-label": {"version": fmt.version, "source": {"image": str(vol.path.name)}}}, fmt=fmt)


def _downsample(src, dst, factors: list[int], block: tuple[int, ...]) -> None:
    """``dst = src[::f0, ::f1, ...]`` (labels: nearest, no new values), a block at a time."""
    step = [max(1, b // f) for b, f in zip(block, factors)]
    for start in itertools.product(*(range(0, n, s) for n, s in zip(dst.shape, step))):
        out = tuple(slice(a, min(a + s, n)) for a, s, n in zip(start, step, dst.shape))
        src_region = tuple(slice(o.start * f, o.stop * f, f) for o, f in zip(out, factors))
        dst[out] = np.asarray(src[tuple(slice(r.start, r.stop) for r in src_region)])[
            tuple(slice(None, None, f) for f in factors)]
