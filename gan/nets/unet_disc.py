"""Real-ESRGAN's U-Net discriminator with skip connections and spectral norm (Wang et al. 2021),
as basicsr 1.4.2's ``basicsr.archs.discriminator_arch.UNetDiscriminatorSN``.

    x (N, C, H, W) in [0, 1], H and W multiples of 8
      -> conv0 (3x3), then three strided 4x4 convs down (x1/2, x1/4, x1/8; 2, 4, 8 x num_feat)
      -> three [bilinear 2x up, 3x3 conv] back up, each added to the encoder map of its size
      -> two 3x3 convs -> conv9 to one channel
      -> (N, 1, H, W): a real/fake logit for every pixel, not one per patch

Every conv but the first and the last is spectrally normalised with ``torch.nn.utils.spectral_norm``
(the legacy hook, as basicsr uses it), so the state dict holds basicsr's names (``conv1.weight_orig``,
``conv1.weight_u``, ``conv1.weight_v``) and the published ``RealESRGAN_x4plus_netD.pth`` and
``RealESRGAN_x2plus_netD.pth`` (``params``) load key for key (``load_published``). The power
iteration runs once per forward in training mode, as basicsr's does; in eval mode the stored
vectors are used as they are.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from gan.weightio import check_fits, read_state_dict, unwrap_state_dict

from .descriptor import Descriptor, Port

STATE_KEYS = ("params", "params_ema")  # Real-ESRGAN's netD files keep the weights under "params"


@dataclass(frozen=True)
class UNetDiscriminatorConfig:
    """basicsr's ``UNetDiscriminatorSN`` arguments (defaults: Real-ESRGAN's)."""

    num_in_ch: int = 3
    num_feat: int = 64
    skip_connection: bool = True

    def __post_init__(self) -> None:
        if self.num_in_ch < 1 or self.num_feat < 1:
            raise ValueError("UNetDiscriminatorSN: num_in_ch and num_feat must be positive")

    def to_dict(self) -> dict:
        return asdict(self)


class UNetDiscriminatorSN(nn.Module):
    """(N, num_in_ch, H, W), H and W multiples of 8 -> (N, 1, H, W) logits."""

    def __init__(self, config: UNetDiscriminatorConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = config or UNetDiscriminatorConfig(**overrides)
        f = c.num_feat
        self.conv0 = nn.Conv2d(c.num_in_ch, f, 3, 1, 1)
        # down
        self.conv1 = spectral_norm(nn.Conv2d(f, f * 2, 4, 2, 1, bias=False))
        self.conv2 = spectral_norm(nn.Conv2d(f * 2, f * 4, 4, 2, 1, bias=False))
        self.conv3 = spectral_norm(nn.Conv2d(f * 4, f * 8, 4, 2, 1, bias=False))
        # up
        self.conv4 = spectral_norm(nn.Conv2d(f * 8, f * 4, 3, 1, 1, bias=False))
        self.conv5 = spectral_norm(nn.Conv2d(f * 4, f * 2, 3, 1, 1, bias=False))
        self.conv6 = spectral_norm(nn.Conv2d(f * 2, f, 3, 1, 1, bias=False))
        # extra convolutions
        self.conv7 = spectral_norm(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv8 = spectral_norm(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def act(t: torch.Tensor) -> torch.Tensor:
            return F.leaky_relu(t, 0.2)

        def up(t: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)

        skip = self.config.skip_connection
        x0 = act(self.conv0(x))
        x1 = act(self.conv1(x0))
        x2 = act(self.conv2(x1))
        x3 = act(self.conv3(x2))
        x4 = act(self.conv4(up(x3)))
        x4 = x4 + x2 if skip else x4
        x5 = act(self.conv5(up(x4)))
        x5 = x5 + x1 if skip else x5
        x6 = act(self.conv6(up(x5)))
        x6 = x6 + x0 if skip else x6
        out = act(self.conv7(x6))
        out = act(self.conv8(out))
        return self.conv9(out)


PRESETS: dict[str, UNetDiscriminatorConfig] = {
    # Real-ESRGAN's (train_realesrgan_x4plus.yml, x2plus too): 4.38 M parameters.
    "default": UNetDiscriminatorConfig(),
    # Tests: 8 base features.
    "tiny": UNetDiscriminatorConfig(num_feat=8),
}


def config_from_state_dict(state: dict[str, torch.Tensor]) -> UNetDiscriminatorConfig:
    """The config a basicsr ``UNetDiscriminatorSN`` state dict was made with, from its shapes
    (the skip connections leave no weights: Real-ESRGAN's default, on, is assumed)."""
    try:
        first = state["conv0.weight"]
    except KeyError:
        raise ValueError("not a UNetDiscriminatorSN state dict (no conv0.weight)") from None
    return UNetDiscriminatorConfig(num_in_ch=first.shape[1], num_feat=first.shape[0])


def load_published(path_or_state: str | os.PathLike | dict,
                   config: UNetDiscriminatorConfig | None = None) -> UNetDiscriminatorSN:
    """A UNetDiscriminatorSN from a published ``.pth`` (RealESRGAN_x4plus_netD.pth, ...) or its
    state dict: ``params``, else ``params_ema``, else the dict itself, read with
    ``weights_only=True``; strict (the spectral-norm vectors included)."""
    if isinstance(path_or_state, dict):
        state = unwrap_state_dict(path_or_state, "the given dict", STATE_KEYS)
    else:
        state = read_state_dict(path_or_state, keys=STATE_KEYS)
    model = UNetDiscriminatorSN(config or config_from_state_dict(state))
    check_fits(model.state_dict(), state, f"state dict does not fit {model.config}")
    model.load_state_dict(state, strict=True)
    return model


def _inputs(c: UNetDiscriminatorConfig, side: int | None) -> tuple[Port, ...]:
    return (Port("input", c.num_in_ch, "[0, 1]", multiple=8, note="sides multiples of 8"),)


DESCRIPTORS = (Descriptor(
    "UNetDiscriminatorSN", UNetDiscriminatorConfig, UNetDiscriminatorSN, kind="discriminator", inputs=_inputs,
    output="score", output_range="logits", presets=PRESETS,
    published=("basicsr UNetDiscriminatorSN: RealESRGAN_x4plus_netD.pth, RealESRGAN_x2plus_netD.pth (params)",),
    load_published=load_published),)
