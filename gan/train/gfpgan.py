"""GFP-GAN's training step (task ``faces`` of ``gan.train.loop``'s loop), its losses and networks.

The order and the losses follow gfpgan 1.3.8's ``GFPGANModel.optimize_parameters`` with the
published ``options/train_gfpgan_v1.yml``:

1. G step, every discriminator frozen: pixel L1 (0.1); the pyramid loss, L1 of the U-Net's
   intermediate RGB images against the clean face downsampled to their sizes (1, until step
   50k); perceptual + Gram style loss (1 and 50; layers conv1_2..conv5_4 weighted 0.1, 0.1,
   1, 1, 1; ``gan.losses.perceptual``); wgan-softplus GAN loss of the StyleGAN2 discriminator (0.1);
   per facial component (left eye, right eye, mouth) a vanilla GAN loss (1) and the L1 of the
   Gram matrices of its discriminator's features against the clean crop's (0.5 conv3 + conv5,
   x 200); L1 of ArcFace embeddings of the greyscale faces (10) when an identity network is
   given.
2. D step on the detached output, with R1 (10) every 16 steps (StyleGAN2's lazy scaling).
3. One step per component discriminator, on the detached crops.

Weights shared with the other GAN tasks are fields of the task's section, ``FacesOptions``
(``TrainConfig.options``: ``l1_weight`` = pixel, ``perceptual_weight``, ``gan_loss``,
``gan_weight``, ``r1_weight``, ``r1_every``); the face-only ones are ``FaceConfig`` fields, held
in its ``face``. Networks: ``G`` (GFPGAN), ``D``
(StyleGAN2Discriminator) and ``D_left_eye``, ``D_right_eye``, ``D_mouth``, each with its own
optimizer, as GFP-GAN has them (Adam works per parameter, so three optimizers or one over all
three discriminators give the same updates).

GFP-GAN's generator was trained with equalised-learning-rate layers; this one has the clean
layout of the published v1.3/v1.4 weights, so G's Adam gets per-weight learning-rate scales that
reproduce those dynamics (``gfpgan_param_groups``; ``FaceConfig.equalized_lr``).

Deviations from GFP-GAN: GFP-GAN's component D loss takes its real term from the vanilla loss
and its fake term from the wgan-softplus one; both are ``softplus(-+x)``, identical, so one
loss is used here. GFP-GAN scales component crops by int(out_size / 512), 0 below 512: here
crops are never scaled. The pyramid loss stops at ``pyramid_until`` instead of being weighted
1e-12 (which only kept DDP's reducer happy; the loop here averages gradients itself).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gan.losses.adversarial import gan_loss, r1_penalty
from gan.losses.perceptual import gram_matrix
from gan.nets.arcface import grey_for_identity
from gan.nets.components import COMPONENTS, ComponentDiscriminatorConfig, component_boxes, crop_components, crop_sizes
from gan.serialize import build_model

from . import distributed as dist
from .config import FaceConfig, FacesOptions

__all__ = ["FaceConfig", "face_config", "generator_terms", "gfpgan_param_groups", "gfpgan_step", "setup_networks",
           "train_settings"]


def face_config(cfg) -> FaceConfig:
    return cfg.options.face


def setup_networks(cfg, nets: dict[str, nn.Module]) -> None:
    """Add the component discriminators to ``nets`` and freeze G's decoder if asked (before
    the optimizers are made, so frozen weights never enter one)."""
    f = face_config(cfg)
    if f.components:
        comp = ComponentDiscriminatorConfig(**(f.component or {}))
        for part in COMPONENTS:
            nets[f"D_{part}"] = build_model("FacialComponentDiscriminator", comp.to_dict())
    if f.fix_decoder:
        nets["G"].stylegan_decoder.requires_grad_(False)


def gfpgan_param_groups(cfg, G: nn.Module) -> list[dict[str, Any]]:
    """G's trainable parameters in groups with an ``lr_scale``. GFP-GAN trained its generator
    (``GFPGANv1``) with the equalised learning rate: weights stored N(0, 1) and multiplied by
    1/sqrt(fan_in) at run time (x 0.01 more in the mapping MLP, lr_mlp). The clean layout here
    stores the scaled weights, so under Adam, which is blind to a gradient's scale, the same
    dynamics need lr x 1/sqrt(fan_in) per weight (biases, noise strengths and the constant
    input unscaled). Without it GFP-GAN's lr of 2e-3 blows the 512 px network up within a few
    steps. (Its discriminators keep the equalised layers themselves: no scaling needed.)"""
    params = [(n, p) for n, p in G.named_parameters() if p.requires_grad]
    if not face_config(cfg).equalized_lr:
        return [{"params": [p for _, p in params]}]
    groups: dict[float, list[torch.Tensor]] = {}
    for name, p in params:
        scale = 1.0
        if p.ndim >= 2:  # (out, in, k, k), (out, in), the modulated convs' (1, out, in, k, k)
            scale = 1 / math.sqrt(math.prod(p.shape[2:] if p.ndim == 5 else p.shape[1:]))
        if name.startswith("stylegan_decoder.style_mlp."):
            scale *= 0.01
        groups.setdefault(scale, []).append(p)
    return [{"params": ps, "lr_scale": scale} for scale, ps in groups.items()]


def generator_terms(cfg, nets: dict[str, nn.Module], batch: dict[str, torch.Tensor], step: int,
                    perceptual: nn.Module | None = None, identity: nn.Module | None = None):
    """G's weighted loss terms {name: scalar}, the output, and the component crops of output
    and target (for the discriminator steps)."""
    f, o = face_config(cfg), cfg.options
    G, D = nets["G"], nets["D"]
    lq, gt = batch["input"], batch["target"]
    pyramid = f.pyramid_weight > 0 and step < f.pyramid_until
    with dist.autocast(cfg.amp):
        out = G(lq, return_rgb=pyramid, randomize_noise=f.randomize_noise)
    fake, rgbs = (out[0], out[1]) if pyramid else (out, [])
    fake = fake.float()
    terms: dict[str, torch.Tensor] = {}
    if o.l1_weight:
        terms["pixel"] = o.l1_weight * F.l1_loss(fake, gt)
    if pyramid:  # rgbs run 8 px ... out_size; the targets are the clean face halved down to 8 px
        targets = [gt]
        while len(targets) < len(rgbs):
            targets.insert(0, F.interpolate(targets[0], scale_factor=0.5, mode="bilinear", align_corners=False))
        terms["pyramid"] = f.pyramid_weight * sum(F.l1_loss(r.float(), t) for r, t in zip(rgbs, targets))
    if perceptual is not None and getattr(perceptual, "enabled", True) and (o.perceptual_weight or f.style_weight):
        with dist.autocast(cfg.amp):
            p = perceptual.terms(fake, gt)
        if o.perceptual_weight:
            terms["perceptual"] = o.perceptual_weight * p["perceptual"].float()
        if f.style_weight:
            terms["style"] = f.style_weight * p["style"].float()
    if o.gan_weight:
        with dist.autocast(cfg.amp):
            pred = D(fake)
        terms["gan"] = o.gan_weight * gan_loss(pred.float(), True, o.gan_loss, for_discriminator=False)
    crops_fake = crops_real = {}
    if f.components:
        boxes = component_boxes(batch["landmarks"], fake.shape[-1])
        eye, mouth = crop_sizes(fake.shape[-1])
        eye, mouth = f.eye_size or eye, f.mouth_size or mouth
        crops_fake = crop_components(fake, boxes, eye, mouth)
        crops_real = crop_components(gt, boxes, eye, mouth)
        style = fake.new_zeros(())
        for part in COMPONENTS:
            Dp = nets[f"D_{part}"]
            with dist.autocast(cfg.amp):
                logits, feats = Dp(crops_fake[part], return_feats=True)
            if f.component_weight:
                terms[f"gan_{part}"] = f.component_weight * gan_loss(logits.float(), True, f.component_gan_loss,
                                                                     for_discriminator=False)
            if f.component_style_weight:
                with torch.no_grad(), dist.autocast(cfg.amp):
                    _, real = Dp(crops_real[part], return_feats=True)
                style = style + sum(w * F.l1_loss(gram_matrix(a.float()), gram_matrix(b.float()))
                                    for w, a, b in zip((0.5, 1.0), feats, real))
        if f.component_style_weight:
            terms["component_style"] = f.component_style_weight * style
    if identity is not None and f.identity_weight:
        with torch.no_grad():
            emb_gt = identity(grey_for_identity(gt))
        terms["identity"] = f.identity_weight * F.l1_loss(identity(grey_for_identity(fake)), emb_gt)
    return terms, fake, crops_fake, crops_real


def gfpgan_step(cfg, nets: dict[str, nn.Module], opts: dict, batch: dict[str, torch.Tensor], step: int,
                perceptual: nn.Module | None = None, identity: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """One GFP-GAN iteration: G step, D step (+ lazy R1), component D steps."""
    f, o = face_config(cfg), cfg.options
    D = nets["D"]
    parts = [p for p in COMPONENTS if f"D_{p}" in nets]
    discriminators = [D] + [nets[f"D_{p}"] for p in parts]
    # -- G step through frozen discriminators ------------------------------------------------
    for net in discriminators:
        net.requires_grad_(False)
    terms, fake, crops_fake, crops_real = generator_terms(cfg, nets, batch, step, perceptual, identity)
    loss_g = sum(terms.values())
    dist.backward_step(loss_g, nets["G"], opts["G"])
    for net in discriminators:
        net.requires_grad_(True)
    out = {"loss": loss_g, **terms}
    # -- D step ------------------------------------------------------------------------------
    lazy_r1 = o.r1_weight > 0 and step % o.r1_every == 0
    real = batch["target"].detach().requires_grad_(lazy_r1)
    with dist.autocast(cfg.amp):
        pred_real, pred_fake = D(real).float(), D(fake.detach()).float()
    loss_d = gan_loss(pred_real, True, o.gan_loss) + gan_loss(pred_fake, False, o.gan_loss)
    out.update(loss_d=loss_d.detach(), real_score=pred_real.detach().mean(), fake_score=pred_fake.detach().mean())
    if lazy_r1:  # StyleGAN2's lazy regularisation: every N steps, scaled by N
        r1 = r1_penalty(pred_real, real)
        loss_d = loss_d + o.r1_weight / 2 * r1 * o.r1_every
        out["r1"] = r1.detach()
    dist.backward_step(loss_d, D, opts["D"])
    # -- facial-component D steps --------------------------------------------------------------
    for part in parts:
        Dp = nets[f"D_{part}"]
        with dist.autocast(cfg.amp):
            pr, pf = Dp(crops_real[part]).float(), Dp(crops_fake[part].detach()).float()
        loss = gan_loss(pr, True, f.component_gan_loss) + gan_loss(pf, False, f.component_gan_loss)
        dist.backward_step(loss, Dp, opts[f"D_{part}"])
        out[f"loss_d_{part}"] = loss.detach()
    return out


# GFP-GAN's optimisation settings (train_gfpgan_v1.yml): Adam, lr 2e-3, betas (0, 0.99) for G;
# D's lr and betas corrected for lazy R1 (x 16/17, StyleGAN2's reg ratio); (0.9, 0.99) for the
# component discriminators; EMA 0.5 ** (32 / 10k) (= 0.99778). The learning-rate schedule is
# the loop's own (cosine), not GFP-GAN's steps at 600k / 700k of 800k.
def train_settings(lr: float = 2e-3, r1_every: int = 16) -> dict[str, Any]:
    """``TrainConfig`` keyword arguments of GFP-GAN's published training configuration (its
    section in ``options``: the discriminator's config and ``face`` are the caller's to add)."""
    ratio = r1_every / (r1_every + 1)
    betas = {"D": (0.0, 0.99 ** ratio), **{f"D_{p}": (0.9, 0.99) for p in COMPONENTS}}
    options = FacesOptions(disc_arch="StyleGAN2Discriminator", l1_weight=0.1, perceptual_weight=1.0,
                           gan_loss="wgan-softplus", gan_weight=0.1, r1_weight=10.0, r1_every=r1_every)
    return dict(task="faces", arch="GFPGAN", lr=lr, lr_d=lr * ratio, betas=(0.0, 0.99), net_betas=betas,
                weight_decay=0.0, warmup=0, ema=0.5 ** (32 / 10_000), options=options,
                channels_last=False)  # the modulated convs' weights are 5-D: no channels-last form
