"""``restore train gfpgan``: aligned faces (or explicit pairs) -> the GFP-GAN face restorer.

Faces are aligned FFHQ-style crops (a folder of square PNG/JPG; any size, resized to the
preset's side), so their 5 landmarks are the template's (``restore.faces.align.template``).
(degraded, clean) pairs are made on the fly with GFP-GAN's degradation model, or read from
``--pairs A_DIR B_DIR``. The loop is ``gan.train.loop``'s, task ``faces`` (``gan.train.gfpgan``):
losses, optimizers and EMA of GFP-GAN's published training configuration. Validation scores
the EMA generator (PSNR, SSIM, LPIPS where AlexNet's weights are cached) on held-out faces
degraded once at a fixed seed. The export ``RUN/generator.safetensors`` is what
``restore faces --weights RUN`` takes.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan.presets import GFPGAN_TRAIN_PRESETS

from .holdout import pick, split_off
from .pairs import report_unusable


def read_faces(folder: Path, size: int) -> tuple[dict[str, np.ndarray], list[tuple[Path, str]]]:
    """{name (sub-folder/stem): uint8 size x size x 3} of the square images in ``folder`` (recursively), resized;
    unreadable and non-square files come back as (path, reason)."""
    import cv2

    from restore.runners.inputs import UsageError, find_inputs
    from restore.imageio import ImageError, read_image

    if not folder.is_dir():
        raise ValueError(f"face folder not found: {folder}")
    try:
        items = find_inputs([folder])
    except UsageError as e:
        raise ValueError(str(e)) from None
    faces, problems = {}, []
    for path, rel in items:
        try:
            img = read_image(path, mode="rgb8")
        except ImageError as e:
            problems.append((path, str(e)))
            continue
        h, w = img.shape[:2]
        if h != w:
            problems.append((path, f"{w}x{h} is not square: expected an aligned face crop (FFHQ layout)"))
            continue
        if h != size:
            img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if h > size else cv2.INTER_CUBIC)
        faces[str(rel / path.stem)] = np.ascontiguousarray(img)
    return faces, problems


def load_training_faces(args, size: int) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """(clean faces, degraded inputs or None) from --data or --pairs."""
    if args.data is not None:
        faces, problems = read_faces(args.data, size)
        report_unusable(problems, len(faces), args.skip_bad, "training")
        clean, inputs = list(faces.values()), None
    else:
        a, problems_a = read_faces(args.pairs[0], size)
        b, problems_b = read_faces(args.pairs[1], size)
        problems = problems_a + problems_b
        problems += [(args.pairs[0] / k, "no clean counterpart in B_DIR") for k in sorted(a.keys() - b.keys())]
        problems += [(args.pairs[1] / k, "no degraded counterpart in A_DIR") for k in sorted(b.keys() - a.keys())]
        names = sorted(a.keys() & b.keys())
        report_unusable(problems, len(names), args.skip_bad, "training")
        clean, inputs = [b[k] for k in names], [a[k] for k in names]
    if not clean:
        raise ValueError("no usable training faces")
    return clean, inputs


def initial_generator(args, gen, log=print) -> dict[str, torch.Tensor] | None:
    """G's starting weights: a GFP-GAN checkpoint (--init-weights) or a random U-Net with the
    StyleGAN2 prior (--prior) in its decoder; None: from scratch."""
    from gan.nets.gfpgan import GFPGAN, load_published
    from gan.nets.prior import load_prior
    from gan.serialize import load_model
    from restore.models.cache import resolve_weights

    if args.init_weights and args.prior:
        raise ValueError("--init-weights already holds a decoder: give --prior or --init-weights, not both")
    if args.fix_decoder and not (args.init_weights or args.prior):
        raise ValueError("--fix-decoder freezes a pretrained decoder: give --prior or --init-weights")
    if args.init_weights:
        path = resolve_weights(args.init_weights)
        if path.suffix == ".pth":
            model, arch = load_published(path), "GFPGAN"
        else:
            model, meta = load_model(path)
            arch = meta["arch"]
        if arch != "GFPGAN" or model.config != gen:
            raise ValueError(f"--init-weights {args.init_weights}: a {arch} {getattr(model, 'config', '')} does not "
                             f"match preset {args.preset!r} ({gen}); GFPGANv1.3/1.4 need --preset paper")
        log(f"generator initialised from {path} (discriminators start from scratch: GFP-GAN never published them)")
        return model.state_dict()
    if args.prior:
        torch.manual_seed(args.seed)  # the U-Net's random start, as train() would draw it
        model = GFPGAN(gen)
        try:
            log(load_prior(model.stylegan_decoder, args.prior))
        except ValueError as e:
            raise ValueError(f"{e} (check --preset and --channel-multiplier)") from None
        return model.state_dict()
    return None


def val_pairs(faces: list[np.ndarray], inputs: list[np.ndarray] | None, degrade) -> list[tuple[np.ndarray, np.ndarray]]:
    """(degraded, clean) float32 [0, 1] validation faces; made ones at fixed seeds."""
    from .pix2pix import VAL_SEED

    out = []
    for i, face in enumerate(faces):
        clean = face.astype(np.float32) / 255
        lq = inputs[i].astype(np.float32) / 255 if inputs is not None else degrade(clean, [VAL_SEED, i])
        out.append((np.clip(lq, 0, 1).astype(np.float32), clean))
    return out


def train_gfpgan_cli(args) -> dict[str, Any]:
    """Everything ``restore train gfpgan`` does, from parsed arguments."""
    from gan.data.degrade import Degradation
    from gan.data.faces import FaceBatches
    from gan.losses.perceptual import GFPGAN_VGG_LAYERS, PerceptualLoss
    from gan.nets.arcface import load_arcface
    from gan.train import distributed as dist
    from gan.train.gfpgan import train_settings
    from gan.train.loop import TrainConfig, train
    from restore.faces.align import template

    from .pix2pix import make_evaluate

    if args.threads:
        torch.set_num_threads(args.threads)
    rank, _ = dist.init()
    gen, disc, comp = GFPGAN_TRAIN_PRESETS[args.preset]
    if args.channel_multiplier:
        gen = dataclasses.replace(gen, channel_multiplier=args.channel_multiplier)
    size = gen.out_size
    if args.batch_size > 4 and args.batch_size % 4:
        raise ValueError(f"--batch-size {args.batch_size}: the StyleGAN2 discriminator's minibatch-stddev groups "
                         "of 4 need at most 4 or a multiple of 4")
    degrade = Degradation(args.degrade)
    faces, inputs = load_training_faces(args, size)
    if args.val:
        val, problems = read_faces(args.val, size)
        report_unusable(problems, len(val), args.skip_bad, "validation")
        val_set = val_pairs(list(val.values()), None, degrade)
    else:  # hold out every 10th face (at least one)
        train_i, val_i = split_off(len(faces), "faces")
        val_set = val_pairs(pick(faces, val_i), pick(inputs, val_i) if inputs else None, degrade)
        faces, inputs = pick(faces, train_i), pick(inputs, train_i) if inputs else None
    if not val_set:
        raise ValueError("no usable validation faces")
    val_set = val_set[: args.val_count]
    print(f"data: {len(faces)} training faces at {size} px, "
          + ("explicit pairs" if inputs is not None else f"inputs made by the '{args.degrade}' degradation"))

    initial = initial_generator(args, gen)
    perceptual = None
    if args.perceptual != "none" and (args.perceptual_weight or args.style_weight):
        perceptual = PerceptualLoss(args.perceptual, weights=args.perceptual_weights, layers=GFPGAN_VGG_LAYERS,
                                    vgg_names=True, criterion="l1", perceptual_weight=1.0,
                                    style_weight=1.0 if args.style_weight else 0.0)
    print(perceptual.describe() if perceptual is not None else "perceptual loss off")
    identity = load_arcface(args.identity_weights) if args.identity_weights else None
    if identity is not None:
        print(f"identity loss: ArcFace from {args.identity_weights}, weight {args.identity_weight:g}")
    else:
        print("identity loss off (no --identity-weights: ArcFace's arcface_resnet18.pth is supplied by the user)")

    has_perceptual = perceptual is not None and perceptual.enabled
    face = {"pyramid_weight": args.pyramid_weight, "pyramid_until": args.pyramid_until,
            "style_weight": args.style_weight if has_perceptual else 0.0, "component_weight": args.component_weight,
            "component_style_weight": args.component_style_weight, "component": comp.to_dict(),
            "identity_weight": args.identity_weight if identity is not None else 0.0, "fix_decoder": args.fix_decoder}
    settings = {**train_settings(args.lr, args.r1_every), "ema": args.ema}
    options = dataclasses.replace(settings.pop("options"), disc=disc.to_dict(), face=face, l1_weight=args.pixel_weight,
                                  perceptual_weight=args.perceptual_weight if has_perceptual else 0.0,
                                  gan_weight=args.gan_weight, r1_weight=args.r1_weight)
    cfg = TrainConfig(**settings, model=gen.to_dict(), options=options, steps=args.steps, batch_size=args.batch_size,
                      amp=args.amp, val_every=args.val_every, image_every=args.val_every, seed=args.seed)
    batches = FaceBatches(faces, size, args.batch_size, template(size), seed=args.seed, degrade=degrade,
                          inputs=inputs, flip=not args.no_flip, rank=rank, world_size=dist.world_size())
    meta = {"degrade": args.degrade if inputs is None else "", "data": str(args.data or args.pairs[1]),
            "perceptual": perceptual.describe() if perceptual is not None else "off",
            "identity": str(args.identity_weights or "off"), "prior": str(args.prior or ""),
            "init_weights": str(args.init_weights or "")}
    summary = train(cfg, batches, args.out, evaluate=make_evaluate(val_set), resume=args.resume, meta=meta,
                    progress=not args.quiet, perceptual=perceptual, initial={"G": initial} if initial else None,
                    identity=identity)
    print(f"best validation PSNR {summary['best_score']:.2f} dB; face restorer written to "
          f"{Path(args.out) / 'generator.safetensors'} (restore faces --weights {args.out})")
    return summary


def run(args: argparse.Namespace) -> int:
    train_gfpgan_cli(args)
    return 0
