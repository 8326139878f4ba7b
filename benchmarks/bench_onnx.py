"""onnxruntime against PyTorch on this machine, in the same run: each bundled model and GFP-GAN at
512, exported by ``restore export``'s code, timed on the same inputs, with the export's parity.

    python benchmarks/bench_onnx.py              # ~4 minutes on 2 cores
    python benchmarks/bench_onnx.py --quick      # the bundled models only

Per model: PyTorch fp32 (as the commands run it: channels-last and ``gan.precision.run`` for
GFP-GAN; the others with their batch norms folded, as the tiler runs them) and onnxruntime (CPU provider; CUDA too when the
device is a GPU and onnxruntime-gpu is installed), the median of ``--repeats`` calls after one
warm-up; the PSNR (masks: equal pixels) of onnxruntime against PyTorch on a real picture; and
the same for the ``--fp16`` export. GFP-GAN: the published GFPGANv1.4 layout with random
weights (gfpgan 1.3.8's GFPGANv1Clean, when installed, is the reference its PSNR is taken
against, on the astronaut's face). Writes benchmarks/results/onnx.json (or --out).
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(fn, repeats: int) -> float:
    fn()  # warm-up: first-call allocations, oneDNN primitive creation, ORT's arena
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def models(quick: bool) -> list[tuple[str, object, int | None, object]]:
    """(name, network, tile, reference network or None) to measure."""
    from gan.serialize import load_model

    out = [(n, load_model(ROOT / "weights" / f"{n}.safetensors")[0], t, None)
           for n, t in (("restorer", 512), ("colorizer", 512), ("nuclei", 512))]
    if not quick:
        import torch

        import gan  # noqa: F401  (torchvision shim before gfpgan)
        from gan.nets.gfpgan import config_from_state_dict, load_published

        try:
            from tests.gan.nets.test_gfpgan import reference

            ref = reference()  # GFPGANv1Clean, published flags, seeded random weights
        except Exception:  # noqa: BLE001 - gfpgan not installed: ours alone, seeded the same way
            ref = None
        if ref is not None:
            net = load_published(ref.state_dict(), config_from_state_dict(ref.state_dict()))
        else:
            from gan.nets.gfpgan import GFPGAN, GFPGANConfig

            torch.manual_seed(0)
            net = GFPGAN(GFPGANConfig())
        out.append(("gfpgan-512", net.eval(), None, ref))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="the bundled models only (no GFP-GAN 512)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "onnx.json")
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    from gan.precision import cast_model, run
    from restore.export.backend import OnnxNetwork
    from restore.export.onnx import export_onnx
    from restore.export.specs import spec_for
    from restore.tiling import fold_batchnorm

    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, net, tile, ref in models(args.quick):
            spec = spec_for(net, tile=tile)
            xs = [i.example[:1] for i in spec.inputs]  # one picture a call, as the commands' default
            row: dict = {"input": [list(x.shape) for x in xs]}
            for fp16 in (False, True):
                r = export_onnx(net, Path(tmp) / f"{name}{'16' if fp16 else ''}.onnx", name=name, fp16=fp16, tile=tile)
                key = "fp16" if fp16 else "fp32"
                row[f"export_{key}"] = {"seconds": round(r.seconds, 1), "check": {r.score[0]: round(r.score[1], 3)},
                                        "mib": round(r.path.stat().st_size / 2 ** 20, 1)}
                if not fp16:
                    onnx_path = r.path
            with torch.inference_mode():
                if name.startswith("gfpgan"):
                    fast = cast_model(net, "fp32")  # the commands' layout: channels-last
                    row["torch_s"] = round(timed(lambda: run(fast, xs[0]), args.repeats), 3)
                else:  # as the tiler runs them: batch norms folded into their convolutions
                    folded = fold_batchnorm(spec.module)
                    row["torch_s"] = round(timed(lambda: folded(*xs), args.repeats), 3)
                want = spec.module(*xs).float().numpy()
            onnx_net = OnnxNetwork(onnx_path)
            row["onnxruntime_cpu_s"] = round(timed(lambda: onnx_net(*xs), args.repeats), 3)
            row["onnxruntime_vs_torch"] = round(row["torch_s"] / row["onnxruntime_cpu_s"], 2)
            kind, value = spec.compare(want, onnx_net(*xs).numpy())
            row["parity"] = {kind: round(value, 4)}
            if ref is not None:  # against gfpgan's own network, on the astronaut's face
                with torch.no_grad():
                    theirs = ref(xs[0], return_rgb=False, randomize_noise=False)[0].numpy()
                row["psnr_vs_gfpganv1clean"] = round(spec.compare(theirs, onnx_net(*xs).numpy())[1], 2)
            if torch.cuda.is_available():  # PyTorch on the GPU; onnxruntime's CUDA provider where installed
                gpu = copy.deepcopy(spec.module).cuda().eval()
                gxs = [x.cuda() for x in xs]

                def on_gpu() -> None:
                    with torch.inference_mode():
                        gpu(*gxs)
                    torch.cuda.synchronize()

                row["torch_cuda_s"] = round(timed(on_gpu, args.repeats), 4)
                if "CUDAExecutionProvider" in ort.get_available_providers():
                    cuda_net = OnnxNetwork(onnx_path, "cuda")  # host arrays in and out, as the commands give
                    row["onnxruntime_cuda_s"] = round(timed(lambda: cuda_net(*xs), args.repeats), 4)
            results[name] = row
            print(f"{name:12s} torch {row['torch_s']:7.3f} s  onnxruntime {row['onnxruntime_cpu_s']:7.3f} s  "
                  f"x{row['onnxruntime_vs_torch']:.2f}  parity {row['parity']}  fp16 {row['export_fp16']['check']}",
                  flush=True)
    out = {"benchmark": "onnx", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                       "onnxruntime": ort.__version__, "threads": torch.get_num_threads(),
                       "providers": ort.get_available_providers()},
           "settings": {"repeats": args.repeats, "batch": 1}, "models": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
