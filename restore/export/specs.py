"""What each network takes and gives, for export: its inputs (names, a real test picture in the
network's own range, which axes may vary) and how two outputs are compared.

    spec = spec_for(model, name="restorer", tile=256)
    spec.inputs[0].example.shape   # (2, 3, 256, 256): the astronaut, in [-1, 1], twice
    spec.compare(torch_out, ort_out)  # ("psnr", 61.2) or ("equal", 0.99996)

The test pictures are scikit-image's bundled photos (the astronaut, the camera man: real faces
and edges, no download): a random tensor would leave GFP-GAN's face prior and the segmenters'
thresholds untested. Batch 2, so the exported batch axis stays symbolic (``torch.export``
specialises an axis of size 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

__all__ = ["ExportSpec", "InputSpec", "spec_for"]


@dataclass
class InputSpec:
    name: str
    example: torch.Tensor  # (2, C, *spatial), in ``range``
    range: str  # the values the network takes, for the file's metadata
    dynamic: dict[int, int] = field(default_factory=dict)  # axis -> multiple it must stay (spatial, --dynamic)


@dataclass
class ExportSpec:
    """How to export one network: ``module`` maps the inputs to the one output."""
    module: nn.Module
    inputs: list[InputSpec]
    output: str  # "image" (PSNR over ``peak``), "probability" (PSNR, peak 1) or "logits" (mask pixels)
    output_range: str
    peak: float = 2.0  # max - min of the output range, for the PSNR
    notes: list[str] = field(default_factory=list)

    def compare(self, ref: np.ndarray, out: np.ndarray) -> tuple[str, float]:
        """("psnr", dB) for pictures, ("equal", share of equal mask pixels) for logits."""
        if self.output == "logits":
            a, b = (ref.argmax(1), out.argmax(1)) if ref.shape[1] > 1 else (ref > 0, out > 0)
            return "equal", float((a == b).mean())
        mse = float(np.mean((ref.astype(np.float64) - out.astype(np.float64)) ** 2))
        return "psnr", math.inf if mse == 0 else 10 * math.log10(self.peak ** 2 / mse)


class _First(nn.Module):
    """The network's first output only (GFP-GAN also returns its intermediate RGB images)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = self.net(*inputs)
        return out[0] if isinstance(out, (tuple, list)) else out


def photo(size: tuple[int, ...], channels: int = 3) -> torch.Tensor:
    """(2, channels, *size) in [0, 1] from bundled photos: the astronaut (RGB; its luminance for
    one channel; channels beyond 3 repeat them), and for volumes slices that drift across it."""
    from skimage import data, transform

    rgb = data.astronaut().astype(np.float32) / 255
    if channels == 1:
        rgb = rgb @ np.array([0.299, 0.587, 0.114], np.float32)[:, None]
    planes = [rgb[..., c % rgb.shape[-1]] for c in range(channels)]
    hw = size[-2:]
    img = np.stack([transform.resize(p, hw, anti_aliasing=True) for p in planes])  # (C, H, W)
    if len(size) == 3:  # (C, D, H, W): each slice shifted by a few pixels, as a stack's are
        img = np.stack([np.roll(img, (3 * d, 2 * d), axis=(1, 2)) for d in range(size[0])], axis=1)
    second = np.flip(img, axis=-1).copy()  # a mirrored copy: two different pictures in the batch
    return torch.from_numpy(np.stack([img, second]).astype(np.float32))


def spec_for(model: nn.Module, *, tile: int | None = None) -> ExportSpec:
    """The export spec of a toolkit network (GFP-GAN, restorer, pix2pix generator, U-Nets 2D and
    3D, UNETR, colorizer, HED). ``tile``: the side of the test input (and of the exported
    one where sizes are fixed); default: the network's usual one."""
    from gan.nets.colorizer import Colorizer
    from gan.nets.gfpgan import GFPGAN
    from gan.nets.hed import HED
    from gan.nets.pix2pix import UNetGenerator
    from gan.nets.restorer import Restorer
    from gan.nets.unet import UNet
    from gan.nets.unetr import UNETR

    c = getattr(model, "config", None)
    if isinstance(model, GFPGAN):
        size = c.out_size
        return ExportSpec(_First(model), [InputSpec("input", photo((size, size)) * 2 - 1, "[-1, 1]")],
                          "image", "[-1, 1]", notes=[f"a {size} x {size} aligned face; fixed size (StyleGAN2 prior)"])
    if isinstance(model, (Restorer, UNetGenerator)):
        m = c.size_divisor
        side = max(m, -(-(tile or 256) // m) * m)
        x = photo((side, side), c.in_channels) * 2 - 1
        return ExportSpec(_First(model), [InputSpec("input", x, "[-1, 1]", {2: m, 3: m})], "image", "[-1, 1]",
                          notes=[f"sides multiples of {m} with --dynamic"])
    if isinstance(model, UNet):
        side = tile or (188 if c.padding == "valid" else 256 if c.dims == 2 else 64)
        if c.padding == "valid":
            side = c.valid_input_size(side)
        spatial = (side,) * c.dims  # the segmenter's tiles are cubes in 3D
        x = (photo(spatial, c.in_channels) - 0.5) / 0.25  # about the range percentile normalisation gives
        m = 2 ** c.depth
        dynamic = {} if c.padding == "valid" else {a: m for a in range(2, 2 + c.dims)}
        notes = ["fixed tile (valid convolutions)"] if c.padding == "valid" else [f"sides multiples of {m} with --dynamic"]
        return ExportSpec(_First(model), [InputSpec("input", x, "percentile-normalised (1, 99.8) -> about [0, 1]",
                                                    dynamic)], "logits", "logits", notes=notes)
    if isinstance(model, UNETR):
        side = tile or c.img_size
        side = max(16, side // 16 * 16)
        spatial = (side,) * c.dims
        x = (photo(spatial, c.in_channels) - 0.5) / 0.25
        return ExportSpec(_First(model), [InputSpec("input", x, "percentile-normalised (1, 99.8) -> about [0, 1]")],
                          "logits", "logits", notes=["fixed size (the position embedding is interpolated per size)"])
    if isinstance(model, Colorizer):
        m = 2 ** c.depth * c.pixel_unshuffle
        side = max(m, -(-(tile or 256) // m) * m)
        from skimage.filters import sobel

        grey = photo((side, side), 1)[:, 0].numpy()
        # the photo's edges as dark lines on white (restore.sketch.extract would make a circle)
        lines = np.stack([1 - np.clip(sobel(g) * 8, 0, 1) for g in grey]).astype(np.float32)
        sketch = torch.from_numpy(lines)[:, None] * 2 - 1
        ref = photo((c.style_size, c.style_size)).flip(0) * 2 - 1  # the other picture's colours
        inputs = [InputSpec("sketch", sketch, "[-1, 1] (white paper 1, lines -1)", {2: m, 3: m}),
                  InputSpec("reference", ref, f"[-1, 1], {c.style_size} x {c.style_size} (resize it first)")]
        if c.hints:
            hints = torch.zeros(2, 4, side, side)
            hints[:, :3, side // 3:side // 3 + 8, side // 3:side // 3 + 8] = 0.5
            hints[:, 3, side // 3:side // 3 + 8, side // 3:side // 3 + 8] = 1
            inputs.append(InputSpec("hints", hints, "RGB in [-1, 1] and a 0/1 mask (4 channels)", {2: m, 3: m}))
        return ExportSpec(_ColorizerNet(model), inputs, "image", "[-1, 1]",
                          notes=[f"sketch sides multiples of {m} with --dynamic"])
    if isinstance(model, HED):
        side = tile or 256
        return ExportSpec(_First(model), [InputSpec("input", photo((side, side)), "RGB [0, 1]", {2: 1, 3: 1})],
                          "probability", "[0, 1]", peak=1.0, notes=["any size with --dynamic"])
    raise ValueError(f"no export for {type(model).__name__}")


class _ColorizerNet(nn.Module):
    """The colorizer with its reference given at ``style_size`` (``Colorizer`` resizes it on the
    host first, for both backends), so the graph holds no antialiased resize."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, sketch: torch.Tensor, reference: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(sketch, reference, hints)
