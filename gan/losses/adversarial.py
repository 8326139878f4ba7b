"""Adversarial losses for the GAN tasks, and R1.

Reconstruction is ``F.l1_loss`` (weighted 100 in pix2pix); perceptual and style losses are in
``perceptual.py``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

GAN_KINDS = ("vanilla", "lsgan", "hinge", "wgan-softplus")


def gan_loss(pred: torch.Tensor, target_is_real: bool, kind: str,
             for_discriminator: bool = True) -> torch.Tensor:
    """Adversarial loss of discriminator logits ``pred`` (any shape, e.g. a PatchGAN map), mean.

    - ``vanilla``: BCE with logits against 1 (real) or 0 (fake) (pix2pix's default);
    - ``lsgan``: squared error against 1 or 0 (Mao et al. 2017);
    - ``hinge``: D: relu(1 - pred) on real, relu(1 + pred) on fake; G: -pred (Lim & Ye 2017);
    - ``wgan-softplus``: softplus(-pred) on real, softplus(pred) on fake (StyleGAN2, GFP-GAN).

    The generator's loss is asked for with ``target_is_real=True, for_discriminator=False``
    (the non-saturating form); only ``hinge`` has a different generator loss.
    """
    if kind not in GAN_KINDS:
        raise ValueError(f"unknown GAN loss {kind!r}; choose one of {GAN_KINDS}")
    if kind == "vanilla":
        target = torch.ones_like(pred) if target_is_real else torch.zeros_like(pred)
        return F.binary_cross_entropy_with_logits(pred, target)
    if kind == "lsgan":
        return F.mse_loss(pred, torch.full_like(pred, 1.0 if target_is_real else 0.0))
    if kind == "hinge":
        if not for_discriminator:
            if not target_is_real:
                raise ValueError("the hinge generator loss is only defined for target_is_real=True")
            return -pred.mean()
        return F.relu(1.0 - pred).mean() if target_is_real else F.relu(1.0 + pred).mean()
    return F.softplus(-pred).mean() if target_is_real else F.softplus(pred).mean()


def r1_penalty(real_pred: torch.Tensor, real_input: torch.Tensor) -> torch.Tensor:
    """R1 regulariser (Mescheder et al. 2018; StyleGAN2): the squared norm of the gradient of
    D's output on real data with respect to that data, per sample, averaged over the batch.

    ``real_input`` must have ``requires_grad`` set before D saw it. The graph is kept
    (``create_graph``) so the penalty trains D. With lazy regularisation every N steps, add
    ``r1_weight / 2 * penalty * N`` to D's loss (StyleGAN2's scaling).
    """
    if not real_input.requires_grad:
        raise ValueError("real_input needs requires_grad=True before the discriminator sees it")
    (grad,) = torch.autograd.grad(real_pred.sum(), real_input, create_graph=True)
    return grad.pow(2).reshape(grad.shape[0], -1).sum(1).mean()
