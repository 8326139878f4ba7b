"""Score an upscaler against bicubic and Lanczos on held-out photos (the model card's numbers).

    python scripts/fetch_photos.py                      # data/photos/test, data/photos/test_album
    python scripts/eval_upscale.py --weights realesrgan-x4plus \
        --data data/photos/test --data data/photos/test_album --json weights/realesrgan_eval.json

For each photo: its centre ``--crop`` (256 px) is the ground truth; the input is that crop
mildly degraded (a Gaussian blur of sigma ``--blur``, area-downscaled by the network's scale,
JPEG at ``--jpeg``), the degradation of an ordinary web photo rather than Real-ESRGAN's training
range. The upscaler (``restore.Upscaler``, the path users run), bicubic and Lanczos each enlarge
it back; PSNR and SSIM (on the luma, 4 px border cropped, as basicsr's metrics) against the truth,
and NIQE (basicsr's, lower is more natural; no reference) of each output and of the truth.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from restore.imageio import read_image
from restore.upscale import Upscaler


def degrade(truth: np.ndarray, scale: int, blur: float, jpeg: int) -> np.ndarray:
    im = Image.fromarray(truth).filter(ImageFilter.GaussianBlur(blur)) if blur > 0 else Image.fromarray(truth)
    im = im.resize((truth.shape[1] // scale, truth.shape[0] // scale), Image.Resampling.BOX)
    if jpeg < 100:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=jpeg)
        im = Image.open(buf).convert("RGB")
    return np.asarray(im)


def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 Y in 16..235, as basicsr's ``test_y_channel``."""
    x = rgb.astype(np.float64) / 255
    return 16 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]


def scores(out: np.ndarray, truth: np.ndarray, border: int = 4) -> dict:
    from basicsr.metrics.niqe import calculate_niqe
    from skimage.metrics import structural_similarity

    a, b = luma(out)[border:-border, border:-border], luma(truth)[border:-border, border:-border]
    mse = float(np.mean((a - b) ** 2))
    return {"psnr": round(10 * np.log10(255**2 / max(mse, 1e-12)), 3),
            "ssim": round(float(structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5,
                                                      use_sample_covariance=False)), 4),
            "niqe": round(float(calculate_niqe(out[..., ::-1], crop_border=border, input_order="HWC",
                                               convert_to="y")), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default="realesrgan-x4plus")
    ap.add_argument("--data", type=Path, action="append", required=True, help="a folder of photos (repeatable)")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--blur", type=float, default=0.8)
    ap.add_argument("--jpeg", type=int, default=90)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    up = Upscaler(args.weights, tile=0, precision="fp32")
    scale = up.netscale
    methods = {"model": up, "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}
    result = {"weights": str(args.weights), "crop": args.crop, "blur": args.blur, "jpeg": args.jpeg, "sets": {}}
    for folder in args.data:
        rows = []
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            rgb = read_image(path, mode="rgb8")
            if min(rgb.shape[:2]) < args.crop:
                continue
            y0, x0 = (rgb.shape[0] - args.crop) // 2, (rgb.shape[1] - args.crop) // 2
            truth = np.ascontiguousarray(rgb[y0:y0 + args.crop, x0:x0 + args.crop])
            small = degrade(truth, scale, args.blur, args.jpeg)
            row = {"image": path.name, "truth_niqe": scores(truth, truth)["niqe"]}
            for name, how in methods.items():
                t = time.perf_counter()
                out = how(small) if name == "model" else np.asarray(Image.fromarray(small).resize(
                    (args.crop, args.crop), how))
                row[name] = {**scores(out, truth), "seconds": round(time.perf_counter() - t, 2)}
            rows.append(row)
            print(f"{folder.name:12s} {path.name:36s} " + " | ".join(
                f"{m} {row[m]['psnr']:.2f} dB {row[m]['ssim']:.3f} NIQE {row[m]['niqe']:.2f}" for m in methods),
                flush=True)
        means = {m: {k: round(float(np.mean([r[m][k] for r in rows])), 3) for k in ("psnr", "ssim", "niqe")}
                 for m in methods}
        means["truth_niqe"] = round(float(np.mean([r["truth_niqe"] for r in rows])), 3)
        result["sets"][str(folder)] = {"images": rows, "mean": means, "count": len(rows)}
        print(f"{folder.name:12s} MEAN ({len(rows)}) " + json.dumps(means), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
