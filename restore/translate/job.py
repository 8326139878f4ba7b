"""``restore translate`` as a ``restore.runners.job.Job``: one image in, one image out."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from restore.runners.job import Job

from .translator import Translator


class TranslateJob(Job):
    """``restore translate`` as a ``restore.runners.job.Job``: OUT/sub/<stem>.png per input."""
    desc = "translate"

    def __init__(self, make_model=None, *, model: Translator | None = None, out: Path, ext: str = ".png",
                 quality: int = 95) -> None:
        super().__init__(make_model, model=model)
        self.out, self.ext, self.quality = Path(out), ext, quality

    def outputs(self, path: Path, rel: Path) -> list[Path]:
        return [self.out / rel / f"{path.stem}{self.ext}"]

    def read(self, path: Path, rel: Path) -> np.ndarray:
        from restore.imageio import read_image

        return read_image(path, mode="rgb8")

    def compute_one(self, image: np.ndarray) -> np.ndarray:
        return self.model(image)

    def save(self, path: Path, rel: Path, result: np.ndarray) -> None:
        from restore.imagewrite import write_image

        write_image(self.outputs(path, rel)[0], result, quality=self.quality)
