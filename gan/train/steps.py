"""One optimisation step per task, called by the loop (``loop.train``) with the networks, their
optimizers and the batch of this step; each returns its losses as scalars to log. Losses and
their weights come from the task's section of the config, ``cfg.options``.

- segmentation: the loss of ``SegmentOptions.loss``, with the border weight map when it has one;
- pix2pix: D on ``fake.detach()``, then D frozen and the G step (L1 + GAN + perceptual), R1
  every ``r1_every`` steps;
- the colorizer: the same, plus its guide decoders and the AC discriminator's style term.
GFP-GAN's step (G, then D, then the facial-component Ds) is in ``gfpgan.py``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gan.losses.adversarial import gan_loss, r1_penalty
from gan.losses.segmentation import SEG_LOSSES
from gan.nets.blocks import center_crop

from . import distributed as dist
from .config import TrainConfig


def seg_loss(name: str, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Apply loss ``name``; targets are centre-cropped to the output of valid-padding models."""
    size = logits.shape[2:]
    target = center_crop(batch["target"][:, None], size)[:, 0]
    weight = center_crop(batch["weight"][:, None], size)[:, 0] if "weight" in batch else None
    return SEG_LOSSES[name](logits, target, weight_map=weight)


def segment_step(cfg: TrainConfig, nets: dict, opts: dict, batch: dict, step: int, **_) -> dict[str, torch.Tensor]:
    with dist.autocast(cfg.amp):
        loss = seg_loss(cfg.options.loss, nets["G"](batch["image"]), batch)
    dist.backward_step(loss, nets["G"], opts["G"])
    return {"loss": loss}


def gan_step(cfg: TrainConfig, nets: dict, opts: dict, batch: dict, step: int,
             perceptual: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """pix2pix's order: D learns on the detached fake, then G learns through a frozen D.
    With ``gan_weight == 0`` D is left out altogether (a reconstruction-only run, ~2x faster)."""
    G, D, o = nets["G"], nets["D"], cfg.options
    a, b = batch["input"], batch["target"]
    with dist.autocast(cfg.amp):
        fake = G(a)
    if not o.gan_weight:
        with dist.autocast(cfg.amp):
            loss_l1 = F.l1_loss(fake.float(), b)
            loss_g = o.l1_weight * loss_l1
            out = {"l1": loss_l1}
            if perceptual is not None and o.perceptual_weight:
                out["perceptual"] = loss_p = perceptual(fake.float(), b.float())
                loss_g = loss_g + o.perceptual_weight * loss_p
        dist.backward_step(loss_g, G, opts["G"])
        return {"loss": loss_g, **out}
    # -- D step ---------------------------------------------------------------------------
    D.requires_grad_(True)
    lazy_r1 = o.r1_weight > 0 and step % o.r1_every == 0
    real = b.detach().requires_grad_(lazy_r1)
    with dist.autocast(cfg.amp):
        pred_real, pred_fake = D(real, condition=a), D(fake.detach(), condition=a)
        loss_d = 0.5 * (gan_loss(pred_real, True, o.gan_loss) + gan_loss(pred_fake, False, o.gan_loss))
    out = {"loss_d": loss_d}
    if lazy_r1:  # StyleGAN2's lazy regularisation: every N steps, scaled by N
        r1 = r1_penalty(pred_real.float(), real)
        loss_d = loss_d + o.r1_weight / 2 * r1 * o.r1_every
        out["r1"] = r1
    dist.backward_step(loss_d, D, opts["D"])
    # -- G step ---------------------------------------------------------------------------
    D.requires_grad_(False)
    with dist.autocast(cfg.amp):
        loss_gan = gan_loss(D(fake, condition=a), True, o.gan_loss, for_discriminator=False)
        loss_l1 = F.l1_loss(fake, b)
        loss_g = o.gan_weight * loss_gan + o.l1_weight * loss_l1
        if perceptual is not None and o.perceptual_weight:
            loss_p = perceptual(fake.float(), b.float())
            loss_g = loss_g + o.perceptual_weight * loss_p
            out["perceptual"] = loss_p
    dist.backward_step(loss_g, G, opts["G"])
    D.requires_grad_(True)
    out.update(loss=loss_g, gan=loss_gan, l1=loss_l1)
    return out


def colorize_step(cfg: TrainConfig, nets: dict, opts: dict, batch: dict, step: int,
                  perceptual: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Zhang et al. 2017: L1 on the output plus, weighted 0.3 and 0.9, L1 of the guide decoders
    (greyscale, colour) against the target; an AC PatchGAN conditioned on the sketch, whose
    auxiliary head learns the (fixed part of the) style vector of real images (D) and of the
    reference (G's fakes).
    Samples with ``paired == 0`` (another image as reference) get only the adversarial terms."""
    G, D, o = nets["G"], nets.get("D"), cfg.options
    sketch, ref, b = batch["input"], batch["reference"], batch["target"]
    paired = batch.get("paired")
    w = (paired / paired.sum().clamp(min=1)) if paired is not None else None

    def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # mean over the paired samples
        e = (x.float() - y.float()).abs().mean(dim=(1, 2, 3))
        return e.mean() if w is None else (e * w).sum()

    with dist.autocast(cfg.amp):
        encoded = G.encode_reference(ref)
        style = encoded["style"]
        out = G.run(sketch, style, batch.get("hints"), guides=any(o.guide_weights), ref=encoded)
    fake = out["image"]
    scalars = {"l1": l1(fake, b)}
    loss_g = o.l1_weight * scalars["l1"]
    if any(o.guide_weights):
        grey = (0.299 * b[:, :1] + 0.587 * b[:, 1:2] + 0.114 * b[:, 2:])
        scalars.update(guide_grey=l1(out["grey"], grey), guide_colour=l1(out["colour"], b))
        loss_g = loss_g + o.l1_weight * (o.guide_weights[0] * scalars["guide_grey"]
                                           + o.guide_weights[1] * scalars["guide_colour"])
    if perceptual is not None and o.perceptual_weight:
        scalars["perceptual"] = perceptual(fake.float(), b.float())
        loss_g = loss_g + o.perceptual_weight * scalars["perceptual"]
    if o.gan_weight and D is not None:
        aux = o.aux_weight > 0 and D.config.style_dim > 0
        with torch.no_grad(), dist.autocast(cfg.amp):
            style_real = G.style.fixed(G.style(b)).float()
        # -- D step: real/fake, and the style of the real image
        D.requires_grad_(True)
        with dist.autocast(cfg.amp):
            pred_real = D(b, condition=sketch, aux=aux)
            pred_fake = D(fake.detach(), condition=sketch)
            logit_real = pred_real[0] if aux else pred_real
            loss_d = 0.5 * (gan_loss(logit_real, True, o.gan_loss) + gan_loss(pred_fake, False, o.gan_loss))
        if aux:
            scalars["aux_d"] = F.mse_loss(pred_real[1].float(), style_real)
            loss_d = loss_d + o.aux_weight * scalars["aux_d"]
        dist.backward_step(loss_d, D, opts["D"])
        scalars["loss_d"] = loss_d
        # -- G step through a frozen D: look real, with the reference's style
        D.requires_grad_(False)
        with dist.autocast(cfg.amp):
            pred = D(fake, condition=sketch, aux=aux)
            scalars["gan"] = gan_loss(pred[0] if aux else pred, True, o.gan_loss, for_discriminator=False)
        loss_g = loss_g + o.gan_weight * scalars["gan"]
        if aux:
            scalars["aux_g"] = F.mse_loss(pred[1].float(), G.style.fixed(style).detach().float())
            loss_g = loss_g + o.gan_weight * o.aux_weight * scalars["aux_g"]
    dist.backward_step(loss_g, G, opts["G"])
    if D is not None:
        D.requires_grad_(True)
    return {"loss": loss_g, **scalars}
