"""StyleGAN2's residual discriminator with basicsr's ``StyleGAN2Discriminator`` parameter names:
blur ([1, 3, 3, 1], a depthwise conv) then stride 2, minibatch stddev; and its equalised-lr
layers (``ConvLayer`` is also the facial-component discriminators' building block).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .stylegan2 import SQRT2, _used_channels, log2_size, stylegan_channels
from .descriptor import Descriptor, Port


@dataclass(frozen=True)
class StyleGAN2DiscriminatorConfig:
    """StyleGAN2's residual discriminator, sized like the generator (``narrow`` shrinks it)."""

    out_size: int = 512
    channel_multiplier: int = 2
    narrow: float = 1.0
    stddev_group: int = 4
    resample_kernel: tuple[int, ...] = (1, 3, 3, 1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "resample_kernel", tuple(self.resample_kernel))  # JSON gives a list
        if min(_used_channels(self.out_size, self.channel_multiplier, self.narrow)) < 1 or self.stddev_group < 1:
            raise ValueError("channel_multiplier and narrow leave a layer without channels, or stddev_group < 1")

    def to_dict(self) -> dict:
        return asdict(self)


class EqualConv2d(nn.Module):
    """Conv with the equalised learning rate: N(0, 1) weights scaled by 1/sqrt(fan_in) at run time."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = True) -> None:
        super().__init__()
        self.stride, self.padding = stride, padding
        self.scale = 1 / math.sqrt(in_channels * kernel_size**2)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class EqualLinear(nn.Module):
    """Linear with the equalised learning rate; ``activate``: then LeakyReLU(0.2) x sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int, activate: bool = False) -> None:
        super().__init__()
        self.activate, self.scale = activate, 1 / math.sqrt(in_channels)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight * self.scale, self.bias)
        return F.leaky_relu(out, 0.2) * SQRT2 if self.activate else out


class ScaledLeakyReLU(nn.Module):
    """LeakyReLU(0.2) x sqrt(2), after a learned bias if ``channels``: basicsr's ``FusedLeakyReLU``
    (its parameter name) without its CUDA kernel."""

    def __init__(self, channels: int = 0) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels)) if channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is not None:
            x = x + self.bias.view(1, -1, *[1] * (x.ndim - 2))
        return F.leaky_relu(x, 0.2) * SQRT2


class Blur(nn.Module):
    """Pad, then the fixed normalised FIR filter as a depthwise conv (upfirdn2d with up = down = 1)."""

    def __init__(self, kernel: tuple[int, ...], pad: tuple[int, int]) -> None:
        super().__init__()
        k = torch.tensor(kernel, dtype=torch.float32)
        k = k[None, :] * k[:, None]
        self.register_buffer("kernel", (k / k.sum()).flip((0, 1))[None, None], persistent=False)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, [self.pad[0], self.pad[1], self.pad[0], self.pad[1]])
        k = self.kernel.to(x.dtype).expand(x.shape[1], -1, -1, -1)
        return F.conv2d(x, k, groups=x.shape[1])


class ConvLayer(nn.Sequential):
    """[blur] -> equalised conv (stride 2 after the blur) -> [bias + scaled LeakyReLU]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, downsample: bool = False,
                 resample_kernel: tuple[int, ...] = (1, 3, 3, 1), bias: bool = True, activate: bool = True) -> None:
        layers: list[nn.Module] = []
        if downsample:
            p = len(resample_kernel) - 2 + kernel_size - 1
            layers.append(Blur(resample_kernel, ((p + 1) // 2, p // 2)))
        stride, padding = (2, 0) if downsample else (1, kernel_size // 2)
        layers.append(EqualConv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias and not activate))
        if activate:
            layers.append(ScaledLeakyReLU(out_channels if bias else 0))
        super().__init__(*layers)


class DiscriminatorResBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, resample_kernel: tuple[int, ...]) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=True, resample_kernel=resample_kernel)
        self.skip = ConvLayer(in_channels, out_channels, 1, downsample=True, resample_kernel=resample_kernel,
                              bias=False, activate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


class StyleGAN2Discriminator(nn.Module):
    """Real/fake logits (N, 1) for N x 3 x out_size x out_size images; basicsr's parameter names."""

    def __init__(self, config: StyleGAN2DiscriminatorConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = config or StyleGAN2DiscriminatorConfig(**overrides)
        ch = stylegan_channels(c.channel_multiplier, c.narrow)
        body: list[nn.Module] = [ConvLayer(3, ch[c.out_size], 1)]
        cin = ch[c.out_size]
        for i in range(log2_size(c.out_size), 2, -1):
            body.append(DiscriminatorResBlock(cin, ch[2 ** (i - 1)], c.resample_kernel))
            cin = ch[2 ** (i - 1)]
        self.conv_body = nn.Sequential(*body)
        self.final_conv = ConvLayer(cin + 1, ch[4], 3)
        self.final_linear = nn.Sequential(EqualLinear(ch[4] * 16, ch[4], activate=True),
                                          EqualLinear(ch[4], 1))
        self.stddev_group, self.stddev_feat = c.stddev_group, 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_body(x)
        b, c, h, w = out.shape
        # Minibatch stddev over groups of samples (strided: sample j belongs to group j % (b / group)).
        group = min(b, self.stddev_group)
        if b % group:
            raise ValueError(f"the batch ({b}) must be a multiple of stddev_group ({group}) or smaller")
        std = out.reshape(group, -1, self.stddev_feat, c // self.stddev_feat, h, w)
        std = torch.sqrt(std.var(0, unbiased=False) + 1e-8).mean([2, 3, 4], keepdim=True).squeeze(2)
        out = torch.cat([out, std.repeat(group, 1, h, w)], 1)
        return self.final_linear(self.final_conv(out).flatten(1))  # flatten: any memory format


PRESETS: dict[str, StyleGAN2DiscriminatorConfig] = {
    "tiny": StyleGAN2DiscriminatorConfig(out_size=32, channel_multiplier=1, narrow=0.0625),  # tests
    "small": StyleGAN2DiscriminatorConfig(out_size=128, channel_multiplier=1, narrow=0.25),  # CPU training
    "paper": StyleGAN2DiscriminatorConfig(out_size=512, channel_multiplier=1),  # GFP-GAN's train_gfpgan_v1.yml
}


def _inputs(c: StyleGAN2DiscriminatorConfig, side: int | None) -> tuple[Port, ...]:
    return (Port("input", 3, "[-1, 1]", side=c.out_size),)


DESCRIPTORS = (Descriptor("StyleGAN2Discriminator", StyleGAN2DiscriminatorConfig, StyleGAN2Discriminator,
                          kind="discriminator", inputs=_inputs, output="score", output_range="logits",
                          presets=PRESETS),)
