"""GFP-GAN forward, 512 x 512, batch 1, on the CPU: gfpgan's GFPGANv1Clean against gan.nets.gfpgan
with the same weights, in one run.

    python benchmarks/bench_gfpgan.py                          # random weights (see below)
    python benchmarks/bench_gfpgan.py --weights GFPGANv1.4.pth # the published weights
    python benchmarks/bench_gfpgan.py --decompose              # also the steps in between

Methods (all under torch.inference_mode, stored noise, no intermediate RGBs):
- ref-fp32: gfpgan 1.3.8's GFPGANv1Clean as gfpgan's own GFPGANer runs it (NCHW, fp32);
- ours-fp32: gan.nets.gfpgan.GFPGAN through gan.precision.run after cast_model(.., "fp32")
  (channels-last weights and input);
- ours-bf16: the same after cast_model(.., "bf16") (on CPUs with AVX512-BF16/AMX);
- with --decompose: ours-fp32-nchw (no channels-last anywhere) and ours-bf16-autocast
  (the float32 model under bf16 autocast).

Timing: one warm-up call each, then --repeats rounds, the methods interleaved (reversed every
other round) so all see the same machine load; medians of wall time and of process CPU time.
On a shared machine, CPU time is the steadier of the two (threads descheduled by other jobs
inflate wall time, not CPU time, though spinning OpenMP threads inflate both).

Accuracy on two real faces (skimage's astronaut, matplotlib's grace_hopper.jpg, cropped
roughly as FFHQ aligns faces and resized to 512): max |ours-fp32 - ref-fp32|, and the PSNR of
ours-bf16 against ours-fp32 (outputs clamped to [-1, 1], peak-to-peak 2). With random weights
that PSNR says little about the published models (a random network's activations have other
statistics): the JSON labels it so; pass --weights for the real figure.
Results: benchmarks/results/gfpgan.json.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gan  # noqa: E402,F401  (the torchvision shim, before gfpgan imports basicsr)
from gan.nets.gfpgan import GFPGAN_PRESETS, load_published  # noqa: E402
from gan.precision import (  # noqa: E402
    cast_model,
    cpu_has_bf16,  # noqa: E402
    run,
)

REFERENCE_ARGS = dict(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None,
                      fix_decoder=False, num_mlp=8, input_is_latent=True, different_w=True, narrow=1, sft_half=True)
# (left, top, side) of a square around each face, about as FFHQ alignment frames it.
FACES = {"astronaut": (95, 0, 260), "grace_hopper": (65, 40, 400)}


def faces(size: int = 512) -> dict[str, torch.Tensor]:
    """The two public-domain face photos, cropped and resized: 1 x 3 x size x size in [-1, 1]."""
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    photos = {"astronaut": Image.fromarray(skimage.data.astronaut()),
              "grace_hopper": Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")}
    out = {}
    for name, (left, top, side) in FACES.items():
        crop = photos[name].crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
        arr = np.asarray(crop, dtype=np.float32) / 127.5 - 1.0
        out[name] = torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()
    return out


def reference_and_state(weights: Path | None):
    """gfpgan's network and its state dict: the published one, or seeded random weights with
    every parameter perturbed (the noise strengths start at zero, which would hide the noise)."""
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

    torch.manual_seed(0)
    ref = GFPGANv1Clean(**REFERENCE_ARGS)
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        state = state.get("params_ema", state.get("params", state))
        ref.load_state_dict(state, strict=True)
        sha = hashlib.sha256(weights.read_bytes()).hexdigest()
        label = f"{weights.name} (sha256 {sha})"
    else:
        with torch.no_grad():
            for p in ref.parameters():
                spread = p.std() if p.numel() > 1 and p.std() > 0 else torch.tensor(1.0)
                p.add_(torch.randn_like(p) * 0.1 * spread)
        label = "random (GFPGANv1Clean init, seed 0, every parameter perturbed): not representative for the PSNR"
    return ref.eval(), ref.state_dict(), label


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.clamp(-1, 1) - b.clamp(-1, 1)).double() ** 2).item()
    return float("inf") if mse == 0 else 10 * np.log10(4.0 / mse)


def timed(fn) -> tuple[float, float]:
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, help="a GFPGANv1.3/v1.4 .pth (default: random weights)")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds per method (medians reported)")
    p.add_argument("--threads", type=int, nargs="+", default=[2], help="torch threads; one run per value")
    p.add_argument("--decompose", action="store_true", help="also ours without channels-last, bf16 by autocast")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gfpgan.json")
    a = p.parse_args()
    if a.weights is not None and not a.weights.is_file():
        sys.exit(f"no such file: {a.weights}")

    ref, state, weights_label = reference_and_state(a.weights)
    ours32 = cast_model(load_published(state), "fp32")
    bf16 = cpu_has_bf16()
    ours16 = cast_model(load_published(state), "bf16") if bf16 else None
    plain = load_published(state) if a.decompose else None
    imgs = faces()
    x = imgs["astronaut"]

    def ref_fp32(img=x):
        with torch.inference_mode():
            return ref(img, return_rgb=False, randomize_noise=False)[0]

    methods = {"ref-fp32": ref_fp32, "ours-fp32": lambda img=x: run(ours32, img, "fp32")}
    if bf16:
        methods["ours-bf16"] = lambda img=x: run(ours16, img, "bf16")
    if a.decompose:
        def plain_fp32(img=x):
            with torch.inference_mode():
                return plain(img)

        methods["ours-fp32-nchw"] = plain_fp32
        if bf16:
            methods["ours-bf16-autocast"] = lambda img=x: run(plain, img, "bf16")

    accuracy = {}
    for name, img in imgs.items():
        outs = {k: f(img).float() for k, f in methods.items()}
        row = {"max_abs_diff_ours_fp32_vs_ref": (outs["ours-fp32"] - outs["ref-fp32"]).abs().max().item()}
        for k in outs:
            if "bf16" in k:
                row[f"psnr_{k}_vs_ours_fp32_db"] = psnr(outs[k], outs["ours-fp32"])
        accuracy[name] = row
        print(f"{name}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items()), flush=True)

    load = [os.getloadavg()[0]]
    speed = {}
    for threads in a.threads:
        torch.set_num_threads(threads)
        for f in methods.values():
            f()  # warm-up: oneDNN primitives, the allocator
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in methods}
        order = list(methods)
        for r in range(a.repeats):
            for k in order if r % 2 == 0 else order[::-1]:
                times[k].append(timed(methods[k]))
            load.append(os.getloadavg()[0])
        row = {k: {"wall_ms_median": 1e3 * statistics.median(w for w, _ in v),
                   "wall_ms_min": 1e3 * min(w for w, _ in v),
                   "cpu_ms_median": 1e3 * statistics.median(c for _, c in v),
                   "wall_ms": [1e3 * w for w, _ in v], "cpu_ms": [1e3 * c for _, c in v]} for k, v in times.items()}
        base = row["ref-fp32"]
        ratios = {f"{k}_speedup_vs_ref_fp32": {m: base[m] / row[k][m] for m in ("wall_ms_median", "wall_ms_min",
                                                                              "cpu_ms_median")}
                  for k in row if k != "ref-fp32"}
        speed[str(threads)] = {"ms": row, "ratios": ratios}
        print(f"\n{threads} thread(s), {a.repeats} rounds, load average {min(load):.1f}-{max(load):.1f}")
        print(f"{'method':>20} {'wall ms (median)':>17} {'min':>8} {'cpu ms (median)':>16} {'x ref (wall)':>13} "
              f"{'x ref (cpu)':>12}")
        for k, v in row.items():
            rr = ratios.get(f"{k}_speedup_vs_ref_fp32", {"wall_ms_median": 1.0, "cpu_ms_median": 1.0})
            print(f"{k:>20} {v['wall_ms_median']:>17.0f} {v['wall_ms_min']:>8.0f} {v['cpu_ms_median']:>16.0f} "
                  f"{rr['wall_ms_median']:>12.2f}x {rr['cpu_ms_median']:>11.2f}x")

    main_run = speed[str(a.threads[0])]["ratios"]
    worst_psnr = min((v for row in accuracy.values() for k, v in row.items() if k.startswith("psnr_ours-bf16_")),
                     default=None)
    result = {
        "benchmark": "gfpgan", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "weights": weights_label, "random_weights": a.weights is None,
        "model": {"config": GFPGAN_PRESETS["published"].to_dict(), "input": [1, 3, 512, 512],
                  "parameters": sum(t.numel() for t in ours32.parameters()), "gflop_per_face": 395.5},
        "methods": {"ref-fp32": "gfpgan 1.3.8 GFPGANv1Clean, NCHW fp32",
                    "ours-fp32": "gan.nets.gfpgan.GFPGAN, cast_model fp32 (channels-last) + precision.run",
                    "ours-bf16": "the same, cast_model bf16",
                    "ours-fp32-nchw": "gan.nets.gfpgan.GFPGAN as loaded, NCHW input",
                    "ours-bf16-autocast": "the float32 model under CPU bf16 autocast"},
        "settings": {"repeats": a.repeats, "threads": a.threads, "decompose": a.decompose, "faces": FACES},
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "bf16": bf16,
                    "torch": torch.__version__, "load_average_range": [min(load), max(load)]},
        "speed": speed, "accuracy": accuracy,
        "accuracy_note": ("PSNR with random weights: not representative of the published models"
                          if a.weights is None else "PSNR with the published weights"),
        "goals": {"ours_fp32_vs_ref_at_least": 1.5, "ours_bf16_vs_ref_fp32_at_least": 2.5,
                  "bf16_psnr_vs_fp32_db_at_least": 38.0},
        "goals_met": {
            "fp32_wall": main_run["ours-fp32_speedup_vs_ref_fp32"]["wall_ms_median"] >= 1.5,
            "fp32_cpu": main_run["ours-fp32_speedup_vs_ref_fp32"]["cpu_ms_median"] >= 1.5,
            "bf16_wall": main_run["ours-bf16_speedup_vs_ref_fp32"]["wall_ms_median"] >= 2.5 if bf16 else None,
            "bf16_cpu": main_run["ours-bf16_speedup_vs_ref_fp32"]["cpu_ms_median"] >= 2.5 if bf16 else None,
            "bf16_psnr": (worst_psnr >= 38.0 if worst_psnr is not None else None) if a.weights else
                         "unknown without the published weights",
        },
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {a.out.relative_to(ROOT) if a.out.is_relative_to(ROOT) else a.out}")


if __name__ == "__main__":
    main()
