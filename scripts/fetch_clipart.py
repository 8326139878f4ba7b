#!/usr/bin/env python
"""Fetch the colour clip art that trains and tests the bundled sketch colorizer.

The images ship in the Debian package ``openclipart-png`` (Open Clip Art Library 0.18, a
public-domain dedication): `apt-get download` + `dpkg-deb -x`, nothing installed.

    python scripts/fetch_clipart.py [--out data/clipart] [--force] [--any-version]

Layout written (RGB 8-bit PNG, transparent parts composited on white, the longer side
downscaled to <= 256 px with area averaging):

    data/clipart/train/<category>_<name>.png   training images
    data/clipart/test/<category>_<name>.png    held-out images (~10%, fixed by a hash of the name)
    data/clipart/test_masks/<same name>.png    their exact foreground (alpha > 127), 0/255
    data/clipart/SOURCES.json                  the archive (version, sha256, licence), per-file origin
    data/clipart/archives/                     the downloaded .deb (cache)

What is kept, of the 8,121 PNGs (6,900 files and 1,221 links between categories):
  - colour art: at least 5% of the foreground is saturated (HSV S > 0.25, V > 0.2); black and
    white drawings, silhouettes and grey icons are left out (nothing to learn about colour);
  - at least 128 px on the shorter side and 12% foreground (small icons and thin rules are out);
  - one copy of each picture: links and identical files by the md5 of the bytes, resized or
    re-exported copies by a 16x16 thumbnail (mean absolute difference < NEAR / 255 to a kept one).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere
from restore.models.manifest import sha256  # noqa: E402

PACKAGE = "openclipart-png"
VERSION = "1:0.18+dfsg-19"  # Debian bookworm
DEB_SHA256 = "f07f1545a2970c2cf3fa339bc2405da1a95cf2b1827bfa05bf73eb1c20291c02"
LICENCE = "public domain (Creative Commons Public Domain Dedication / Certification; see the package's copyright file)"
ROOT = "usr/share/openclipart/png"
MAX_SIDE = 256
MIN_SIDE = 128
MIN_FOREGROUND = 0.12
MIN_COLOURFUL = 0.05
NEAR = 5.0  # thumbnails closer than this (0-255 scale, mean over pixels) are one picture
TEST_EVERY = 10  # a name goes to test when its sha1 is 0 modulo this


def download_deb(dest: Path, any_version: bool, package: str = PACKAGE, version: str = VERSION,
                 expected: str = DEB_SHA256) -> dict:
    """`apt-get download` the pinned .deb into ``dest`` (cached) and check its sha256."""
    found = sorted(dest.glob(f"{package}_*.deb"))
    if not found:
        cmd = ["apt-get", "download", package if any_version else f"{package}={version}"]
        print("$", " ".join(cmd), flush=True)
        if subprocess.run(cmd, cwd=dest).returncode != 0:
            if os.geteuid() == 0:  # the package lists may be missing (fresh container)
                subprocess.run(["apt-get", "update"], check=True)
            subprocess.run(cmd, cwd=dest, check=True)
        found = sorted(dest.glob(f"{package}_*.deb"))
    deb = found[-1]
    got = sha256(deb)
    if got != expected and not any_version:
        deb.unlink()  # never keep an unverified file under the real name
        sys.exit(f"sha256 mismatch for {deb.name}: expected {expected}, got {got} (--any-version accepts it)")
    version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    return {"file": deb.name, "version": version, "sha256": got, "path": deb}


def composite(im: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 over white, foreground bool). Without alpha, the foreground is the non-white.
    Images over 4x the kept size are first reduced by an integer factor (box filter) after
    compositing, in Pillow's uint8 code: a few are 100+ MP."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        alpha = rgba.getchannel("A")
        rgb = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    else:
        rgb, alpha = im.convert("RGB"), None
    factor = max(1, max(im.size) // (4 * MAX_SIDE))
    if factor > 1:
        rgb = rgb.reduce(factor)
        alpha = alpha.reduce(factor) if alpha is not None else None
    arr = np.asarray(rgb)
    return arr, (np.asarray(alpha) > 127) if alpha is not None else (arr < 250).any(axis=2)


def colourful_fraction(rgb: np.ndarray, fg: np.ndarray) -> float:
    """Share of foreground pixels with HSV saturation > 0.25 and value > 0.2."""
    x = rgb.astype(np.float32) / 255
    mx, mn = x.max(axis=2), x.min(axis=2)
    sat = (mx - mn) / np.maximum(mx, 1e-6)
    return float(((sat > 0.25) & (mx > 0.2) & fg).sum() / max(1, fg.sum()))


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """16x16x3 float in [0, 1]: nearly equal for resized or re-exported copies of one picture."""
    return np.asarray(Image.fromarray(rgb).resize((16, 16), Image.Resampling.BOX), dtype=np.float32) / 255


def downscale(rgb: np.ndarray, fg: np.ndarray, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = fg.shape
    if max(h, w) <= max_side:
        return rgb, fg
    s = max_side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BOX))
    fg = np.asarray(Image.fromarray(fg.astype(np.uint8) * 255).resize(size, Image.Resampling.BOX)) > 127
    return rgb, fg


def is_test(name: str) -> bool:
    return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) % TEST_EVERY == 0


def _save(array: np.ndarray, path: Path) -> None:
    tmp = path.with_suffix(".tmp.png")
    Image.fromarray(array).save(tmp)
    os.replace(tmp, path)


def select(root: Path, member_root: str = ROOT, known: np.ndarray | None = None) -> tuple[list[dict], dict[str, int]]:
    """Walk the extracted package; returns the kept items and a count of each reason to drop.
    ``known``: thumbnails (N x 16 x 16 x 3) of pictures kept elsewhere, dropped as near duplicates."""
    kept, dropped = [], {"link or identical file": 0, "too small": 0, "little foreground": 0,
                         "not colourful": 0, "near duplicate": 0, "unreadable or over 179 MP": 0}
    seen_md5: set[str] = set()
    thumbs = np.zeros((0, 16, 16, 3), np.float32) if known is None else np.asarray(known, np.float32)
    for f in sorted(root.rglob("*.png")):
        rel = f.relative_to(root)
        data = f.read_bytes()  # a link reads its target: the md5 catches it
        md5 = hashlib.md5(data).hexdigest()
        if f.is_symlink() or md5 in seen_md5:
            dropped["link or identical file"] += 1
            continue
        seen_md5.add(md5)
        try:
            with Image.open(f) as im:
                if min(im.size) < MIN_SIDE:
                    dropped["too small"] += 1
                    continue
                rgb, fg = composite(im)
        except (OSError, ValueError, Image.DecompressionBombError):  # one is 231 MP: left out
            dropped["unreadable or over 179 MP"] += 1
            continue
        if fg.mean() < MIN_FOREGROUND:
            dropped["little foreground"] += 1
            continue
        if colourful_fraction(rgb, fg) < MIN_COLOURFUL:
            dropped["not colourful"] += 1
            continue
        rgb, fg = downscale(rgb, fg, MAX_SIDE)
        thumb = thumbnail(rgb)
        if len(thumbs) and np.abs(thumbs - thumb).mean(axis=(1, 2, 3)).min() < NEAR / 255:
            dropped["near duplicate"] += 1
            continue
        thumbs = np.concatenate([thumbs, thumb[None]])
        name = f"{rel.parts[0]}_{f.stem}"
        kept.append({"name": name, "member": f"{member_root}/{rel}", "source_md5": md5, "source_size": list(fg.shape[::-1]),
                     "rgb": rgb, "fg": fg})
    names = [k["name"] for k in kept]
    if len(set(names)) != len(names):  # one stem in two sub-folders of a category: add the folder
        for k in kept:
            if names.count(k["name"]) > 1:
                k["name"] = k["member"][len(member_root) + 1:-4].replace("/", "_")
    return kept, dropped


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("data/clipart"))
    ap.add_argument("--force", action="store_true", help="rewrite the PNGs even if SOURCES.json is current")
    ap.add_argument("--any-version", action="store_true",
                    help="accept another package version (records its sha256 instead of checking it)")
    args = ap.parse_args(argv)
    out: Path = args.out
    sources_file = out / "SOURCES.json"
    if sources_file.exists() and not args.force:  # idempotent: nothing to do when every file is there
        old = json.loads(sources_file.read_text())
        if all((out / f).exists() and sha256(out / f) == e["sha256"] for f, e in old["files"].items()):
            print(f"{out}: up to date ({old['counts']}); --force rewrites")
            return old
    (out / "archives").mkdir(parents=True, exist_ok=True)
    archive = download_deb(out / "archives", args.any_version)
    with tempfile.TemporaryDirectory(dir=out / "archives") as tmp:
        subprocess.run(["dpkg-deb", "-x", str(archive["path"]), tmp], check=True)
        items, dropped = select(Path(tmp) / ROOT)
    for split in ("train", "test", "test_masks"):
        (out / split).mkdir(exist_ok=True)
        for stale in (out / split).glob("*.png"):  # these folders are ours: rebuilt from scratch
            stale.unlink()
    files = {}
    for it in items:
        split = "test" if is_test(it["name"]) else "train"
        rel = f"{split}/{it['name']}.png"
        _save(it["rgb"], out / rel)
        entry = {"member": it["member"], "source_md5": it["source_md5"], "source_size": it["source_size"],
                 "size": [it["rgb"].shape[1], it["rgb"].shape[0]], "sha256": sha256(out / rel)}
        if split == "test":
            mask_rel = f"test_masks/{it['name']}.png"
            _save(it["fg"].astype(np.uint8) * 255, out / mask_rel)
            entry["mask"] = mask_rel
        files[rel] = entry
    counts = {s: sum(f.startswith(s + "/") for f in files) for s in ("train", "test")}
    result = {
        "description": "Colour clip art for the sketch colorizer; made by scripts/fetch_clipart.py",
        "licence": LICENCE, "max_side": MAX_SIDE,
        "rules": {"near_duplicate": f"16x16 thumbnails within {NEAR}/255", "min_side": MIN_SIDE, "min_foreground": MIN_FOREGROUND, "min_colourful": MIN_COLOURFUL,
                  "test": f"sha1(name) % {TEST_EVERY} == 0", "composite": "alpha over white; mask alpha > 127",
                  "resample": "PIL box (area) filter"},
        "counts": counts, "dropped": dropped,
        "archive": {PACKAGE: {k: v for k, v in archive.items() if k != "path"} | {"licence": LICENCE}},
        "files": files,
    }
    tmp = sources_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, sources_file)
    print(f"{out}: {counts}; dropped {dropped}")
    return result


if __name__ == "__main__":
    main()
