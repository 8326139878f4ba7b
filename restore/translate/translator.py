"""``Translator``: a trained image-to-image generator (pix2pix, the bundled restorer) applied to
RGB uint8 photos of any size, in overlapping tiles."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gan.nets.descriptor import pixels_in, pixels_out
from gan.nets.registry import descriptor_of
from gan.precision import autocast
from restore.ensemble import ensemble
from restore.export.backend import on_backend
from restore.inference import Inference
from restore.tiling import tiled_inference


class Translator(Inference):
    """A generator ready for inference on RGB uint8 images of any size (tiled). ``precision=None``:
    ``restore translate``'s default (auto)."""

    task = "translate"

    def __init__(self, weights: str | Path | torch.nn.Module = "restorer", device: str | torch.device = "cpu",
                 tile: int = 512, overlap: float = 0.25, batch_size: int = 2, precision: str | None = None,
                 backend: str = "torch", tta: int = 1) -> None:
        self.setup(device, precision, backend, tta)
        self.path, self.model, self.meta = self.load(weights, "image-to-image")
        d = descriptor_of(self.model)
        self.port = d.inputs(self.model.config, tile)[0]
        self.out_range = d.output_range
        m = self.port.multiple
        self.tile = max(m, -(-tile // m) * m)
        if self.path is not None:
            self.model = on_backend(self.model, self.backend, source=self.path, device=self.device, tile=self.tile)
        self.overlap, self.batch_size = overlap, batch_size

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """RGB uint8 HxWx3 -> RGB uint8 HxWx3 of the same size."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image, got {image.dtype} {image.shape}")
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))

        def net(t: torch.Tensor) -> torch.Tensor:  # uint8 tiles -> the network's range -> generator
            return self.model(pixels_in(t, self.port.range)).float()

        def tiled(t: torch.Tensor) -> torch.Tensor:
            return tiled_inference(net, t, self.tile, overlap=self.overlap, batch_size=self.batch_size,
                                   device=self.device, out_channels=self.model.config.out_channels)

        with autocast(self.precision, self.device):
            y = ensemble(tiled, x, self.tta)
        return pixels_out(y, self.out_range).byte().permute(1, 2, 0).numpy()
