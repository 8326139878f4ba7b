"""Apply a trained image-to-image generator (pix2pix, the bundled restorer) to photos."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from gan.precision import autocast, resolve_precision
from gan.serialize import load_model
from restore.models.cache import resolve_weights

from .batch import add_output_args, add_precision_arg
from .tiling import tiled_inference


class Translator:
    """A generator ready for inference on RGB uint8 images of any size (tiled)."""

    def __init__(self, weights: str | Path = "restorer", device: str | torch.device = "cpu",
                 tile: int = 512, overlap: float = 0.25, batch_size: int = 2, precision: str = "fp32") -> None:
        self.path = resolve_weights(weights)
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)  # fp32: an outer autocast still applies
        self.model, self.meta = load_model(self.path, self.device)
        if not hasattr(self.model.config, "size_divisor"):
            raise ValueError(f"{self.path} is not an image-to-image generator ({type(self.model).__name__})")
        m = self.model.config.size_divisor
        self.tile = max(m, -(-tile // m) * m)
        self.overlap, self.batch_size = overlap, batch_size

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """RGB uint8 HxWx3 -> RGB uint8 HxWx3 of the same size."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image, got {image.dtype} {image.shape}")
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))

        def net(t: torch.Tensor) -> torch.Tensor:  # uint8 tiles -> [-1, 1] -> generator
            return self.model(t / 127.5 - 1).float()

        with autocast(self.precision, self.device):
            y = tiled_inference(net, x, self.tile, overlap=self.overlap, batch_size=self.batch_size,
                                device=self.device, out_channels=self.model.config.out_channels)
        return ((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("translate", help="apply a trained generator (pix2pix, the restorer) to images")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    p.add_argument("-o", "--out", required=True, type=Path)
    p.add_argument("--weights", required=True, help="run folder, generator .safetensors, or a bundled name (restorer)")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=float, default=0.25)
    p.add_argument("--device", default="cpu")
    add_precision_arg(p)
    add_output_args(p)
    p.add_argument("--skip-existing", action="store_true")
    p.add_argument("--quiet", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    """``restore translate``: exit status 0 all done, 1 some inputs failed, 2 usage error."""
    from restore.models.manifest import WeightsError

    from .batch import UsageError, output_ext, run_batch, scan_inputs
    from .imageio import read_image
    from .imagewrite import write_image

    try:
        found = scan_inputs(args.paths, exclude=[args.out])
        translator = Translator(args.weights, device=args.device, tile=args.tile, overlap=args.overlap,
                                precision=args.precision)
    except (UsageError, WeightsError, ValueError) as e:
        print(f"restore translate: error: {e}", file=sys.stderr)
        return 2

    def outputs(path: Path, sub: Path) -> list[Path]:
        return [args.out / sub / f"{path.stem}{output_ext(args)}"]

    def process(path: Path, sub: Path) -> None:
        write_image(outputs(path, sub)[0], translator(read_image(path, mode="rgb8")), quality=args.quality)

    return run_batch(found.items, process, outputs, skip_existing=args.skip_existing, desc="translate",
                     quiet=args.quiet, ignored=found.ignored).exit_code
