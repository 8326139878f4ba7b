"""restore.upscale.Upscaler against realesrgan 0.3.0's RealESRGANer, the same weights, one run.

    python benchmarks/bench_upscale.py [--side 96] [--json benchmarks/results/upscale.json]

Speed: x4plus (the weights at hand: the published .pth, or the registry's float16 copy; random
weights in the published layout when neither is here, which says nothing of quality but times
the same network) on crops of the example photos, tile 0, fp32 on both sides; bf16 only where
the CPU has it natively (emulated bf16 would time the emulation). Each side runs twice per photo,
the best kept; the PSNR between the two outputs says they computed the same picture.

Memory: a 12-megapixel picture (4000 x 3000) enlarged 4x (192 MP, 576 MB as RGB uint8) with
tile 400, each side in its own process, peak resident memory from ``getrusage``. The network is
SRVGGNetCompact's `tiny` preset with random weights: the memory of a tiled run is the picture,
its result and one tile's activations, so a light network shows the bookkeeping of each side
in minutes instead of hours of x4plus on a CPU.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ["faces/astronaut_degraded.jpg", "faces/hopper_old_grey.png", "faces/two_faces_small.jpg"]
MEMORY_SIDES = (4000, 3000)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def _reference(net, tmp: Path, **kw):
    """RealESRGANer around ``net``'s weights (it insists on a file)."""
    import torch
    from realesrgan import RealESRGANer

    path = tmp / "ref.pth"
    torch.save({"params_ema": net.state_dict()}, path)
    return RealESRGANer(scale=net.scale, model_path=str(path), model=_basicsr_twin(net), half=False,
                        device="cpu", **kw)


def _basicsr_twin(net):
    from gan.nets.rrdb import RRDBNet

    if isinstance(net, RRDBNet):
        from basicsr.archs.rrdbnet_arch import RRDBNet as Ref

        c = net.config
        return Ref(c.num_in_ch, c.num_out_ch, c.scale, c.num_feat, c.num_block, c.num_grow_ch)
    from realesrgan.archs.srvgg_arch import SRVGGNetCompact as Ref

    c = net.config
    return Ref(c.num_in_ch, c.num_out_ch, c.num_feat, c.num_conv, c.upscale, c.act_type)


def _x4plus():
    """(network, where its weights came from)."""
    from gan.nets.rrdb import PRESETS, RRDBNet
    from restore.models.cache import find_cached

    if find_cached("realesrgan-x4plus") is not None:
        from restore.upscale import Upscaler

        return Upscaler("realesrgan-x4plus").model, "realesrgan-x4plus (weights cache)"
    import torch

    torch.manual_seed(0)
    return RRDBNet(PRESETS["x4plus"]).eval(), "random weights in x4plus's layout (none at hand)"


def speed(side: int, tmp: Path) -> dict:
    import torch

    from gan.precision import cpu_has_bf16
    from restore.imageio import read_image
    from restore.upscale import Upscaler

    net, source = _x4plus()
    ours = Upscaler(net, tile=0, precision="fp32")
    ref = _reference(net, tmp, tile=0, pre_pad=0)
    bf16 = Upscaler(net, tile=0, precision="bf16") if cpu_has_bf16() else None
    rows = []
    for name in PHOTOS:
        img = np.ascontiguousarray(read_image(ROOT / "examples" / name, mode="rgb8")[:side, :side])
        times: dict[str, list[float]] = {"ours": [], "realesrganer": [], "ours_bf16": []}
        outs = {}
        for _ in range(2):
            t = time.perf_counter()
            outs["ours"] = ours(img)
            times["ours"].append(time.perf_counter() - t)
            t = time.perf_counter()
            outs["realesrganer"] = ref.enhance(np.ascontiguousarray(img[..., ::-1]), outscale=4)[0][..., ::-1]
            times["realesrganer"].append(time.perf_counter() - t)
            if bf16 is not None:
                t = time.perf_counter()
                outs["ours_bf16"] = bf16(img)
                times["ours_bf16"].append(time.perf_counter() - t)
        best = {k: min(v) for k, v in times.items() if v}
        row = {"photo": name, "crop": side, "seconds": {k: round(v, 3) for k, v in best.items()},
               "fp32_ratio": round(best["realesrganer"] / best["ours"], 3),
               "psnr_ours_vs_realesrganer_db": round(_psnr(outs["ours"], outs["realesrganer"]), 1)}
        if bf16 is not None:
            row["bf16_ratio"] = round(best["realesrganer"] / best["ours_bf16"], 3)
            row["psnr_bf16_vs_fp32_db"] = round(_psnr(outs["ours_bf16"], outs["ours"]), 1)
        rows.append(row)
        print(json.dumps(row))
    return {"weights": source, "threads": torch.get_num_threads(), "bf16": "native" if bf16 is not None else
            "not measured: this CPU has no native bf16", "photos": rows,
            "fp32_ratio_mean": round(float(np.mean([r["fp32_ratio"] for r in rows])), 3)}


def _memory_child(side: str) -> None:
    """One side's peak memory (run in its own process, so each peak is its own)."""
    import torch

    from gan.nets.srvgg import PRESETS, SRVGGNetCompact
    from restore.imageio import read_image
    from restore.upscale import Upscaler

    torch.manual_seed(0)
    net = SRVGGNetCompact(PRESETS["tiny"]).eval()
    photo = read_image(ROOT / "examples" / PHOTOS[0], mode="rgb8")
    w, h = MEMORY_SIDES
    img = np.ascontiguousarray(np.tile(photo, (h // photo.shape[0] + 1, w // photo.shape[1] + 1, 1))[:h, :w])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    if side == "ours":
        out = Upscaler(net, tile=400, precision="fp32")(img)
    else:
        import tempfile

        ref = _reference(net, Path(tempfile.mkdtemp()), tile=400, tile_pad=10, pre_pad=0)
        out = ref.enhance(np.ascontiguousarray(img[..., ::-1]), outscale=4)[0]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"side": side, "output": list(out.shape), "output_mb": round(out.nbytes / 2**20),
                      "peak_mb": round(peak / 1024), "before_mb": round(base / 1024),
                      "seconds": round(time.perf_counter() - t, 1)}))


def memory() -> dict:
    rows = {}
    for side in ("ours", "realesrganer"):
        out = subprocess.run([sys.executable, __file__, "--memory-child", side], capture_output=True, text=True,
                             check=True)
        rows[side] = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps(rows[side]))
    rows["picture"] = f"{MEMORY_SIDES[0]}x{MEMORY_SIDES[1]} -> 4x, tile 400, SRVGGNetCompact tiny (random weights)"
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--side", type=int, default=96, help="crop side of the speed photos (default 96)")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/upscale.json")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        return _memory_child(args.memory_child)
    import tempfile

    import torch

    result = {"machine": _cpu(), "speed": speed(args.side, Path(tempfile.mkdtemp()))}
    if not args.skip_memory:
        result["memory"] = memory()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written to {args.json} (torch {torch.__version__})")


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
