"""The Segment tab's NIfTI and zipped OME-Zarr uploads (issue 38; apps/segment_volumes.py): the mask
downloads in the upload's own format, the caps refuse an oversized volume and a zip bomb from
their headers, and a bad file is one line in the status that leaves nothing behind, the next
request working. The handler is called directly, as the page calls it (the bundled nuclei model,
tile 128, no diameter: a few seconds on a CPU)."""
from __future__ import annotations

import gzip
import re
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import zarr
from PIL import Image

pytest.importorskip("gradio")
import gradio as gr
from ome_zarr.writer import write_image
from restore.apps.handlers import Handlers
from restore.apps.runtime import Runtime
from restore.apps.segment_volumes import volume_cap

from restore.segment import zipped
from restore.segment.volume import VolumeError

SEGMENT = ("nuclei", 128, "none", True, 8, False, False)  # model, tile, diameter, instances, min size, holes, CRF
AFFINE = np.array([[0.5, 0, 0, -10], [0, 0.6, 0, 4], [0, 0, 2.0, 7], [0, 0, 0, 1]])


def balls(shape=(6, 48, 48), radius=7, seed=0) -> np.ndarray:
    """A uint16 stack of 9 bright balls (3 x 3, through every plane) on a noisy background, (z, y, x)."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    inside = np.zeros(shape, bool)
    for cy in (9, 24, 39):
        for cx in (9, 24, 39):
            inside |= (zz - shape[0] / 2) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
    return (np.where(inside, 2500, 300) + rng.normal(0, 40, shape)).clip(0, 65535).astype(np.uint16)


def nifti(path: Path, image: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(image.transpose(2, 1, 0), AFFINE), path)  # NIfTI: x fastest
    return path


def zipped_ome(path: Path, image: np.ndarray, drop: str | None = None, extra: dict[str, bytes] | None = None,
               **kw) -> Path:
    """``image`` as an OME-Zarr zipped with its root at the zip's root (less the member ``drop``)."""
    folder = path.with_name(path.name + ".src")
    write_image(image, zarr.open_group(folder, mode="w"), axes="zyx", scale_factors=[], **kw)
    with zipfile.ZipFile(path, "w") as z:
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            name = f.relative_to(folder).as_posix()
            if name != drop:
                z.write(f, name)
        for name, data in (extra or {}).items():
            z.writestr(name, data, zipfile.ZIP_DEFLATED)
    return path


@pytest.fixture(scope="module")
def h() -> Handlers:
    return Handlers(Runtime("cpu", max_seconds=0))


class Progress:
    def __init__(self) -> None:
        self.calls: list = []

    def __call__(self, value, desc=None, unit=None, **_) -> None:
        self.calls.append(value)


def refused(fn, *args) -> str:
    with pytest.raises(gr.Error) as err:
        fn(*args)
    message = err.value.message
    assert "\n" not in message and not re.search(r"(^|[\s'\"(])/\w", message), message  # one line, no server folder
    return message


def test_the_upload_filter_takes_the_volume_formats():
    from gradio_client.utils import is_valid_file
    from restore.apps.tabs import IMAGE_TYPES, VOLUME_TYPES

    for name in ("ct.nii", "ct.NII.GZ", "cells.ome.zarr.zip", "cells.zarr.zip", "cells.ozx", "stack.tif"):
        assert is_valid_file(name, IMAGE_TYPES + VOLUME_TYPES), name
    assert not is_valid_file("notes.zip", IMAGE_TYPES + VOLUME_TYPES)


def test_nifti_in_nifti_out_with_its_affine(h, tmp_path):
    src = nifti(tmp_path / "ct.nii.gz", balls())
    progress = Progress()
    shown, mask, table, status = h.segment(str(src), *SEGMENT, progress=progress)
    assert Path(mask).name == "ct_mask.nii.gz"
    back = nib.load(mask)
    np.testing.assert_allclose(back.affine, AFFINE)
    assert back.shape == (48, 48, 6) and back.header.get_intent()[0] == "label"
    labels = np.asarray(back.dataobj)
    n = len(np.unique(labels)) - 1
    assert 6 <= n <= 15  # 9 balls: the model's count is its own business (tests/restore/segment), a sane range here
    rows = {r[0]: r for r in table}
    assert int(rows["objects"][3]) == n and rows["objects"][1] == np.count_nonzero(labels)
    assert np.asarray(Image.open(shown)).shape[:2] == (48, 48)  # the middle plane
    assert status.startswith("nuclei.safetensors: ct.nii.gz, 48x48 px, 6 slices") and f"{n} objects" in status
    assert (1, 1) in progress.calls or any(isinstance(c, tuple) and c[0] == c[1] for c in progress.calls)
    assert not any(p.name.startswith(".") for p in Path(mask).parent.iterdir())  # no work folder, no staged copy


def test_zipped_ome_zarr_in_zipped_ome_zarr_out(h, tmp_path):
    src = zipped_ome(tmp_path / "cells.ome.zarr.zip", balls(), scale={"z": 2.0, "y": 0.3, "x": 0.3})
    _, mask, table, status = h.segment(str(src), "nuclei", 128, "none", False, 8, False, False)
    assert Path(mask).name == "cells_mask.ome.zarr.zip"
    group = zarr.open_group(zarr.storage.ZipStore(mask, mode="r"), mode="r")
    meta = group.attrs["ome"]
    assert "image-label" in meta
    (ms,) = meta["multiscales"]
    assert [a["name"] for a in ms["axes"]] == ["z", "y", "x"]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == pytest.approx([2.0, 0.3, 0.3])
    labels = group["0"][:]
    assert labels.shape == (6, 48, 48) and labels.max() == 1
    assert [r[0] for r in table] == ["background", "foreground"] and table[1][1] == np.count_nonzero(labels)
    assert "cells_mask.ome.zarr.zip" in status


def test_an_oversized_volume_is_refused_from_its_header(tmp_path):
    small = Handlers(Runtime("cpu", max_pixels=4000, max_seconds=0))  # 16,000 bytes of voxels
    assert volume_cap(small.rt) == 16_000
    image = balls()  # 27,648 bytes
    message = refused(small.segment, str(nifti(tmp_path / "big.nii.gz", image)), *SEGMENT)
    assert message.startswith("big.nii.gz: 0.0 MiB of voxels, more than") and "allowed here" in message
    message = refused(small.segment, str(nifti(tmp_path / "big.nii", image)), *SEGMENT)
    assert message.startswith("big.nii: ") and "allowed here" in message
    message = refused(small.segment, str(zipped_ome(tmp_path / "big.ozx", image)), *SEGMENT)
    assert message.startswith("big.ozx: ") and "allowed here" in message
    assert not list(small.out_root.iterdir())  # nothing kept of a refused request


def test_a_zip_bomb_is_refused_from_its_directory(tmp_path):
    mid = Handlers(Runtime("cpu", max_pixels=100_000, max_seconds=0))  # 400 kB of voxels, 800 kB of zip
    bomb = zipped_ome(tmp_path / "bomb.ome.zarr.zip", balls(), extra={"s0/zeros": bytes(8 << 20)})
    assert bomb.stat().st_size < 200_000
    message = refused(mid.segment, str(bomb), *SEGMENT)
    assert message == "bomb.ome.zarr.zip: its files unzip to 8.0 MiB, more than the 0.8 MiB allowed here"


def test_zip_directory_checks(tmp_path, monkeypatch):
    path = tmp_path / "x.ozx"
    for name in ("../evil", "/etc/evil", "a/../../evil", "C:\\evil", "a\\..\\evil"):
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("zarr.json", b"{}")
            z.writestr(zipfile.ZipInfo(name), b"x")
        with pytest.raises(VolumeError, match="absolute, or climbing out"):
            zipped.check_zipped_store(path, 1 << 20)
    with zipfile.ZipFile(path, "w") as z:
        for i in range(4):
            z.writestr(f"c/{i}", b"x")
    monkeypatch.setattr(zipped, "MAX_MEMBERS", 3)
    with pytest.raises(VolumeError, match="4 files in the zip, more than the 3"):
        zipped.check_zipped_store(path, 1 << 20)
    monkeypatch.setattr(zipped, "MAX_MEMBERS", 4)
    assert zipped.check_zipped_store(path, 1 << 20) is None


def _broken_header(path: Path) -> Path:
    raw = bytearray(nifti(path.with_suffix(""), balls()).read_bytes())
    raw[344:348] = b"zzzz"  # the magic: neither n+1 nor ni1
    path.write_bytes(gzip.compress(bytes(raw), compresslevel=1))
    return path


def _not_ome(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("notes.txt", "no store here")
    return path


def _not_a_zip(path: Path) -> Path:
    path.write_bytes(b"PK\x03\x04 not really a zip")
    return path


def _missing_chunk(path: Path) -> Path:
    return zipped_ome(path, balls(), drop="s0/c/0/1/0", storage_options={"chunks": (6, 24, 24)})


def test_a_bad_volume_is_one_line_and_the_next_request_works(h, tmp_path):
    for name, make, words in [("bad.nii.gz", _broken_header, "bad.nii.gz: not a readable NIfTI file"),
                              ("bad.ome.zarr.zip", _not_ome, "bad.ome.zarr.zip: not a Zarr store"),
                              ("bad.ozx", _not_a_zip, "bad.ozx: not a zipped Zarr store"),
                              ("bad.zarr.zip", _missing_chunk, "bad.zarr.zip: 1 of 4 chunks are missing")]:
        before = set(h.out_root.iterdir())
        message = refused(h.segment, str(make(tmp_path / name)), *SEGMENT)
        assert message.startswith(words), message
        assert set(h.out_root.iterdir()) == before  # the failed request's folder is gone
    _, mask, _, _ = h.segment(str(nifti(tmp_path / "good.nii", balls())), *SEGMENT)
    assert Path(mask).name == "good_mask.nii" and nib.load(mask).shape == (48, 48, 6)


def test_the_time_budget_stops_a_volume(h, tmp_path, monkeypatch):
    monkeypatch.setattr(h.rt, "max_seconds", 1e-3)
    before = set(h.out_root.iterdir())
    message = refused(h.segment, str(nifti(tmp_path / "slow.nii", balls())), *SEGMENT)
    assert message.startswith("stopped: the segmentation took longer than the 0.001 s"), message
    assert set(h.out_root.iterdir()) == before
