"""Apply a trained image-to-image generator (pix2pix, the bundled restorer) to photos."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from gan.precision import autocast, resolve_precision
from restore.export.backend import check_backend, load_model_file, on_backend
from restore.models.cache import resolve_weights

from .batch import add_backend_arg, add_output_args, add_precision_arg, add_tta_arg, add_video_args
from .ensemble import check_orientations, ensemble
from .job import Job
from .run import add_runner_args
from .tiling import tiled_inference


class Translator:
    """A generator ready for inference on RGB uint8 images of any size (tiled)."""

    def __init__(self, weights: str | Path | torch.nn.Module = "restorer", device: str | torch.device = "cpu",
                 tile: int = 512, overlap: float = 0.25, batch_size: int = 2, precision: str = "fp32",
                 backend: str = "torch", tta: int = 1) -> None:
        self.device = torch.device(device)
        self.tta = check_orientations(tta)  # test-time augmentation: orientations averaged
        # fp32: an outer autocast still applies; onnxruntime: fp32 (the file's own)
        self.precision = resolve_precision(check_backend(backend, precision), self.device)
        if isinstance(weights, torch.nn.Module):  # a network object (the API, tests): run as it is
            self.path, self.model, self.meta = None, weights.to(self.device).eval(), {}
            backend = "torch"
        else:
            self.path = resolve_weights(weights)
            self.model, self.meta = load_model_file(self.path, self.device)
        self.backend = backend
        if not hasattr(self.model.config, "size_divisor"):
            what = self.path or "the network"
            raise ValueError(f"{what} is not an image-to-image generator ({type(self.model).__name__})")
        m = self.model.config.size_divisor
        self.tile = max(m, -(-tile // m) * m)
        if self.path is not None:
            self.model = on_backend(self.model, backend, source=self.path, device=self.device, tile=self.tile)
        self.overlap, self.batch_size = overlap, batch_size

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """RGB uint8 HxWx3 -> RGB uint8 HxWx3 of the same size."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image, got {image.dtype} {image.shape}")
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))

        def net(t: torch.Tensor) -> torch.Tensor:  # uint8 tiles -> [-1, 1] -> generator
            return self.model(t / 127.5 - 1).float()

        def tiled(t: torch.Tensor) -> torch.Tensor:
            return tiled_inference(net, t, self.tile, overlap=self.overlap, batch_size=self.batch_size,
                                   device=self.device, out_channels=self.model.config.out_channels)

        with autocast(self.precision, self.device):
            y = ensemble(tiled, x, self.tta)
        return ((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


class TranslateJob(Job):
    """``restore translate`` as a ``restore.job.Job``: OUT/sub/<stem>.png per input."""
    desc = "translate"

    def __init__(self, make_model=None, *, model: Translator | None = None, out: Path, ext: str = ".png",
                 quality: int = 95) -> None:
        super().__init__(make_model, model=model)
        self.out, self.ext, self.quality = Path(out), ext, quality

    def outputs(self, path: Path, rel: Path) -> list[Path]:
        return [self.out / rel / f"{path.stem}{self.ext}"]

    def read(self, path: Path, rel: Path) -> np.ndarray:
        from .imageio import read_image

        return read_image(path, mode="rgb8")

    def compute_one(self, image: np.ndarray) -> np.ndarray:
        return self.model(image)

    def save(self, path: Path, rel: Path, result: np.ndarray) -> None:
        from .imagewrite import write_image

        write_image(self.outputs(path, rel)[0], result, quality=self.quality)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("translate", help="apply a trained generator (pix2pix, the restorer) to images")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="image or video files (.mp4 .mov .mkv .webm .avi .m4v) or folders (searched recursively)")
    p.add_argument("-o", "--out", required=True, type=Path)
    p.add_argument("--weights", required=True,
                   help="run folder, generator .safetensors or .onnx, or a bundled name (restorer)")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=float, default=0.25)
    p.add_argument("--device", default="cpu")
    add_precision_arg(p)
    add_backend_arg(p)
    add_tta_arg(p, "the restored images averaged")
    add_output_args(p)
    p.add_argument("--skip-existing", action="store_true")
    p.add_argument("--quiet", action="store_true")
    add_video_args(p)
    add_runner_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    """``restore translate``: exit status 0 all done, 1 some inputs failed, 2 usage error."""
    from functools import partial

    from restore.models.manifest import WeightsError

    from .batch import UsageError, output_ext, scan_inputs
    from .run import ray_options, ray_usage_error, run_job

    if (why := ray_usage_error(args)) is not None:
        print(f"restore translate: error: {why}", file=sys.stderr)
        return 2
    make = partial(Translator, weights=args.weights, device=args.device, tile=args.tile, overlap=args.overlap,
                   precision=args.precision, backend=args.backend, tta=args.tta)
    try:
        found = scan_inputs(args.paths, exclude=[args.out], videos=True)
        translator = make()
        job = TranslateJob(make, model=translator, out=args.out, ext=output_ext(args), quality=args.quality)
    except (UsageError, WeightsError, ValueError) as e:
        print(f"restore translate: error: {e}", file=sys.stderr)
        return 2
    codes = []
    if found.items or not found.videos:
        codes.append(run_job(job, found.items, pipeline=not args.no_pipeline, skip_existing=args.skip_existing,
                             quiet=args.quiet, ignored=found.ignored, **ray_options(args)).exit_code)
    if found.videos:  # OUT/<sub>/<stem>.mp4, frame after frame, the sound kept
        from restore.video.folder import run_videos
        from restore.video.translate import translate_video

        report, _ = run_videos(lambda src, dst, **kw: translate_video(translator, src, dst, **kw), found.videos,
                               args.out, skip_existing=args.skip_existing, quiet=args.quiet, crf=args.crf,
                               codec=args.codec)
        codes.append(report.exit_code)
    return max(codes)
