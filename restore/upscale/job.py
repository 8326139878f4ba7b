"""``restore upscale`` as a ``restore.runners.job.Job``: one picture in, one enlarged picture out,
named as Real-ESRGAN's command names it (``OUT/sub/<stem>_out.png``; ``--suffix``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from restore.runners.job import Job

from .upscaler import Upscaler


def read_picture(path: str | Path, **kw) -> np.ndarray:
    """The picture as stored (grey or RGB, 8 or 16 bits; float as 16 bits) and its alpha, if any:
    what the Upscaler takes (the command and the app's Upscale tab). ``kw``: ``read_image``'s
    (``max_pixels``)."""
    from restore.imageio import read_alpha, read_image

    image = read_image(path, mode="keep", **kw)
    if image.dtype.kind == "f":  # float TIFFs: 0..1 kept at 16 bits
        image = np.rint(np.clip(image, 0, 1) * 65535).astype(np.uint16)
    alpha = read_alpha(path, image.shape[:2])
    if alpha is None:
        return image
    if image.ndim == 2:  # grey with alpha: RGBA, as cv2 reads it for Real-ESRGAN
        image = np.repeat(image[..., None], 3, axis=2)
    if image.dtype == np.uint16:  # read_alpha gives 8 bits
        alpha = alpha.astype(np.uint16) * 257
    return np.concatenate([image, alpha[..., None].astype(image.dtype)], axis=2)


class UpscaleJob(Job):
    desc = "upscale"

    def __init__(self, make_model=None, *, model: Upscaler | None = None, out: Path, suffix: str = "out",
                 ext: str = ".png", quality: int = 95) -> None:
        super().__init__(make_model, model=model)
        self.out, self.suffix, self.ext, self.quality = Path(out), suffix, ext, quality

    def outputs(self, path: Path, rel: Path) -> list[Path]:
        stem = f"{path.stem}_{self.suffix}" if self.suffix else path.stem
        return [self.out / rel / f"{stem}{self.ext}"]

    def read(self, path: Path, rel: Path) -> np.ndarray:
        return read_picture(path)

    def compute_one(self, image: np.ndarray) -> np.ndarray:
        return self.model(image)

    def save(self, path: Path, rel: Path, result: np.ndarray) -> None:
        from restore.imagewrite import write_image

        write_image(self.outputs(path, rel)[0], result, quality=self.quality)
