"""``restore train pix2pix``: image pairs (or clean photos + a degradation) -> a U-Net GAN."""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan.data.batches import PairBatches
from gan.data.degrade import Degradation
from gan.losses.perceptual import PerceptualLoss
from gan.nets.restorer import RestorerConfig
from gan.presets import PATCHGAN_PRESETS, PIX2PIX_PRESETS
from gan.train import distributed as dist
from gan.train.config import TranslateOptions
from gan.train.loop import TrainConfig, train
from restore.quality import lpips_metric, psnr_ssim

from .holdout import pick, split_off
from .pairs import PairSet, fit_pair_crop, load_pair_folder, report_unusable, resize_pairs

VAL_SEED = 20261125  # the degraded validation inputs are drawn once, at this seed
DEFAULT_CROP = 256  # pix2pix's


def report_problems(data: PairSet, skip_bad: bool, what: str, fix: str = "") -> None:
    """Unusable files listed before any training (see ``report_unusable``)."""
    if data.ignored:
        print(f"{what} data: ignored {data.ignored} file(s) that are not images")
    report_unusable(data.problems, len(data.pairs), skip_bad, what, fix)


def generator_config(args):
    """(config, arch name) of the generator the flags ask for."""
    gen = PIX2PIX_PRESETS[args.preset]
    arch = "Restorer" if isinstance(gen, RestorerConfig) else "UNetGenerator"
    if (args.num_downs or args.init) and arch != "UNetGenerator":
        raise ValueError(f"--num-downs and --init apply to the pix2pix generator, not preset {args.preset!r}")
    if args.num_downs:
        gen = replace(gen, num_downs=args.num_downs)
    if args.init:
        gen = replace(gen, init=args.init)
    return gen, arch


def _native_size_hint(gen, arch: str, data: PairSet) -> str:
    """How to train small images at their own size instead of resizing them up."""
    if arch != "UNetGenerator" or not data.pairs:
        return ""
    smallest = min(min(t.shape[:2]) for _, t in data.pairs) // gen.pixel_unshuffle
    downs = max(1, smallest.bit_length() - 1)  # 2**downs <= smallest
    return f"--num-downs {downs} trains at their own size"


def val_crops(data: PairSet, size: int, degrade: Degradation | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Centre crops of the validation pairs, inputs degraded at fixed seeds when needed."""
    out = []
    for i, (inp, tgt) in enumerate(data.pairs):
        h, w = tgt.shape[:2]
        s = min(size, h, w)
        y, x = (h - s) // 2, (w - s) // 2
        clean = tgt[y:y + s, x:x + s].astype(np.float32) / 255
        source = inp[y:y + s, x:x + s].astype(np.float32) / 255 if inp is not None else degrade(clean, [VAL_SEED, i])
        out.append((np.clip(source, 0, 1).astype(np.float32), clean))
    return out


def make_evaluate(crops: list[tuple[np.ndarray, np.ndarray]]):
    """PSNR/SSIM (basicsr's) and LPIPS (where its backbone is present) of the generator on the
    validation crops; score = mean PSNR."""
    lpips_model, lpips_note = lpips_metric()
    print(lpips_note)
    before = [psnr_ssim(source, clean) for source, clean in crops]
    print(f"validation: {len(crops)} crops; the inputs themselves score PSNR {np.mean([b[0] for b in before]):.2f} dB, "
          f"SSIM {np.mean([b[1] for b in before]):.4f} against the targets")

    def evaluate(model: torch.nn.Module) -> dict[str, Any]:
        psnrs, ssims, lpipss, images = [], [], [], []
        device = next(model.parameters()).device
        with torch.no_grad():
            for source, clean in crops:
                x = torch.from_numpy(source).permute(2, 0, 1)[None].to(device) * 2 - 1
                out = model(x).clamp(-1, 1)
                if lpips_model is not None:
                    target = torch.from_numpy(clean).permute(2, 0, 1)[None] * 2 - 1
                    lpipss.append(float(lpips_model.to(out.device)(out.float(), target.to(out.device))))
                y = ((out + 1) / 2)[0].permute(1, 2, 0).float().cpu().numpy()
                p, s = psnr_ssim(y, clean)
                psnrs.append(p)
                ssims.append(s)
                if len(images) < 3:
                    images.append(np.concatenate([source, y, clean], axis=1))
        w = min(im.shape[1] for im in images)
        grid = np.concatenate([im[:, :w] for im in images if im.shape[0] == images[0].shape[0]], axis=0)
        scalars = {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims))}
        if lpipss:
            scalars["lpips"] = float(np.mean(lpipss))
        return {"score": scalars["psnr"], "scalars": scalars,
                "images": {"input_output_target": (grid * 255).round().astype(np.uint8)}}

    return evaluate


def train_pix2pix_cli(args) -> dict[str, Any]:
    """Everything ``restore train pix2pix`` does, from parsed arguments."""
    if args.threads:
        torch.set_num_threads(args.threads)
    rank, _ = dist.init()
    degrade = Degradation(args.degrade) if args.degrade else None
    gen, arch = generator_config(args)
    data = load_pair_folder(args.data, args.layout, args.degrade)
    crop, fix, resized = fit_pair_crop(data, args.crop, DEFAULT_CROP, gen.size_divisor,
                                       _native_size_hint(gen, arch, data))
    report_problems(data, args.skip_bad, "training", fix)
    if args.val:
        val = load_pair_folder(args.val, args.layout, args.degrade)
        report_problems(val, args.skip_bad, "validation")
        if resized:  # score at the scale it trains at
            resize_pairs(val, crop)
    else:  # hold out every 10th pair (at least one) for validation
        train_i, val_i = split_off(len(data.pairs), "pairs")
        val, data = (PairSet(pick(data.pairs, i), pick(data.names, i)) for i in (val_i, train_i))
    print(f"data: {len(data.pairs)} training pairs" + (f", inputs made by the '{args.degrade}' degradation" if degrade else ""))

    disc = replace(PATCHGAN_PRESETS[args.preset], n_layers=args.n_layers or PATCHGAN_PRESETS[args.preset].n_layers,
                   spectral_norm=args.spectral_norm or PATCHGAN_PRESETS[args.preset].spectral_norm)
    initial = None
    if args.init_weights:  # fine-tune: start G from a trained generator of the same shape
        from gan.serialize import load_model
        from restore.models.cache import resolve_weights

        start, start_meta = load_model(resolve_weights(args.init_weights))
        if start_meta["arch"] != arch or start.config.to_dict() != gen.to_dict():
            raise ValueError(f"--init-weights {args.init_weights}: a {start_meta['arch']} {start.config.to_dict()} "
                             f"does not match the {arch} of preset {args.preset!r} ({gen.to_dict()})")
        initial = {"G": start.state_dict()}
        print(f"generator initialised from {args.init_weights}")
    perceptual = PerceptualLoss(args.perceptual, weights=args.perceptual_weights) if args.perceptual_weight else None
    print(perceptual.describe() if perceptual is not None else "perceptual loss off (--perceptual-weight 0)")
    batches = PairBatches(data.pairs, crop, args.batch_size, args.seed, degrade=degrade,
                          scale=tuple(args.scale), rotate=args.rotate, rank=rank, world_size=dist.world_size())
    options = TranslateOptions(
        disc_arch="PatchDiscriminator", disc=disc.to_dict(), gan_loss=args.gan_loss, gan_weight=args.gan_weight,
        l1_weight=args.l1_weight,
        perceptual_weight=args.perceptual_weight if perceptual is not None and perceptual.enabled else 0.0,
        r1_weight=args.r1_weight, r1_every=args.r1_every)
    cfg = TrainConfig(task="translate", arch=arch, model=gen.to_dict(), steps=args.steps, batch_size=args.batch_size,
                      lr=args.lr, betas=(args.beta1, 0.999), weight_decay=0.0, warmup=min(100, args.steps // 20),
                      ema=args.ema, amp=args.amp, val_every=args.val_every, image_every=args.val_every,
                      seed=args.seed, options=options)
    meta = {"degrade": args.degrade or "", "data": str(args.data), "crop": crop, "rotate": args.rotate,
            "perceptual": perceptual.describe() if perceptual is not None else "off",
            "init_weights": str(args.init_weights or "")}
    evaluate = make_evaluate(val_crops(val, args.val_size, degrade))
    summary = train(cfg, batches, args.out, evaluate=evaluate, resume=args.resume, meta=meta,
                    progress=not args.quiet, perceptual=perceptual, initial=initial)
    print(f"best validation PSNR {summary['best_score']:.2f} dB; generator written to "
          f"{Path(args.out) / 'generator.safetensors'}")
    return summary


def run(args: argparse.Namespace) -> int:
    train_pix2pix_cli(args)
    return 0
