"""`restore faces` on a film: frames/s at 480p, with the bundled restorer and with a network of
GFPGANv1.4's size, against the frame-by-frame loop a GFPGAN user writes (decode a frame,
``FaceRestorer.restore`` it, encode it; no tracking, no reading ahead).

The film: 854 x 480 at 25 fps, two real faces side by side (skimage's astronaut, matplotlib's
Grace Hopper: public domain), panning slowly (one pixel a frame, so the faces move as in a
hand-held interview), fresh grain in every frame (sigma 6), encoded at crf 23, with a sound track.
Both runs restore the same file with the same restorer, one after the other, in one process.

- ``frame-by-frame``: the loop above, the reference;
- ``restore_video``: ``restore.faces.video`` as ``restore faces clip.mp4`` runs it (decoded and
  detected ahead in a thread, encoded behind, faces tracked, landmarks smoothed, the temporal
  blend), at the CLI's defaults.

Where the GFP-GAN weights are absent, GFPGANv1.4's architecture with seeded random weights
stands in (benchmarks/bench_faces.py): the cost is the same, the pictures are not, so the flicker
figures are given for the bundled restorer only.

    python benchmarks/bench_video.py                 # both models (a few minutes on 2 cores)
    python benchmarks/bench_video.py --model restorer --frames 12

Prints a table and writes benchmarks/results/video.json (or --out).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(ROOT / "benchmarks"))


def make_film(path: Path, frames: int, seed: int = 0) -> Path:
    """The 480p film described in the module's docstring."""
    import av
    from matplotlib import cbook
    from PIL import Image
    from skimage import data

    astronaut = np.asarray(Image.fromarray(data.astronaut()).resize((480, 480), Image.LANCZOS), np.float32)
    hopper = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    hopper = np.asarray(hopper.resize((410, 480), Image.LANCZOS), np.float32)
    wide = np.concatenate([astronaut, np.full((480, 24, 3), 90, np.float32), hopper], axis=1)  # 914 px: room to pan
    g = np.random.default_rng(seed)
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt, v.time_base = 854, 480, "yuv420p", Fraction(1, 25)
        v.options = {"crf": "23"}
        a = c.add_stream("aac", rate=16000)
        a.layout = "mono"
        for i in range(frames):
            x = i % (wide.shape[1] - 854)
            img = np.clip(wide[:, x:x + 854] + g.normal(0, 6, (480, 854, 3)), 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in v.encode(frame):
                c.mux(packet)
        for packet in v.encode():
            c.mux(packet)
        t = np.arange(int(16000 * frames / 25)) / 16000
        tone = (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)[None]
        for k in range(0, tone.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, k:k + 1024]), format="flt", layout="mono")
            chunk.sample_rate, chunk.pts = 16000, k
            for packet in a.encode(chunk):
                c.mux(packet)
        for packet in a.encode():
            c.mux(packet)
    return path


def frame_by_frame(fr, src: Path, dst: Path) -> dict:
    """The reference: each frame restored on its own, in one thread."""
    from restore.faces.video import _change
    from restore.video.io import VideoWriter, probe, read_frames

    t0 = time.perf_counter()
    changes_in, changes_out, previous = [], [], None
    with VideoWriter(dst, probe(src)) as out:
        for frame in read_frames(src):
            result = fr.restore(frame.rgb)
            out.write(result.image, frame.pts)
            boxes = [f.box for f in result.faces]
            if previous is not None and boxes:
                changes_in.append(_change(previous[0], frame.rgb, boxes))
                changes_out.append(_change(previous[1], result.image, boxes))
            previous = frame.rgb, result.image
    seconds = time.perf_counter() - t0
    return {"frames": out.frames, "seconds": round(seconds, 2), "frames_per_s": round(out.frames / seconds, 3),
            "flicker": {"input": round(float(np.mean(changes_in)), 3), "output": round(float(np.mean(changes_out)), 3)}}


def tracked(fr, src: Path, dst: Path) -> dict:
    from restore.faces.video import restore_video

    entry = restore_video(fr, src, dst)
    return {"frames": entry["frames"], "seconds": entry["seconds"],
            "frames_per_s": round(entry["frames"] / entry["seconds"], 3), "flicker": entry["flicker"],
            "tracks": len(entry["tracks"]), "faces_per_frame": entry["faces_per_frame"]}


def main() -> None:
    from bench_faces import stand_ins

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="both", choices=["restorer", "gfpgan", "both"])
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--precision", default="auto", help="fp32 | bf16 | auto (the CLI's default)")
    ap.add_argument("--detector", default="auto")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "video.json")
    args = ap.parse_args()

    import torch

    from gan.precision import resolve_precision
    from restore.faces.restorer import FaceRestorer

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = make_film(tmp / "interview.mp4", args.frames)
        for model in (["restorer", "gfpgan"] if args.model == "both" else [args.model]):
            faces_w, bg_w, name = stand_ins(tmp, model)
            fr = FaceRestorer(faces_w, args.detector, "cpu", args.precision, bg="restorer", bg_weights=bg_w,
                              batch_size=1)  # the CLI's CPU default
            fr.restore(np.zeros((64, 64, 3), np.uint8))  # first-call costs out of both timings
            ref = frame_by_frame(fr, src, tmp / f"{model}_plain.mp4")
            new = tracked(fr, src, tmp / f"{model}_tracked.mp4")
            results[model] = {"network": name, "frame-by-frame": ref, "restore_video": new,
                              "speed_ratio": round(new["frames_per_s"] / ref["frames_per_s"], 3)}
            print(f"{model:9s} frame-by-frame {ref['frames_per_s']:.3f} frames/s, restore_video "
                  f"{new['frames_per_s']:.3f} frames/s ({results[model]['speed_ratio']:.2f}x); flicker inside the "
                  f"faces: input {new['flicker']['input']}, frame-by-frame {ref['flicker']['output']}, "
                  f"restore_video {new['flicker']['output']}", flush=True)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    report = {"film": {"size": [854, 480], "fps": 25, "frames": args.frames, "faces": 2, "grain_sigma": 6,
                       "crf": 23, "pan_px_per_frame": 1},
              "precision": resolve_precision(args.precision, torch.device("cpu")), "cpu": cpu,
              "threads": torch.get_num_threads(), "torch": torch.__version__, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
