"""Named configs: ``tiny`` (tests), ``default``, ``paper``. A plain dict, nothing registered."""
from __future__ import annotations

from dataclasses import replace

from gan.nets.ac_patchgan import ACPatchGANConfig
from gan.nets.colorizer import ColorizerConfig
from gan.nets.components import ComponentDiscriminatorConfig
from gan.nets.gfpgan import GFPGAN_PRESETS, GFPGANConfig
from gan.nets.pix2pix import PatchGANConfig, Pix2PixConfig
from gan.nets.restorer import RestorerConfig
from gan.nets.stylegan2_disc import StyleGAN2DiscriminatorConfig
from gan.nets.unet import UNetConfig
from gan.nets.unetr import UNETRConfig

UNET_PRESETS: dict[str, UNetConfig] = {
    "tiny": UNetConfig(base_channels=8, depth=2),
    "default": UNetConfig(base_channels=16, depth=4),
    # Ronneberger et al. 2015: no norm, valid convolutions, 64 -> 1024 channels, dropout 0.5.
    "paper": UNetConfig(base_channels=64, depth=4, padding="valid", norm="none", dropout=0.5),
}

UNETR_PRESETS: dict[str, UNETRConfig] = {
    "tiny": UNETRConfig(img_size=32, hidden_size=32, mlp_dim=64, num_heads=2, num_layers=4, feature_size=4),
    "default": UNETRConfig(img_size=256, hidden_size=192, mlp_dim=768, num_heads=4, num_layers=8, feature_size=16),
    "paper": UNETRConfig(img_size=256),  # ViT-B/16: 768 hidden, 12 layers, 12 heads
}

PIX2PIX_PRESETS: dict[str, Pix2PixConfig | RestorerConfig] = {
    "tiny": Pix2PixConfig(base_channels=8, num_downs=4, max_channels=32),
    # The bundled blind restorer (gan/nets/restorer.py: a DRUNet-shaped residual U-Net rather than
    # pix2pix's strided one, which computes nothing at full detail): 2x pixel-unshuffle, two
    # residual blocks per level, widths 32-256, no norm (so overlapping tiles agree), a
    # correction of the input. 4.26 M parameters, 17 MB in float32; inputs padded to a
    # multiple of 16. A bf16 training step of 8 crops of 128 px takes ~0.08 s on 2 cores.
    "restorer": RestorerConfig(),
    # Twice as wide at the top two levels (64-128-256-256): 9.42 M parameters, 38 MB; a bf16 step
    # of 16 crops of 128 px takes 0.29 s on 2 cores with AMX (the `restorer` preset: 0.13 s).
    "restorer-wide": RestorerConfig(base_channels=64, max_channels=256),
    # The same shape, small, for tests.
    "tiny-restorer": RestorerConfig(base_channels=8, depth=2, blocks=1, max_channels=32),
    # Isola et al. 2017 / pix2pix's unet_256: 54.4 M parameters.
    "default": Pix2PixConfig(),
    "paper": Pix2PixConfig(),
}

PATCHGAN_PRESETS: dict[str, PatchGANConfig] = {
    "tiny": PatchGANConfig(base_channels=8, n_layers=2),
    # Spectral norm instead of batch norm: steadier with the small batches of CPU training.
    "restorer": PatchGANConfig(base_channels=32, n_layers=3, norm="none", spectral_norm=True),
    "restorer-wide": PatchGANConfig(base_channels=32, n_layers=3, norm="none", spectral_norm=True),
    "tiny-restorer": PatchGANConfig(base_channels=8, n_layers=2, norm="none", spectral_norm=True),
    # pix2pix's 70x70 PatchGAN: 2.77 M parameters.
    "default": PatchGANConfig(),
    "paper": PatchGANConfig(),
}

# The sketch colorizer (gan/nets/colorizer.py) and its AC PatchGAN; the discriminator's style_dim is
# set from the colorizer's config when a run is built.
COLORIZER_PRESETS: dict[str, ColorizerConfig] = {
    "tiny": ColorizerConfig(base_channels=8, depth=2, middle_blocks=1, max_channels=32, style_channels=16,
                            style_size=32, palette_bins=2, guide_channels=8, attention=2),
    # The bundled model: trainable style encoder + colour histogram (a frozen backbone's weights
    # would travel in the file: MobileNetV2 adds 8.9 MB), widths 32-192, 4 modulated middle blocks.
    # + sketch-to-reference attention at the bottleneck and the level above it (SCFT).
    "default": ColorizerConfig(max_channels=192, attention=2),
    # Closer to the paper: VGG19 fc1 as the style (needs vgg19-dcbb9e9d.pth in the torch hub
    # cache), wider and deeper; a GPU model.
    "paper": ColorizerConfig(base_channels=64, depth=4, blocks=2, max_channels=512, style_encoder="vgg19",
                             style_size=224, palette_bins=0, guide_channels=64),
}

AC_PATCHGAN_PRESETS: dict[str, ACPatchGANConfig] = {
    "tiny": ACPatchGANConfig(base_channels=8, n_layers=2),
    "default": ACPatchGANConfig(base_channels=32, n_layers=3),
    "paper": ACPatchGANConfig(base_channels=64, n_layers=3),
}


# The GFP-GAN face restorer's training networks (``restore train gfpgan --preset``): generator,
# StyleGAN2 discriminator, facial-component discriminators.
GFPGAN_TRAIN_PRESETS: dict[str, tuple[GFPGANConfig, StyleGAN2DiscriminatorConfig, ComponentDiscriminatorConfig]] = {
    # tests: 32 px, 16-32 channels
    "tiny": (GFPGAN_PRESETS["tiny"], StyleGAN2DiscriminatorConfig(out_size=32, channel_multiplier=1, narrow=0.0625),
             ComponentDiscriminatorConfig(channels=8)),
    # CPU training: 128 px, a quarter of the widths
    "small": (GFPGAN_PRESETS["small"], StyleGAN2DiscriminatorConfig(out_size=128, channel_multiplier=1, narrow=0.25),
              ComponentDiscriminatorConfig(channels=16)),
    # GFPGANv1.3/v1.4's generator (so they can be fine-tuned), the discriminators of
    # train_gfpgan_v1.yml (StyleGAN2 at channel multiplier 1; components at 64-256 channels)
    "paper": (GFPGAN_PRESETS["published"], StyleGAN2DiscriminatorConfig(out_size=512, channel_multiplier=1),
              ComponentDiscriminatorConfig(channels=64)),
}


def segmenter_config(preset: str = "default", model: str = "plain", dims: int = 2, in_channels: int = 1,
                     out_channels: int = 2, **overrides) -> UNetConfig | UNETRConfig:
    """The config of a segmentation network: ``model`` is plain|residual|attention|multires|unetr."""
    if model == "unetr":
        if preset not in UNETR_PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(UNETR_PRESETS)}")
        return replace(UNETR_PRESETS[preset], dims=dims, in_channels=in_channels, out_channels=out_channels, **overrides)
    if preset not in UNET_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(UNET_PRESETS)}")
    return replace(UNET_PRESETS[preset], kind=model, dims=dims, in_channels=in_channels,
                   out_channels=out_channels, **overrides)
