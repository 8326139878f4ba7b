#!/usr/bin/env python
"""Classical nuclei baseline: Gaussian smoothing + Otsu threshold + small-object removal.

Scores the foreground against the ground-truth instance masks of one or more data folders in
the layout of scripts/fetch_nuclei.py (<dir>/images/<name>.tif + <dir>/masks/<name>.tif):

    python scripts/baseline_nuclei.py --data data/nuclei/val [--data data/nuclei/unseen] [--json out.json]

Prints foreground IoU and Dice per image, the mean per source (the name up to its first '_')
the mean over all images and the mean of the source means, and optionally writes them as JSON. This is the reference the
`nuclei` model card compares against.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import tifffile
from skimage import filters, morphology


def _remove_small(mask: np.ndarray, min_size: int) -> np.ndarray:
    # scikit-image 0.26 renamed min_size (drop < n) to max_size (drop <= n); support both.
    try:
        return morphology.remove_small_objects(mask, max_size=min_size - 1)
    except TypeError:
        return morphology.remove_small_objects(mask, min_size=min_size)


def baseline_segment(image: np.ndarray, sigma: float = 1.5, min_size: int = 30) -> np.ndarray:
    """Foreground mask of a 2D fluorescence image: Gaussian(sigma) -> Otsu -> drop small blobs."""
    smooth = filters.gaussian(image.astype(np.float32), sigma=sigma, preserve_range=True)
    mask = smooth > filters.threshold_otsu(smooth)
    return _remove_small(mask, min_size)


def iou_dice(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Foreground IoU and Dice of two masks (written here because restore.segment.scores is not
    there yet; both are 1.0 when both masks are empty)."""
    pred, truth = pred.astype(bool), truth.astype(bool)
    inter = np.logical_and(pred, truth).sum()
    union = np.logical_or(pred, truth).sum()
    total = pred.sum() + truth.sum()
    return (float(inter / union) if union else 1.0, float(2 * inter / total) if total else 1.0)


def evaluate(folders: list[Path], sigma: float = 1.5, min_size: int = 30) -> dict:
    """Score the baseline on every image of `folders`; returns per-image, per-source, overall."""
    rows = []
    for folder in folders:
        images = sorted((folder / "images").glob("*.tif"))
        if not images:
            raise FileNotFoundError(f"no images in {folder / 'images'} (run scripts/fetch_nuclei.py)")
        for path in images:
            image = tifffile.imread(path)
            truth = tifffile.imread(folder / "masks" / path.name) > 0
            iou, dice = iou_dice(baseline_segment(image, sigma, min_size), truth)
            rows.append({"folder": str(folder), "image": path.stem, "source": path.stem.split("_")[0],
                         "iou": iou, "dice": dice})
    by_source = defaultdict(list)
    for r in rows:
        by_source[r["source"]].append(r)
    sources = {s: {"n": len(rs), "iou": float(np.mean([r["iou"] for r in rs])),
                   "dice": float(np.mean([r["dice"] for r in rs]))} for s, rs in by_source.items()}
    return {"method": "gaussian+otsu+remove_small_objects", "sigma": sigma, "min_size": min_size,
            "images": rows, "sources": sources,
            "mean": {"n": len(rows), "iou": float(np.mean([r["iou"] for r in rows])),
                     "dice": float(np.mean([r["dice"] for r in rows]))},
            # every source weighs the same, however many slices or frames it gave
            "mean_of_sources": {"n": len(sources), "iou": float(np.mean([m["iou"] for m in sources.values()])),
                                "dice": float(np.mean([m["dice"] for m in sources.values()]))}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, action="append", required=True,
                    help="folder with images/ and masks/ (repeatable)")
    ap.add_argument("--sigma", type=float, default=1.5, help="Gaussian sigma in pixels")
    ap.add_argument("--min-size", type=int, default=30, help="smallest object kept, in pixels")
    ap.add_argument("--json", type=Path, help="also write the scores here")
    args = ap.parse_args(argv)

    result = evaluate(args.data, args.sigma, args.min_size)
    print(f"baseline: Gaussian sigma={args.sigma} + Otsu + remove objects < {args.min_size} px")
    print(f"{'image':28s} {'IoU':>6s} {'Dice':>6s}")
    for r in result["images"]:
        print(f"{r['image']:28s} {r['iou']:6.3f} {r['dice']:6.3f}")
    print("-" * 42)
    for s, m in result["sources"].items():
        print(f"{'mean ' + s + ' (' + str(m['n']) + ')':28s} {m['iou']:6.3f} {m['dice']:6.3f}")
    m = result["mean"]
    print(f"{'mean all images (' + str(m['n']) + ')':28s} {m['iou']:6.3f} {m['dice']:6.3f}")
    m = result["mean_of_sources"]
    print(f"{'mean of sources (' + str(m['n']) + ')':28s} {m['iou']:6.3f} {m['dice']:6.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
