"""Networks, losses, data and the training loop (pure torch; never imports ``restore``)."""
from . import _compat  # noqa: F401  (torchvision shim, before anything imports basicsr)
from .presets import UNET_PRESETS, UNETR_PRESETS, segmenter_config
from .serialize import build_model, load_model, save_model
from .unet import UNet, UNetConfig
from .unetr import UNETR, UNETRConfig

__all__ = ["UNet", "UNetConfig", "UNETR", "UNETRConfig", "UNET_PRESETS", "UNETR_PRESETS",
           "segmenter_config", "build_model", "load_model", "save_model"]
