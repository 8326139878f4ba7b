"""``restore segment`` as a ``restore.runners.job.Job``: OUT/sub/<stem>_mask.png (8-bit classes, or
16-bit instance labels; a TIFF stack for a volume) and OUT/sub/<stem>_overlay.png."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from restore.imageio import is_volume, read_image, read_volume
from restore.imagewrite import write_image, write_png, write_tiff
from restore.runners.job import Job

from .overlay import overlay
from .segmenter import Segmenter


class SegmentJob(Job):
    desc = "segment"

    def __init__(self, make_model: Callable[..., Segmenter] | None = None, *, model: Segmenter | None = None,
                 out: Path, instances: bool = False, min_size: int = 16, fill_holes: bool = False, crf: bool = False,
                 ext: str = ".png", quality: int = 95) -> None:
        super().__init__(make_model, model=model)
        self.out, self.ext, self.quality = Path(out), ext, quality
        self.options = dict(instances=instances, min_size=min_size, fill_holes=fill_holes, crf=crf)

    def outputs(self, path: Path, rel: Path) -> list[Path]:
        mask_ext = ".tif" if is_volume(path) else ".png"
        return [self.out / rel / f"{path.stem}_mask{mask_ext}", self.out / rel / f"{path.stem}_overlay{self.ext}"]

    def read(self, path: Path, rel: Path) -> np.ndarray:
        return read_volume(path) if is_volume(path) else read_image(path)

    def compute_one(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return image, self.model(image, **self.options)

    def save(self, path: Path, rel: Path, result: tuple[np.ndarray, np.ndarray]) -> None:
        image, labels = result
        mask_path, overlay_path = self.outputs(path, rel)
        dtype = np.uint16 if self.options["instances"] or labels.max() > 255 else np.uint8
        if labels.ndim == 3:  # a volume: the mask as a TIFF stack, the middle slice as overlay
            write_tiff(mask_path, labels.astype(dtype))
            mid = labels.shape[0] // 2
            write_image(overlay_path, overlay(image[mid], labels[mid]), quality=self.quality)
        else:
            write_png(mask_path, labels.astype(dtype))
            write_image(overlay_path, overlay(image, labels), quality=self.quality)
