#!/usr/bin/env python
"""Classical restoration baseline on held-out real photos degraded at fixed seeds.

    python scripts/baseline_restore.py --data data/photos/test [--seed 0] [--preset mild]
                                       [--preset gfpgan] [--json out.json]

For each photo of the folder (made by scripts/fetch_photos.py) and each degradation preset of
gan.data.degrade (default: "mild" and "gfpgan", i.e. heavy), a degraded copy is made with a seed
derived from the file name and --seed, so every run and every model sees the same inputs.
Then the PSNR/SSIM against the clean photo of

    degraded   the degraded input itself
    classical  OpenCV non-local means (fastNlMeansDenoisingColored) followed by an unsharp
               mask, both set by the noise level estimated on the image

are printed per photo and as a mean, and optionally written as JSON. This is the reference the
`restorer` model card compares against; the model's evaluation imports ``degraded_test_pair``,
``classical_baseline`` and ``psnr_ssim`` from here.

Metrics: basicsr's calculate_psnr / calculate_ssim on the 0-255 scale, over RGB (not the Y
channel: colour casts and greyscale conversion are part of the degradation, and a restorer is
judged on colour too), crop_border 0 (the degradation has no border effects to hide).
"""
from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere
from gan.data.degrade import DEGRADE_PRESETS, Degradation  # noqa: E402  (also installs the basicsr shim)
from restore.quality import psnr_ssim  # noqa: E402,F401  (re-exported for the model evaluation)

# Tuned on 256-px centre crops of training photos (never the test set). NLM strength follows
# the estimated noise: h = 0.7 x sigma, at least 3 (on white noise of sigma 5-20 the best
# factor was 0.6-0.9, lower on finely detailed photos, where NLM smooths texture away). The
# unsharp mask (amount 0.8 at sigma 1.5, best on the mild and gfpgan presets) fades out as the
# estimated noise grows to 8, since sharpening what NLM leaves of strong noise costs 1-3 dB.
# The estimate reads ~0-2 on the presets' outputs (their noise is added before the upsampling
# and JPEG, so it is no longer white), hence h = 3 there.
NLM_H_PER_SIGMA, NLM_H_RANGE = 0.7, (3.0, 25.0)
UNSHARP_AMOUNT, UNSHARP_SIGMA, UNSHARP_NOISE_OFF = 0.8, 1.5, 8.0


def load_rgb(path: str | Path) -> np.ndarray:
    """HxWx3 float32 RGB in [0, 1]."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def pair_seed(path: str | Path, seed: int = 0) -> list[int]:
    """Seed of one test photo: the run's seed and a stable hash of the file name (not of the
    folder, so a copied test set gets the same inputs)."""
    return [int(seed), zlib.crc32(Path(path).name.encode())]


def degraded_test_pair(path: str | Path, preset: str = "mild", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(degraded, clean) for one held-out photo, both HxWx3 float32 RGB in [0, 1]."""
    if preset not in DEGRADE_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(DEGRADE_PRESETS)}")
    clean = load_rgb(path)
    return Degradation(DEGRADE_PRESETS[preset])(clean, pair_seed(path, seed)), clean


def estimate_noise(img: np.ndarray) -> float:
    """Gaussian noise sigma (0-255 scale) of an RGB image in [0, 1], averaged over channels:
    Donoho's median absolute deviation of the finest diagonal Haar wavelet coefficients. The
    estimator of skimage.restoration.estimate_sigma, written out for Haar so that PyWavelets
    is not needed."""
    h, w = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2
    x = img[:h, :w].astype(np.float64) * 255.0
    hh = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2.0
    return float(np.mean(np.median(np.abs(hh.reshape(-1, img.shape[2])), axis=0)) / 0.6745)


def classical_baseline(img: np.ndarray, h: float | None = None, amount: float | None = None,
                       sigma: float = UNSHARP_SIGMA) -> np.ndarray:
    """Non-local means denoising then an unsharp mask; float32 RGB [0, 1] in and out.

    ``h`` (NLM filter strength, 0-255 scale) and ``amount`` (unsharp) default to values set by
    the noise sigma that ``estimate_noise`` finds in the image (see the constants above)."""
    noise = estimate_noise(img) if h is None or amount is None else 0.0
    if h is None:
        h = float(np.clip(NLM_H_PER_SIGMA * noise, *NLM_H_RANGE))
    if amount is None:
        amount = UNSHARP_AMOUNT * float(np.clip(1.0 - noise / UNSHARP_NOISE_OFF, 0.0, 1.0))
    u8 = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    # OpenCV's colour NLM works in Lab from BGR; h for lightness, the same for colour
    den = cv2.fastNlMeansDenoisingColored(np.ascontiguousarray(u8[..., ::-1]), None, h, h, 7, 21)
    den = den[..., ::-1].astype(np.float32) / 255.0
    if amount > 0:
        blurred = cv2.GaussianBlur(den, (0, 0), sigma)
        den = den + amount * (den - blurred)
    return np.clip(den, 0.0, 1.0).astype(np.float32)


def evaluate(folder: Path, presets: list[str], seed: int = 0, verbose: bool = True) -> dict:
    """Degraded and classical PSNR/SSIM for every photo of `folder` under every preset."""
    paths = sorted(folder.glob("*.png"))
    if not paths:
        raise FileNotFoundError(f"no PNG photos in {folder} (run scripts/fetch_photos.py)")
    result: dict = {"folder": str(folder), "seed": seed, "metric": "basicsr PSNR/SSIM, RGB, 0-255, crop_border 0",
                    "baseline": {"nlm_h_per_sigma": NLM_H_PER_SIGMA, "nlm_h_range": list(NLM_H_RANGE),
                                 "unsharp_amount": UNSHARP_AMOUNT, "unsharp_sigma": UNSHARP_SIGMA,
                                 "unsharp_noise_off": UNSHARP_NOISE_OFF},
                    "presets": {}}
    for preset in presets:
        rows = []
        for path in paths:
            degraded, clean = degraded_test_pair(path, preset, seed)
            d_psnr, d_ssim = psnr_ssim(degraded, clean)
            c_psnr, c_ssim = psnr_ssim(classical_baseline(degraded), clean)
            rows.append({"image": path.name, "degraded_psnr": d_psnr, "degraded_ssim": d_ssim,
                         "classical_psnr": c_psnr, "classical_ssim": c_ssim})
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "image"}
        result["presets"][preset] = {"per_image": rows, "mean": mean}
        if verbose:
            print_table(preset, rows, mean)
    return result


def print_table(preset: str, rows: list[dict], mean: dict) -> None:
    print(f"\npreset {preset}: PSNR dB / SSIM against the clean photo")
    print(f"{'image':44s} {'degraded':>15s} {'classical':>15s}")
    for r in rows + [{"image": "MEAN", **mean}]:
        print(f"{r['image'][:44]:44s} {r['degraded_psnr']:7.2f} {r['degraded_ssim']:.4f}"
              f" {r['classical_psnr']:7.2f} {r['classical_ssim']:.4f}")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("data/photos/test"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", action="append", choices=sorted(DEGRADE_PRESETS),
                    help="degradation preset (repeatable; default: mild and gfpgan)")
    ap.add_argument("--json", type=Path, help="write the per-image and mean scores here")
    args = ap.parse_args(argv)
    result = evaluate(args.data, args.preset or ["mild", "gfpgan"], args.seed)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
