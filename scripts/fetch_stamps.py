#!/usr/bin/env python
"""Fetch colour clip art of another collection, never seen in training: Tux Paint's stamps.

The bundled colorizer was trained on the Open Clip Art Library (scripts/fetch_clipart.py).
Debian's ``tuxpaint-stamps-default`` holds Tux Paint's own stamp pictures (GPL-2; cartoons,
drawings and some photos): prepared by the same rules as the clip art (colour, >= 128 px,
>= 12% foreground, alpha over white, <= 256 px), minus any picture whose 16x16 thumbnail is
near one of the clip art set (some stamps come from Open Clip Art), all as a test split:

    python scripts/fetch_stamps.py [--out data/stamps] [--clipart data/clipart] [--any-version]
    python scripts/eval_colorizer.py --weights colorizer --data data/stamps/test --masks data/stamps/test_masks

Nothing of it is committed (GPL-2 pictures; fetched at evaluation time).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))  # fetch_clipart beside this file
import fetch_clipart as clip  # noqa: E402

PACKAGE = "tuxpaint-stamps-default"
VERSION = "2022.06.04-1"  # Debian bookworm
DEB_SHA256 = "6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34"
ROOT = "usr/share/tuxpaint/stamps"
LICENCE = "GPL-2 (Tux Paint stamps; see the package's copyright file)"


def clipart_thumbnails(folder: Path) -> np.ndarray:
    """Thumbnails of every prepared clip-art picture (train and test), to drop their copies."""
    files = sorted(folder.glob("train/*.png")) + sorted(folder.glob("test/*.png"))
    if not files:
        sys.exit(f"no clip art in {folder}: run scripts/fetch_clipart.py first (its pictures are left out here)")
    return np.stack([clip.thumbnail(np.asarray(Image.open(f).convert("RGB"))) for f in files])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("data/stamps"))
    ap.add_argument("--clipart", type=Path, default=Path("data/clipart"), help="the training collection")
    ap.add_argument("--any-version", action="store_true", help="accept another package version")
    args = ap.parse_args(argv)
    out: Path = args.out
    known = clipart_thumbnails(args.clipart)
    (out / "archives").mkdir(parents=True, exist_ok=True)
    archive = clip.download_deb(out / "archives", args.any_version, PACKAGE, VERSION, DEB_SHA256)
    with tempfile.TemporaryDirectory(dir=out / "archives") as tmp:
        subprocess.run(["dpkg-deb", "-x", str(archive["path"]), tmp], check=True)
        items, dropped = clip.select(Path(tmp) / ROOT, ROOT, known)
    dropped["near a clip-art picture or another stamp"] = dropped.pop("near duplicate")
    for split in ("test", "test_masks"):
        (out / split).mkdir(exist_ok=True)
        for stale in (out / split).glob("*.png"):
            stale.unlink()
    files = {}
    for it in items:
        clip._save(it["rgb"], out / f"test/{it['name']}.png")
        clip._save(it["fg"].astype(np.uint8) * 255, out / f"test_masks/{it['name']}.png")
        files[f"test/{it['name']}.png"] = {"member": it["member"], "source_md5": it["source_md5"]}
    result = {"description": "Tux Paint stamps as unseen colour clip art; made by scripts/fetch_stamps.py",
              "licence": LICENCE, "counts": {"test": len(files)}, "dropped": dropped,
              "archive": {PACKAGE: {k: v for k, v in archive.items() if k != "path"}}, "files": files}
    tmp_file = out / "SOURCES.tmp"
    tmp_file.write_text(json.dumps(result, indent=1))
    os.replace(tmp_file, out / "SOURCES.json")
    print(f"{out}: {result['counts']}; dropped {dropped}")
    return result


if __name__ == "__main__":
    main()
