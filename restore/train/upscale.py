"""``restore train upscale``: clean photos -> a Real-ESRGAN upscaler (RRDBNet or SRVGGNetCompact).

Real-ESRGAN's recipe in the toolkit's one loop (``gan.train.loop``, task ``upscale``): inputs
made on the fly from the photos by the second-order degradation (``gan.data.realesrgan``),
USM-sharpened targets, then

- ``--stage net`` (Real-ESRNet): L1 alone, Adam lr 2e-4, betas (0.9, 0.99);
- ``--stage gan`` (Real-ESRGAN): L1 + perceptual (VGG19) + 0.1 x GAN against the U-Net
  discriminator with spectral norm, lr 1e-4 for both; Real-ESRGAN starts it from the net
  stage's generator (``--init RUN/generator.safetensors``) or fine-tunes the published x4plus
  (``--init realesrgan-x4plus``, and ``--init-d RealESRGAN_x4plus_netD.pth`` for its
  discriminator, as finetune_realesrgan_x4plus.yml does);

EMA 0.999 exported, crops of 256 px (``gt_size``), batches of 12 (Real-ESRGAN's 12 per GPU),
exact ``--resume``, torchrun data parallelism and TensorBoard grids from the loop. One difference:
the loop's learning rate decays by a cosine to 1% at the last step (Real-ESRGAN keeps it flat).
Validation scores the EMA generator (PSNR, SSIM against the clean photo) on held-out photos,
centre crops degraded once at a fixed seed. ``restore upscale --weights RUN`` takes the export.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .holdout import pick, split_off
from .pairs import report_unusable

VAL_SEED = 20261207  # the degraded validation inputs are drawn once, at this seed
LR = {"net": 2e-4, "gan": 1e-4}  # train_realesrnet_x4plus.yml, train_realesrgan_x4plus.yml
BETAS = (0.9, 0.99)


def load_photos(folder: Path, skip_bad: bool, what: str) -> list[np.ndarray]:
    """uint8 RGB photos of a folder (recursively); unusable files listed, stopping unless ``skip_bad``."""
    from restore.imageio import ImageError, read_image
    from restore.runners.inputs import UsageError, find_inputs

    if not folder.is_dir():
        raise ValueError(f"photo folder not found: {folder}")
    try:
        items = find_inputs([folder])
    except UsageError as e:
        raise ValueError(str(e)) from None
    photos, problems = [], []
    for path, _ in items:
        try:
            photos.append(np.ascontiguousarray(read_image(path, mode="rgb8")))
        except ImageError as e:
            problems.append((path, str(e)))
    report_unusable(problems, len(photos), skip_bad, what)
    return photos


def generator_config(arch: str, preset: str, scale: int) -> tuple[str, Any]:
    """(architecture name, config) of ``--arch`` at ``--scale``: RRDBNet (x4plus's trunk, or tiny)
    or SRVGGNetCompact (realesr-general-x4v3's, or tiny)."""
    if arch == "rrdb":
        from gan.nets.rrdb import PRESETS

        return "RRDBNet", dataclasses.replace(PRESETS["tiny" if preset == "tiny" else "x4plus"], scale=scale)
    from gan.nets.srvgg import PRESETS

    return "SRVGGNetCompact", dataclasses.replace(PRESETS["tiny" if preset == "tiny" else "general-x4v3"],
                                                  upscale=scale)


def initial_generator(init: str, arch: str, config: Any, seed: int, log=print) -> dict[str, torch.Tensor]:
    """G's starting weights from ``--init`` (a manifest name such as realesrgan-x4plus, a run
    folder, a .safetensors or a published .pth): every tensor whose name and shape match; the
    others (e.g. conv_first of an x2 network started from x4plus, as Real-ESRGAN's x2plus was)
    keep the random start the loop would draw, and are named."""
    from gan.serialize import build_model

    path = Path(init).expanduser()
    if path.is_file() and path.suffix in (".pth", ".pt"):
        if arch == "RRDBNet":
            from gan.nets.rrdb import load_published
        else:
            from gan.nets.srvgg import load_published
        source = load_published(path)
    else:
        from restore.models.cache import load_network

        source, _ = load_network(init)
    if type(source).__name__ != arch:
        raise ValueError(f"--init {init}: a {type(source).__name__}, not the {arch} of --arch")
    torch.manual_seed(seed)  # the random start train() draws, for what does not match
    model = build_model(arch, config.to_dict())
    own, theirs = model.state_dict(), source.state_dict()
    taken = {k: v for k, v in theirs.items() if k in own and v.shape == own[k].shape}
    if not taken:
        raise ValueError(f"--init {init}: no tensor fits the {arch} {config}")
    left = sorted(k for k in own if k not in taken)
    log(f"generator initialised from {init}: {len(taken)} of {len(own)} tensors"
        + (f"; {len(left)} start at random ({', '.join(left[:4])}{' ...' if len(left) > 4 else ''})" if left else ""))
    own.update(taken)
    return own


def val_pairs(photos: list[np.ndarray], size: int, scale: int, degradation) -> list[tuple[np.ndarray, np.ndarray]]:
    """(degraded, clean) float32 HxWx3 validation pairs: centre crops (a multiple of the scale),
    degraded once at fixed seeds (from the clean crop: what users will feed the network)."""
    out = []
    for i, img in enumerate(photos):
        h, w = img.shape[:2]
        s = min(size, h, w) // scale * scale
        if s < 32:
            continue
        y, x = (h - s) // 2, (w - s) // 2
        clean = img[y:y + s, x:x + s].astype(np.float32) / 255
        lq = degradation(torch.from_numpy(clean).permute(2, 0, 1)[None], [VAL_SEED, i])
        out.append((lq[0].permute(1, 2, 0).numpy().astype(np.float32), clean))
    return out


def make_evaluate(pairs: list[tuple[np.ndarray, np.ndarray]]):
    """PSNR/SSIM (basicsr's) of the generator's output against the clean crops; score = PSNR.
    The bicubic enlargement's scores are printed once, as the baseline."""
    import cv2

    from restore.quality import psnr_ssim

    base = [psnr_ssim(cv2.resize(lq, clean.shape[1::-1], interpolation=cv2.INTER_CUBIC), clean) for lq, clean in pairs]
    print(f"validation: {len(pairs)} crops; bicubic enlargement scores PSNR {np.mean([b[0] for b in base]):.2f} dB, "
          f"SSIM {np.mean([b[1] for b in base]):.4f}")

    def evaluate(model: torch.nn.Module) -> dict[str, Any]:
        device = next(model.parameters()).device
        psnrs, ssims, images = [], [], []
        with torch.no_grad():
            for lq, clean in pairs:
                y = model(torch.from_numpy(lq).permute(2, 0, 1)[None].to(device)).clamp(0, 1)
                y = y[0].permute(1, 2, 0).float().cpu().numpy()
                p, s = psnr_ssim(y, clean)
                psnrs.append(p)
                ssims.append(s)
                if len(images) < 3:
                    big = cv2.resize(lq, clean.shape[1::-1], interpolation=cv2.INTER_NEAREST)
                    images.append(np.concatenate([big, y, clean], axis=1))
        w = min(im.shape[1] for im in images)
        grid = np.concatenate([im[:, :w] for im in images if im.shape[0] == images[0].shape[0]], axis=0)
        scalars = {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims))}
        return {"score": scalars["psnr"], "scalars": scalars,
                "images": {"input_output_target": (np.clip(grid, 0, 1) * 255).round().astype(np.uint8)}}

    return evaluate


def train_upscale_cli(args) -> dict[str, Any]:
    """Everything ``restore train upscale`` does, from parsed arguments."""
    from gan.data.realesrgan import SecondOrderDegradation
    from gan.data.upscale import UpscaleBatches
    from gan.losses.perceptual import GFPGAN_VGG_LAYERS, PerceptualLoss
    from gan.nets.unet_disc import PRESETS as DISC_PRESETS
    from gan.nets.unet_disc import load_published as load_disc
    from gan.train import distributed as dist
    from gan.train.config import UpscaleOptions
    from gan.train.loop import TrainConfig, train

    if args.threads:
        torch.set_num_threads(args.threads)
    rank, _ = dist.init()
    arch, gen = generator_config(args.arch, args.preset, args.scale)
    crop = args.crop or (32 if args.preset == "tiny" else 256)
    if crop % args.scale or crop < 32:
        raise ValueError(f"--crop {crop}: at least 32 px and a multiple of --scale {args.scale}")
    gan_stage = args.stage == "gan"
    if args.init_d and not gan_stage:
        raise ValueError("--init-d starts the discriminator of --stage gan")
    degradation = SecondOrderDegradation(scale=args.scale)
    photos = load_photos(args.data, args.skip_bad, "training")
    if args.val:
        val = load_photos(args.val, args.skip_bad, "validation")
    else:  # hold out every 10th photo (at least one)
        train_i, val_i = split_off(len(photos), "photos")
        val, photos = pick(photos, val_i), pick(photos, train_i)
    val_set = val_pairs(val[: args.val_count], args.val_size, args.scale, degradation)
    if not val_set:
        raise ValueError("no validation photo of at least 32 x 32 px")
    print(f"data: {len(photos)} training photos, {crop} px crops, inputs made by Real-ESRGAN's second-order "
          f"degradation at x{args.scale}; stage {args.stage} ({'L1 + perceptual + GAN' if gan_stage else 'L1 alone'})")

    initial = {}
    if args.init:
        initial["G"] = initial_generator(args.init, arch, gen, args.seed)
    elif gan_stage:
        print("note: Real-ESRGAN starts the GAN stage from a trained generator (--init RUN of --stage net, "
              "or --init realesrgan-x4plus)")
    disc = DISC_PRESETS["tiny" if args.preset == "tiny" else "default"]
    if args.init_d:
        d = load_disc(args.init_d)
        disc = d.config
        initial["D"] = d.state_dict()
        print(f"discriminator initialised from {args.init_d}")
    perceptual = None
    if gan_stage and args.perceptual != "none" and args.perceptual_weight:
        perceptual = PerceptualLoss(args.perceptual, weights=args.perceptual_weights, layers=GFPGAN_VGG_LAYERS,
                                    vgg_names=True, criterion="l1")
    has_perceptual = perceptual is not None and perceptual.enabled
    print(perceptual.describe() if perceptual is not None else "perceptual loss off")

    options = UpscaleOptions(stage=args.stage, disc=disc.to_dict(), l1_weight=args.l1_weight,
                             perceptual_weight=args.perceptual_weight if has_perceptual else 0.0,
                             gan_weight=args.gan_weight)
    cfg = TrainConfig(task="upscale", arch=arch, model=gen.to_dict(), options=options, steps=args.steps,
                      batch_size=args.batch_size, lr=args.lr or LR[args.stage], betas=BETAS, weight_decay=0.0,
                      warmup=0, ema=args.ema, amp=args.amp, val_every=args.val_every, image_every=args.val_every,
                      seed=args.seed, loader_threads=args.loader_threads)
    batches = UpscaleBatches(photos, crop, args.batch_size, degradation, seed=args.seed, usm=not args.no_usm,
                             real=gan_stage, rank=rank, world_size=dist.world_size(), workers=args.workers)
    meta = {"data": str(args.data), "crop": crop, "stage": args.stage, "usm": not args.no_usm,
            "degradation": degradation.to_dict(), "init": str(args.init or ""), "init_d": str(args.init_d or ""),
            "perceptual": perceptual.describe() if perceptual is not None else "off"}
    summary = train(cfg, batches, args.out, evaluate=make_evaluate(val_set), resume=args.resume, meta=meta,
                    progress=not args.quiet, perceptual=perceptual, initial=initial or None)
    print(f"best validation PSNR {summary['best_score']:.2f} dB; upscaler written to "
          f"{Path(args.out) / 'generator.safetensors'} (restore upscale --weights {args.out})")
    return summary


def run(args: argparse.Namespace) -> int:
    train_upscale_cli(args)
    return 0
