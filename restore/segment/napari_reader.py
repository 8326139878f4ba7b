"""napari reader for ``restore segment``'s outputs, and the nuclei examples as napari sample data.

The reader takes ``<stem>_mask.png`` (8-bit classes or 16-bit instances), ``<stem>_mask.tif``
(a volume's labels) and the masks of volumes segmented block by block: ``<stem>_mask.ome.zarr``
(zipped too: ``.ome.zarr.zip``, ``.ozx``), read lazily, every level of its pyramid, at its voxel
size; ``<stem>_mask.nii(.gz)``, at its voxel size. A Labels layer named ``<stem>_mask``, the name napari gives a file's layer,
below it the sibling ``<stem>_overlay.<png|jpg|webp>`` as an RGB Image layer when it is there.
napari finds both through ``napari.yaml`` (the npe2 manifest), which names the functions below.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from restore.imageio import read_image
from restore.runners.args import OUTPUT_FORMATS

__all__ = ["SAMPLES", "examples_dir", "find_overlay", "get_reader", "read_masks"]

LayerData = tuple  # (data, layer keyword arguments, layer type): napari's LayerDataTuple
MASK_SUFFIXES = (".png", ".tif", ".tiff")  # the command writes PNG, and TIFF for volumes
STORE_SUFFIXES = (".ome.zarr", ".ome.zarr.zip", ".ozx", ".nii.gz", ".nii")  # volumes done block by block


def _mask_stem(path: str | Path) -> str | None:
    """``<stem>`` of ``<stem>_mask.<png|tif|tiff|ome.zarr|...>``; None for any other file."""
    p = Path(path)
    name = p.name.lower()
    for suffix in STORE_SUFFIXES:
        if name.endswith("_mask" + suffix) and (p.is_dir() == (suffix == ".ome.zarr")):
            return p.name[: -len("_mask" + suffix)]
    if p.suffix.lower() not in MASK_SUFFIXES or not p.stem.endswith("_mask") or p.is_dir():
        return None
    return p.stem[: -len("_mask")]


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """npe2 reader contribution: ``read_masks`` when every path is a mask of ``restore segment``."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths or any(_mask_stem(p) is None for p in paths):
        return None  # not ours: napari asks its other readers
    return read_masks


def read_masks(path: str | list[str]) -> list[LayerData]:
    """Each mask as a Labels layer, after its overlay (when there is one) as an RGB Image layer."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    layers: list[LayerData] = []
    for p in map(Path, paths):
        if p.name.lower().endswith(STORE_SUFFIXES):
            layers.extend(_volume_layers(p))
            continue
        labels = _read_labels(p)
        overlay = find_overlay(p)
        if overlay is not None:
            layers.append(_overlay_layer(overlay, labels))
        layers.append((labels, {"name": p.stem, "metadata": {"source": str(p)}}, "labels"))
    return layers


def _volume_layers(path: Path) -> list[LayerData]:
    """A volume's mask: OME-Zarr as its pyramid of lazy zarr arrays (napari reads the chunks it
    shows), NIfTI into memory in (z, y, x) order; at the voxel size either says; the overlay of
    the middle plane at its depth and scale."""
    import zarr

    name = f"{_mask_stem(path)}_mask"
    if path.name.lower().endswith((".nii", ".nii.gz")):
        import nibabel as nib

        img = nib.load(path)
        data = np.asarray(img.dataobj)
        data = data.reshape(data.shape[:3]).transpose(2, 1, 0) if data.ndim >= 3 else data.T
        scale = tuple(float(z) for z in img.header.get_zooms()[: data.ndim])[::-1]
        levels: list | np.ndarray = data
        shape = data.shape
    else:
        store = zarr.storage.LocalStore(path, read_only=True) if path.is_dir() else zarr.storage.ZipStore(path, mode="r")
        group = zarr.open_group(store, mode="r")
        attrs = dict(group.attrs)
        (ms, *_) = attrs.get("ome", attrs)["multiscales"]
        levels = [group[d["path"]] for d in ms["datasets"]]
        scale = tuple(next(t["scale"] for t in ms["datasets"][0]["coordinateTransformations"] if t["type"] == "scale"))
        shape = levels[0].shape
        levels = levels if len(levels) > 1 else levels[0]
    layers: list[LayerData] = []
    overlay = find_overlay(path)
    if overlay is not None:
        rgb = read_image(overlay, mode="rgb8")
        step = shape[-1] / rgb.shape[1]  # the preview is at most 2048 px a side
        meta: dict[str, Any] = {"name": overlay.stem, "rgb": True, "metadata": {"source": str(overlay)}}
        meta["scale"] = tuple(scale[:-2]) + (scale[-2] * step, scale[-1] * step)
        if len(shape) == 3:
            rgb = rgb[None]
            meta["translate"] = (shape[0] // 2 * scale[0], 0, 0)
        layers.append((rgb, meta, "image"))
    layers.append((levels, {"name": name, "scale": scale, "multiscale": isinstance(levels, list),
                            "metadata": {"source": str(path)}}, "labels"))
    return layers


def _read_labels(path: Path) -> np.ndarray:
    """The label map as written: (H, W), or (D, H, W) from a TIFF; integers only."""
    if path.suffix.lower() == ".png":
        labels = read_image(path)
    else:
        # The raw array, as tifffile wrote it (restore.imagewrite.write_tiff): masks written before
        # it said "grey" store a stack of 3 or 4 slices as one planar page that restore.imageio
        # would take for RGB(A).
        labels = tifffile.imread(path)
    if labels.ndim not in (2, 3) or path.suffix.lower() == ".png" and labels.ndim != 2 \
            or labels.dtype.kind not in "uib":
        raise ValueError(f"{path}: not a label map of restore segment (shape {labels.shape}, {labels.dtype})")
    return labels.astype(np.uint8) if labels.dtype == bool else labels


def find_overlay(mask: str | Path) -> Path | None:
    """The ``<stem>_overlay`` the command wrote beside ``mask`` (``--format png|jpg|webp``), if any."""
    mask = Path(mask)
    stem = _mask_stem(mask)
    for ext in OUTPUT_FORMATS.values():
        candidate = mask.with_name(f"{stem}_overlay{ext}")
        if candidate.is_file():
            return candidate
    return None


def _overlay_layer(path: Path, labels: np.ndarray) -> LayerData:
    """The overlay as an RGB Image. A volume's overlay is its middle slice (SegmentJob.save): it
    goes at that depth, as a one-slice stack, rather than showing at every slice of the labels."""
    rgb = read_image(path, mode="rgb8")
    meta: dict[str, Any] = {"name": path.stem, "rgb": True, "metadata": {"source": str(path)}}
    if labels.ndim == 3:
        rgb = rgb[None]
        meta["translate"] = (labels.shape[0] // 2, 0, 0)
    return rgb, meta, "image"


# -- sample data ---------------------------------------------------------------------------------
# The examples of ``make demo`` (examples/nuclei/README.md: sources, licences, pixel sizes). They
# are not package data: they are found beside the ``restore`` package, which works from a source
# checkout and from the editable install (``make install``: ``pip install -e``), where restore/
# is the checkout's folder. An installed wheel has no examples/, and the sample says so.
SAMPLES: dict[str, dict[str, Any]] = {
    "dsb2018": {"file": "dsb2018_heldout.png", "display_name": "Nuclei (DSB 2018, held out)"},
    "cells3d": {"file": "cells3d_z34_heldout.png", "display_name": "Nuclei (cells3d slice, confocal)",
                "um_per_px": 0.26},
    "scratch_assay": {"file": "scratch_assay_unseen.png", "display_name": "Nuclei (scratch assay, unseen)",
                      "um_per_px": 0.619},
    "neuron": {"file": "neuron_dapi_unseen.png", "display_name": "Nucleus (neuron DAPI, unseen)",
               "um_per_px": 0.124},
}


def examples_dir() -> Path:
    """examples/nuclei of the checkout this ``restore`` package comes from."""
    import restore

    return Path(restore.__file__).resolve().parents[1] / "examples" / "nuclei"


def _sample(key: str) -> list[LayerData]:
    spec = SAMPLES[key]
    path = examples_dir() / spec["file"]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the nuclei examples come with the source checkout "
                                "(pip install -e .), not with an installed wheel")
    # The raw intensities, as the command reads them (8- or 16-bit); napari sets the contrast.
    meta: dict[str, Any] = {"name": path.stem}
    if "um_per_px" in spec:  # the microscope's pixel size, so napari's scale bar reads microns
        meta.update(scale=(spec["um_per_px"],) * 2, units=("um", "um"))
    return [(read_image(path), meta, "image")]


def sample_dsb2018() -> list[LayerData]:
    """DSB 2018 nuclei, 256 x 128, 8-bit, ~24 px across."""
    return _sample("dsb2018")


def sample_cells3d() -> list[LayerData]:
    """cells3d nuclei, one confocal slice, 256 x 96, 16-bit, ~48 px across."""
    return _sample("cells3d")


def sample_scratch_assay() -> list[LayerData]:
    """Hoechst nuclei of a scratch assay (a microscope never trained on), 210 x 288, ~12 px."""
    return _sample("scratch_assay")


def sample_neuron() -> list[LayerData]:
    """One large DAPI neuron nucleus (~90 px), 256 x 256, 16-bit."""
    return _sample("neuron")
