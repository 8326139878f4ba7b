"""`restore faces` end to end on a folder of real photos: photos/s, faces/s, and how much of
the time is spent outside the networks (decode, detect, align, paste-back, encode).

Per photo it does what the CLI does (``restore.faces.folder``): read the file (EXIF, alpha),
``FaceRestorer.restore``, write the restored photo and one side-by-side crop per face. The
networks (face restorer, background restorer, face parser) are timed apart from the rest by
``FaceRestorer``'s own stage timings; detection counts as "outside", as the issue asks.

Photos: the two public-domain portraits (skimage's astronaut, matplotlib's Grace Hopper), the
degraded examples in examples/faces/, and the real old photos with faces among Real-ESRGAN's
demo inputs (``pip download realesrgan==0.3.0`` sdist, BSD-3; skipped when offline). Or
``--photos DIR``.

Models: ``restorer`` (the bundled restorer for faces and background) and ``gfpgan`` (GFP-GAN at
the published GFPGANv1.4 size for faces, the restorer for the background). Where the weights
are absent, networks of the same architecture and size with seeded random weights stand in:
the cost is the same, the pictures are not.

    python benchmarks/bench_faces.py                   # both models, CPU (minutes on 2 cores)
    python benchmarks/bench_faces.py --model restorer --quick
    python benchmarks/bench_faces.py --device cuda --precision auto

Prints a table and writes benchmarks/results/faces.json (or --out).
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
RESR_FACES = ("00017_gray.png", "children-alpha.png")  # the Real-ESRGAN inputs that have faces


def gather_photos(folder: Path) -> list[Path]:
    from matplotlib import cbook
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    shutil.copy(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), folder / "grace_hopper.jpg")
    for f in sorted((ROOT / "examples" / "faces").glob("*.[jp][pn]g")):
        shutil.copy(f, folder / f.name)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-build-isolation",
               "--no-binary", ":all:", "realesrgan==0.3.0", "-d", tmp]
        if subprocess.run(cmd, capture_output=True).returncode == 0:
            with tarfile.open(next(Path(tmp).glob("realesrgan-*.tar.gz"))) as t:
                for m in t.getmembers():
                    if Path(m.name).name in RESR_FACES and "/inputs/" in m.name:
                        (folder / Path(m.name).name).write_bytes(t.extractfile(m).read())
        else:
            print("note: realesrgan sdist not reachable; its photos are left out", file=sys.stderr)
    return sorted(p for p in folder.iterdir() if p.is_file())


def stand_ins(tmp: Path, model: str):
    """(face weights, background weights, description): the real ones where present."""
    import torch

    from gan.nets.gfpgan import GFPGAN, GFPGANConfig
    from gan.nets.restorer import Restorer
    from gan.presets import PIX2PIX_PRESETS
    from gan.serialize import save_model
    from restore.models.cache import find_cached, resolve_weights
    from restore.models.manifest import WeightsError

    try:
        bg, bg_name = str(resolve_weights("restorer")), "bundled restorer"
    except WeightsError:
        torch.manual_seed(0)
        bg = str(save_model(Restorer(PIX2PIX_PRESETS["restorer"]), tmp / "restorer_stand_in.safetensors"))
        bg_name = "restorer preset, random weights (not bundled yet)"
    if model == "restorer":
        return bg, bg, bg_name
    found = next((n for n in ("gfpgan-v1.4", "gfpgan-v1.3") if find_cached(n) is not None), None)
    if found:
        return found, bg, f"{found} + {bg_name}"
    torch.manual_seed(0)
    net = GFPGAN(GFPGANConfig())
    return net, bg, f"GFPGANv1.4-sized network, random weights (not in the cache) + {bg_name}"


def run_model(model: str, photos: list[Path], args, tmp: Path) -> dict:
    import numpy as np
    import torch

    from restore.faces.folder import read_alpha
    from restore.faces.restorer import FaceRestorer
    from restore.imageio import read_image
    from restore.imagewrite import write_png

    faces_w, bg_w, name = stand_ins(tmp, model)
    fr = FaceRestorer(faces_w, args.detector, args.device, args.precision, upscale=args.upscale, bg=args.bg,
                      bg_weights=bg_w, tile=args.tile)
    out = tmp / f"out_{model}"
    stages = dict.fromkeys(["decode", "detect", "align", "net_faces", "net_background", "net_parse",
                            "paste", "encode"], 0.0)
    n_faces, per_photo = 0, []

    def one(path: Path, record: bool) -> None:
        nonlocal n_faces
        t0 = time.perf_counter()
        image = read_image(path)
        alpha = read_alpha(path, image.shape[:2])
        if alpha is not None:
            image = np.dstack([image, alpha.astype(image.dtype) * (257 if image.dtype == np.uint16 else 1)])
        t1 = time.perf_counter()
        result = fr.restore(image)
        t2 = time.perf_counter()
        write_png(out / f"{path.stem}.png", result.image, compress_level=1)
        for k, f in enumerate(result.faces):
            write_png(out / f"{path.stem}_{k}.png", np.concatenate([f.cropped, f.restored], 1), compress_level=1)
        t3 = time.perf_counter()
        if record:
            stages["decode"] += t1 - t0
            stages["encode"] += t3 - t2
            for k, v in result.timings.items():
                stages[k] += v
            n_faces += len(result.faces)
            per_photo.append({"photo": path.name, "size": list(image.shape[:2]), "faces": len(result.faces),
                              "seconds": round(t3 - t0, 3)})

    one(photos[0], record=False)  # warm-up: first-call costs of every network
    start = time.perf_counter()
    for p in photos:
        one(p, record=True)
    total = time.perf_counter() - start
    net = sum(v for k, v in stages.items() if k.startswith("net_"))
    return {"model": name, "photos": len(photos), "faces": n_faces, "seconds": round(total, 2),
            "photos_per_s": round(len(photos) / total, 3), "faces_per_s": round(n_faces / total, 3),
            "network_seconds": round(net, 2), "outside_fraction": round(1 - net / total, 3),
            "stages": {k: round(v, 3) for k, v in stages.items()}, "per_photo": per_photo,
            "torch_threads": torch.get_num_threads()}


def compare_pipeline(model: str, photos: list[Path], args, tmp: Path) -> dict:
    """The folder runner of ``restore faces`` (restore.faces.folder) one photo after another
    against the pipeline (reading ahead, faces of several photos per network call, writing
    behind), on the same photos, in this run; with the share of each run's time that is not
    spent in a network call (the network calls are timed where they are made)."""
    import torch

    from restore.runners.inputs import scan_inputs
    from restore.faces.folder import run_faces_batch
    from restore.faces.restorer import FaceRestorer

    faces_w, bg_w, name = stand_ins(tmp, model)
    fr = FaceRestorer(faces_w, args.detector, args.device, args.precision, upscale=args.upscale, bg=args.bg,
                      bg_weights=bg_w, tile=args.tile, batch_size=args.batch_size)
    in_net = {"s": 0.0}

    def timed(fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                in_net["s"] += time.perf_counter() - t0
        return wrapper

    fr.restore_crops, fr._background = timed(fr.restore_crops), timed(fr._background)  # the networks' calls
    folder = tmp / f"pipeline_in_{model}"
    folder.mkdir(exist_ok=True)
    for p in photos:
        shutil.copy(p, folder / p.name)
    items = scan_inputs([folder]).items
    run_faces_batch(fr, items[:1], tmp / "warm", quiet=True, pipeline=False)  # first-call costs
    rows = {}
    for label, pipeline in (("photo_at_a_time", False), ("pipeline", True)):
        in_net["s"] = 0.0
        out = tmp / f"pipeline_out_{model}_{label}"
        t0 = time.perf_counter()
        report = run_faces_batch(fr, items, out, quiet=True, pipeline=pipeline)
        total = time.perf_counter() - t0
        faces = sum(len(e["faces"] or []) for e in json.loads((out / "report.json").read_text()))
        rows[label] = {"seconds": round(total, 2), "photos_per_s": round(report.done / total, 3),
                       "faces_per_s": round(faces / total, 3), "network_seconds": round(in_net["s"], 2),
                       "outside_fraction": round(1 - in_net["s"] / total, 3), "done": report.done}
    rows["speedup"] = round(rows["pipeline"]["photos_per_s"] / rows["photo_at_a_time"]["photos_per_s"], 2)
    rows["model"], rows["batch_size"] = name, fr.batch_size
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, help="a folder of photos with faces (default: gathered, see above)")
    ap.add_argument("--model", default="both", choices=["restorer", "gfpgan", "both"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--detector", default="auto")
    ap.add_argument("--bg", default="restorer")
    ap.add_argument("--upscale", type=int, default=1)
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--quick", action="store_true", help="three photos only")
    ap.add_argument("--batch-size", type=int, default=1, help="faces per network call (the CLI's CPU default)")
    ap.add_argument("--no-stages", action="store_true", help="only the pipeline comparison, not the stage profile")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "faces.json")
    args = ap.parse_args()

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos = sorted(p for p in args.photos.iterdir() if p.is_file()) if args.photos else gather_photos(tmp / "in")
        photos = photos[:3] if args.quick else photos
        models = ["restorer", "gfpgan"] if args.model == "both" else [args.model]
        runs = [] if args.no_stages else [run_model(m, photos, args, tmp) for m in models]
        pipelines = [compare_pipeline(m, photos, args, tmp) for m in models]
    print(f"{len(photos)} photos; device {args.device}, precision {args.precision}, bg {args.bg}, "
          f"upscale {args.upscale}")
    print(f"{'model':<10} {'photos/s':>9} {'faces/s':>8} {'total s':>8} {'networks s':>11} {'outside':>8}")
    for m, r in zip(models, runs):
        print(f"{m:<10} {r['photos_per_s']:>9.3f} {r['faces_per_s']:>8.3f} {r['seconds']:>8.1f} "
              f"{r['network_seconds']:>11.1f} {r['outside_fraction']:>8.1%}")
        print("           " + ", ".join(f"{k} {v:.2f}s" for k, v in r["stages"].items()))
    print(f"{'model':<10} {'path':<16} {'photos/s':>9} {'faces/s':>8} {'seconds':>8} {'outside networks':>17}")
    for m, r in zip(models, pipelines):
        for label in ("photo_at_a_time", "pipeline"):
            row = r[label]
            print(f"{m:<10} {label:<16} {row['photos_per_s']:>9.3f} {row['faces_per_s']:>8.3f} "
                  f"{row['seconds']:>8.1f} {row['outside_fraction']:>17.1%}")
        print(f"{m:<10} pipeline / photo-at-a-time: {r['speedup']:.2f}x (batch {r['batch_size']})")
    result = {"benchmark": "faces", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "settings": {k: str(v) for k, v in vars(args).items() if k != "out"},
              "machine": {"cpu": platform.machine(), "torch": torch.__version__,
                          "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
              "runs": dict(zip(models, runs)), "pipeline": dict(zip(models, pipelines))}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
