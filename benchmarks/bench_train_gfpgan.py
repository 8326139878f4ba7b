"""Training cost of the GFP-GAN face restorer (``restore train gfpgan``): seconds per step and
peak memory of a preset, on this machine, with every loss of the published configuration on.

    python benchmarks/bench_train_gfpgan.py [--preset small] [--batch-size 4] [--steps 12]

Faces: the real faces at hand (skimage's astronaut, matplotlib's Grace Hopper and the photos in
examples/faces), found by MTCNN and aligned to the FFHQ template at the preset's side; the
point is timing, not quality. Perceptual loss: MobileNetV2 when its file is given or in
pytest's cache (VGG19 is not reachable offline; GFP-GAN's own backbone costs more), else off.
Identity loss: a randomly initialised ArcFace (the real file is user-supplied; the cost is the
same). Each configuration (fp32, and bf16 autocast where the CPU has it) runs in its own
process, so its peak RSS (``resource.getrusage``) is its own. The first 2 steps are warm-up.
Results: benchmarks/results/train_gfpgan.json, one entry per preset and device.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MOBILENET = ROOT / ".pytest_cache" / "d" / "mobilenet_v2_weights" / "mobilenet_v2-b0353104.pth"


def aligned_faces(size: int) -> list[np.ndarray]:
    """Every face MTCNN finds in the sample photos, aligned to the FFHQ template at ``size``."""
    import matplotlib.cbook
    from PIL import Image
    from skimage.data import astronaut

    from restore.faces.align import estimate_affine, warp_face
    from restore.faces.detect import detect, make_detector

    photos = [astronaut(), np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))]
    examples = sorted((ROOT / "examples" / "faces").glob("*.[jp][pn]g"))
    photos += [np.asarray(Image.open(p).convert("RGB")) for p in examples]
    detector, _ = make_detector("mtcnn")
    faces = []
    for photo in photos:
        for d in detect(detector, photo):
            faces.append(warp_face(photo, estimate_affine(d.landmarks, size), size))
    return faces


def child(args) -> dict:
    """One configuration, in this process: returns its timings and memory."""
    from gan.data.degrade import Degradation
    from gan.data.faces import FaceBatches
    from gan.losses.perceptual import GFPGAN_VGG_LAYERS, PerceptualLoss
    from gan.nets.arcface import ResNetArcFace
    from gan.presets import GFPGAN_TRAIN_PRESETS
    from gan.train.gfpgan import train_settings
    from gan.train.loop import TrainConfig, train
    from restore.faces.align import template

    if args.threads:
        torch.set_num_threads(args.threads)
    gen, disc, comp = GFPGAN_TRAIN_PRESETS[args.preset]
    faces = aligned_faces(gen.out_size)
    perceptual = None
    weights = args.perceptual_weights or (MOBILENET if MOBILENET.is_file() else None)
    if weights:
        perceptual = PerceptualLoss(weights=weights, layers=GFPGAN_VGG_LAYERS, vgg_names=True, style_weight=1.0)
    identity = None if args.no_identity else ResNetArcFace().eval()
    settings = {**train_settings(), "perceptual_weight": 1.0 if perceptual else 0.0}
    cfg = TrainConfig(**settings, model=gen.to_dict(), disc=disc.to_dict(),
                      face={"component": comp.to_dict(), "identity_weight": 0.0 if args.no_identity else 10.0,
                            "style_weight": 50.0 if perceptual else 0.0},
                      steps=args.steps, batch_size=args.batch_size, amp=args.amp, val_every=10**9,
                      image_every=10**9, log_every=10**9)
    batches = FaceBatches(faces, gen.out_size, args.batch_size, template(gen.out_size), degrade=Degradation("gfpgan"))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as out:
        summary = train(cfg, batches, out, progress=False, log=lambda s: None, perceptual=perceptual,
                        identity=identity)
    times = summary["step_seconds"][2:]
    return {"faces": len(faces), "perceptual": perceptual.describe() if perceptual else "off",
            "identity": "ArcFace (random weights)" if identity is not None else "off",
            "s_per_step": round(float(np.median(times)), 3), "s_per_step_mean": round(float(np.mean(times)), 3),
            "timed_steps": len(times), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "rss_before_training_mb": round(rss_before), "torch_threads": torch.get_num_threads(),
            "final_loss": round(summary["losses"][-1], 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="small", choices=["tiny", "small", "paper"])
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--perceptual-weights", type=Path)
    p.add_argument("--no-identity", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--amp", action="store_true", help="(child) bf16 autocast")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "train_gfpgan.json")
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    from gan.precision import cpu_has_bf16

    runs = {}
    base = [sys.executable, __file__, "--child", "--preset", args.preset, "--batch-size", str(args.batch_size),
            "--steps", str(args.steps), "--threads", str(args.threads)] + (["--no-identity"] if args.no_identity else [])
    if args.perceptual_weights:
        base += ["--perceptual-weights", str(args.perceptual_weights)]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for name, extra in [("fp32", []), ("bf16", ["--amp"])]:
        if name == "bf16" and device == "cpu" and not cpu_has_bf16():
            continue
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        done = subprocess.run(base + extra, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"{name} run failed:\n{done.stderr[-3000:]}")
        runs[name] = {**json.loads(done.stdout.strip().splitlines()[-1]), "load_average_before": round(load, 2),
                      "wall_s": round(time.perf_counter() - t0, 1)}
        print(name, runs[name], flush=True)
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__,
               "device": device, "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
               "cpu_bf16": cpu_has_bf16()}
    entry = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine,
             "settings": {"batch_size": args.batch_size, "steps": args.steps, "threads": args.threads or "default",
                          "losses": "pixel, pyramid, perceptual+style, GAN+R1/16, 3 component GANs + Gram style, "
                                    "identity (as published)"},
             "runs": runs}
    # one file, one entry per preset and device: earlier entries of others are kept
    result = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if result.get("benchmark") != "train_gfpgan" or "results" not in result:
        result = {"benchmark": "train_gfpgan", "results": {}}
    result["results"][f"{args.preset}/{device}"] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
