"""Real-ESRGAN's step (task ``upscale``), as realesrgan 0.3.0's ``RealESRNetModel`` and
``RealESRGANModel.optimize_parameters`` take it.

The batch (gan.data.upscale.UpscaleBatches) holds ``input``, the degraded picture, ``target``,
the USM-sharpened ground truth (the L1 and perceptual target, ``l1_gt_usm``/``percep_gt_usm``),
and in the GAN stage ``real``, the ground truth as it is (D's real picture, ``gan_gt_usm: False``);
all in [0, 1], the range of Real-ESRGAN's networks.

- stage "net" (Real-ESRNet): L1 alone; no discriminator.
- stage "gan": Real-ESRGAN's order, G first: L1 + perceptual (VGG19 conv1_2..conv5_4, weighted
  0.1, 0.1, 1, 1, 1) + 0.1 x the vanilla GAN loss through a frozen U-Net discriminator; then D
  on the real picture and on ``fake.detach()`` (unweighted, as basicsr's GANLoss weighs only G's
  term).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gan.losses.adversarial import gan_loss

from . import distributed as dist
from .config import TrainConfig


def upscale_step(cfg: TrainConfig, nets: dict, opts: dict, batch: dict, step: int,
                 perceptual: nn.Module | None = None) -> dict[str, torch.Tensor]:
    G, D, o = nets["G"], nets.get("D"), cfg.options
    lq, target = batch["input"], batch["target"]
    with dist.autocast(cfg.amp):
        fake = G(lq)
    out = {"l1": F.l1_loss(fake.float(), target)}
    loss_g = o.l1_weight * out["l1"]
    if perceptual is not None and o.perceptual_weight:  # PerceptualLoss takes [-1, 1]
        with dist.autocast(cfg.amp):
            out["perceptual"] = perceptual(fake.float() * 2 - 1, target * 2 - 1)
        loss_g = loss_g + o.perceptual_weight * out["perceptual"]
    if D is None:
        dist.backward_step(loss_g, G, opts["G"])
        return {"loss": loss_g, **out}
    # -- G through a frozen D
    D.requires_grad_(False)
    with dist.autocast(cfg.amp):
        out["gan"] = gan_loss(D(fake).float(), True, o.gan_loss, for_discriminator=False)
    loss_g = loss_g + o.gan_weight * out["gan"]
    dist.backward_step(loss_g, G, opts["G"])
    # -- D on the real picture and the detached fake
    D.requires_grad_(True)
    real = batch.get("real", target)
    with dist.autocast(cfg.amp):
        pred_real, pred_fake = D(real).float(), D(fake.detach()).float()
    out["d_real"], out["d_fake"] = gan_loss(pred_real, True, o.gan_loss), gan_loss(pred_fake, False, o.gan_loss)
    loss_d = out["d_real"] + out["d_fake"]
    dist.backward_step(loss_d, D, opts["D"])
    out["loss_d"] = loss_d
    return {"loss": loss_g, **out}
