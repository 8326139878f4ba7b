"""The colorizer's discriminator: a PatchGAN whose auxiliary head regresses the style vector of
what it sees (Zhang, Ji, Lin 2017's AC-GAN; here its fixed part: frozen backbone features and the
colour histogram). Real images must score their own style, and the generator is pushed to make
images whose style the head reads as the reference's."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .blocks import conv_nd, maybe_spectral_norm
from .pix2pix import _check_norm, init_pix2pix_weights, patch_inputs, patch_trunk
from .descriptor import Descriptor


@dataclass(frozen=True)
class ACPatchGANConfig:
    """Everything needed to rebuild the auxiliary-classifier PatchGAN."""

    in_channels: int = 4  # the sketch (the condition) and the colour image
    base_channels: int = 64
    n_layers: int = 3  # stride-2 convs; 3 gives the 70x70 receptive field
    norm: str = "none"
    spectral_norm: bool = True
    style_dim: int = 0  # length of the style vector the auxiliary head predicts (0: no head)

    def __post_init__(self) -> None:
        _check_norm(self.norm)
        if self.n_layers < 1 or self.base_channels < 1 or self.in_channels < 1 or self.style_dim < 0:
            raise ValueError("n_layers, base_channels and in_channels must be positive, style_dim >= 0")

    def to_dict(self) -> dict:
        return asdict(self)


class ACPatchDiscriminator(nn.Module):
    """PatchGAN trunk; ``forward`` gives the patch logits, ``forward(..., aux=True)`` also the
    style vector predicted from the average-pooled trunk features."""

    def __init__(self, config: ACPatchGANConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = config or ACPatchGANConfig(**overrides)
        layers, width = patch_trunk(c.in_channels, c.base_channels, c.n_layers, c.norm, c.spectral_norm)
        self.trunk = nn.Sequential(*layers)
        self.logits = maybe_spectral_norm(conv_nd(2)(width, 1, 4, stride=1, padding=1), c.spectral_norm)
        self.aux = nn.Linear(width, c.style_dim) if c.style_dim else None
        init_pix2pix_weights(self)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None,
                aux: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if condition is not None:
            x = torch.cat([condition, x], dim=1)
        h = self.trunk(x)
        if not aux:
            return self.logits(h)
        if self.aux is None:
            raise ValueError("this discriminator has no auxiliary head (style_dim=0)")
        return self.logits(h), self.aux(h.float().mean(dim=(2, 3)))


PRESETS: dict[str, ACPatchGANConfig] = {
    # style_dim is set from the colorizer's config when a training run is built
    "tiny": ACPatchGANConfig(base_channels=8, n_layers=2),
    "default": ACPatchGANConfig(base_channels=32, n_layers=3),
    "paper": ACPatchGANConfig(base_channels=64, n_layers=3),
}

DESCRIPTORS = (Descriptor("ACPatchDiscriminator", ACPatchGANConfig, ACPatchDiscriminator, kind="discriminator",
                          inputs=patch_inputs, output="score", output_range="logits", presets=PRESETS,
                          variants={"tiny-aux": ACPatchGANConfig(base_channels=8, n_layers=2, style_dim=5)}),)
