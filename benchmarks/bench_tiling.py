"""Tiled inference: restore.tiling against MONAI's sliding_window_inference, in one run.

Same model, tile, overlap, blending and batch size for both. Every measurement runs in a
fresh subprocess, so its peak resident memory (``ru_maxrss``) is its own; the speed runs
alternate between the two methods so that both see the same machine load.

    python benchmarks/bench_tiling.py            # 4096^2 speed + 8192^2 memory (minutes on 2 cores)
    python benchmarks/bench_tiling.py --quick    # 1024^2 / 2048^2 smoke run

Prints a table and writes benchmarks/results/tiling.json.
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

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights" / "nuclei.safetensors"
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
STAND_IN = dict(in_channels=1, out_channels=2, base_channels=16, depth=4, kind="plain", norm="batch")


def rss_mb() -> float:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def build_model():
    """The bundled nuclei model if present, else the stand-in config with seeded weights."""
    import torch

    if WEIGHTS.is_file():
        from gan.serialize import load_model

        model, _ = load_model(WEIGHTS)
        return model.eval(), f"{WEIGHTS.relative_to(ROOT)}"
    from gan.nets.unet import UNet, UNetConfig

    torch.manual_seed(0)
    model = UNet(UNetConfig(**STAND_IN)).eval()
    args = ", ".join(f"{k}={v!r}" for k, v in STAND_IN.items())
    return model, f"stand-in UNetConfig({args}) with random weights ({WEIGHTS.name} not found)"


def worker(job: dict) -> dict:
    """One measurement in this (fresh) process."""
    import torch

    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    model, model_name = build_model()
    in_ch = model.config.in_channels
    gen = torch.Generator().manual_seed(1)
    image = torch.rand((in_ch, job["size"], job["size"]), generator=gen)
    if job["dtype"] == "uint8":
        image = (image * 255).to(torch.uint8)
    tile, bs = job["tile"], job["batch_size"]
    with torch.inference_mode():  # warm-up: oneDNN primitives, allocator; the same for both
        model(torch.zeros((bs, in_ch, tile, tile)))

    if job["method"].startswith("ours"):
        from restore.tiling import tiled_inference

        def run():
            return tiled_inference(model, image, tile, overlap=job["overlap"], blend=job["blend"], batch_size=bs,
                                   reuse_memory=job["method"] == "ours", fold_bn=job["method"] != "ours-plain")
    else:
        from monai.inferers import sliding_window_inference

        def run():
            x = image[None].float() if image.dtype != torch.float32 else image[None]
            with torch.inference_mode():  # MONAI leaves this to the caller
                return sliding_window_inference(x, (tile, tile), bs, model, overlap=job["overlap"],
                                                mode=job["blend"], sigma_scale=0.125)[0]
    base = rss_mb()
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    out = run()
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    user, system = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if job.get("sample"):  # a strided sample of the output, to check both methods agree
        import numpy as np

        np.save(job["sample"], out[:, ::7, ::7].float().numpy())
    return {**job, "model": model_name, "wall_s": wall, "cpu_s": user + system,
            "user_s": user, "sys_s": system, "rss_before_mb": base,
            "peak_rss_mb": peak, "threads": torch.get_num_threads(), "out_shape": list(out.shape)}


# To show where the speed-up comes from (--decompose): ours without its two model-side steps,
# and MONAI given the allocator setting of restore.tiling.reuse_freed_memory for its whole
# process through glibc's environment variables.
GLIBC_REUSE = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
METHODS = {
    "ours": "restore.tiling.tiled_inference (defaults: fold_bn, reuse_memory)",
    "monai": "monai.inferers.sliding_window_inference",
    "ours-noreuse": "ours with reuse_memory=False",
    "ours-plain": "ours with fold_bn=False, reuse_memory=False: the tiling alone",
    "monai-reuse": "MONAI with glibc's thresholds raised for its whole process (MALLOC_*_THRESHOLD_)",
}


def spawn(job: dict) -> dict:
    cmd = [sys.executable, __file__, "--worker", json.dumps(job)]
    env = {**os.environ, **(GLIBC_REUSE if job["method"] == "monai-reuse" else {})}
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if res.returncode:
        sys.exit(f"worker {job['method']} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def print_table(a: argparse.Namespace, runs: list, speed: list, memory: list, load: list) -> None:
    print(f"\nmodel: {runs[0]['model']}")
    print(f"image {a.size}^2 {a.dtype}, tile {a.tile}, overlap {a.overlap}, {a.blend} blending, "
          f"{runs[0]['threads']} threads, load average {min(load):.1f}-{max(load):.1f}")
    print(f"{'batch':>5} {'ours s':>8} {'MONAI s':>8} {'speedup':>8} {'(cpu)':>6} "
          f"{'ours MB':>8} {'MONAI MB':>9} {'max|diff|':>10}")
    for s in speed:
        print(f"{s['batch_size']:>5} {s['ours_s']:>8.1f} {s['monai_s']:>8.1f} {s['speedup']:>7.2f}x "
              f"{s['speedup_cpu_time']:>5.2f}x {s['ours_peak_mb']:>8.0f} {s['monai_peak_mb']:>9.0f} "
              f"{s['max_abs_diff']:>10.2e}")
        for k, v in s["all"].items():
            if k not in ("ours", "monai"):
                print(f"      {k}: {v['wall_s']:.1f} s ({s['monai_s'] / v['wall_s']:.2f}x MONAI, cpu "
                      f"{s['all']['monai']['cpu_s'] / v['cpu_s']:.2f}x), peak {v['peak_rss_mb']:.0f} MB "
                      f"[{METHODS[k]}]")
    for m in memory:
        print(f"memory, {m['method']} at {m['size']}^2: peak RSS {m['peak_rss_mb']:.0f} MB "
              f"({'under' if m['under_3gb'] else 'OVER'} 3 GB), {m['wall_s']:.1f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1024^2 speed and 2048^2 memory images")
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--mem-size", type=int, default=8192, help="image side for the memory run (0: skip)")
    p.add_argument("--mem-monai", action="store_true", help="also run MONAI at --mem-size")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=float, default=0.25)
    p.add_argument("--blend", default="gaussian", choices=["gaussian", "constant"])
    p.add_argument("--batch-size", type=int, nargs="+", default=[4], help="one or more; each runs both methods")
    p.add_argument("--dtype", default="float32", choices=["float32", "uint8"], help="input image dtype")
    p.add_argument("--threads", type=int, default=0, help="torch threads per worker (0: torch's default)")
    p.add_argument("--repeats", type=int, default=1, help="speed runs per method; the best counts")
    p.add_argument("--decompose", action="store_true",
                   help="also time ours without its model-side steps, and MONAI with glibc's reuse setting")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "tiling.json")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        print(json.dumps(worker(json.loads(a.worker))))
        return
    if a.quick:
        a.size, a.mem_size = 1024, (2048 if a.mem_size else 0)

    import numpy as np

    base = dict(size=a.size, tile=a.tile, overlap=a.overlap, blend=a.blend, dtype=a.dtype, threads=a.threads)
    load = [os.getloadavg()[0]]
    runs, speed = [], []
    tmp = Path(tempfile.mkdtemp(prefix="bench_tiling_"))
    for bs in a.batch_size:
        best: dict[str, dict] = {}
        for r in range(a.repeats):
            order = ["ours", "monai"] + (["ours-plain", "ours-noreuse", "monai-reuse"] if a.decompose else [])
            for method in order if r % 2 == 0 else order[::-1]:
                res = spawn({**base, "method": method, "batch_size": bs, "sample": str(tmp / f"{method}.npy")})
                load.append(os.getloadavg()[0])
                runs.append(res)
                print(f"  {method:12s} batch {bs}: {res['wall_s']:.1f} s (user {res['user_s']:.1f} s, "
                      f"sys {res['sys_s']:.1f} s), peak {res['peak_rss_mb']:.0f} MB", flush=True)
                if method not in best or res["wall_s"] < best[method]["wall_s"]:
                    best[method] = res
        diff = float(np.abs(np.load(tmp / "ours.npy") - np.load(tmp / "monai.npy")).max())
        o, m = best["ours"], best["monai"]
        speed.append({"batch_size": bs, "ours_s": o["wall_s"], "monai_s": m["wall_s"],
                      "speedup": m["wall_s"] / o["wall_s"], "speedup_cpu_time": m["cpu_s"] / o["cpu_s"],
                      "ours_peak_mb": o["peak_rss_mb"], "monai_peak_mb": m["peak_rss_mb"],
                      "ours_added_mb": o["peak_rss_mb"] - o["rss_before_mb"],
                      "monai_added_mb": m["peak_rss_mb"] - m["rss_before_mb"], "max_abs_diff": diff,
                      "all": {k: {f: v[f] for f in ("wall_s", "cpu_s", "peak_rss_mb")} for k, v in best.items()}})
    memory = []
    if a.mem_size:
        for method in ("ours", "monai") if a.mem_monai else ("ours",):
            res = spawn({**base, "size": a.mem_size, "method": method, "batch_size": a.batch_size[0]})
            load.append(os.getloadavg()[0])
            runs.append(res)
            memory.append({"method": method, "size": a.mem_size, "peak_rss_mb": res["peak_rss_mb"],
                           "wall_s": res["wall_s"], "under_3gb": res["peak_rss_mb"] < 3 * 1024})

    print_table(a, runs, speed, memory, load)
    import torch

    a.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "tiling", "date": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": a.quick, "model": runs[0]["model"],
        "methods": METHODS,
        "settings": {**base, "batch_sizes": a.batch_size, "repeats": a.repeats, "sigma_scale": 0.125},
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__, "load_average_range": [min(load), max(load)]},
        "speed": speed, "memory": memory, "runs": runs,
        "goals": {"speedup_at_least": 1.3, "peak_memory_not_above_monai": True, "peak_8192_under_mb": 3072},
        "goals_met": {"speedup": all(s["speedup"] >= 1.3 for s in speed),
                      "speedup_cpu_time": all(s["speedup_cpu_time"] >= 1.3 for s in speed),
                      "memory_vs_monai": all(s["ours_peak_mb"] <= s["monai_peak_mb"] for s in speed),
                      "memory_8192": all(m["under_3gb"] for m in memory if m["method"] == "ours") if memory else None},
    }
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {a.out.relative_to(ROOT) if a.out.is_relative_to(ROOT) else a.out}")


if __name__ == "__main__":
    main()
