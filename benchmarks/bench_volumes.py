"""Volumes larger than memory: peak memory as the volume grows, and the block path's throughput
against the in-memory one (``restore segment`` on OME-Zarr, ``restore.segment.blocks``).

    python benchmarks/bench_volumes.py --json benchmarks/results/volumes.json   # ~40 min on 2 cores
    python benchmarks/bench_volumes.py --quick                                  # sizes / 16, a smoke run

Synthetic nuclei (bright balls in noise, uint16, written block by block as uncompressed OME-Zarr,
so the bytes on disk are the voxels' own) segmented by the bundled nuclei model:

1. **fits**: a 16 x 1024 x 1024 volume (32 MiB) whose nuclei have the model's own diameter
   (24 px): the in-memory path (the whole array to ``Segmenter``) and the block path, class masks
   and instances, each in its own process: wall time, peak resident memory (``wait4``), and how
   far their masks agree.
2. **grows**: two volumes 4x apart (96 and 384 planes of 2048 x 2048; 0.75 and 3 GiB), nuclei of
   96 px segmented with ``--diameter 96`` (the model sees them at its 24 px: a quarter of the
   side, as a user of high-resolution light-sheet data would run it), class masks: peak memory
   of each run, which must not grow with the volume, and its rate.
3. **instances at the default block**: 64 x 1024 x 1024, nuclei of 24 px, instances: four blocks
   of 64 x 512 x 512 with their halo, the largest work a block of the default size does.

Every run is a fresh ``python -c`` so that one's memory does not hide in another's; the peak
includes the interpreter, torch and the model (~0.4 GB). The 100 GB estimate at the end is the
measured rate carried to 100 GB of uint16; on a GPU only the network's share (``network_seconds``:
tiles, forward passes, blending) moves there, so the rest (reading, post-processing, writing, on
the CPU as here) is a floor no GPU lowers.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "bench_volumes"


def make_volume(path: Path, shape: tuple[int, int, int], diameter: float, seed: int = 0) -> Path:
    """Bright balls (15% of the volume) in Gaussian noise, written 32 planes at a time."""
    import zarr
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_multiscales_metadata

    if (path / "done").exists():
        return path
    rng = np.random.default_rng(seed)
    r = diameter / 2
    n = int(0.15 * np.prod(shape) / (4 / 3 * np.pi * r**3))
    centres = rng.uniform(0, 1, (n, 3)) * shape
    radii = r * rng.uniform(0.85, 1.15, n)
    bright = rng.uniform(1500, 3000, n)
    group = zarr.open_group(path, mode="w", zarr_format=3)
    arr = group.create_array("0", shape=shape, chunks=(32, 512, 512), dtype="uint16", compressors=None,
                             dimension_names=["z", "y", "x"])
    for z0 in range(0, shape[0], 32):
        z1 = min(z0 + 32, shape[0])
        slab = rng.normal(300, 40, (z1 - z0, *shape[1:])).astype(np.float32)
        near = np.flatnonzero((centres[:, 0] + radii > z0) & (centres[:, 0] - radii < z1))
        for i in near:
            c, rr = centres[i], radii[i]
            lo = [max(0, int(c[0] - rr) - z0), max(0, int(c[1] - rr)), max(0, int(c[2] - rr))]
            hi = [min(z1 - z0, int(c[0] + rr) + 1 - z0), min(shape[1], int(c[1] + rr) + 1),
                  min(shape[2], int(c[2] + rr) + 1)]
            if min(h - lo_ for h, lo_ in zip(hi, lo)) <= 0:
                continue
            zz, yy, xx = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
            ball = (zz + z0 - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < rr**2
            region = slab[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
            region[ball] += bright[i]
        arr[z0:z1] = slab.clip(0, 65535).astype(np.uint16)
    write_multiscales_metadata(group, [{"path": "0", "coordinateTransformations": [
        {"type": "scale", "scale": [1.0, 1.0, 1.0]}]}], fmt=FormatV05(), axes=["z", "y", "x"], name="nuclei")
    (path / "done").write_text("ok")
    return path


# The network's share of a run (tiles, forward passes, blending, softmax): Segmenter._probs_at
# timed on the class, so the copies a run makes (Segmenter.with_options) are timed too.
TIMER = """
import time
from restore.segment.segmenter import Segmenter
net = [0.0]
probs_at = Segmenter._probs_at
def timed(self, *a, **k):
    t0 = time.perf_counter(); r = probs_at(self, *a, **k); net[0] += time.perf_counter() - t0; return r
Segmenter._probs_at = timed
"""

RUN_BLOCKS = TIMER + """
import json, sys, time
from pathlib import Path
from restore.segment.blocks import segment_volume
from restore.segment.segmenter import Segmenter
from restore.segment.volumes import open_volume
src, out, inst, diameter = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
seg = Segmenter(diameter=None if diameter == "none" else float(diameter))
t = time.perf_counter()
summary = segment_volume(seg, open_volume(src), out, instances=inst)
print(json.dumps({"seconds": time.perf_counter() - t, "network_seconds": net[0], **summary}))
"""

RUN_MEMORY = TIMER + """
import json, sys, time
import numpy as np, zarr
from restore.segment.segmenter import Segmenter
src, out, inst, diameter = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
seg = Segmenter(diameter=None if diameter == "none" else float(diameter))
t = time.perf_counter()
image = np.asarray(zarr.open_group(src, mode="r")["0"][:])
labels = seg(image, instances=inst)
seconds = time.perf_counter() - t
np.save(out, labels)
print(json.dumps({"seconds": seconds, "network_seconds": net[0], "labels": int(labels.max())}))
"""


def run(code: str, *args: str) -> dict:
    """``python -c code args`` in a fresh process: its JSON line, wall seconds, peak RSS (GiB)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, env=env, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"run failed ({status}): {code.splitlines()[1:3]} {args}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(wall=time.perf_counter() - t, peak_gib=usage.ru_maxrss / 2**20)  # ru_maxrss: KiB on Linux
    return result


def agreement(mem: Path, blocks: Path) -> dict:
    import zarr

    a = np.load(mem)
    b = np.asarray(zarr.open_group(blocks, mode="r")["0"][:])
    fg = float(((a > 0) == (b > 0)).mean())
    out = {"foreground_agreement": fg}
    if a.max() > 1:  # instances: the share of in-memory objects found as one block-path object (>= 90%)
        ids = np.unique(a)[1:]
        hits = 0
        for k in ids:
            counts = np.bincount(b[a == k])
            hits += counts[1:].max(initial=0) / counts.sum() >= 0.9 if len(counts) > 1 else 0
        out["objects_matched"] = hits / max(1, len(ids))
    return out


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--quick", action="store_true", help="sizes / 16 (a smoke run of the script)")
    ap.add_argument("--skip-fits", action="store_true")
    ap.add_argument("--skip-grows", action="store_true")
    ap.add_argument("--skip-block", action="store_true")
    ap.add_argument("--merge", action="store_true", help="keep the phases of --json that this run skips")
    args = ap.parse_args()
    div = 16 if args.quick else 1
    DATA.mkdir(parents=True, exist_ok=True)
    out = DATA / "out"
    out.mkdir(exist_ok=True)
    results: dict = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                     "cpu_model": _cpu_model(), "date": time.strftime("%Y-%m-%d")}
    if args.merge and args.json and args.json.exists():
        results = {**json.loads(args.json.read_text()), **results}
    if not args.skip_fits:
        shape = (16, 1024 // (4 if args.quick else 1), 1024 // (4 if args.quick else 1))
        src = make_volume(DATA / f"fits_{'x'.join(map(str, shape))}.ome.zarr", shape, 24)
        fits = {"shape": shape, "voxels": int(np.prod(shape))}
        for inst in ("0", "1"):
            kind = "instances" if inst == "1" else "classes"
            mem = run(RUN_MEMORY, str(src), str(out / f"fits_{kind}.npy"), inst, "none")
            blk = run(RUN_BLOCKS, str(src), str(out / f"fits_{kind}_mask.ome.zarr"), inst, "none")
            fits[kind] = {"in_memory": mem, "blocks": blk,
                          "blocks_vs_memory_time": blk["seconds"] / mem["seconds"],
                          **agreement(out / f"fits_{kind}.npy", out / f"fits_{kind}_mask.ome.zarr")}
            print(kind, json.dumps(fits[kind]), flush=True)
        results["fits"] = fits
    if not args.skip_grows:
        grows = []
        for planes in (96 // div, 384 // div):
            shape = (planes, 2048, 2048)
            src = make_volume(DATA / f"grows_{planes}.ome.zarr", shape, 96)
            res = run(RUN_BLOCKS, str(src), str(out / f"grows_{planes}_mask.ome.zarr"), "0", "96")
            res.update(shape=shape, voxels=int(np.prod(shape)), disk_gib=disk_bytes(src) / 2**30,
                       mvoxels_per_s=np.prod(shape) / res["seconds"] / 1e6)
            grows.append(res)
            print("grows", json.dumps(res, default=float), flush=True)
        results["grows"] = grows
    if not args.skip_block:
        # instances at the default block (64 x 512 x 512 and its halo): the heaviest block there is
        shape = (64, 1024 // (4 if args.quick else 1), 1024 // (4 if args.quick else 1))
        src = make_volume(DATA / f"block_{'x'.join(map(str, shape))}.ome.zarr", shape, 24, seed=1)
        res = run(RUN_BLOCKS, str(src), str(out / "block_instances_mask.ome.zarr"), "1", "none")
        res.update(shape=shape, voxels=int(np.prod(shape)))
        results["instances_default_block"] = res
        print("block", json.dumps(res, default=float), flush=True)
    results["estimate_100gb"] = _estimate(results)
    print(json.dumps(results["estimate_100gb"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float) + "\n")


def _estimate(results: dict) -> dict:
    """Hours for 100 GB of uint16 (53.7 G voxels) at the rates measured above."""
    voxels = 100e9 / 2
    est = {}
    if "grows" in results:
        big = results["grows"][-1]
        est["classes_zoom_0.25_hours"] = voxels / (big["voxels"] / big["seconds"]) / 3600
        est["classes_zoom_0.25_gpu_floor_hours"] = voxels / (big["voxels"] / (big["seconds"] - big["network_seconds"])) / 3600
    if "fits" in results:
        for kind in ("classes", "instances"):
            r = results["fits"][kind]["blocks"]
            est[f"{kind}_model_scale_hours"] = voxels / (results["fits"]["voxels"] / r["seconds"]) / 3600
            rest = r["seconds"] - r["network_seconds"]
            est[f"{kind}_model_scale_gpu_floor_hours"] = voxels / (results["fits"]["voxels"] / rest) / 3600
    return est


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
