"""The ArcFace network of GFP-GAN's identity loss (gfpgan's ``ResNetArcFace``, IRBlocks).

GFP-GAN trains with ``arcface_resnet18.pth``: ``ResNetArcFace(block="IRBlock", layers=(2, 2,
2, 2), use_se=False)`` on 128 x 128 greyscale faces, a 512-d embedding out. The module names
here are gfpgan's, so that file (a bare state dict, possibly with DataParallel's ``module.``
prefix) loads key for key with ``torch.load(weights_only=True)``. It is not bundled: users
supply it (``--identity-weights``); without it the identity loss is off.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gan.weightio import read_state_dict

from .descriptor import Descriptor, Port

INPUT_SIZE = 128  # fc5 expects 512 x 8 x 8 features: 128 px faces


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


class SEBlock(nn.Module):
    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(channels, channels // reduction), nn.PReLU(),
                                nn.Linear(channels // reduction, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(self.avg_pool(x).flatten(1))[:, :, None, None]


class IRBlock(nn.Module):
    """The improved residual block: BN, conv, BN, PReLU, conv (strided), BN (+ SE), + skip, PReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1, downsample: nn.Module | None = None,
                 use_se: bool = True) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(cin)
        self.conv1 = _conv3x3(cin, cin)
        self.bn1 = nn.BatchNorm2d(cin)
        self.prelu = nn.PReLU()
        self.conv2 = _conv3x3(cin, cout, stride)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = downsample
        self.se = SEBlock(cout) if use_se else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.prelu(self.bn1(self.conv1(self.bn0(x))))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        skip = self.downsample(x) if self.downsample is not None else x
        return self.prelu(out + skip)


@dataclass(frozen=True)
class ArcFaceConfig:
    """``ResNetArcFace``'s arguments (defaults: ``arcface_resnet18.pth``'s)."""

    layers: tuple[int, ...] = (2, 2, 2, 2)  # IRBlocks per stage
    use_se: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))  # JSON gives a list
        if len(self.layers) != 4 or min(self.layers) < 1:
            raise ValueError("layers must be four positive block counts")

    def to_dict(self) -> dict:
        return asdict(self)


class ResNetArcFace(nn.Module):
    """128 x 128 greyscale faces (N, 1, 128, 128) -> 512-d identity embeddings."""

    def __init__(self, layers: tuple[int, ...] = (2, 2, 2, 2), use_se: bool = False) -> None:
        super().__init__()
        self.config = ArcFaceConfig(tuple(layers), use_se)
        self.conv1 = nn.Conv2d(1, 64, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.prelu = nn.PReLU()
        self.maxpool = nn.MaxPool2d(2, 2)
        cin = 64
        for i, (width, n) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            stride = 1 if i == 1 else 2
            down = None
            if stride != 1 or cin != width:
                down = nn.Sequential(nn.Conv2d(cin, width, 1, stride, bias=False), nn.BatchNorm2d(width))
            blocks = [IRBlock(cin, width, stride, down, use_se)] + [IRBlock(width, width, use_se=use_se)
                                                                      for _ in range(1, n)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            cin = width
        self.bn4 = nn.BatchNorm2d(512)
        self.dropout = nn.Dropout()
        self.fc5 = nn.Linear(512 * 8 * 8, 512)
        self.bn5 = nn.BatchNorm1d(512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.prelu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(self.bn4(x))
        return self.bn5(self.fc5(x.flatten(1)))


def grey_for_identity(images: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """RGB faces in [-1, 1] -> the network's input: luma (GFP-GAN's weights), resized to ``size``."""
    grey = 0.2989 * images[:, 0:1] + 0.5870 * images[:, 1:2] + 0.1140 * images[:, 2:3]
    return F.interpolate(grey, size=(size, size), mode="bilinear", align_corners=False)


def load_arcface(path: str | os.PathLike) -> ResNetArcFace:
    """The published ``arcface_resnet18.pth`` (or any state dict of this layout), read with
    ``weights_only=True``, loaded strictly; frozen, in eval mode. ValueError when it does not fit."""
    path = Path(path)
    state = read_state_dict(path, f"identity weights {path}")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    net = ResNetArcFace()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path} is not an arcface_resnet18 state dict: {' '.join(str(e).split())[:300]}") from None
    return net.eval().requires_grad_(False)


def _inputs(c: ArcFaceConfig, side: int | None) -> tuple[Port, ...]:
    return (Port("input", 1, "[-1, 1], grey", side=INPUT_SIZE, note="a 128 x 128 grey face; fixed size"),)


DESCRIPTORS = (Descriptor(
    "ResNetArcFace", ArcFaceConfig, ResNetArcFace, kind="embedding", inputs=_inputs, output="embedding",
    output_range="unbounded", presets={"tiny": ArcFaceConfig(layers=(1, 1, 1, 1)), "default": ArcFaceConfig()},
    published=("gfpgan's arcface_resnet18.pth (a bare state dict, DataParallel's module. prefix dropped)",),
    build=lambda c: ResNetArcFace(c.layers, c.use_se)),)

