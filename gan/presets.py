"""Named configs: ``tiny`` (tests), ``default``, ``paper``. Each network's own presets live in its
file's descriptor (``gan.nets.registry``); this module names them for the trainers, and pairs
the networks a training ``--preset`` builds together (a generator and its discriminators)."""
from __future__ import annotations

from dataclasses import replace

from gan.nets.pix2pix import Pix2PixConfig
from gan.nets.registry import networks
from gan.nets.restorer import RestorerConfig
from gan.nets.unet import UNetConfig
from gan.nets.unetr import UNETRConfig


def _presets(arch: str) -> dict:
    return dict(networks()[arch].presets)


UNET_PRESETS = _presets("UNet")
UNETR_PRESETS = _presets("UNETR")
PATCHGAN_PRESETS = _presets("PatchDiscriminator")
COLORIZER_PRESETS = _presets("Colorizer")
AC_PATCHGAN_PRESETS = _presets("ACPatchDiscriminator")
GFPGAN_PRESETS = _presets("GFPGAN")

# ``restore train pix2pix --preset``: pix2pix's U-Net generator, or the bundled restorer's shape
# (gan/nets/restorer.py) under the names its PatchGAN presets share.
_RESTORER = networks()["Restorer"].presets
PIX2PIX_PRESETS: dict[str, Pix2PixConfig | RestorerConfig] = {
    **_presets("UNetGenerator"),
    "restorer": _RESTORER["default"], "restorer-wide": _RESTORER["wide"], "tiny-restorer": _RESTORER["tiny"],
}

# ``restore train gfpgan --preset``: generator, StyleGAN2 discriminator, facial-component discriminators.
_SG2D, _COMP = networks()["StyleGAN2Discriminator"].presets, networks()["FacialComponentDiscriminator"].presets
GFPGAN_TRAIN_PRESETS: dict[str, tuple] = {
    "tiny": (GFPGAN_PRESETS["tiny"], _SG2D["tiny"], _COMP["tiny"]),  # tests: 32 px, 16-32 channels
    "small": (GFPGAN_PRESETS["small"], _SG2D["small"], _COMP["small"]),  # CPU training: 128 px, 1/4 widths
    # GFPGANv1.3/v1.4's generator (so they can be fine-tuned), the discriminators of
    # train_gfpgan_v1.yml (StyleGAN2 at channel multiplier 1; components at 64-256 channels)
    "paper": (GFPGAN_PRESETS["published"], _SG2D["paper"], _COMP["paper"]),
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


__all__ = ["AC_PATCHGAN_PRESETS", "COLORIZER_PRESETS", "GFPGAN_PRESETS", "GFPGAN_TRAIN_PRESETS",
           "PATCHGAN_PRESETS", "PIX2PIX_PRESETS", "UNETR_PRESETS", "UNET_PRESETS", "segmenter_config"]
