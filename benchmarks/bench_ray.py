"""`restore faces --ray` against the one-machine pipeline on the same folder, in the same run:
photos/s and what Ray costs (starting the cluster, the actors' processes and models, the
scheduling), with 1 actor of all the CPUs and with one actor per CPU.

Photos: ``bench_faces.gather_photos`` (real portraits and old photos), ``--copies`` times over
so the run is long against the fixed costs, as a collection is. Model: GFP-GAN at the published
GFPGANv1.4 size (the cached weights, else seeded random weights of that size, saved to a file so
each actor loads it as a user's would) plus the bundled restorer for the background; or
``--model restorer``. Every run is the CLI in a fresh process, timed from the outside: imports,
model loads and first calls count in both, and ``--ray local`` starts and stops its own
cluster. Each Ray run's outputs are checked byte for byte against the pipeline's.

    python benchmarks/bench_ray.py                  # ~6 minutes on 2 cores
    python benchmarks/bench_ray.py --model restorer --copies 4

Prints a table and writes benchmarks/results/ray.json (or --out).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(ROOT / "benchmarks"))


def face_weights(model: str, tmp: Path) -> tuple[str, str, str]:
    """(face weights, background weights, description), as files the actors can load."""
    import torch

    from bench_faces import stand_ins
    from gan.serialize import save_model

    faces, bg, name = stand_ins(tmp, model)
    if isinstance(faces, torch.nn.Module):
        faces = str(save_model(faces, tmp / "gfpgan_stand_in.safetensors"))
    return faces, bg, name


def outputs(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
            and p.name != "report.json"}


def timed_run(folder: Path, out: Path, weights: str, *ray: str) -> dict:
    """``restore faces`` as a user runs it, in a fresh process (imports, models, first calls
    and, with ``--ray local``, the cluster's start and stop all count), and its wall time."""
    cmd = [sys.executable, "-m", "restore", "faces", str(folder), "-o", str(out), "--weights", weights,
           "--precision", "fp32", "--batch-size", "1", "--quiet", *ray]
    t0 = time.perf_counter()
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{run.stderr[-3000:]}")
    entries = json.loads((out / "report.json").read_text())
    done = sum(e["error"] is None for e in entries)
    faces = sum(len(e["faces"] or []) for e in entries)
    return {"seconds": round(seconds, 2), "photos_per_s": round(done / seconds, 4),
            "faces_per_s": round(faces / seconds, 4), "done": done}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gfpgan", choices=["gfpgan", "restorer"])
    ap.add_argument("--copies", type=int, default=2, help="copies of each gathered photo (default 2)")
    ap.add_argument("--photos", type=Path, help="a folder of photos instead of the gathered ones")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ray.json")
    args = ap.parse_args()

    import torch

    from bench_faces import gather_photos

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos = sorted(p for p in args.photos.iterdir() if p.is_file()) if args.photos else gather_photos(tmp / "g")
        folder = tmp / "in"
        folder.mkdir()
        for k in range(args.copies):
            for p in photos:
                shutil.copy(p, folder / f"{k}_{p.name}")
        items = sorted(folder.iterdir())
        faces_w, _, name = face_weights(args.model, tmp)  # the background: the bundled restorer, the CLI's
        threads = torch.get_num_threads()
        runs = {"pipeline": timed_run(folder, tmp / "pipeline", faces_w)}
        expected = outputs(tmp / "pipeline")
        for workers, cpus in ((1, threads), (threads, 1)):
            label = f"ray_{workers}x{cpus}cpu"
            runs[label] = timed_run(folder, tmp / label, faces_w, "--ray", "local", "--ray-workers", str(workers),
                                    "--ray-cpus-per-worker", str(cpus))
            got = outputs(tmp / label)
            runs[label]["identical_to_pipeline"] = got.keys() == expected.keys() and all(
                got[k] == expected[k] for k in got)
            runs[label]["overhead_vs_pipeline"] = round(runs[label]["seconds"] / runs["pipeline"]["seconds"] - 1, 3)
    print(f"{len(items)} photos ({args.copies} x {len(photos)}), {name}, fp32, {threads} torch threads")
    print(f"{'run':<16} {'seconds':>8} {'photos/s':>9} {'faces/s':>8} {'vs pipeline':>12} {'identical':>10}")
    for label, r in runs.items():
        vs = "" if label == "pipeline" else f"{r['overhead_vs_pipeline']:+.1%}"
        same = "" if label == "pipeline" else str(r["identical_to_pipeline"])
        print(f"{label:<16} {r['seconds']:>8.1f} {r['photos_per_s']:>9.3f} {r['faces_per_s']:>8.3f} {vs:>12} {same:>10}")
    result = {"benchmark": "ray", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "settings": {"model": name, "photos": len(items), "copies": args.copies, "torch_threads": threads,
                           "cpus": os.cpu_count()},
              "machine": {"torch": torch.__version__}, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
