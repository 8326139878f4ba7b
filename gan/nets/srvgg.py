"""Real-ESRGAN's compact VGG-style upscaler, as realesrgan 0.3.0's ``SRVGGNetCompact``.

    x (N, C, H, W) in [0, 1]
      -> conv, act -> [conv, act] x num_conv -> conv to C * upscale**2 -> pixel-shuffle
      -> + nearest-upsampled x                     (it predicts the residual of a nearest resize)

All convolutions run at the input's resolution, so it is many times cheaper than RRDBNet (the
published ``realesr-animevideov3``: 16 body convs, 0.62 M parameters; ``realesr-general-x4v3``:
32, 1.21 M). Module names are realesrgan's (``body.0`` ... ``body.{2 num_conv + 2}``, the
activations in between, PReLU slopes stored as ``body.{odd}.weight``), so the published ``.pth``
files load key for key (``load_published``).
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gan.weightio import load_strictly, published_state

from .descriptor import Descriptor, Port

STATE_KEYS = ("params_ema", "params")
ACTIVATIONS = ("prelu", "relu", "leakyrelu")


@dataclass(frozen=True)
class SRVGGConfig:
    """realesrgan's ``SRVGGNetCompact`` arguments (defaults: realesr-animevideov3)."""

    num_in_ch: int = 3
    num_out_ch: int = 3
    num_feat: int = 64
    num_conv: int = 16  # body convolutions between the first and the last
    upscale: int = 4
    act_type: str = "prelu"  # prelu (one slope per channel), relu, or leakyrelu (slope 0.1)

    def __post_init__(self) -> None:
        if self.act_type not in ACTIVATIONS:
            raise ValueError(f"SRVGGNetCompact act_type must be one of {ACTIVATIONS}, not {self.act_type!r}")
        if min(self.num_in_ch, self.num_out_ch, self.num_feat, self.upscale) < 1 or self.num_conv < 0:
            raise ValueError("SRVGGNetCompact: channel counts and upscale must be positive, num_conv >= 0")
        if self.num_in_ch != self.num_out_ch:  # the nearest-upsampled input is added to the output
            raise ValueError("SRVGGNetCompact needs num_in_ch == num_out_ch (it adds the resized input)")

    def to_dict(self) -> dict:
        return asdict(self)


def _activation(act_type: str, channels: int) -> nn.Module:
    if act_type == "prelu":
        return nn.PReLU(num_parameters=channels)
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    return nn.LeakyReLU(negative_slope=0.1, inplace=True)


class SRVGGNetCompact(nn.Module):
    """(N, C, H, W) in [0, 1] -> (N, C, H * upscale, W * upscale)."""

    def __init__(self, config: SRVGGConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = config or SRVGGConfig(**overrides)
        layers: list[nn.Module] = [nn.Conv2d(c.num_in_ch, c.num_feat, 3, 1, 1), _activation(c.act_type, c.num_feat)]
        for _ in range(c.num_conv):
            layers += [nn.Conv2d(c.num_feat, c.num_feat, 3, 1, 1), _activation(c.act_type, c.num_feat)]
        layers.append(nn.Conv2d(c.num_feat, c.num_out_ch * c.upscale**2, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(c.upscale)

    @property
    def scale(self) -> int:
        return self.config.upscale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        return self.upsampler(out) + F.interpolate(x, scale_factor=self.config.upscale, mode="nearest")


PRESETS: dict[str, SRVGGConfig] = {
    # realesr-animevideov3 (x4; the ncnn animevideov3-x2/-x3 files are this network with a
    # bicubic resize after it): 16 body convs, 0.62 M parameters.
    "animevideov3": SRVGGConfig(),
    # realesr-general-x4v3 and realesr-general-wdn-x4v3 (the --denoise pair): 32 body convs, 1.21 M.
    "general-x4v3": SRVGGConfig(num_conv=32),
    # Tests: 8 features, 2 body convs.
    "tiny": SRVGGConfig(num_feat=8, num_conv=2),
}


# ----- published checkpoints ---------------------------------------------------------------


def config_from_state_dict(state: dict[str, torch.Tensor], act_type: str | None = None) -> SRVGGConfig:
    """The config an ``SRVGGNetCompact`` state dict was made with, read from its shapes. The
    activation is ``prelu`` when the dict holds slopes; relu and leakyrelu leave no trace in the
    weights, so for them ``act_type`` must be given."""
    try:
        convs = sorted((int(k.split(".")[1]) for k, v in state.items()
                        if k.startswith("body.") and k.endswith(".weight") and v.dim() == 4))
        first, last = state[f"body.{convs[0]}.weight"], state[f"body.{convs[-1]}.weight"]
        has_slopes = any(k.startswith("body.") and v.dim() == 1 and k.endswith(".weight") for k, v in state.items())
    except (KeyError, IndexError, ValueError, AttributeError) as e:
        raise ValueError(f"not an SRVGGNetCompact state dict (no {e})") from None
    num_in, num_feat = first.shape[1], first.shape[0]
    upscale = math.isqrt(last.shape[0] // num_in) if last.shape[0] % num_in == 0 else 0
    if upscale < 1 or upscale**2 * num_in != last.shape[0]:
        raise ValueError(f"SRVGGNetCompact: the last conv gives {last.shape[0]} channels, not {num_in} x upscale^2")
    if act_type is None:
        if not has_slopes:
            raise ValueError("the SRVGGNetCompact state dict has no PReLU slopes: give act_type (relu or leakyrelu)")
        act_type = "prelu"
    return SRVGGConfig(num_in_ch=num_in, num_out_ch=num_in, num_feat=num_feat, num_conv=len(convs) - 2,
                       upscale=upscale, act_type=act_type)


def load_published(path_or_state: str | os.PathLike | dict, config: SRVGGConfig | None = None) -> SRVGGNetCompact:
    """An SRVGGNetCompact from a published ``.pth`` (realesr-animevideov3, realesr-general-x4v3
    and its wdn twin) or its state dict, in eval mode: ``params_ema``, else ``params``, else the
    dict itself, read with ``weights_only=True``; config from the shapes unless given; strict."""
    state = published_state(path_or_state, STATE_KEYS)
    return load_strictly(lambda: SRVGGNetCompact(config or config_from_state_dict(state)), state)


def _inputs(c: SRVGGConfig, side: int | None) -> tuple[Port, ...]:
    return (Port("input", c.num_in_ch, "[0, 1]", note="any side"),)


DESCRIPTORS = (Descriptor(
    # The descriptor's scale is the default (x4) one; a network's own is ``config.upscale``.
    "SRVGGNetCompact", SRVGGConfig, SRVGGNetCompact, kind="upscaler", inputs=_inputs, output_range="[0, 1]",
    scale=4, presets=PRESETS,
    published=("realesrgan SRVGGNetCompact: realesr-animevideov3.pth, realesr-general-x4v3.pth, "
               "realesr-general-wdn-x4v3.pth (params_ema or params)",),
    load_published=load_published),)
