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

from gan.nets.descriptor import RANGES

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
    output: str  # "logits" (mask pixels compared), else PSNR: "image", "probability", "score", "embedding"
    output_range: str
    peak: float = 2.0  # max - min of the output range, for the PSNR (0: the reference's own spread)
    notes: list[str] = field(default_factory=list)

    def compare(self, ref: np.ndarray, out: np.ndarray) -> tuple[str, float]:
        """("psnr", dB) for pictures, ("equal", share of equal mask pixels) for logits."""
        if self.output == "logits":
            a, b = (ref.argmax(1), out.argmax(1)) if ref.shape[1] > 1 else (ref > 0, out > 0)
            return "equal", float((a == b).mean())
        mse = float(np.mean((ref.astype(np.float64) - out.astype(np.float64)) ** 2))
        peak = self.peak or float(ref.max() - ref.min()) or 1.0
        return "psnr", math.inf if mse == 0 else 10 * math.log10(peak ** 2 / mse)


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


def example(port, side: int | None = None) -> torch.Tensor:
    """A real test input for ``port`` (a ``gan.nets.descriptor.Port``), batch 2, in its range:
    the bundled photos for pictures, their edges drawn as lines for a sketch, the other photo for
    a reference, a square of colour for hints."""
    s = port.side or side or 256
    if not port.fixed:
        s = max(port.multiple, -(-s // port.multiple) * port.multiple)
    spatial = (s,) * port.dims
    if port.content == "sketch":  # the photo's edges as dark lines on white (an extractor would need the photo)
        from skimage.filters import sobel

        grey = photo(spatial, 1)[:, 0].numpy()
        lines = np.stack([1 - np.clip(sobel(g) * 8, 0, 1) for g in grey]).astype(np.float32)
        return torch.from_numpy(lines)[:, None] * 2 - 1
    if port.content == "hints":
        hints = torch.zeros(2, port.channels, *spatial)
        box = (slice(s // 3, s // 3 + 8),) * port.dims
        hints[(slice(None), slice(None, 3)) + box] = 0.5
        hints[(slice(None), 3) + box] = 1
        return hints
    x = photo(spatial, port.channels)
    if port.content == "reference":
        x = x.flip(0)  # the other picture's colours
    if port.range.startswith("[-1, 1]"):
        return x * 2 - 1
    if port.range.startswith("percentile"):
        return (x - 0.5) / 0.25  # about the range percentile normalisation gives
    return x


def spec_for(model: nn.Module, *, tile: int | None = None) -> ExportSpec:
    """The export spec of any network of the registry (``gan.nets.registry``), read from its
    descriptor: one input per port, sized about ``tile`` (default: the network's usual size),
    symbolic spatial axes where the port takes any multiple, the output compared as its kind
    says (mask pixels for logits, PSNR over the output's range otherwise)."""
    from gan.nets.registry import descriptor_of

    d = descriptor_of(model)
    if not d.exports:
        raise ValueError(f"no export for {type(model).__name__}")
    ports = d.inputs(model.config, tile)
    inputs = [InputSpec(p.name, example(p, tile), p.range,
                        {} if p.fixed else {a: p.multiple for a in range(2, 2 + p.dims)}) for p in ports]
    notes = [p.note for p in ports if p.note] or [
        "fixed size" if all(p.fixed for p in ports) else f"sides multiples of {ports[0].multiple} with --dynamic"]
    low, high = RANGES.get(d.output_range, (0.0, 0.0))  # unbounded (scores, embeddings): the reference's own
    return ExportSpec(_First(model), inputs, d.output, d.output_range, peak=high - low, notes=notes)
