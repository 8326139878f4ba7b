"""``restore sketch`` as a ``restore.runners.job.Job``. With a colorizer: OUT/sub/<stem>.png (the
coloured sketch) and OUT/sub/<stem>_compare.png (sketch | reference | result), with ``layers``
also <stem>_flat.png (the colours without lines) and <stem>_lines.png (the lines as ink on a
transparent sheet); without a colorizer (``--extract`` alone): OUT/sub/<stem>_sketch.png."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from restore.imagewrite import write_image
from restore.runners.job import Job

from .colorizer import Colorizer, compare_panel, read_hints, read_rgb, read_sketch
from .extract import extract
from .layers import line_layer


class SketchJob(Job):
    desc = "sketch"

    def __init__(self, make_model: Callable[..., Colorizer] | None = None, *, model: Colorizer | None = None,
                 out: Path, reference: np.ndarray | None = None, hints: Path | None = None,
                 extract_method: str | None = None, device: str = "cpu", ext: str = ".png", quality: int = 95,
                 backend: str = "torch", layers: bool = False, keep_paper: bool = False,
                 extract_options: dict | None = None) -> None:
        """``reference`` None: extract only; ``hints``: one file for every input, or a folder of
        <stem>.png; ``extract_method``: make the sketch from each input first (xdog, threshold, hed);
        ``layers``: also write the flat colours and the line layer; ``keep_paper``: the paper outside
        the drawing stays paper; ``extract_options``: keyword arguments of the extractor (xdog's ``ink``)."""
        super().__init__(make_model, model=model)
        self.out, self.reference, self.ext, self.quality = Path(out), reference, ext, quality
        self.extract_method, self.device, self.backend, self.layers = extract_method, device, backend, layers
        self.keep_paper = keep_paper
        self.extract_options = dict(extract_options or {})
        self.hints_dir = hints if hints is not None and hints.is_dir() else None
        self.hints = read_hints(hints) if hints is not None and self.hints_dir is None else None
        if reference is None:
            self.desc = "extract"

    def outputs(self, path: Path, rel: Path) -> list[Path]:
        if self.reference is None:
            return [self.out / rel / f"{path.stem}_sketch{self.ext}"]
        names = [f"{path.stem}{self.ext}", f"{path.stem}_compare{self.ext}"]
        if self.layers:  # PNG whatever --format says: the line layer needs its alpha
            names += [f"{path.stem}_flat.png", f"{path.stem}_lines.png"]
        return [self.out / rel / n for n in names]

    def hints_for(self, path: Path, rel: Path) -> np.ndarray | None:
        if self.hints_dir is None:
            return self.hints
        for cand in (self.hints_dir / rel / f"{path.stem}.png", self.hints_dir / f"{path.stem}.png"):
            if cand.is_file():
                return read_hints(cand)
        return None

    def read(self, path: Path, rel: Path) -> tuple[np.ndarray, np.ndarray | None]:
        image = read_rgb(path) if self.extract_method else read_sketch(path)
        return image, self.hints_for(path, rel) if self.reference is not None else None

    def prepare(self, value: tuple) -> tuple[np.ndarray, np.ndarray | None]:
        image, hints = value
        if self.extract_method:
            kwargs = {"device": self.device, "backend": self.backend} if self.extract_method == "hed" else {}
            kwargs.update(self.extract_options)
            image = extract(image, self.extract_method, **kwargs)
        return image, hints

    def compute_one(self, value: tuple) -> tuple[np.ndarray, np.ndarray | None]:
        sketch, hints = value
        if self.reference is None:
            return sketch, None
        return sketch, self.model.layers(sketch, self.reference, hints, self.keep_paper)

    def save(self, path: Path, rel: Path, result: tuple) -> None:
        sketch, coloured = result
        if coloured is None:
            write_image(self.outputs(path, rel)[0], (np.clip(sketch, 0, 1) * 255).round().astype(np.uint8),
                        quality=self.quality)
            return
        result, colours = coloured
        out, compare, *layer_files = self.outputs(path, rel)
        write_image(out, result, quality=self.quality)
        write_image(compare, compare_panel(sketch, self.reference, result), quality=self.quality)
        if layer_files:
            write_image(layer_files[0], colours)
            write_image(layer_files[1], line_layer(sketch))
