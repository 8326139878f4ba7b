"""The GFP-GAN face restorer (Wang et al. 2021), as gfpgan 1.3.8's ``GFPGANv1Clean``.

    face (N, 3, S, S) in [-1, 1]
      -> U-Net encoder: 1x1 conv, ResBlocks down to 4x4 -> latent code(s) w (final_linear)
      -> U-Net decoder: ResBlocks back up, + encoder skips; per resolution a scale and a shift
         (condition_scale / condition_shift)
      -> StyleGAN2 decoder driven by w, its first conv of each resolution modulated by
         out * scale + shift on half its channels (channel-split SFT) -> restored face

Module names and shapes are those of ``GFPGANv1Clean``, so the published GFPGANv1.3/v1.4
``params_ema`` (285 entries: 270 parameters, 15 fixed noise maps) load key for key
(``load_published``). Inference uses the stored noise maps (the reference's
``randomize_noise=False``), so one face always gives one result, and skips the U-Net's
intermediate RGB outputs, which only the training losses read (``return_rgb=True``).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gan.weightio import load_strictly, published_state

from .stylegan2 import StyleGAN2Config, StyleGAN2Generator, log2_size, stylegan_channels
from .descriptor import Descriptor, Port


@dataclass(frozen=True)
class GFPGANConfig:
    """``GFPGANv1Clean``'s arguments (defaults: the published v1.3/v1.4 models)."""

    out_size: int = 512  # input and output side; faces are aligned to it
    num_style_feat: int = 512
    channel_multiplier: int = 2
    num_mlp: int = 8  # the StyleGAN2 mapping MLP; unused (but stored) when input_is_latent
    input_is_latent: bool = True  # the encoder's code is w itself, not z for the mapping MLP
    different_w: bool = True  # one w per decoder layer instead of one for all
    narrow: float = 1.0  # channel ratio of the decoder; the U-Net has half of it
    sft_half: bool = True  # SFT on half of the channels; the other half stays the prior's

    def __post_init__(self) -> None:
        StyleGAN2Config(self.out_size, self.num_style_feat, self.num_mlp, self.channel_multiplier, self.narrow)
        unet, dec = self.unet_channels, stylegan_channels(self.channel_multiplier, self.narrow)
        for res in (2**i for i in range(3, log2_size(self.out_size) + 1)):
            # The SFT maps (U-Net width, twice that without sft_half) must match the decoder's
            # (half) width; odd widths would also split unevenly.
            if 2 * unet[res] != dec[res]:
                raise ValueError(f"narrow={self.narrow} gives {dec[res]} decoder channels at {res} px: "
                                 f"it needs an even number, twice the U-Net's {unet[res]}")

    @property
    def unet_channels(self) -> dict[int, int]:
        return stylegan_channels(self.channel_multiplier, self.narrow * 0.5)

    @property
    def num_latent(self) -> int:
        return 2 * log2_size(self.out_size) - 2

    def decoder(self) -> StyleGAN2Config:
        return StyleGAN2Config(self.out_size, self.num_style_feat, self.num_mlp, self.channel_multiplier, self.narrow)

    def to_dict(self) -> dict:
        return asdict(self)


GFPGAN_PRESETS: dict[str, GFPGANConfig] = {
    # GFPGANv1.3 / v1.4: 512 px faces, 86.4 M parameters (the StyleGAN2 decoder 30.3 M, the
    # latent-code layer 33.6 M), 395 GFLOP a face.
    "published": GFPGANConfig(),
    # For training on a CPU: 128 px, a quarter of the published widths, 4.1 M parameters.
    "small": GFPGANConfig(out_size=128, num_style_feat=128, channel_multiplier=1, num_mlp=2, narrow=0.25),
    # Tests: 32 px, 16-32 channels (channel_multiplier only widens 64 px and up).
    "tiny": GFPGANConfig(out_size=32, num_style_feat=32, num_mlp=2, narrow=0.0625),
}


class ResBlock(nn.Module):
    """The U-Net's residual block: two 3x3 convs with bilinear resampling between, a 1x1 skip."""

    def __init__(self, in_channels: int, out_channels: int, mode: str = "down") -> None:
        super().__init__()
        if mode not in ("down", "up"):
            raise ValueError(f"mode must be 'down' or 'up', not {mode!r}")
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.scale_factor = 0.5 if mode == "down" else 2.0

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale_factor, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu_(self.conv1(x), 0.2)
        out = F.leaky_relu_(self.conv2(self._resample(out)), 0.2)
        # A bias-free 1x1 conv commutes with bilinear resampling: run it at the lower resolution.
        skip = self._resample(self.skip(x)) if self.scale_factor > 1 else self.skip(self._resample(x))
        return out + skip


def _sft_branch(channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1), nn.LeakyReLU(0.2, True),
                         nn.Conv2d(channels, out_channels, 3, 1, 1))


class GFPGAN(nn.Module):
    """GFP-GAN generator; ``forward(x)`` restores N x 3 x out_size x out_size faces in [-1, 1]."""

    def __init__(self, config: GFPGANConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = config or GFPGANConfig(**overrides)
        ch, n = c.unet_channels, log2_size(c.out_size)
        self.log_size = n
        self.conv_body_first = nn.Conv2d(3, ch[c.out_size], 1)
        self.conv_body_down = nn.ModuleList(ResBlock(ch[2**i], ch[2 ** (i - 1)], "down") for i in range(n, 2, -1))
        self.final_conv = nn.Conv2d(ch[8], ch[4], 3, 1, 1)
        self.conv_body_up = nn.ModuleList(ResBlock(ch[2 ** (i - 1)] if i > 3 else ch[4], ch[2**i], "up")
                                          for i in range(3, n + 1))
        self.toRGB = nn.ModuleList(nn.Conv2d(ch[2**i], 3, 1) for i in range(3, n + 1))
        self.final_linear = nn.Linear(ch[4] * 16, c.num_style_feat * (c.num_latent if c.different_w else 1))
        self.stylegan_decoder = StyleGAN2Generator(c.decoder())
        sft_out = [ch[2**i] * (1 if c.sft_half else 2) for i in range(3, n + 1)]
        self.condition_scale = nn.ModuleList(_sft_branch(ch[2**i], o) for i, o in zip(range(3, n + 1), sft_out))
        self.condition_shift = nn.ModuleList(_sft_branch(ch[2**i], o) for i, o in zip(range(3, n + 1), sft_out))

    def forward(self, x: torch.Tensor, return_rgb: bool = False, randomize_noise: bool = False,
                return_latents: bool = False):
        """The restored faces. ``return_rgb`` (training): also the U-Net's RGB image per
        resolution from 8 px, which GFP-GAN's pyramid loss reads; ``randomize_noise``: fresh noise
        maps instead of the stored ones (GFP-GAN trains so); ``return_latents``: also w."""
        c = self.config
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (c.out_size, c.out_size):
            raise ValueError(f"GFPGAN expects N x 3 x {c.out_size} x {c.out_size} faces, got {tuple(x.shape)}")
        # A model cast to bf16/fp16 for inference takes float32 faces too (see gan.precision).
        feat = F.leaky_relu_(self.conv_body_first(x.to(self.conv_body_first.weight.dtype)), 0.2)
        skips = []
        for block in self.conv_body_down:
            feat = block(feat)
            skips.append(feat)
        feat = F.leaky_relu_(self.final_conv(feat), 0.2)
        # flatten (not view): the (C, H, W) order of the weights whatever the memory format.
        code = self.final_linear(feat.flatten(1))
        if c.different_w:
            code = code.view(code.shape[0], -1, c.num_style_feat)

        conditions, rgbs = [], []
        for i, block in enumerate(self.conv_body_up):
            feat = block(feat + skips[-1 - i])
            conditions += [self.condition_scale[i](feat), self.condition_shift[i](feat)]
            if return_rgb:
                rgbs.append(self.toRGB[i](feat))

        dec = self.stylegan_decoder
        latent = dec.latents([code], input_is_latent=c.input_is_latent)
        image = dec.synthesize(latent, None if randomize_noise else dec.stored_noise(), conditions, c.sft_half)
        extra = ([rgbs] if return_rgb else []) + ([latent] if return_latents else [])
        return (image, *extra) if extra else image


# ----- published checkpoints ---------------------------------------------------------------


def config_from_state_dict(state: dict[str, torch.Tensor], input_is_latent: bool = True) -> GFPGANConfig:
    """The config a ``GFPGANv1Clean`` state dict was made with, read from its shapes
    (``input_is_latent`` leaves no trace in the weights: it is given)."""
    dec = "stylegan_decoder."
    try:
        n_down = len({k.split(".")[1] for k in state if k.startswith("conv_body_down.")})
        out_size = 2 ** (n_down + 2)
        num_style_feat = state[dec + "to_rgb1.modulated_conv.modulation.weight"].shape[1]
        num_mlp = sum(1 for k in state if k.startswith(dec + "style_mlp.") and k.endswith(".weight"))
        narrow = state[dec + "constant_input.weight"].shape[1] / 512
        channel_multiplier = 2
        if out_size >= 64:  # the first resolution whose width depends on it
            width64 = state[dec + "style_convs.6.modulated_conv.weight"].shape[1]
            channel_multiplier = max(1, round(width64 / (256 * narrow)))
        num_latent = 2 * (n_down + 2) - 2
        different_w = state["final_linear.weight"].shape[0] == num_latent * num_style_feat
        sft_half = state["condition_scale.0.2.weight"].shape[0] == state["condition_scale.0.0.weight"].shape[0]
    except (KeyError, IndexError) as e:
        raise ValueError(f"not a GFPGANv1Clean state dict (no {e})") from None
    return GFPGANConfig(out_size=out_size, num_style_feat=num_style_feat, num_mlp=num_mlp, narrow=narrow,
                        channel_multiplier=channel_multiplier, different_w=different_w, sft_half=sft_half,
                        input_is_latent=input_is_latent)


def load_published(path_or_state: str | os.PathLike | dict, config: GFPGANConfig | None = None) -> GFPGAN:
    """A GFPGAN from a published ``.pth`` (GFPGANv1.3/v1.4) or its state dict, in eval mode.

    Reads with ``weights_only=True``; takes ``params_ema``, else ``params``, else the dict
    itself; the config comes from the shapes unless given. Loads strictly: ValueError naming
    the missing, unexpected and mis-shaped keys otherwise."""
    state = published_state(path_or_state, ("params_ema", "params"))
    return load_strictly(lambda: GFPGAN(config or config_from_state_dict(state)), state)


def _inputs(c: GFPGANConfig, side: int | None) -> tuple[Port, ...]:
    s = c.out_size
    return (Port("input", 3, "[-1, 1]", side=s, note=f"a {s} x {s} aligned face; fixed size (StyleGAN2 prior)"),)


DESCRIPTORS = (Descriptor(
    "GFPGAN", GFPGANConfig, GFPGAN, kind="face prior", inputs=_inputs, presets=GFPGAN_PRESETS,
    published=("GFPGANv1Clean: GFPGANv1.3.pth, GFPGANv1.4.pth (params_ema, noise buffers dropped)",),
    load_published=load_published),)
