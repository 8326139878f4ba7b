"""Colouring sketches in the style of a reference image, and the flat-fill baseline it is scored against.

    from restore import Colorizer
    out = Colorizer(weights="colorizer")(sketch, reference)   # RGB uint8, the sketch's size

Sketches are HxW line drawings (dark lines on white; RGB is turned into luminance), references
RGB images of any size; transparent parts of files are composited on white (as the clip art the
bundled model was trained on), unlike ``restore.imageio.read_image``, which drops alpha.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from gan.nets.descriptor import pixels_out, unit_in
from gan.nets.registry import descriptor_of
from gan.precision import autocast
from restore.export.backend import on_backend
from restore.imageio import DEFAULT_MAX_PIXELS, read_alpha, read_image
from restore.inference import Inference

from .extract import flat_share, luminance, to_float
from .layers import compose, fill_hinted, flat
from .options import ALIGN, REGIONS  # noqa: F401  (their home is .options: no torch for --help)
from .register import align as align_reference

FLAT_FIGURE_SHARE = 0.5  # one colour per region above this flat share of the reference's figure


def _alpha(path: str | os.PathLike) -> np.ndarray | None:
    """The alpha channel as float HxW in [0, 1], or None without one."""
    alpha = read_alpha(path)
    return None if alpha is None else alpha.astype(np.float32) / 255


def read_rgb(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """RGB float32 HxWx3 in [0, 1], transparent parts over white. Raises ImageError for bad files
    (and for images of more than ``max_pixels``)."""
    rgb = to_float(read_image(path, mode="rgb8", max_pixels=max_pixels))
    alpha = _alpha(path)
    if alpha is not None and alpha.shape == rgb.shape[:2]:
        rgb = rgb * alpha[..., None] + (1 - alpha[..., None])
    return rgb


def read_sketch(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A line drawing as float32 HxW in [0, 1] (luminance, transparent parts white)."""
    return luminance(read_rgb(path, max_pixels))


def read_hints(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Colour hints as float32 HxWx4 (RGB in [0, 1], mask): the opaque pixels of an RGBA file,
    or the pixels that are not white in a file without alpha."""
    rgb = to_float(read_image(path, mode="rgb8", max_pixels=max_pixels))
    alpha = _alpha(path)
    mask = (alpha > 0.5) if alpha is not None and alpha.shape == rgb.shape[:2] else (rgb.min(axis=2) < 0.94)
    return np.dstack([rgb, mask.astype(np.float32)])


def hints_tensor(hints: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """HxWx4 hints -> (1, 4, *size): colour in [-1, 1] times the mask, then the mask (resized nearest)."""
    t = torch.from_numpy(np.ascontiguousarray(to_float(hints).transpose(2, 0, 1)))[None]
    if tuple(t.shape[-2:]) != tuple(size):
        t = torch.nn.functional.interpolate(t, size=size, mode="nearest")
    mask = (t[:, 3:] > 0.5).float()
    return torch.cat([(t[:, :3] * 2 - 1) * mask, mask], dim=1)


def _regions_choice(choice: bool | str) -> bool | str:
    """``one_per_region`` checked: True, False or "auto" (a typo would otherwise read as True)."""
    if choice not in REGIONS.values():
        raise ValueError(f"one_per_region must be True, False or 'auto', not {choice!r}")
    return choice


class Colorizer(Inference):
    """A trained colorizer ready for inference: ``colorizer(sketch, reference, hints=None)``."""

    task = "sketch"

    def __init__(self, weights: str | Path = "colorizer", device: str | torch.device = "cpu",
                 max_side: int = 1024, precision: str | None = None, backend: str = "torch",
                 fill_hints: bool = True, one_per_region: bool | str = "auto", align: bool = True) -> None:
        self.setup(device, precision, backend)  # precision None: auto, restore sketch's default
        self.path, self.model, self.meta = self.load(weights, "colorizer")
        d = descriptor_of(self.model)
        self.ranges = {port.name: port.range for port in d.inputs(self.model.config, None)}
        self.out_range = d.output_range
        self.model = on_backend(self.model, self.backend, source=self.path, name="colorizer", device=self.device)
        self.max_side = max_side
        self.fill_hints = fill_hints  # hint strokes paint the regions they touch (restore.sketch.layers)
        self.one_per_region = _regions_choice(one_per_region)  # each region of the sketch one colour (layers.flat)
        self.align = bool(align)  # a reference that registers onto the sketch gives its colours (.register)

    def per_region(self, reference: np.ndarray, choice: bool | str | None = None) -> bool:
        """Whether each region takes one colour: ``choice`` (default: ``one_per_region``), or
        with "auto" when the reference's figure is flat colour (``flat_share(figure_only=True)``
        >= 0.5). Chosen on the
        clip-art dev set (80 pictures, 2026-12-06): per pixel 18.83 dB away from lines, per region
        18.99, auto 19.19; on the held-out stamps (shaded, median share 0.25) per pixel 21.72,
        per region 20.78, auto 21.89. One colour per region hides the network's noise where the
        art is flat and erases the reference's shading where it is not."""
        choice = self.one_per_region if choice is None else _regions_choice(choice)
        if choice == "auto":
            return flat_share(reference, figure_only=True) >= FLAT_FIGURE_SHARE
        return bool(choice)

    def __call__(self, sketch: np.ndarray, reference: np.ndarray, hints: np.ndarray | None = None,
                 keep_lines: bool = True, keep_paper: bool = False) -> np.ndarray:
        """Sketch HxW (or HxWx3, made grey) and reference hxwx3 (uint8 or float in [0, 1]),
        hints HxWx4 or None -> RGB uint8 HxWx3 of the sketch's size. Sketches larger than
        ``max_side`` are coloured at that size and the colours upsampled. With ``keep_lines``
        the sketch's lines go back over the colours (restore.sketch.layers), with ``keep_paper``
        also its paper outside the outer contour; without, the network's own output."""
        if not keep_lines:
            return self.paint(sketch, reference, hints)
        return self.layers(sketch, reference, hints, keep_paper)[0]

    def layers(self, sketch: np.ndarray, reference: np.ndarray, hints: np.ndarray | None = None,
               keep_paper: bool = False, one_per_region: bool | str | None = None,
               align: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(result, flat): the coloured sketch, and its colours without lines (RGB uint8).

        With ``align`` (default: the instance's ``align``, on) a reference that shows the sketch's
        figure turned, mirrored, moved, rescaled or warped (``restore.sketch.register.align``
        scores it at least ``MIN_SCORE``) gives its own colours wherever its pixels land, shading
        included, and no region is flattened; the network paints the rest, and every reference
        that does not register.

        ``keep_paper`` is off by default: on sketches extracted by XDoG from held-out clip art the
        outlines are rarely closed, the paper reached 9-18% of the figures, and colour away from
        the lines dropped 0.3-0.9 dB (2026-12-03); for clean, closed line art it is what you want.
        Hint strokes set the colour of every region they touch (``fill_hints``, on by default).
        ``one_per_region`` overrides the instance's choice for this call (True, False, "auto")."""
        per_region = self.per_region(reference, one_per_region)
        painted = self.paint(sketch, reference, hints)
        found = align_reference(sketch, reference) if (self.align if align is None else align) else None
        if found is not None:  # the reference's own colours, shading kept: no region is flattened
            painted = painted.copy()
            painted[found.valid] = (np.clip(found.colours[found.valid], 0, 1) * 255).round().astype(np.uint8)
            per_region = False
        colours = flat(sketch, painted, keep_paper, per_region)
        if hints is not None and self.fill_hints:
            colours = fill_hinted(sketch, colours, hints)
        return compose(sketch, colours), colours

    @torch.inference_mode()
    def paint(self, sketch: np.ndarray, reference: np.ndarray, hints: np.ndarray | None = None) -> np.ndarray:
        """The network's output, RGB uint8 HxWx3 of the sketch's size (lines smeared in)."""
        s = luminance(sketch)
        ref = to_float(reference)
        ref = np.repeat(ref[..., None], 3, axis=2) if ref.ndim == 2 else ref[..., :3]
        h, w = s.shape
        x = unit_in(torch.from_numpy(np.ascontiguousarray(s))[None, None].to(self.device), self.ranges["sketch"])
        scale = min(1.0, self.max_side / max(h, w))
        if scale < 1:
            x = torch.nn.functional.interpolate(x, scale_factor=scale, mode="area")
        r = unit_in(torch.from_numpy(np.ascontiguousarray(ref.transpose(2, 0, 1)))[None].to(self.device),
                    self.ranges["reference"])
        side = self.model.config.style_size  # resized here, as the network would, so its export needs no resize
        if r.shape[-2:] != (side, side):
            r = torch.nn.functional.interpolate(r.float(), size=(side, side), mode="bilinear", align_corners=False,
                                                antialias=True)
        hint = None
        if hints is not None:
            if not self.model.config.hints:
                raise ValueError("this model takes no colour hints")
            hint = hints_tensor(hints, tuple(x.shape[-2:])).to(self.device)
        if hint is None and self.model.config.hints:  # no strokes: zeros, as the network itself would give
            hint = x.new_zeros(x.shape[0], 4, *x.shape[2:])
        with autocast(self.precision, self.device):
            y = self.model(x, r, hint).float()
        if scale < 1:
            y = torch.nn.functional.interpolate(y, size=(h, w), mode="bicubic", align_corners=False)
        return pixels_out(y[0], self.out_range).byte().permute(1, 2, 0).cpu().numpy()


# --------------------------------------------------------------------------- scoring and the baseline


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR (dB) of two RGB images in [0, 1] over all pixels, or over ``mask`` (HxW bool); RGB,
    no border crop, capped at 100 dB for identical images."""
    err = (np.clip(a, 0, 1).astype(np.float64) - np.clip(b, 0, 1).astype(np.float64)) ** 2
    mse = float(err[mask].mean() if mask is not None else err.mean())
    return 100.0 if mse <= 1e-10 else float(10 * np.log10(1 / mse))


def flat_fill(sketch: np.ndarray, reference: np.ndarray, per_region: bool = True,
              line_threshold: float = 0.5) -> np.ndarray:
    """The flat-fill baseline, RGB float32 HxWx3 in [0, 1]. Line pixels are those of the sketch
    darker than ``line_threshold`` and keep the sketch's grey; the other pixels split into
    regions, the 4-connected components of the non-line pixels (scipy.ndimage.label). With
    ``per_region`` each region is filled with the mean colour of the reference over that
    region (the reference resized to the sketch's size if it differs: meant for an aligned
    reference, e.g. the original), else every non-line pixel takes the reference's mean
    colour over all non-line pixels."""
    import cv2
    from scipy import ndimage

    s = luminance(sketch)
    ref = to_float(reference)
    ref = np.repeat(ref[..., None], 3, axis=2) if ref.ndim == 2 else ref[..., :3]
    if ref.shape[:2] != s.shape:
        ref = cv2.resize(ref, s.shape[::-1], interpolation=cv2.INTER_AREA)
    out = np.repeat(s[..., None], 3, axis=2)
    free = s >= line_threshold
    if not free.any():
        return out
    if not per_region:
        out[free] = ref[free].mean(axis=0)
        return out
    labels, n = ndimage.label(free)
    counts = np.bincount(labels.ravel(), minlength=n + 1).astype(np.float64)
    means = np.stack([np.bincount(labels.ravel(), weights=ref[..., c].ravel(), minlength=n + 1)
                      for c in range(3)], axis=1) / np.maximum(counts, 1)[:, None]
    out[free] = means[labels[free]]
    return out.astype(np.float32)


def compare_panel(sketch: np.ndarray, reference: np.ndarray, result: np.ndarray, gap: int = 4) -> np.ndarray:
    """sketch | reference | result side by side at the result's height, RGB uint8, white gaps."""
    import cv2

    h = result.shape[0]

    def fit(img: np.ndarray) -> np.ndarray:
        x = to_float(img)
        x = np.repeat(x[..., None], 3, axis=2) if x.ndim == 2 else x[..., :3]
        w = max(1, round(x.shape[1] * h / x.shape[0]))
        if x.shape[0] != h:
            x = cv2.resize(x, (w, h), interpolation=cv2.INTER_AREA if x.shape[0] > h else cv2.INTER_CUBIC)
        return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)

    white = np.full((h, gap, 3), 255, np.uint8)
    return np.concatenate([fit(sketch), white, fit(reference), white, fit(result)], axis=1)
