"""Networks, losses, data and the training loop (pure torch; never imports ``restore``).

    nets/     every network and its frozen config
    losses/   segmentation, adversarial (and R1), perceptual
    data/     paired augmentation, degradations, batch makers per task
    train/    the one loop, the per-task steps, checkpoints, distributed
"""
from . import _compat  # noqa: F401  (torchvision shim, before anything imports basicsr)
from .nets.gfpgan import GFPGAN, GFPGAN_PRESETS, GFPGANConfig, load_published
from .nets.pix2pix import PatchDiscriminator, PatchGANConfig, Pix2PixConfig, UNetGenerator
from .nets.unet import UNet, UNetConfig
from .nets.unetr import UNETR, UNETRConfig
from .presets import PATCHGAN_PRESETS, PIX2PIX_PRESETS, UNET_PRESETS, UNETR_PRESETS, segmenter_config
from .serialize import build_model, load_model, save_model

__all__ = ["UNet", "UNetConfig", "UNETR", "UNETRConfig", "UNetGenerator", "Pix2PixConfig", "PatchDiscriminator",
           "PatchGANConfig", "UNET_PRESETS", "UNETR_PRESETS", "PIX2PIX_PRESETS", "PATCHGAN_PRESETS",
           "segmenter_config", "build_model", "load_model", "save_model",
           "GFPGAN", "GFPGANConfig", "GFPGAN_PRESETS", "load_published"]
