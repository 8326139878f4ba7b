"""Apply a trained image-to-image generator (pix2pix, the bundled restorer) to photos."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gan.serialize import load_model

from .tiling import tiled_inference
from .weights import resolve_weights


class Translator:
    """A generator ready for inference on RGB uint8 images of any size (tiled)."""

    def __init__(self, weights: str | Path = "restorer", device: str | torch.device = "cpu",
                 tile: int = 512, overlap: float = 0.25, batch_size: int = 2) -> None:
        self.path = resolve_weights(weights)
        self.device = torch.device(device)
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
            return self.model(t / 127.5 - 1)

        y = tiled_inference(net, x, self.tile, overlap=self.overlap, batch_size=self.batch_size,
                            device=self.device, out_channels=self.model.config.out_channels)
        return ((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
