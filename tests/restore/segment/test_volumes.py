"""Volumes block by block (restore.segment.blocks): the same masks as in memory, one label per
object across block borders, a resumed run, OME-Zarr/NIfTI/zipped outputs in the input's format
with its metadata, and one line for each kind of bad volume."""
from __future__ import annotations

import zipfile
from pathlib import Path
from unittest import mock

import nibabel as nib
import numpy as np
import pytest
import zarr
from ome_zarr.writer import write_image

from restore.cli import main
from restore.imageio import read_image
from restore.segment import blocks
from restore.segment.blocks import segment_volume
from restore.segment.postprocess import instance_scale
from restore.segment.segmenter import Segmenter
from restore.segment.volumes import VolumeError, open_volume
from tests import ROOT


@pytest.fixture(scope="module")
def seg() -> Segmenter:
    return Segmenter(diameter=None, tile=128)  # the bundled nuclei model


def spheres(shape=(16, 96, 96), radius=6, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A uint16 stack of bright balls that do not touch (on a jittered grid), and their labels."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    truth = np.zeros(shape, np.uint16)
    k = 0
    for cy in range(12, shape[1] - 8, 22):
        for cx in range(12, shape[2] - 8, 22):
            cz = rng.uniform(min(radius, shape[0] / 2), max(shape[0] - radius, shape[0] / 2))
            k += 1
            ball = (zz - cz) ** 2 + (yy - cy - rng.uniform(-2, 2)) ** 2 + (xx - cx - rng.uniform(-2, 2)) ** 2
            truth[ball < radius**2] = k
    image = np.where(truth > 0, 2500, 300) + rng.normal(0, 40, shape)
    return image.clip(0, 65535).astype(np.uint16), truth


def ome(path: Path, image: np.ndarray, axes: str, **kw) -> Path:
    write_image(image, zarr.open_group(path, mode="w"), axes=axes, scale_factors=[], **kw)
    return path


def labels_of(path: Path) -> np.ndarray:
    return np.asarray(zarr.open_group(path, mode="r")["0"][:])


def test_2d_blocks_give_the_in_memory_masks(seg, tmp_path):
    img = read_image(ROOT / "examples/nuclei/dsb2018_heldout.png")
    img = img if img.ndim == 2 else img.max(-1)
    src = open_volume(ome(tmp_path / "x.ome.zarr", img, "yx"))
    out = tmp_path / "x_mask.ome.zarr"
    summary = segment_volume(seg, src, out, instances=True, block=(64, 64), halo=(32, 32))
    got = labels_of(out)
    levels = tuple(summary["levels"])
    ref = seg(img, instances=True, levels=levels, factor=1.0, split=instance_scale(seg(img, levels=levels) > 0))
    assert summary["blocks"] == 8 and got.shape == img.shape
    assert ((got > 0) == (ref > 0)).mean() > 0.995
    # the objects are the same ones: each in-memory object has one block-wise label over >= 90% of it
    same = [np.bincount(got[ref == k]).max() / (ref == k).sum() for k in range(1, ref.max() + 1)]
    assert np.mean(np.array(same) >= 0.9) >= 0.9
    assert set(np.unique(got)) == set(range(got.max() + 1))  # numbered 1..N


def test_objects_across_block_borders_keep_one_label(seg, tmp_path):
    image, truth = spheres()
    out = tmp_path / "s_mask.ome.zarr"
    summary = segment_volume(seg, open_volume(ome(tmp_path / "s.ome.zarr", image, "zyx")), out, instances=True,
                             block=(6, 40, 40), halo=(6, 20, 20))
    got = labels_of(out)
    assert summary["blocks"] == 3 * 3 * 3 and summary["labels"] == got.max()
    owner = []
    for k in range(1, truth.max() + 1):  # every ball crosses a border; each is one object still
        counts = np.bincount(got[truth == k])
        assert counts.argmax() > 0 and counts.max() / (truth == k).sum() > 0.9
        owner.append(counts.argmax())
    assert len(set(owner)) == truth.max()  # and no two joined


def test_an_interrupted_run_resumes_from_its_blocks(seg, tmp_path):
    image, _ = spheres(shape=(8, 64, 64))
    src = ome(tmp_path / "r.ome.zarr", image, "zyx")
    whole = tmp_path / "whole_mask.ome.zarr"
    segment_volume(seg, open_volume(src), whole, instances=True, block=(8, 32, 32), halo=(4, 16, 16))

    out = tmp_path / "r_mask.ome.zarr"

    def stop_after_two(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        segment_volume(seg, open_volume(src), out, instances=True, block=(8, 32, 32), halo=(4, 16, 16),
                       progress=stop_after_two)
    assert not out.exists() and (tmp_path / ".r_mask.ome.zarr.partial").is_dir()
    calls = []
    real = blocks._block_labels
    with mock.patch.object(blocks, "_block_labels", lambda *a, **k: calls.append(a[3]) or real(*a, **k)):
        summary = segment_volume(seg, open_volume(src), out, instances=True, block=(8, 32, 32), halo=(4, 16, 16))
    assert summary["resumed"] and sorted(calls) == [2, 3]  # blocks 0 and 1 were not segmented again
    np.testing.assert_array_equal(labels_of(out), labels_of(whole))
    assert not (tmp_path / ".r_mask.ome.zarr.partial").exists()


def test_nifti_in_nifti_out_with_its_affine(seg, tmp_path):
    image, _ = spheres(shape=(8, 48, 64))
    affine = np.array([[0.5, 0, 0, -10], [0, 0.6, 0, 4], [0, 0, 2.0, 7], [0, 0, 0, 1]])
    ref = tmp_path / "ref_mask.ome.zarr"
    segment_volume(seg, open_volume(ome(tmp_path / "ref.ome.zarr", image, "zyx")), ref, instances=True,
                   block=(4, 32, 32), halo=(4, 16, 16))
    for name in ("ct.nii.gz", "ct.nii"):
        img = nib.Nifti1Image(image.transpose(2, 1, 0), affine)
        img.header.set_xyzt_units("mm")
        nib.save(img, tmp_path / name)
        vol = open_volume(tmp_path / name, staged=tmp_path / f".{name}.staged")
        assert vol.spatial == (8, 48, 64) and vol.spacing == pytest.approx((2.0, 0.6, 0.5))
        out = tmp_path / name.replace("ct", "ct_mask")
        segment_volume(seg, vol, out, instances=True, block=(4, 32, 32), halo=(4, 16, 16))
        back = nib.load(out)
        np.testing.assert_allclose(back.affine, affine)
        assert back.header.get_intent()[0] == "label" and back.get_data_dtype() == np.uint16
        assert back.header.get_xyzt_units()[0] == "mm"
        np.testing.assert_array_equal(np.asarray(back.dataobj).transpose(2, 1, 0), labels_of(ref))


def test_zipped_ome_zarr_gives_a_zipped_labels_image_with_the_input_metadata(seg, tmp_path):
    image, _ = spheres(shape=(6, 48, 48))
    folder = ome(tmp_path / "z.ome.zarr", image, "zyx",
                 scale={"z": 2.0, "y": 0.3, "x": 0.3})
    zipped = tmp_path / "z.ome.zarr.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            z.write(f, f.relative_to(folder).as_posix())
    out = tmp_path / "z_mask.ome.zarr.zip"
    segment_volume(seg, open_volume(zipped), out, block=(6, 48, 48))
    group = zarr.open_group(zarr.storage.ZipStore(out, mode="r"), mode="r")
    meta = group.attrs["ome"]
    assert meta["image-label"]["version"] == "0.5"
    (ms,) = meta["multiscales"]
    assert [a["name"] for a in ms["axes"]] == ["z", "y", "x"]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == pytest.approx([2.0, 0.3, 0.3])
    assert group["0"].dtype == np.uint8 and group["0"][:].max() == 1


def test_a_large_mask_gets_a_pyramid(tmp_path):
    from restore.segment.volume import Volume
    from restore.segment.zarr_io import finish_mask_group, new_mask_array

    vol = Volume(tmp_path / "big.ome.zarr", "ome-zarr", "zyx", (4, 1100, 600), (3.0, 1.0, 1.0), ("micrometer",) * 3,
                 np.dtype("uint16"), None, lambda r: None)
    arr = new_mask_array(tmp_path / "m", vol, np.dtype("uint16"), (4, 256, 256))
    data = np.arange(4 * 1100 * 600, dtype=np.uint32).reshape(4, 1100, 600) % 977
    arr[:] = data
    finish_mask_group(tmp_path / "m", vol, name="big labels", block=(4, 512, 512))
    group = zarr.open_group(tmp_path / "m", mode="r")
    (ms,) = group.attrs["ome"]["multiscales"]
    assert [d["path"] for d in ms["datasets"]] == ["0", "1", "2"]
    np.testing.assert_array_equal(group["1"][:], data[:, ::2, ::2])  # labels: nearest, no new values
    assert ms["datasets"][2]["coordinateTransformations"][0]["scale"] == [3.0, 4.0, 4.0]  # z anisotropic: kept


# --------------------------------------------------------------------------- bad volumes
def test_missing_chunks_are_refused_unless_asked(tmp_path):
    image, _ = spheres(shape=(8, 64, 64))
    path = ome(tmp_path / "m.ome.zarr", image, "zyx", storage_options={"chunks": (4, 32, 32)})
    (path / "s0" / "c" / "1" / "0" / "1").unlink()
    with pytest.raises(VolumeError, match=r"1 of 8 chunks are missing \(first: chunk \(1, 0, 1\)"):
        open_volume(path)
    assert open_volume(path, missing="fill").read((slice(4, 8), slice(0, 32), slice(32, 64))).max() == 0


def test_a_chunk_that_does_not_decode_names_its_region(tmp_path):
    image, _ = spheres(shape=(8, 64, 64))
    path = ome(tmp_path / "c.ome.zarr", image, "zyx", storage_options={"chunks": (4, 32, 32)})
    (path / "s0" / "c" / "0" / "1" / "0").write_bytes(b"not zstd at all")
    vol = open_volume(path)
    with pytest.raises(VolumeError, match=r"cannot read the region \[0:8, 32:64, 0:64\]") as e:
        vol.read((slice(0, 8), slice(32, 64), slice(0, 64)))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("case, words", [
    ("header", "not a readable NIfTI file"),
    ("truncated", "a truncated file"),
    ("4d", "cannot be told apart"),
])
def test_bad_nifti_one_line(tmp_path, case, words):
    data = np.zeros((8, 8, 4, 3 if case == "4d" else 1), np.int16)
    path = tmp_path / "v.nii"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    raw = bytearray(path.read_bytes())
    if case == "header":
        raw[344:348] = b"zzzz"  # the magic: neither n+1 nor ni1
        path.write_bytes(bytes(raw))
    elif case == "truncated":
        path.write_bytes(bytes(raw[:-100]))
    with pytest.raises(VolumeError, match=words) as e:
        open_volume(path)
    assert "\n" not in str(e.value)


def test_axes_that_cannot_be_told_apart(tmp_path):
    zarr.create_array(tmp_path / "plain.zarr", shape=(3, 32, 32), chunks=(3, 32, 32), dtype="uint8")[:] = 1
    with pytest.raises(VolumeError, match="cannot be told apart.*--axes"):
        open_volume(tmp_path / "plain.zarr")
    assert open_volume(tmp_path / "plain.zarr", axes="cyx").channels == 3
    ome(tmp_path / "t.ome.zarr", np.zeros((2, 8, 16, 16), np.uint8), "tzyx")
    with pytest.raises(VolumeError, match="2 time points"):
        open_volume(tmp_path / "t.ome.zarr")


# --------------------------------------------------------------------------- the command
def test_restore_segment_on_a_folder_of_volumes(tmp_path, capsys):
    image, _ = spheres(shape=(6, 48, 48))
    src = tmp_path / "in"
    ome(src / "a.ome.zarr", image, "zyx")
    (src / "sub").mkdir()
    nib.save(nib.Nifti1Image(image.transpose(2, 1, 0), np.eye(4)), src / "sub" / "b.nii.gz")
    (src / "broken.nii").write_bytes(b"\x00" * 400)
    (src / "cells.png").write_bytes((ROOT / "examples/nuclei/dsb2018_heldout.png").read_bytes())
    out = tmp_path / "out"
    code = main(["segment", str(src), "-o", str(out), "--instances", "--tile", "128", "--diameter", "none",
                 "--block", "6,32,32"])
    err = capsys.readouterr().err
    assert code == 1  # one volume failed
    assert sum(line.startswith("error:") for line in err.splitlines()) == 1
    assert "error: " + str(src / "broken.nii") in err and "NIfTI" in err
    assert "volumes: done 2, skipped 0, failed 1" in err and "segment: done 1," in err
    assert "ignored" not in err.split("segment: done 1,")[0]  # a store's chunk files are no inputs
    for f in ("a_mask.ome.zarr", "a_overlay.png", "sub/b_mask.nii.gz", "sub/b_overlay.png", "cells_mask.png"):
        assert (out / f).exists(), f
    assert not list(out.rglob(".*partial"))
    code = main(["segment", str(src / "a.ome.zarr"), "-o", str(out), "--skip-existing", "--tile", "128"])
    assert "volumes: done 0, skipped 1" in capsys.readouterr().err and code == 0


def test_the_mask_of_a_three_slice_tiff_stays_three_slices(tmp_path, capsys):
    import tifffile

    from restore.imageio import read_volume

    image, _ = spheres(shape=(3, 48, 48))
    tifffile.imwrite(tmp_path / "stack.tif", image, photometric="minisblack")
    assert main(["segment", str(tmp_path / "stack.tif"), "-o", str(tmp_path / "out"), "--tile", "128",
                 "--diameter", "none", "--quiet"]) == 0
    assert read_volume(tmp_path / "out" / "stack_mask.tif").shape == (3, 48, 48)  # not one RGB page
