"""Networks, losses, data and the training loop (pure torch; never imports ``restore``)."""
from . import _compat  # noqa: F401  (torchvision shim, before anything imports basicsr)
from .gfpgan import GFPGAN, GFPGAN_PRESETS, GFPGANConfig, load_published
from .pix2pix import PatchDiscriminator, PatchGANConfig, Pix2PixConfig, UNetGenerator
from .presets import PATCHGAN_PRESETS, PIX2PIX_PRESETS, UNET_PRESETS, UNETR_PRESETS, segmenter_config
from .serialize import build_model, load_model, save_model
from .unet import UNet, UNetConfig
from .unetr import UNETR, UNETRConfig

__all__ = ["UNet", "UNetConfig", "UNETR", "UNETRConfig", "UNetGenerator", "Pix2PixConfig", "PatchDiscriminator",
           "PatchGANConfig", "UNET_PRESETS", "UNETR_PRESETS", "PIX2PIX_PRESETS", "PATCHGAN_PRESETS",
           "segmenter_config", "build_model", "load_model", "save_model",
           "GFPGAN", "GFPGANConfig", "GFPGAN_PRESETS", "load_published"]
