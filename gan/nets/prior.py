"""A pretrained StyleGAN2 generator as GFP-GAN's facial prior (the decoder of ``gan.nets.gfpgan``).

``load_prior(model.stylegan_decoder, path)`` reads a checkpoint with ``weights_only=True``
(``params_ema``, else ``params``, else the bare dict; a whole GFP-GAN checkpoint gives its
``stylegan_decoder.*`` part) and loads it strictly. Two layouts are understood:

- the clean one (gfpgan's ``StyleGAN2GeneratorClean``, this toolkit's ``StyleGAN2Generator``):
  loaded as it is;
- basicsr's (``StyleGAN2Generator``, gfpgan's ``StyleGAN2GeneratorBilinear``; GFP-GAN's
  published prior ``StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth`` is one): its
  equalised-learning-rate scales and the sqrt(2) of its fused LeakyReLU are folded into the
  weights, as GFP-GAN's ``scripts/convert_gfpganv_to_clean.py`` does. For the bilinear
  variant that is exact; basicsr's original generator resamples with an FIR filter
  (upfirdn2d) where the clean one is bilinear, so its converted prior is close, not equal:
  fine-tune it (no ``fix_decoder``) rather than freezing it.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import nn

from gan.weightio import check_fits, read_state_dict

SQRT2 = math.sqrt(2.0)
MLP_LR = 0.01  # basicsr's lr_mlp: the mapping MLP's learning-rate multiplier


def read_prior(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The StyleGAN2 state dict in a checkpoint (see the module docstring)."""
    path = Path(path)
    state = read_state_dict(path, f"the prior {path}")
    prefix = "stylegan_decoder."
    if any(k.startswith(prefix) for k in state):  # a whole GFP-GAN: its decoder
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def is_basicsr_layout(state: dict[str, torch.Tensor]) -> bool:
    """basicsr's StyleConv keeps its bias in a fused LeakyReLU (``*.activate.bias``)."""
    return any(k.endswith(".activate.bias") for k in state)


def from_basicsr(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """basicsr's StyleGAN2 generator state -> the clean layout (the arithmetic of GFP-GAN's
    ``convert_gfpganv_to_clean.py``, decoder part)."""
    out = {}
    for key, v in state.items():
        parts = key.split(".")
        if parts[0] == "style_mlp":  # EqualLinear(lr_mul 0.01) + fused LeakyReLU -> Linear, LeakyReLU
            idx, var = int(parts[1]), parts[2]
            scale = MLP_LR * SQRT2 * (1 / math.sqrt(v.shape[1]) if var == "weight" else 1.0)
            out[f"style_mlp.{2 * idx - 1}.{var}"] = v * scale
        elif "modulation" in parts:  # EqualLinear(lr_mul 1): only the weight is scaled
            out[key] = v / math.sqrt(v.shape[1]) if parts[-1] == "weight" else v
        elif key.endswith("modulated_conv.weight"):  # (1, out, in, k, k), scaled by 1/sqrt(in k k)
            out[key] = v / math.sqrt(v.shape[2] * v.shape[3] * v.shape[4])
        elif parts[0].startswith("style_conv") and key.endswith(".activate.bias"):
            # lrelu(x + b) * sqrt2 == lrelu(sqrt2 x + sqrt2 b): the clean conv carries the sqrt2
            out[key.replace(".activate.bias", ".bias")] = (v * SQRT2).view(1, -1, 1, 1)
        elif parts[0].startswith("style_conv") and parts[-1] == "weight" and v.numel() == 1:
            out[key] = v * SQRT2  # the noise strength, inside the same sqrt2
        else:  # constant input, to_rgb biases, fixed noise maps
            out[key] = v
    return out


def load_prior(decoder: nn.Module, path: str | os.PathLike) -> str:
    """Load a pretrained StyleGAN2 into ``decoder`` (strict); returns a line for the log."""
    state = read_prior(path)
    note = "clean layout"
    if is_basicsr_layout(state):
        state = from_basicsr(state)
        note = ("converted from basicsr's layout (exact for the bilinear StyleGAN2; the original "
                "upfirdn2d one becomes bilinear, an approximation: fine-tune rather than freeze it)")
    check_fits(decoder.state_dict(), state,
               f"the prior {path} does not fit the decoder ({getattr(decoder, 'config', '')})", shown=5)
    decoder.load_state_dict(state, strict=True)
    return f"StyleGAN2 prior from {path} ({note})"
