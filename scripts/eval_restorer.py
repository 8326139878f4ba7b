"""Score a restorer against the degraded input and the classical baseline on held-out photos.

    python scripts/eval_restorer.py --weights weights/restorer.safetensors --data data/photos/test \
        --preset mild --preset gfpgan --json runs/restorer/eval.json

Each held-out photo is degraded at a fixed seed (scripts/baseline_restore.degraded_test_pair),
then restored by the model through ``restore.Translator`` (the path users run) and by the
classical baseline (non-local means + unsharp mask); PSNR/SSIM with basicsr, RGB, 0-255.

``--real DIR`` also runs the model on genuinely degraded photos with no clean original
(data/photos/real_degraded): per photo, the mean absolute change (grey levels, 0-255) and the
JPEG blockiness of the input and of the result. A model that changes such photos by a fraction
of a grey level has learned to call real degradations clean (weights/restorer.md).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from baseline_restore import classical_baseline, degraded_test_pair  # noqa: E402

from restore.imageio import read_image  # noqa: E402
from restore.quality import psnr_ssim  # noqa: E402
from restore.sketch.extract import luminance  # noqa: E402
from restore.translate import Translator  # noqa: E402


def blockiness(img: np.ndarray) -> float:
    """Mean luma step across 8x8 JPEG block edges over the mean step inside blocks (1: no blocks)."""
    y = luminance(img)
    steps = [np.abs(np.diff(y, axis=axis)) for axis in (0, 1)]
    edge = [s.take(np.arange(7, s.shape[a], 8), axis=a).mean() for a, s in enumerate(steps)]
    inner = [np.delete(s, np.arange(7, s.shape[a], 8), axis=a).mean() for a, s in enumerate(steps)]
    return float(sum(edge) / max(sum(inner), 1e-9))


def _means(rows: list[dict]) -> dict:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "image"} if rows else {}


def real_photos(model: Translator, folder: Path) -> dict:
    """Change and blockiness on photos with no clean original."""
    rows = []
    for path in sorted(folder.glob("*.png")):
        photo = read_image(path, mode="rgb8")
        out = model(photo)
        rows.append({"image": path.name, "mean_abs_change": float(np.abs(out.astype(np.float64) - photo).mean()),
                     "blockiness_in": blockiness(photo), "blockiness_out": blockiness(out)})
        print(f"real    {path.name:45s} change {rows[-1]['mean_abs_change']:5.2f} | blockiness "
              f"{rows[-1]['blockiness_in']:.3f} -> {rows[-1]['blockiness_out']:.3f}", flush=True)
    return {"images": rows, "mean": _means(rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default="restorer")
    ap.add_argument("--data", type=Path, default=Path("data/photos/test"))
    ap.add_argument("--preset", action="append",
                    help="degradation presets (default: mild and gfpgan; none with --real alone)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tta", type=int, default=1, help="test-time augmentation: orientations averaged (1, 2, 4, 8)")
    ap.add_argument("--real", type=Path, help="also: change and blockiness on degraded photos with no original")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    model = Translator(args.weights, tta=args.tta, precision="fp32")  # the cards' figures are fp32
    report = {"weights": str(model.path), "tta": args.tta, "seed": args.seed,
              "metric": "basicsr PSNR/SSIM, RGB, 0-255, no crop", "presets": {}}
    for preset in args.preset or ([] if args.real else ["mild", "gfpgan"]):
        rows = []
        for path in sorted(args.data.glob("*.png")):
            degraded, clean = degraded_test_pair(path, preset, args.seed)
            t0 = time.perf_counter()
            restored = model((np.clip(degraded, 0, 1) * 255).round().astype(np.uint8)).astype(np.float32) / 255
            seconds = time.perf_counter() - t0
            row = {"image": path.name, "seconds": seconds}
            for name, img in (("degraded", degraded), ("classical", classical_baseline(degraded)), ("model", restored)):
                row[f"{name}_psnr"], row[f"{name}_ssim"] = psnr_ssim(img, clean)
            rows.append(row)
            print(f"{preset:7s} {path.name:45s} degraded {row['degraded_psnr']:6.2f} | classical "
                  f"{row['classical_psnr']:6.2f} | model {row['model_psnr']:6.2f} dB  ({seconds:.1f} s)", flush=True)
        mean = _means(rows)
        print(f"{preset:7s} {'MEAN':45s} degraded {mean['degraded_psnr']:6.2f} / {mean['degraded_ssim']:.4f} | "
              f"classical {mean['classical_psnr']:6.2f} / {mean['classical_ssim']:.4f} | "
              f"model {mean['model_psnr']:6.2f} / {mean['model_ssim']:.4f}")
        report["presets"][preset] = {"images": rows, "mean": mean}
    if args.real:
        report["real"] = real_photos(model, args.real)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
