"""Networks, losses, data and the training loop (pure torch; never imports ``restore``).

    nets/     every network, its frozen config and its descriptor (gan.nets.registry)
    losses/   segmentation, adversarial (and R1), perceptual
    data/     paired augmentation, degradations, batch makers per task
    train/    the one loop, the per-task training objects, checkpoints, distributed

``import gan`` installs the torchvision shim basicsr needs and nothing else: the names below are
imported when first used, so a command's ``--help`` never waits for torch.
"""
from __future__ import annotations

import importlib

from . import _compat  # noqa: F401  (torchvision shim, before anything imports basicsr; imports nothing)

_WHERE = {
    "GFPGAN": "gan.nets.gfpgan", "GFPGANConfig": "gan.nets.gfpgan", "GFPGAN_PRESETS": "gan.nets.gfpgan",
    "load_published": "gan.nets.gfpgan",
    "PatchDiscriminator": "gan.nets.pix2pix", "PatchGANConfig": "gan.nets.pix2pix", "Pix2PixConfig": "gan.nets.pix2pix",
    "UNetGenerator": "gan.nets.pix2pix",
    "UNet": "gan.nets.unet", "UNetConfig": "gan.nets.unet", "UNETR": "gan.nets.unetr", "UNETRConfig": "gan.nets.unetr",
    "PATCHGAN_PRESETS": "gan.presets", "PIX2PIX_PRESETS": "gan.presets", "UNET_PRESETS": "gan.presets",
    "UNETR_PRESETS": "gan.presets", "segmenter_config": "gan.presets",
    "build_model": "gan.serialize", "load_model": "gan.serialize", "save_model": "gan.serialize",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'gan' has no attribute {name!r}")
