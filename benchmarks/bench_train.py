"""Training throughput of the pix2pix 256 x 256 configuration: our fast path against a plain
eager run of the same networks, in one run; then data parallel, 2 processes against 1.

    python benchmarks/bench_train.py [--steps 8] [--batch-size 2] [--quick]

- plain: contiguous tensors, fp32, the for-loop AdamW, batches prepared inline;
- fast: channels-last, bf16 autocast (on CPUs with AVX512-BF16/AMX, CUDA), fused AdamW, the
  next batches prepared in a background thread.
Both start from the same weights and draw the same batches; the per-step losses of both are
written out so the curves can be compared. Results: benchmarks/results/train.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan.data.batches import PairBatches  # noqa: E402
from gan.data.degrade import Degradation  # noqa: E402
from gan.presets import PATCHGAN_PRESETS, PIX2PIX_PRESETS  # noqa: E402
from gan.train import distributed as dist  # noqa: E402
from gan.train.loop import TrainConfig, train  # noqa: E402


def photos(crop: int, n: int = 8) -> tuple[list, str]:
    """Real training photos when fetched (scripts/fetch_photos.py), else smooth random images."""
    folder = ROOT / "data" / "photos" / "train"
    files = sorted(folder.glob("*.png"))[:n]
    if files:
        from PIL import Image

        imgs = [np.asarray(Image.open(f).convert("RGB")) for f in files]
        return [(None, im) for im in imgs if min(im.shape[:2]) >= crop], f"{len(imgs)} photos from {folder}"
    rng = np.random.default_rng(0)
    imgs = [(rng.random((crop * 2, crop * 2, 3)) * 255).astype(np.uint8) for _ in range(n)]
    return [(None, im) for im in imgs], "random images (run scripts/fetch_photos.py for real photos)"


def config(steps: int, batch: int, fast: bool, preset: str) -> TrainConfig:
    cfg = TrainConfig(task="gan", arch="UNetGenerator", model=PIX2PIX_PRESETS[preset].to_dict(),
                      disc_arch="PatchDiscriminator", disc=PATCHGAN_PRESETS[preset].to_dict(), steps=steps,
                      batch_size=batch, lr=2e-4, betas=(0.5, 0.999), weight_decay=0.0, warmup=0,
                      val_every=10**9, seed=0)
    if fast:
        return replace(cfg, channels_last=True, fused=True, amp=True, loader_threads=1)
    return replace(cfg, channels_last=False, fused=False, amp=False, loader_threads=0)


def run_mode(fast: bool, args, pairs) -> dict:
    batches = PairBatches(pairs, args.crop, args.batch_size, seed=0, degrade=Degradation("mixed"))
    with tempfile.TemporaryDirectory() as out:
        s = train(config(args.warmup + args.steps, args.batch_size, fast, args.preset), batches, out,
                  progress=False, log=lambda m: None)
    timed = s["step_seconds"][args.warmup:]
    return {"samples_per_s": args.batch_size / float(np.median(timed)), "median_step_s": float(np.median(timed)),
            "losses": s["losses"]}


def ddp_run(nproc: int, args) -> float:
    """samples/s of the CLI under torchrun with ``nproc`` processes sharing the cores."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // nproc))}
        data = ROOT / "data" / "photos" / "train"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port",
               str(29600 + nproc), "-m", "restore", "train", "pix2pix", "--data", str(data), "--degrade", "mixed",
               "--out", tmp, "--preset", args.preset, "--crop", str(args.crop), "--batch-size", str(args.batch_size),
               "--steps", str(args.warmup + args.steps), "--val-every", "100000", "--quiet", "--ema", "0",
               "--skip-bad"]  # photos smaller than the crop are left out
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
        s = json.loads((Path(tmp) / "summary.json").read_text())
    return nproc * args.batch_size / float(np.median(s["step_seconds"][args.warmup:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--preset", default="default", help="pix2pix preset (default: pix2pix's unet_256 + 70x70)")
    ap.add_argument("--quick", action="store_true", help="tiny preset, 64 px: a smoke run")
    ap.add_argument("--no-ddp", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.preset, args.crop, args.steps = "tiny", 64, 4
    pairs, source = photos(args.crop)
    print(f"pix2pix preset {args.preset!r} at {args.crop}px, batch {args.batch_size}; data: {source}")
    print(f"CPU bf16: {dist.cpu_has_bf16()}; torch {torch.__version__}; threads {torch.get_num_threads()}")
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "preset": args.preset, "crop": args.crop,
               "batch_size": args.batch_size, "steps": args.steps, "data": source,
               "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                           "bf16": dist.cpu_has_bf16(), "load_average": os.getloadavg()}}
    runs = {"plain": [], "fast": []}
    for mode in ("plain", "fast", "plain", "fast"):  # interleaved: drifting machine load hits both
        runs[mode].append(run_mode(mode == "fast", args, pairs))
        print(f"{mode:5s}: {runs[mode][-1]['samples_per_s']:.3f} samples/s", flush=True)
    best = {m: max(r["samples_per_s"] for r in rs) for m, rs in runs.items()}
    plain_l, fast_l = np.array(runs["plain"][0]["losses"]), np.array(runs["fast"][0]["losses"])
    rel = float(np.mean(np.abs(fast_l - plain_l) / np.abs(plain_l)))
    results.update(plain=runs["plain"], fast=runs["fast"], speedup=best["fast"] / best["plain"],
                   loss_curve_mean_relative_difference=rel)
    print(f"speed-up fast/plain: {results['speedup']:.2f}x; loss curves differ by {rel * 100:.2f}% on average")
    if not args.no_ddp and (ROOT / "data" / "photos" / "train").is_dir():
        one, two = ddp_run(1, args), ddp_run(2, args)
        results["ddp"] = {"1_process_samples_per_s": one, "2_processes_samples_per_s": two, "ratio": two / one}
        print(f"data parallel: 1 process {one:.3f}, 2 processes {two:.3f} samples/s ({two / one:.2f}x)")
    out = ROOT / "benchmarks" / "results" / "train.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
