"""Score a nuclei model against the classical baseline on held-out and unseen images.

    python scripts/eval_nuclei.py --weights weights/nuclei.safetensors \
        --data data/nuclei/val --data data/nuclei/unseen --json weights/nuclei_eval.json

For each folder (images/ + masks/), the foreground IoU and Dice of the model (through
``restore.Segmenter``, the path users run) and of the baseline (Gaussian + Otsu + small-object
removal, scripts/baseline_nuclei.py), per image and as means. `--zoom 1.5` scores the same
images rescaled (image: bilinear, labels: nearest), a check of scale robustness on nuclei larger
than any microscope here gives (the SPE confocal's ~44 px become ~66 px).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_nuclei import baseline_segment  # noqa: E402

from restore import Segmenter  # noqa: E402
from restore.imageio import read_image  # noqa: E402
from restore.segment.scores import segmentation_scores  # noqa: E402
from restore.train.seg_data import find_pairs  # noqa: E402


def zoom(image: np.ndarray, truth: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Rescale an image (bilinear, per channel) and its foreground mask (nearest) by `factor`."""
    per_axis = (factor, factor) + (1,) * (image.ndim - 2)
    scaled = ndi.zoom(image.astype(np.float32), per_axis, order=1).astype(image.dtype)
    return scaled, ndi.zoom(truth, (factor, factor), order=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default="nuclei")
    ap.add_argument("--data", type=Path, action="append", required=True)
    ap.add_argument("--diameter", default="auto", help="auto, none or pixels")
    ap.add_argument("--zoom", type=float, default=1.0, help="rescale images and labels by this factor first")
    ap.add_argument("--tta", type=int, default=1, help="test-time augmentation: orientations averaged (1, 2, 4, 8)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    diameter = None if args.diameter == "none" else args.diameter if args.diameter == "auto" else float(args.diameter)
    seg = Segmenter(args.weights, diameter=diameter, tta=args.tta)
    report = {"weights": str(seg.path), "diameter": args.diameter, "zoom": args.zoom, "sets": {}}
    for folder in args.data:
        rows = []
        for pair in find_pairs(folder):
            image, truth = read_image(pair.image), read_image(pair.mask) > 0
            if args.zoom != 1.0:
                image, truth = zoom(image, truth, args.zoom)
            t0 = time.perf_counter()
            pred = seg(image, min_size=16) > 0
            seconds = time.perf_counter() - t0
            model = segmentation_scores(pred.astype(np.int64), truth.astype(np.int64))["foreground"]
            base = segmentation_scores(baseline_segment(image).astype(np.int64), truth.astype(np.int64))["foreground"]
            rows.append({"image": pair.image.name, "model_iou": model["iou"], "model_dice": model["dice"],
                         "baseline_iou": base["iou"], "baseline_dice": base["dice"], "seconds": seconds})
            print(f"{folder.name:8s} {pair.image.name:28s} model IoU {model['iou']:.3f} Dice {model['dice']:.3f}"
                  f" | baseline IoU {base['iou']:.3f} Dice {base['dice']:.3f}")
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "image"}
        print(f"{folder.name:8s} {'MEAN':28s} model IoU {mean['model_iou']:.3f} Dice {mean['model_dice']:.3f}"
              f" | baseline IoU {mean['baseline_iou']:.3f} Dice {mean['baseline_dice']:.3f}")
        report["sets"][str(folder)] = {"images": rows, "mean": mean}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
