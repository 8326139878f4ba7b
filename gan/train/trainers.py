"""The tasks the loop trains, one small object each: the networks it builds (its discriminators
included), what each optimizer updates, its step, the file it exports and its image grid.

``TRAINERS`` maps a task word (``TrainConfig.task``) to its trainer; ``loop.train`` looks the
trainer up once and never asks which task it runs. A new task is a class here, its section in
``config.OPTIONS`` and its step.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gan.serialize import build_model

from .config import TrainConfig
from .gfpgan import gfpgan_param_groups, gfpgan_step, setup_networks
from .steps import colorize_step, gan_step, segment_step
from .upscale import upscale_step


def grid(rows: list[torch.Tensor]) -> torch.Tensor:
    """Image rows (each the first samples of a batch, side by side) stacked, every row resized
    to the last one's size and made RGB, mapped from [-1, 1] to [0, 1]."""
    rows = [r.expand(-1, 3, -1, -1) if r.shape[1] == 1 else r for r in rows]
    rows = [F.interpolate(r.float(), size=rows[-1].shape[2:]) if r.shape[1:] != rows[-1].shape[1:] else r.float()
            for r in rows]
    return ((torch.cat([torch.cat(list(r), dim=2) for r in rows], dim=1) + 1) / 2).clamp(0, 1)


class Trainer:
    """What the loop needs of a task. The defaults are a generator-only task that exports
    ``generator.safetensors`` and logs input | output | target images."""

    export_name = "generator.safetensors"  # the best (or last) trained network, in the run folder

    def networks(self, cfg: TrainConfig) -> dict[str, nn.Module]:
        """The networks trained, by key: "G" (the exported one) first, then its discriminators,
        built in this order after ``torch.manual_seed(cfg.seed)`` (the order fixes their weights)."""
        return {"G": build_model(cfg.arch, cfg.model)}

    def param_groups(self, cfg: TrainConfig, key: str, net: nn.Module) -> list:
        """What the optimizer of network ``key`` updates: its trainable parameters."""
        return [p for p in net.parameters() if p.requires_grad]

    def step(self, cfg: TrainConfig, nets: dict, opts: dict, batch: dict, step: int,
             perceptual: nn.Module | None = None, identity: nn.Module | None = None) -> dict[str, torch.Tensor]:
        """One optimisation step of every network; its losses as scalars ("loss" among them)."""
        raise NotImplementedError

    def grid(self, batch: dict, G: nn.Module) -> torch.Tensor | None:
        """The training images to log (C x H x W in [0, 1]), or None: input | output | target."""
        return grid([batch["input"][:4], G(batch["input"])[:4], batch["target"][:4]])


class SegmentTrainer(Trainer):
    """A segmentation network alone; no image grid (validation logs its overlays)."""

    export_name = "model.safetensors"

    def step(self, cfg, nets, opts, batch, step, perceptual=None, identity=None):
        return segment_step(cfg, nets, opts, batch, step)

    def grid(self, batch, G):
        return None


class TranslateTrainer(Trainer):
    """pix2pix: a generator and its PatchGAN."""

    def networks(self, cfg):
        return {**super().networks(cfg), "D": build_model(cfg.options.disc_arch, cfg.options.disc)}

    def step(self, cfg, nets, opts, batch, step, perceptual=None, identity=None):
        return gan_step(cfg, nets, opts, batch, step, perceptual=perceptual)


class SketchTrainer(Trainer):
    """The reference-guided colorizer and, unless its GAN weight is 0, its AC PatchGAN; the grid
    shows the reference too."""

    def networks(self, cfg):
        nets = super().networks(cfg)
        if cfg.options.gan_weight:
            nets["D"] = build_model(cfg.options.disc_arch, cfg.options.disc)
        return nets

    def step(self, cfg, nets, opts, batch, step, perceptual=None, identity=None):
        return colorize_step(cfg, nets, opts, batch, step, perceptual=perceptual)

    def grid(self, batch, G):
        fake = G(batch["input"], batch["reference"], batch.get("hints"))
        return grid([batch["input"][:4], batch["reference"][:4], fake[:4], batch["target"][:4]])


class FacesTrainer(Trainer):
    """GFP-GAN: the face restorer, its StyleGAN2 discriminator and the facial-component ones;
    G's learning rate scaled per weight (gan/train/gfpgan.py)."""

    def networks(self, cfg):
        nets = {**super().networks(cfg), "D": build_model(cfg.options.disc_arch, cfg.options.disc)}
        setup_networks(cfg, nets)  # the facial-component Ds; a frozen decoder stays out of the optimizer
        return nets

    def param_groups(self, cfg, key, net):
        return gfpgan_param_groups(cfg, net) if key == "G" else super().param_groups(cfg, key, net)

    def step(self, cfg, nets, opts, batch, step, perceptual=None, identity=None):
        return gfpgan_step(cfg, nets, opts, batch, step, perceptual=perceptual, identity=identity)


class UpscaleTrainer(Trainer):
    """Real-ESRGAN: RRDBNet or SRVGGNetCompact, and in the "gan" stage the U-Net discriminator
    with spectral norm (gan/train/upscale.py). Pictures are in [0, 1]; the grid shows the input
    (nearest-enlarged), the output and the sharpened target."""

    def networks(self, cfg):
        nets = super().networks(cfg)
        if cfg.options.stage == "gan":
            nets["D"] = build_model(cfg.options.disc_arch, cfg.options.disc)
        return nets

    def step(self, cfg, nets, opts, batch, step, perceptual=None, identity=None):
        return upscale_step(cfg, nets, opts, batch, step, perceptual=perceptual)

    def grid(self, batch, G):
        lq = batch["input"][:4]
        return grid([lq * 2 - 1, G(lq).clamp(0, 1)[:4] * 2 - 1, batch["target"][:4] * 2 - 1])


TRAINERS: dict[str, Trainer] = {"segment": SegmentTrainer(), "translate": TranslateTrainer(),
                                "sketch": SketchTrainer(), "faces": FacesTrainer(), "upscale": UpscaleTrainer()}

