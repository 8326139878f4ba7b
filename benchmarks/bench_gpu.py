"""The GPU benchmarks of ``scripts/gpu_check.sh``, written to ``benchmarks/results/gpu.json``.

    python benchmarks/bench_gpu.py [--out FILE] [--smoke]

- GFP-GAN at 512 (the published layout, random weights: speed does not depend on them), faces/s
  at batch 1, 8 and 32 in fp32, fp16 and bf16 (cast once, channels-last), and the PSNR of fp16
  and bf16 against fp32 on a real aligned face;
- ``restore faces`` photos/s on a folder of real photos, with the bundled restorer and with a
  GFP-GAN file, on CUDA, at the CLI's default precision;
- one step of each ``paper`` training preset (pix2pix, segmenter, colorizer, GFP-GAN) through
  ``restore train``, with its seconds (setup and one validation included) and peak memory.

``--smoke`` runs the same code at toy sizes on whatever device there is (the CPU here), so the
script is tested where no GPU is lent; its figures mean nothing.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from gan.precision import resolve_precision  # noqa: E402


def psnr8(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b) ** 2).mean())
    return 100.0 if mse <= 1e-12 else float(10 * np.log10(255.0**2 / mse))


def sync(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def real_face(size: int) -> np.ndarray:
    """skimage's astronaut (public domain), aligned to the FFHQ template at ``size``."""
    from skimage import data

    from restore.faces.align import estimate_affine, warp_face
    from restore.faces.detect import detect, make_detector

    img = data.astronaut()
    detector, _ = make_detector("mtcnn", "cpu")
    return warp_face(img, estimate_affine(detect(detector, img)[0].landmarks, size), size)


def precisions(device: torch.device) -> list[str]:
    out = ["fp32"]
    for p in ("fp16", "bf16"):
        try:
            resolve_precision(p, device)
            out.append(p)
        except ValueError:
            pass
    return out


def bench_gfpgan(device: torch.device, smoke: bool) -> dict:
    import copy

    from gan.nets.gfpgan import GFPGAN, GFPGAN_PRESETS
    from gan.precision import cast_model, run

    cfg = GFPGAN_PRESETS["tiny" if smoke else "published"]
    torch.manual_seed(0)
    base = GFPGAN(cfg)
    with torch.no_grad():
        for p in base.parameters():
            p.add_(torch.randn_like(p) * 0.02)  # the noise-injection weights start at zero
    size = cfg.out_size
    face = torch.from_numpy(real_face(size)).permute(2, 0, 1)[None].float().to(device) / 127.5 - 1
    to8 = lambda y: ((y[0].float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()  # noqa: E731
    batches = (1, 2) if smoke else (1, 8, 32)
    result: dict = {"config": cfg.to_dict(), "weights": "random (published layout)", "faces_per_s": {}, "psnr_vs_fp32_db": {}}
    ref = None
    for prec in precisions(device):
        net = cast_model(copy.deepcopy(base), prec, device)
        with torch.inference_mode():
            out = to8(run(net, face, prec))
            ref = out if prec == "fp32" else ref
            if prec != "fp32":
                result["psnr_vs_fp32_db"][prec] = round(psnr8(out, ref), 2)
            for b in batches:
                x = face.expand(b, -1, -1, -1).contiguous()
                run(net, x, prec)  # warm-up
                times = []
                for _ in range(1 if smoke else 3):
                    t0 = sync(device)
                    run(net, x, prec)
                    times.append(sync(device) - t0)
                result["faces_per_s"][f"{prec} batch {b}"] = round(b / float(np.median(times)), 2)
        del net
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return result


def photo_folder(folder: Path, n: int, max_side: int | None = None) -> int:
    """``n`` real photos (the examples, the astronaut, Grace Hopper, repeated) in ``folder``;
    ``max_side``: each shrunk to at most that many px (the smoke test's toy sizes)."""
    from matplotlib import cbook
    from PIL import Image
    from skimage import data

    sources = [p for p in sorted((ROOT / "examples" / "faces").glob("*")) if p.suffix in (".jpg", ".png")]
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        shutil.copy(f.name, folder / "grace_hopper.jpg")
    made = 2
    while made < n:
        src = sources[made % len(sources)]
        shutil.copy(src, folder / f"{made:04d}_{src.name}")
        made += 1
    if max_side:
        for p in folder.iterdir():
            with Image.open(p) as im:
                im = im.convert("RGB")
                im.thumbnail((max_side, max_side), Image.LANCZOS)
            im.save(p)
    return made


def bench_faces_cli(device: torch.device, smoke: bool, tmp: Path) -> dict:
    from gan.nets.gfpgan import GFPGAN, GFPGAN_PRESETS
    from gan.serialize import save_model
    from restore.cli import main

    n = photo_folder(tmp / "photos", 3 if smoke else 24, max_side=192 if smoke else None)
    gfpgan_file = save_model(GFPGAN(GFPGAN_PRESETS["tiny" if smoke else "published"]), tmp / "gfpgan.safetensors")
    result = {"photos": n}
    for label, weights in (("bundled restorer", "restorer"), ("GFP-GAN (random weights)", str(gfpgan_file))):
        out = tmp / f"out_{len(result)}"
        argv = ["faces", str(tmp / "photos"), "-o", str(out), "--weights", weights, "--device", str(device),
                "--quiet", "--detector", "mtcnn"]
        t0 = sync(device)
        code = main(argv)
        dt = sync(device) - t0
        result[label] = {"exit": code, "seconds": round(dt, 2), "photos_per_s": round(n / dt, 3)}
    return result


def bench_training(device: torch.device, smoke: bool, tmp: Path) -> dict:
    """One step of each paper preset through ``restore train`` (setup and a validation included)."""
    from PIL import Image

    from restore.cli import main

    rng = np.random.default_rng(0)
    side = 64 if smoke else 600
    for i in range(2):
        img = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
        for sub in ("pairs/A", "pairs/B", "seg/images", "seg/masks", "art"):
            (tmp / sub).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(tmp / "pairs" / "A" / f"{i}.png")
        Image.fromarray(img[::-1]).save(tmp / "pairs" / "B" / f"{i}.png")
        Image.fromarray(img[..., 0]).save(tmp / "seg" / "images" / f"{i}.png")
        Image.fromarray((img[..., 0] > 128).astype(np.uint8)).save(tmp / "seg" / "masks" / f"{i}.png")
        Image.fromarray(img).save(tmp / "art" / f"{i}.png")
    face_dir = tmp / "faces"
    face_dir.mkdir(exist_ok=True)
    for i in range(4):
        Image.fromarray(real_face(64 if smoke else 512)[:, ::(-1) ** i]).save(face_dir / f"{i}.png")
    preset = "tiny" if smoke else "paper"
    runs = {
        "pix2pix": ["train", "pix2pix", "--data", str(tmp / "pairs"), "--preset", preset, "--batch-size", "2"],
        "segmenter": ["train", "segmenter", "--data", str(tmp / "seg"), "--preset", preset, "--batch-size", "2"],
        "colorizer": ["train", "colorizer", "--data", str(tmp / "art"), "--preset", preset, "--batch-size", "2"],
        "gfpgan": ["train", "gfpgan", "--data", str(face_dir), "--preset", preset, "--batch-size", "4"],
    }
    result = {}
    for name, argv in runs.items():
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t0 = sync(device)
        code = main(argv + ["--out", str(tmp / f"run_{name}"), "--steps", "1", "--quiet"])
        row = {"exit": code, "seconds": round(sync(device) - t0, 2), "preset": preset}
        if device.type == "cuda":
            row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        result[name] = row
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu.json")
    ap.add_argument("--smoke", action="store_true", help="toy sizes on any device (tests the script)")
    ap.add_argument("--tests-rc", type=int, help="the exit status of the CUDA-marked tests, recorded")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.smoke:
        print("bench_gpu: no CUDA device here (use --smoke to test the script on the CPU)")
        return 3
    result: dict = {"benchmark": "gpu", "date": time.strftime("%Y-%m-%d %H:%M:%S"), "smoke": args.smoke,
                    "machine": {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else
                                platform.processor() or platform.machine(), "torch": torch.__version__},
                    "cuda_tests_exit": args.tests_rc}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, fn in (("gfpgan_512", lambda: bench_gfpgan(device, args.smoke)),
                         ("restore_faces", lambda: bench_faces_cli(device, args.smoke, tmp)),
                         ("train_one_step", lambda: bench_training(device, args.smoke, tmp))):
            t0 = time.perf_counter()
            try:
                result[name] = fn()
            except Exception as e:  # noqa: BLE001 - one broken part must not cost the others' figures
                result[name] = {"error": f"{type(e).__name__}: {e}"}
            result[name]["wall_s"] = round(time.perf_counter() - t0, 1)
            print(name, json.dumps(result[name]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0 if all("error" not in v for k, v in result.items() if isinstance(v, dict) and "wall_s" in v) else 1


if __name__ == "__main__":
    sys.exit(main())
