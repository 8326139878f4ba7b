"""ESRGAN's RRDBNet, the generator of Real-ESRGAN's RRDB models (Wang et al. 2018, 2021),
as basicsr 1.4.2's ``basicsr.archs.rrdbnet_arch.RRDBNet``.

    x (N, C, H, W) in [0, 1]
      -> [pixel-unshuffle 2 for scale 2, 4 for scale 1]   (the trunk then always enlarges 4x)
      -> conv_first -> + conv_body(num_block RRDBs)        (global residual)
      -> [nearest 2x, conv, LeakyReLU 0.2] x 2 -> conv_hr, LeakyReLU -> conv_last
      -> (N, C_out, H * scale, W * scale)

An RRDB is three residual dense blocks (five 3x3 convs, each seeing the concatenation of all
before it), each added back at 0.2, and the three again at 0.2. Module names and shapes are
basicsr's, so the published ``RealESRGAN_x4plus.pth``, ``RealESRNet_x4plus.pth``,
``RealESRGAN_x2plus.pth`` and ``RealESRGAN_x4plus_anime_6B.pth`` load key for key with
``strict=True`` (``load_published``: ``params_ema``, else ``params``, else the bare dict, read
with ``weights_only=True``).

For scale 2 and 1, sides that are not a multiple of the unshuffle are mirror-padded at the
bottom and right inside ``forward`` and the output cropped, as ``RealESRGANer`` does.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gan.weightio import load_strictly, published_state

from .descriptor import Descriptor, Port

STATE_KEYS = ("params_ema", "params")  # where Real-ESRGAN's .pth files nest the weights
UNSHUFFLE = {4: 1, 2: 2, 1: 4}  # scale -> pixel-unshuffle of the input (basicsr's x2/x1 option)


@dataclass(frozen=True)
class RRDBNetConfig:
    """basicsr's ``RRDBNet`` arguments (defaults: RealESRGAN_x4plus)."""

    num_in_ch: int = 3
    num_out_ch: int = 3
    scale: int = 4  # 4, or 2 / 1 with a pixel-unshuffled input
    num_feat: int = 64
    num_block: int = 23
    num_grow_ch: int = 32

    def __post_init__(self) -> None:
        if self.scale not in UNSHUFFLE:
            raise ValueError(f"RRDBNet scale must be 1, 2 or 4, not {self.scale}")
        if min(self.num_in_ch, self.num_out_ch, self.num_feat, self.num_grow_ch) < 1 or self.num_block < 0:
            raise ValueError("RRDBNet: channel counts must be positive and num_block >= 0")

    @property
    def unshuffle(self) -> int:
        return UNSHUFFLE[self.scale]

    def to_dict(self) -> dict:
        return asdict(self)


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs, each on the concatenation of the input and all earlier outputs; x + 0.2 * out."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        f, g = num_feat, num_grow_ch
        self.conv1 = nn.Conv2d(f, g, 3, 1, 1)
        self.conv2 = nn.Conv2d(f + g, g, 3, 1, 1)
        self.conv3 = nn.Conv2d(f + 2 * g, g, 3, 1, 1)
        self.conv4 = nn.Conv2d(f + 3 * g, g, 3, 1, 1)
        self.conv5 = nn.Conv2d(f + 4 * g, f, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = F.leaky_relu(self.conv1(x), 0.2)
        x2 = F.leaky_relu(self.conv2(torch.cat((x, x1), 1)), 0.2)
        x3 = F.leaky_relu(self.conv3(torch.cat((x, x1, x2), 1)), 0.2)
        x4 = F.leaky_relu(self.conv4(torch.cat((x, x1, x2, x3), 1)), 0.2)
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x  # ESRGAN's residual scaling


class RRDB(nn.Module):
    """Residual in residual dense block: three dense blocks, then x + 0.2 * out."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """basicsr's RRDBNet; (N, num_in_ch, H, W) in [0, 1] -> (N, num_out_ch, H * scale, W * scale)."""

    def __init__(self, config: RRDBNetConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = config or RRDBNetConfig(**overrides)
        f = c.num_feat
        self.conv_first = nn.Conv2d(c.num_in_ch * c.unshuffle**2, f, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(f, c.num_grow_ch) for _ in range(c.num_block)))
        self.conv_body = nn.Conv2d(f, f, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(f, f, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(f, f, 3, 1, 1)
        self.conv_hr = nn.Conv2d(f, f, 3, 1, 1)
        self.conv_last = nn.Conv2d(f, c.num_out_ch, 3, 1, 1)

    @property
    def scale(self) -> int:
        return self.config.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.config.unshuffle
        h, w = x.shape[-2:]
        if r > 1:
            pad_h, pad_w = (-h) % r, (-w) % r
            if pad_h or pad_w:  # RealESRGANer's mod_pad: mirror at the bottom and right, cropped below
                x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
            x = F.pixel_unshuffle(x, r)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        out = self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))
        if out.shape[-2] != h * self.config.scale or out.shape[-1] != w * self.config.scale:
            out = out[..., : h * self.config.scale, : w * self.config.scale]
        return out


PRESETS: dict[str, RRDBNetConfig] = {
    # RealESRGAN_x4plus and RealESRNet_x4plus (its L1-only stage): 16.70 M parameters, 67 MB in
    # float32. Also the ncnn realesrgan-x4plus (restore.models.ncnn).
    "x4plus": RRDBNetConfig(),
    # RealESRGAN_x2plus: the same trunk on a 2x pixel-unshuffled input (12 channels in).
    "x2plus": RRDBNetConfig(scale=2),
    # RealESRGAN_x4plus_anime_6B: 6 blocks, 4.47 M parameters (the ncnn realesrgan-x4plus-anime).
    "anime_6B": RRDBNetConfig(num_block=6),
    # Tests: 8 features, 2 blocks of growth 4.
    "tiny": RRDBNetConfig(num_feat=8, num_block=2, num_grow_ch=4),
}


# ----- published checkpoints ---------------------------------------------------------------


def config_from_state_dict(state: dict[str, torch.Tensor]) -> RRDBNetConfig:
    """The config a basicsr ``RRDBNet`` state dict was made with, read from its shapes (the
    scale from the input channels of ``conv_first`` against the output channels of ``conv_last``:
    equal for 4, 4x for 2, 16x for 1)."""
    try:
        first, last = state["conv_first.weight"], state["conv_last.weight"]
        num_feat, folded = first.shape[0], first.shape[1]
        num_out_ch = last.shape[0]
        num_block = len({k.split(".")[1] for k in state if k.startswith("body.")})
        num_grow_ch = state["body.0.rdb1.conv1.weight"].shape[0] if num_block else 32
    except (KeyError, IndexError, AttributeError) as e:
        raise ValueError(f"not a basicsr RRDBNet state dict (no {e})") from None
    for scale, r in UNSHUFFLE.items():
        if folded == num_out_ch * r * r:
            return RRDBNetConfig(num_in_ch=num_out_ch, num_out_ch=num_out_ch, scale=scale, num_feat=num_feat,
                                 num_block=num_block, num_grow_ch=num_grow_ch)
    raise ValueError(f"RRDBNet: conv_first takes {folded} channels, conv_last gives {num_out_ch}: "
                     "give the config (num_in_ch, scale)")


def load_published(path_or_state: str | os.PathLike | dict, config: RRDBNetConfig | None = None) -> RRDBNet:
    """An RRDBNet from a published ``.pth`` (Real-ESRGAN's RRDB models) or its state dict, in
    eval mode. Reads with ``weights_only=True``; takes ``params_ema``, else ``params``, else the
    dict itself; the config comes from the shapes unless given. Loads strictly: ValueError naming
    the missing, unexpected and mis-shaped keys otherwise."""
    state = published_state(path_or_state, STATE_KEYS)
    return load_strictly(lambda: RRDBNet(config or config_from_state_dict(state)), state)


def _inputs(c: RRDBNetConfig, side: int | None) -> tuple[Port, ...]:
    m = c.unshuffle
    note = "any side" if m == 1 else f"sides multiples of {m} (pixel-unshuffled input) with --dynamic"
    return (Port("input", c.num_in_ch, "[0, 1]", multiple=m, note=note),)


DESCRIPTORS = (Descriptor(
    # The descriptor's scale is the default (x4plus) one; a network's own is ``config.scale``.
    "RRDBNet", RRDBNetConfig, RRDBNet, kind="upscaler", inputs=_inputs, output_range="[0, 1]", scale=4,
    presets=PRESETS,
    published=("basicsr RRDBNet: RealESRGAN_x4plus.pth, RealESRNet_x4plus.pth, RealESRGAN_x2plus.pth, "
               "RealESRGAN_x4plus_anime_6B.pth (params_ema or params)",),
    load_published=load_published),)
