"""``restore train segmenter``: folders -> arrays -> ``gan.train.loop.train``."""
from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan.data.augment import AugmentConfig, PairedAugment
from gan.data.batches import SegBatches, class_target, make_samples
from gan.presets import segmenter_config
from gan.train import distributed as dist
from gan.train.config import SegmentOptions
from gan.train.loop import TrainConfig, train

DEFAULT_CROP = 256

from restore.segment.overlay import overlay
from restore.segment.scores import segmentation_scores
from restore.tiling import tiled_inference

from .crops import fit_crop
from .seg_data import find_pairs, holdout_indices, load_pairs, split_holdout


def augment_config(crop: int, zoom: tuple[float, float] | None, overrides: list[str]) -> AugmentConfig:
    """AugmentConfig from CLI values; ``overrides`` are ``field=value`` (ranges as ``a,b``)."""
    fields = {f.name: f for f in dataclasses.fields(AugmentConfig)}
    values: dict[str, Any] = {"crop": crop, "zoom": tuple(zoom) if zoom else None}
    for item in overrides or []:
        key, _, text = item.partition("=")
        if key not in fields or not text:
            raise ValueError(f"--augment {item!r}: expected FIELD=VALUE with FIELD one of {sorted(fields)}")
        if text.lower() in ("none", "off"):
            values[key] = None
        elif text.lower() in ("true", "false"):
            values[key] = text.lower() == "true"
        else:
            nums = tuple(float(v) for v in text.split(","))
            values[key] = nums if len(nums) > 1 else nums[0]
    return AugmentConfig(**values)


def make_evaluate(images: list[np.ndarray], masks: list[np.ndarray], num_classes: int, tile: int):
    """Validation: whole held-out images through the tiled inference users run; the score is
    the mean foreground IoU; one overlay image is logged."""
    targets = [class_target(m, num_classes) for m in masks]

    def evaluate(model: torch.nn.Module) -> dict[str, Any]:
        ious, dices, first = [], [], None
        for x, y in zip(images, targets):
            logits = tiled_inference(model, torch.from_numpy(x), tile, overlap=0.25, batch_size=4)
            pred = logits.argmax(0).numpy() if logits.shape[0] > 1 else (logits[0] > 0).numpy().astype(np.int64)
            s = segmentation_scores(pred, y)["foreground"]
            ious.append(s["iou"])
            dices.append(s["dice"])
            if first is None and x.ndim == 3:
                first = overlay((x[0].clip(0, 1) * 255).astype(np.uint8), pred)
        result = {"score": float(np.mean(ious)), "scalars": {"iou": float(np.mean(ious)), "dice": float(np.mean(dices))}}
        if first is not None:
            result["images"] = {"overlay": first}
        return result

    return evaluate


def training_crop(images: list[np.ndarray], names: list[str], args) -> int:
    """The crop when ``--crop`` is left out: 256, or the largest multiple of the network's
    divisor every training image (C, *spatial) allows (``restore.crops.fit_crop``, no resizing)."""
    cfg = segmenter_config(args.preset, args.model, args.dims, args.in_channels, args.classes)
    divisor = cfg.patch_size if args.model == "unetr" else 2**cfg.depth
    fit = fit_crop([x.shape[1:] for x in images], names, DEFAULT_CROP, divisor, can_resize=False)
    print(fit.message)
    return fit.crop


def train_segmenter_cli(args) -> dict[str, Any]:
    """Everything ``restore train segmenter`` does, from parsed arguments."""
    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = find_pairs(args.data)
    images, masks, diam = load_pairs(pairs, args.dims, args.in_channels, args.diameter)
    print(f"data: {len(pairs)} annotated files -> {len(images)} {args.dims}D images"
          + (f"; median object diameter {np.median([d for d in diam if d]):.1f} px" if any(diam) else "")
          + (f", rescaled to {args.diameter:g} px" if args.diameter else ""))
    if args.val:
        val_images, val_masks, _ = load_pairs(find_pairs(args.val), args.dims, args.in_channels, args.diameter)
        train_split = (images, masks)
    else:
        train_split, (val_images, val_masks) = split_holdout(images, masks, args.val_fraction)
        print(f"no --val given: holding out {len(val_images)} part(s) of the data for validation")

    if args.crop is None:  # name the training images as fit_crop's line may quote one
        names = [str(p.image) for p in pairs] if len(pairs) == len(images) else [
            f"{args.data} image {i}" for i in range(len(images))]
        held = holdout_indices(len(images), args.val_fraction) if not args.val else set()
        crop = training_crop(train_split[0], [n for i, n in enumerate(names) if i not in held], args)
    else:
        crop = args.crop
    model_cfg = segmenter_config(args.preset, args.model, args.dims, args.in_channels, args.classes,
                                 **({"img_size": crop} if args.model == "unetr" else {}))
    if getattr(model_cfg, "padding", "same") == "valid":
        crop = model_cfg.valid_input_size(crop)
    aug_cfg = augment_config(crop, args.zoom, args.augment)
    samples = make_samples(*train_split, num_classes=args.classes, border_weights=args.loss in ("wce", "dice_ce"))
    rank, _ = dist.init()
    batches = SegBatches(samples, PairedAugment(aug_cfg, args.dims), args.batch_size, args.seed,
                         rank=rank, world_size=dist.world_size())

    pixels = sum(int(np.prod(s.target.shape)) for s in samples)
    steps_per_epoch = max(1, math.ceil(pixels / (crop**args.dims * args.batch_size)))
    steps = args.steps or (args.epochs or 50) * steps_per_epoch
    cfg = TrainConfig(task="segment", arch="UNETR" if args.model == "unetr" else "UNet", model=model_cfg.to_dict(),
                      steps=steps, batch_size=args.batch_size, lr=args.lr, options=SegmentOptions(loss=args.loss),
                      val_every=args.val_every or steps_per_epoch, seed=args.seed, warmup=min(100, steps // 10))
    print(f"training {steps} steps ({steps_per_epoch} per epoch), validation every {cfg.val_every}")
    tile = crop if args.dims == 2 else min(crop, 64)
    evaluate = make_evaluate(val_images, val_masks, args.classes, tile)
    meta = {"diameter": args.diameter or 0, "augment": asdict(aug_cfg), "data": str(args.data)}
    summary = train(cfg, batches, args.out, evaluate=evaluate, resume=args.resume, meta=meta,
                    progress=not args.quiet)
    print(f"best validation IoU {summary['best_score']:.4f}; model written to {Path(args.out) / 'model.safetensors'}")
    return summary


def run(args: argparse.Namespace) -> int:
    train_segmenter_cli(args)
    return 0
