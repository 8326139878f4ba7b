"""bf16 against fp32 for every task, on real pictures, through the classes the CLI uses: the
measurement behind each command's ``--precision`` default (auto where bf16 stays >= 45 dB of
fp32, fp32 where it does not).

    python benchmarks/bench_precision.py [--gfpgan] [--out benchmarks/results/precision.json]

- faces: ``FaceRestorer`` with the bundled restorer (no published GFP-GAN here) on the example
  photos and two public-domain portraits (skimage's astronaut, matplotlib's Grace Hopper), PSNR
  of the bf16 photo against the fp32 one, whole and inside the face boxes;
- ``--gfpgan``: GFP-GAN at 512 (the published layout, random weights, every parameter perturbed:
  not the published model, so a lower bound of nothing, reported as such) on the aligned faces;
- translate: ``Translator`` (the bundled restorer) on the same photos;
- sketch: ``Colorizer`` (the bundled colorizer) on the example sketches with their references;
- segment: ``Segmenter`` (the bundled nuclei model) on the example microscope images: the share
  of mask pixels that agree, and of foreground pixels that flip.

Speed is each task's fp32 time over its bf16 time in the same run (both after a warm-up call).
bf16 is measured only where the CPU has it natively (AVX512-BF16 / AMX); elsewhere the script
says so and writes fp32 alone.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan.precision import cpu_has_bf16  # noqa: E402
from restore.imageio import read_image  # noqa: E402

BAR_DB = 45.0


def psnr8(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR (dB) of two 8-bit images (capped at 100 for identical ones)."""
    err = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = float(err[mask].mean() if mask is not None else err.mean())
    return 100.0 if mse <= 1e-12 else float(10 * np.log10(255.0**2 / mse))


def timed(fn, *args):
    fn(*args)  # warm-up: allocations, oneDNN primitives
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def photos() -> dict[str, np.ndarray]:
    from matplotlib import cbook
    from skimage import data

    found = {p.name: read_image(p, mode="rgb8") for p in sorted((ROOT / "examples" / "faces").glob("*"))
             if p.suffix in (".jpg", ".png")}
    found["astronaut (skimage)"] = data.astronaut()
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        found["grace_hopper (matplotlib)"] = read_image(f.name, mode="rgb8")
    return found


def faces(bf16: bool) -> list[dict]:
    from restore.faces.restorer import FaceRestorer

    rows = []
    fr32 = FaceRestorer(None, "mtcnn", precision="fp32", parse=False)
    fr16 = FaceRestorer(None, "mtcnn", precision="bf16", parse=False) if bf16 else None
    for name, img in photos().items():
        a, t32 = timed(fr32.restore, img)
        row = {"input": name, "faces": len(a.faces), "fp32_s": round(t32, 3)}
        if fr16 is not None:
            b, t16 = timed(fr16.restore, img)
            inside = np.zeros(img.shape[:2], bool)
            for f in a.faces:
                x0, y0, x1, y1 = (int(round(v)) for v in f.box)
                inside[max(0, y0):y1, max(0, x0):x1] = True
            row.update(bf16_s=round(t16, 3), speed=round(t32 / t16, 2), psnr_db=round(psnr8(a.image, b.image), 2),
                       psnr_faces_db=round(psnr8(a.image, b.image, inside), 2) if inside.any() else None,
                       max_abs_diff=int(np.abs(a.image.astype(int) - b.image).max()))
        rows.append(row)
    return rows


def gfpgan(bf16: bool) -> list[dict]:
    import torch

    from gan.nets.gfpgan import GFPGAN, GFPGAN_PRESETS
    from gan.precision import cast_model, run
    from restore.faces.align import estimate_affine, warp_face
    from restore.faces.detect import detect, make_detector

    torch.manual_seed(0)
    net = GFPGAN(GFPGAN_PRESETS["published"])
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    n32 = cast_model(net, "fp32")
    detector, _ = make_detector("mtcnn", "cpu")
    rows = []
    for name, img in list(photos().items())[-2:]:
        found = detect(detector, img, 1600)
        if not found:
            continue
        crop = warp_face(img, estimate_affine(found[0].landmarks, 512), 512)
        x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 127.5 - 1
        to8 = lambda y: ((y.clamp(-1, 1) + 1) * 127.5).round().byte()[0].permute(1, 2, 0).numpy()  # noqa: E731
        a, t32 = timed(lambda: to8(run(n32, x, "fp32")))
        row = {"input": name, "fp32_s": round(t32, 3), "weights": "random (published layout)"}
        if bf16:
            import copy

            n16 = cast_model(copy.deepcopy(net), "bf16")
            b, t16 = timed(lambda: to8(run(n16, x, "bf16")))
            row.update(bf16_s=round(t16, 3), speed=round(t32 / t16, 2), psnr_db=round(psnr8(a, b), 2))
        rows.append(row)
    return rows


def translate(bf16: bool) -> list[dict]:
    from restore.translate import Translator

    t32 = Translator("restorer", precision="fp32")
    t16 = Translator("restorer", precision="bf16") if bf16 else None
    rows = []
    for name, img in photos().items():
        a, s32 = timed(t32, img)
        row = {"input": name, "fp32_s": round(s32, 3)}
        if t16 is not None:
            b, s16 = timed(t16, img)
            row.update(bf16_s=round(s16, 3), speed=round(s32 / s16, 2), psnr_db=round(psnr8(a, b), 2),
                       max_abs_diff=int(np.abs(a.astype(int) - b).max()))
        rows.append(row)
    return rows


def sketch(bf16: bool) -> list[dict]:
    from restore.sketch.colorizer import Colorizer, read_rgb, read_sketch
    from restore.sketch.extract import extract

    d = ROOT / "examples" / "sketch"
    pairs = {"monkey line art, own colours": (read_sketch(d / "monkey_lineart.png"), read_rgb(d / "monkey.png")),
             "dog (XDoG), ladybug colours": (extract(read_rgb(d / "dog.png"), "xdog"), read_rgb(d / "ladybug.png")),
             "ladybug (XDoG), monkey colours": (extract(read_rgb(d / "ladybug.png"), "xdog"), read_rgb(d / "monkey.png"))}
    c32 = Colorizer(precision="fp32")
    c16 = Colorizer(precision="bf16") if bf16 else None
    rows = []
    for name, (s, ref) in pairs.items():
        a, s32 = timed(c32, s, ref)
        row = {"input": name, "fp32_s": round(s32, 3)}
        if c16 is not None:
            b, s16 = timed(c16, s, ref)
            row.update(bf16_s=round(s16, 3), speed=round(s32 / s16, 2), psnr_db=round(psnr8(a, b), 2),
                       max_abs_diff=int(np.abs(a.astype(int) - b).max()))
        rows.append(row)
    return rows


def segment(bf16: bool) -> list[dict]:
    from restore.segment.segmenter import Segmenter

    s32 = Segmenter(precision="fp32")
    s16 = Segmenter(precision="bf16") if bf16 else None
    rows = []
    for p in sorted((ROOT / "examples" / "nuclei").glob("*.png")):
        img = read_image(p)
        a, t32 = timed(s32, img)
        row = {"input": p.name, "fp32_s": round(t32, 3)}
        if s16 is not None:
            b, t16 = timed(s16, img)
            fa, fb = a > 0, b > 0
            row.update(bf16_s=round(t16, 3), speed=round(t32 / t16, 2), equal_pixels=round(float((fa == fb).mean()), 5),
                       foreground_flipped=round(float((fa != fb).sum() / max(1, fa.sum())), 5))
        rows.append(row)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gfpgan", action="store_true", help="also GFP-GAN at 512 with random weights (slow)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "precision.json")
    args = ap.parse_args()
    bf16 = cpu_has_bf16()
    if not bf16:
        print("this CPU has no native bf16 (AVX512-BF16/AMX): fp32 only; bf16 would be emulated and slower")
    results: dict = {"benchmark": "precision", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                     "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                 "native_bf16": bf16},
                     "bar_db": BAR_DB, "tasks": {}}
    tasks = {"faces": faces, "translate": translate, "sketch": sketch, "segment": segment}
    if args.gfpgan:
        tasks["gfpgan (random weights)"] = gfpgan
    for name, fn in tasks.items():
        rows = fn(bf16)
        results["tasks"][name] = rows
        for r in rows:
            print(name, json.dumps(r))
    if bf16:
        verdict = {}
        for name, rows in results["tasks"].items():
            if name == "segment":
                worst = min(r["equal_pixels"] for r in rows)
                verdict[name] = {"worst_equal_pixels": worst, "worst_foreground_flipped":
                                 max(r["foreground_flipped"] for r in rows), "auto_default": False}
            else:
                worst = min(min(v for v in (r.get("psnr_db"), r.get("psnr_faces_db")) if v is not None) for r in rows)
                verdict[name] = {"worst_psnr_db": worst, "auto_default": worst >= BAR_DB,
                                 "median_speed": float(np.median([r["speed"] for r in rows]))}
        results["verdict"] = verdict
        print(json.dumps(verdict, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
