"""StyleGAN2's generator in plain PyTorch (CPU and GPU, no compiled ops).

The generator is the "clean" one GFP-GAN decodes with (gfpgan 1.3.8's
``StyleGAN2GeneratorClean``: bilinear resampling, plain LeakyReLU, no upfirdn2d), with its
module names, shapes and math, so its state dicts load key for key. Only the order of the
modulated conv's work changes: the style and demodulation scales are computed once per
sample (never a per-sample weight for a grouped conv); a batch then scales the activations
around a conv with the fixed weight (StyleGAN2's ``fused_modconv=False``), while one sample
at high resolution scales the small weight instead. At inference the epilogues run in place.

Its discriminator is in ``stylegan2_disc.py``.
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)


def stylegan_channels(channel_multiplier: int = 2, narrow: float = 1.0) -> dict[int, int]:
    """Channels per resolution (4 ... 1024), as StyleGAN2 and GFP-GAN size them."""
    wide = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * channel_multiplier, 128: 128 * channel_multiplier,
            256: 64 * channel_multiplier, 512: 32 * channel_multiplier, 1024: 16 * channel_multiplier}
    return {res: int(c * narrow) for res, c in wide.items()}


def log2_size(out_size: int) -> int:
    """log2 of a power-of-two side between 8 and 1024, else ValueError."""
    if out_size < 8 or out_size > 1024 or out_size & (out_size - 1):
        raise ValueError(f"out_size must be a power of two in [8, 1024], got {out_size}")
    return out_size.bit_length() - 1


def _used_channels(out_size: int, channel_multiplier: int, narrow: float) -> list[int]:
    """The widths a network of side ``out_size`` uses (ValueError for a bad size)."""
    top = log2_size(out_size)
    return [c for res, c in stylegan_channels(channel_multiplier, narrow).items() if res <= 2**top]


@dataclass(frozen=True)
class StyleGAN2Config:
    """The clean StyleGAN2 generator; field names follow ``StyleGAN2GeneratorClean``."""

    out_size: int = 512
    num_style_feat: int = 512
    num_mlp: int = 8
    channel_multiplier: int = 2
    narrow: float = 1.0

    def __post_init__(self) -> None:
        if min(_used_channels(self.out_size, self.channel_multiplier, self.narrow)) < 1 or self.num_style_feat < 1:
            raise ValueError("channel_multiplier, narrow and num_style_feat leave a layer without channels")

    @property
    def num_latent(self) -> int:
        """Style vectors one image uses (two per resolution from 8 px, plus two at 4 px)."""
        return 2 * log2_size(self.out_size) - 2

    def to_dict(self) -> dict:
        return asdict(self)


class NormStyleCode(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated conv (no bias); ``sample_mode`` "upsample" resamples bilinearly first."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, num_style_feat: int,
                 demodulate: bool = True, sample_mode: str | None = None, eps: float = 1e-8) -> None:
        super().__init__()
        if sample_mode not in (None, "upsample", "downsample"):
            raise ValueError(f"sample_mode must be None, 'upsample' or 'downsample', not {sample_mode!r}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.demodulate, self.sample_mode, self.eps = demodulate, sample_mode, eps
        self.modulation = nn.Linear(num_style_feat, in_channels, bias=True)
        nn.init.kaiming_normal_(self.modulation.weight, a=0, mode="fan_in", nonlinearity="linear")
        nn.init.constant_(self.modulation.bias, 1.0)  # styles start at 1: the plain conv
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size)
                                   / math.sqrt(in_channels * kernel_size**2))
        self.padding = kernel_size // 2

    def styles(self, style: torch.Tensor, gain: float = 1.0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-sample input scales (b, c_in) and output scales (b, c_out) times ``gain``. In float32
        whatever the autocast or the parameters' dtype: they are tiny, and errors in them scale
        whole channels."""
        with torch.autocast(style.device.type, enabled=False):
            m = self.modulation
            s = F.linear(style.float(), m.weight.float(), m.bias.float())
            if not self.demodulate:
                return s, None
            # Demodulation divides any per-sample factor of s out again (up to eps): scale s to
            # a maximum of 1 so that x * s stays inside fp16's range (as StyleGAN2-ADA does).
            s = s / s.abs().amax(1, keepdim=True).clamp_min(1e-8)
            # sum_{i,k} (w[o,i,k] s[i])^2 = sum_i s[i]^2 sum_k w[o,i,k]^2: no per-sample weight needed.
            return s, torch.rsqrt(s.pow(2) @ self._weight_sq().t() + self.eps) * gain

    def _weight_sq(self) -> torch.Tensor:
        """sum_k w[o, i, k]^2 (c_out, c_in). Cached under ``torch.inference_mode`` until the
        weight changes (its version counter: in-place writes through ``.data`` are not seen)."""
        w = self.weight
        if not torch.is_inference_mode_enabled() or w.is_inference():
            return w[0].float().pow(2).sum((2, 3))
        key = (w._version, w.data_ptr(), w.dtype, w.device)
        if getattr(self, "_w2_key", None) != key:
            self._w2, self._w2_key = w[0].float().pow(2).sum((2, 3)), key
        return self._w2

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.sample_mode is None:
            return x
        factor = 2 if self.sample_mode == "upsample" else 0.5
        return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor, style: torch.Tensor, gain: float = 1.0,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        """The modulated (and demodulated) conv of ``x``, times ``gain``, plus ``bias`` (c_out)."""
        s, d = self.styles(style)
        scale = d * gain if d is not None else s.new_full((x.shape[0], self.out_channels), gain)
        if x.shape[0] == 1 and self.weight.numel() <= x.numel():
            # One sample and more activations than weights (the high resolutions): scaling the
            # weight, as the reference does, costs less than passes over the activations.
            w = self.weight[0].float() * (scale[0][:, None] * s[0][None, :])[:, :, None, None]
            b = bias.to(x.dtype) if bias is not None else None
            return F.conv2d(self._resample(x), w.to(x.dtype), b, padding=self.padding)
        # Scaling before resampling is 4x cheaper when upsampling; bilinear is linear per channel.
        out = F.conv2d(self._resample(x * s.to(x.dtype)[:, :, None, None]), self.weight[0], padding=self.padding)
        scale = scale.to(out.dtype)[:, :, None, None]
        if torch.is_grad_enabled():
            return out * scale + bias.to(out.dtype)[:, None, None] if bias is not None else out * scale
        out.mul_(scale)  # inference: in place, no new allocation
        return out.add_(bias.to(out.dtype)[:, None, None]) if bias is not None else out


class StyleConv(nn.Module):
    """Modulated conv, x sqrt(2), + learned-weight noise, + bias, LeakyReLU(0.2)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, num_style_feat: int,
                 demodulate: bool = True, sample_mode: str | None = None) -> None:
        super().__init__()
        self.modulated_conv = ModulatedConv2d(in_channels, out_channels, kernel_size, num_style_feat,
                                              demodulate=demodulate, sample_mode=sample_mode)
        self.weight = nn.Parameter(torch.zeros(1))  # noise strength
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        # The reference's x sqrt(2) and bias (added after the noise there) go into the conv.
        out = self.modulated_conv(x, style, gain=SQRT2, bias=self.bias.view(-1))
        if noise is None:
            noise = out.new_empty(out.shape[0], 1, *out.shape[2:]).normal_()
        noise, noise_w = noise.to(out.dtype), self.weight.to(out.dtype)
        if torch.is_grad_enabled():
            return F.leaky_relu(out + noise_w * noise, 0.2)
        return F.leaky_relu_(out.addcmul_(noise, noise_w), 0.2)  # inference: in place


class ToRGB(nn.Module):
    """1x1 modulated conv to RGB (no demodulation) + bias, + the upsampled image so far."""

    def __init__(self, in_channels: int, num_style_feat: int, upsample: bool = True) -> None:
        super().__init__()
        self.upsample = upsample
        self.modulated_conv = ModulatedConv2d(in_channels, 3, 1, num_style_feat, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        # The image accumulates in float32 whatever the features' precision: 3 channels, cheap.
        out = self.modulated_conv(x, style).float() + self.bias.float()
        if skip is not None:
            if self.upsample:
                skip = F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
            out = out + skip
        return out


class ConstantInput(nn.Module):
    def __init__(self, num_channel: int, size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, num_channel, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.weight.expand(batch, -1, -1, -1)


class StyleGAN2Generator(nn.Module):
    """The clean StyleGAN2 generator (``StyleGAN2GeneratorClean``'s names and math).

    ``forward(styles)`` maps z codes (or w latents with ``input_is_latent``) to images in about
    [-1, 1]; ``synthesize(latent, noise, conditions)`` is the synthesis network alone, with the
    optional channel-split SFT that GFP-GAN modulates it with."""

    def __init__(self, config: StyleGAN2Config | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = config or StyleGAN2Config(**overrides)
        self.num_style_feat = c.num_style_feat
        mlp: list[nn.Module] = [NormStyleCode()]
        for _ in range(c.num_mlp):
            linear = nn.Linear(c.num_style_feat, c.num_style_feat)
            nn.init.kaiming_normal_(linear.weight, a=0.2, mode="fan_in", nonlinearity="leaky_relu")
            nn.init.zeros_(linear.bias)
            mlp += [linear, nn.LeakyReLU(0.2, inplace=True)]
        self.style_mlp = nn.Sequential(*mlp)
        self.channels = ch = stylegan_channels(c.channel_multiplier, c.narrow)
        self.log_size = log2_size(c.out_size)
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.num_latent = c.num_latent

        self.constant_input = ConstantInput(ch[4], size=4)
        self.style_conv1 = StyleConv(ch[4], ch[4], 3, c.num_style_feat)
        self.to_rgb1 = ToRGB(ch[4], c.num_style_feat, upsample=False)
        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for i in range(self.num_layers):  # fixed noise: what randomize_noise=False uses
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise{i}", torch.randn(1, 1, res, res))
        cin = ch[4]
        for i in range(3, self.log_size + 1):
            cout = ch[2**i]
            self.style_convs.append(StyleConv(cin, cout, 3, c.num_style_feat, sample_mode="upsample"))
            self.style_convs.append(StyleConv(cout, cout, 3, c.num_style_feat))
            self.to_rgbs.append(ToRGB(cout, c.num_style_feat, upsample=True))
            cin = cout

    def stored_noise(self) -> list[torch.Tensor]:
        return [getattr(self.noises, f"noise{i}") for i in range(self.num_layers)]

    def mean_latent(self, num_latent: int) -> torch.Tensor:
        z = torch.randn(num_latent, self.num_style_feat, device=self.constant_input.weight.device)
        return self.style_mlp(z).mean(0, keepdim=True)

    def latents(self, styles: list[torch.Tensor], input_is_latent: bool = False, truncation: float = 1.0,
                truncation_latent: torch.Tensor | None = None, inject_index: int | None = None) -> torch.Tensor:
        """One w per layer, (b, num_latent, num_style_feat), from one or two (mixed) codes."""
        if not input_is_latent:
            styles = [self.style_mlp(s) for s in styles]
        if truncation < 1:
            styles = [truncation_latent + truncation * (s - truncation_latent) for s in styles]
        if len(styles) == 1:
            s = styles[0]
            return s if s.ndim == 3 else s.unsqueeze(1).expand(-1, self.num_latent, -1)
        if len(styles) != 2:
            raise ValueError(f"expected one or two style codes, got {len(styles)}")
        if inject_index is None:
            inject_index = random.randint(1, self.num_latent - 1)
        return torch.cat([styles[0].unsqueeze(1).expand(-1, inject_index, -1),
                          styles[1].unsqueeze(1).expand(-1, self.num_latent - inject_index, -1)], 1)

    def synthesize(self, latent: torch.Tensor, noise: list[torch.Tensor | None] | None = None,
                   conditions: list[torch.Tensor] | None = None, sft_half: bool = False) -> torch.Tensor:
        """The image from per-layer latents. ``noise``: one map per layer, None entries drawn at
        random (None: all random). ``conditions``: [scale, shift] per resolution from 8 px,
        applied after the first conv of each (to its second half of channels if ``sft_half``)."""
        noise = noise if noise is not None else [None] * self.num_layers
        conditions = conditions or []
        out = self.style_conv1(self.constant_input(latent.shape[0]), latent[:, 0], noise=noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for conv1, conv2, to_rgb in zip(self.style_convs[::2], self.style_convs[1::2], self.to_rgbs):
            out = conv1(out, latent[:, i], noise=noise[i])
            if i < len(conditions):  # the conditions may cover fewer levels
                out = sft(out, conditions[i - 1], conditions[i], sft_half)
            out = conv2(out, latent[:, i + 1], noise=noise[i + 1])
            skip = to_rgb(out, latent[:, i + 2], skip)
            i += 2
        return skip

    def forward(self, styles: list[torch.Tensor], input_is_latent: bool = False,
                noise: list[torch.Tensor | None] | None = None, randomize_noise: bool = True,
                truncation: float = 1.0, truncation_latent: torch.Tensor | None = None,
                inject_index: int | None = None, return_latents: bool = False):
        """Images (and the latents, with ``return_latents``); the reference's arguments."""
        latent = self.latents(styles, input_is_latent, truncation, truncation_latent, inject_index)
        if noise is None and not randomize_noise:
            noise = self.stored_noise()
        image = self.synthesize(latent, noise)
        return (image, latent) if return_latents else image


def sft(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, half: bool) -> torch.Tensor:
    """Spatial feature transform x * scale + shift, on the second half of the channels if ``half``."""
    if not half:
        return x * scale + shift
    keep, mod = torch.split(x, x.shape[1] // 2, dim=1)
    if torch.is_grad_enabled():
        return torch.cat([keep, mod * scale + shift], dim=1)
    mod.mul_(scale).add_(shift)  # inference: in place, no concatenation
    return x
