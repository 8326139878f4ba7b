#!/usr/bin/env python
"""Score `restore faces` without a face prior on real group photos degraded at fixed seeds.

    python scripts/eval_faces.py [--data data/faces/test] [--preset mild --preset gfpgan] [--json F]

For each photo (scripts/fetch_faces.py) and degradation preset, at a fixed seed:
  - the reference faces: MTCNN on the clean photo (faces of >= 16 px, the CLI's --min-face);
  - found: the share of those that `restore faces` (defaults: FaceRestorer(), the bundled
    restorer when no GFP-GAN weights are cached) finds on the degraded photo (box IoU >= 0.4);
  - PSNR inside the reference face boxes (all their pixels together) and on the whole photo, for
    the degraded photo, `restore faces` and the bundled restorer on the whole photo
    (`restore translate --weights restorer`), with basicsr's PSNR (RGB, 0-255).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from baseline_restore import degraded_test_pair  # noqa: E402

from restore.faces.detect import box_iou, detect, make_detector  # noqa: E402
from restore.faces.restorer import FaceRestorer  # noqa: E402
from restore.quality import psnr_ssim  # noqa: E402
from restore.translate import Translator  # noqa: E402

MIN_FACE = 16


def face_pixels(img: np.ndarray, boxes: list[np.ndarray]) -> np.ndarray:
    """The pixels of all the boxes, as one 1 x N x 3 strip (a box counted once per face)."""
    h, w = img.shape[:2]
    parts = []
    for b in boxes:
        x0, y0, x1, y1 = np.round(b).astype(int)
        parts.append(img[max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)].reshape(-1, 3))
    return np.concatenate(parts)[None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("data/faces/test"))
    ap.add_argument("--preset", action="append", help="degradation presets (default: mild and gfpgan)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", default=None, help="face model (default: what `restore faces` picks)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    fr = FaceRestorer(args.weights, precision="fp32")  # the cards' figures are fp32
    whole = Translator("restorer", precision="fp32")
    reference_detector = make_detector("mtcnn")[0]
    report = {"face_model": fr.model_info, "detector": fr.detector_info, "seed": args.seed, "presets": {}}
    for preset in args.preset or ["mild", "gfpgan"]:
        rows = []
        for path in sorted(args.data.glob("*.png")):
            degraded, clean = degraded_test_pair(path, preset, args.seed)
            clean8 = (clean * 255).round().astype(np.uint8)
            ref = [d.box for d in detect(reference_detector, clean8) if d.size >= MIN_FACE]
            if not ref:
                continue
            d8 = (np.clip(degraded, 0, 1) * 255).round().astype(np.uint8)
            result = fr.restore(d8)
            found = [f.box for f in result.faces]
            hit = sum(1 for r in ref if any(box_iou(r, f) >= 0.4 for f in found))
            outs = {"degraded": d8, "faces": result.image, "whole": whole(d8)}
            row = {"image": path.name, "faces": len(ref), "found": hit}
            for name, img in outs.items():
                img = img.astype(np.float32) / 255
                row[f"{name}_face_psnr"] = psnr_ssim(face_pixels(img, ref), face_pixels(clean, ref))[0]
                row[f"{name}_psnr"] = psnr_ssim(img, clean)[0]
            rows.append(row)
            print(f"{preset:7s} {path.name:28s} faces {hit:2d}/{len(ref):2d} | in faces: degraded "
                  f"{row['degraded_face_psnr']:6.2f} faces {row['faces_face_psnr']:6.2f} whole "
                  f"{row['whole_face_psnr']:6.2f} | photo: {row['degraded_psnr']:6.2f} {row['faces_psnr']:6.2f} "
                  f"{row['whole_psnr']:6.2f}", flush=True)
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in ("image", "faces", "found")}
        mean["found_share"] = sum(r["found"] for r in rows) / sum(r["faces"] for r in rows)
        print(f"{preset:7s} MEAN found {mean['found_share']:.1%} | in faces: degraded "
              f"{mean['degraded_face_psnr']:.2f} faces {mean['faces_face_psnr']:.2f} "
              f"({mean['faces_face_psnr'] - mean['degraded_face_psnr']:+.2f}) whole {mean['whole_face_psnr']:.2f} | "
              f"photo: {mean['degraded_psnr']:.2f} {mean['faces_psnr']:.2f} {mean['whole_psnr']:.2f}")
        report["presets"][preset] = {"images": rows, "mean": mean}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
