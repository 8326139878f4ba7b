"""``restore train colorizer``: a folder of colour images -> the reference-guided sketch colorizer.

(sketch, reference, target, hints) are made on the fly from the images (gan/data/sketch.py);
the loop is gan/train/loop.py's, task ``sketch``. Validation colours whole held-out images from
their XDoG sketch with the original as the reference and scores PSNR against the original,
beside the flat-fill baseline (restore.sketch.colorizer.flat_fill) printed once at the start.
"""
from __future__ import annotations

import argparse
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan.data.sketch import ColorizeBatches
from gan.presets import AC_PATCHGAN_PRESETS, COLORIZER_PRESETS
from gan.train import distributed as dist
from gan.train.config import SketchOptions
from gan.train.loop import TrainConfig, train
from restore.runners.inputs import UsageError, find_inputs
from restore.sketch.colorizer import flat_fill, psnr, read_rgb
from restore.sketch.extract import extract, random_sketch, xdog

from .holdout import pick, split_off
from .pairs import report_unusable


def load_images(folder: Path, skip_bad: bool, what: str, max_side: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """uint8 RGB images of a folder (searched recursively; alpha over white), optionally
    downscaled to ``max_side``; unreadable files are listed and stop the run unless ``skip_bad``."""
    import cv2

    try:
        items = find_inputs([folder])
    except UsageError as e:
        raise ValueError(str(e)) from None
    images, names, problems = [], [], []
    for path, _ in items:
        try:
            rgb = read_rgb(path)
        except ValueError as e:
            problems.append((path, str(e)))
            continue
        if max_side and max(rgb.shape[:2]) > max_side:
            s = max_side / max(rgb.shape[:2])
            rgb = cv2.resize(rgb, (max(1, round(rgb.shape[1] * s)), max(1, round(rgb.shape[0] * s))),
                             interpolation=cv2.INTER_AREA)
        images.append((rgb * 255).round().astype(np.uint8))
        names.append(str(path))
    report_unusable(problems, len(images), skip_bad, what)
    return images, names


def make_evaluate(images: list[np.ndarray]):
    """PSNR of the output against the original, the original as reference, on whole images."""
    sketches = [xdog(img) for img in images]
    targets = [img.astype(np.float32) / 255 for img in images]
    region = np.mean([psnr(flat_fill(s, t), t) for s, t in zip(sketches, targets)])
    flat = np.mean([psnr(flat_fill(s, t, per_region=False), t) for s, t in zip(sketches, targets)])
    print(f"validation: {len(images)} images; flat-fill baselines: per region {region:.2f} dB, "
          f"one mean colour {flat:.2f} dB")

    def evaluate(model: torch.nn.Module) -> dict[str, Any]:
        device = next(model.parameters()).device
        scores, panels = [], []
        with torch.no_grad():
            for s, t in zip(sketches, targets):
                x = torch.from_numpy(s)[None, None].to(device) * 2 - 1
                r = torch.from_numpy(t.transpose(2, 0, 1).copy())[None].to(device) * 2 - 1
                y = ((model(x, r).clamp(-1, 1) + 1) / 2)[0].permute(1, 2, 0).float().cpu().numpy()
                scores.append(psnr(y, t))
                if len(panels) < 4 and t.shape[:2] == targets[0].shape[:2]:
                    panels.append(np.concatenate([np.repeat(s[..., None], 3, axis=2), y, t], axis=1))
        grid = (np.concatenate(panels, axis=0) * 255).round().astype(np.uint8)
        score = float(np.mean(scores))
        return {"score": score, "scalars": {"psnr": score, "gain_over_flat_fill": score - region},
                "images": {"sketch_output_target": grid}}

    return evaluate


def initial_state(config, weights: str | Path, seed: int) -> dict[str, torch.Tensor]:
    """A state dict for a new colorizer of ``config``: every tensor of the ``weights`` model
    (a file or a bundled name) whose name and shape match, the rest freshly initialised (e.g. the
    attention modules added to a colorizer trained without them; their output starts at zero,
    so the new model starts as the old one)."""
    from gan.nets.colorizer import Colorizer
    from restore.export.backend import load_model_file
    from restore.models.cache import resolve_weights

    old, _ = load_model_file(resolve_weights(weights), torch.device("cpu"))
    if not isinstance(old, Colorizer):
        raise ValueError(f"--init {weights}: not a sketch colorizer ({type(old).__name__})")
    torch.manual_seed(seed)
    state = Colorizer(config).state_dict()
    source = old.state_dict()
    taken = [k for k, v in source.items() if k in state and state[k].shape == v.shape]
    state.update({k: source[k] for k in taken})
    print(f"--init {weights}: {len(taken)} of {len(state)} tensors taken from it, "
          f"{len(state) - len(taken)} new")
    return state


def train_colorizer_cli(args) -> dict[str, Any]:
    """Everything ``restore train colorizer`` does, from parsed arguments."""
    if args.threads:
        torch.set_num_threads(args.threads)
    rank, _ = dist.init()
    images, names = load_images(args.data, args.skip_bad, "training", args.max_side)
    if args.val:
        val, _ = load_images(args.val, args.skip_bad, "validation", args.max_side)
    else:  # hold out every 10th image (at least one)
        train_i, val_i = split_off(len(images), "images")
        val, images = pick(images, val_i), pick(images, train_i)
    val = val[: args.val_count]
    print(f"data: {len(images)} training images; sketches: {args.sketch}")
    small = sum(min(im.shape[:2]) < args.crop for im in images)
    if small:
        print(f"crop: {args.crop} px; {small} of {len(images)} images are smaller and are padded with white "
              "(the clip-art background)")

    gen = COLORIZER_PRESETS[args.preset]
    if args.style_encoder:
        gen = replace(gen, style_encoder=args.style_encoder)
    if args.style_weights:
        gen = replace(gen, style_weights=str(args.style_weights))
    if args.no_hints:
        gen = replace(gen, hints=False)
    if args.attention is not None:
        gen = replace(gen, attention=args.attention)
    if args.match_level is not None:
        gen = replace(gen, match_level=args.match_level)
    disc = replace(AC_PATCHGAN_PRESETS[args.preset], style_dim=gen.aux_dim)
    print(f"style: {gen.style_encoder} encoder" + (f" ({gen.style_weights})" if gen.style_weights else "")
          + (f" + {gen.palette_bins}^3-bin colour histogram" if gen.palette_bins else "") + f", {gen.style_dim} values")
    if args.sketch == "hed":  # HED is ~1 s per image on a CPU: once per image, not per crop
        sketches = [(np.clip(extract(im, "hed"), 0, 1) * 255).round().astype(np.uint8) for im in images]
        kw: dict[str, Any] = {"sketches": sketches}
    elif args.sketch == "random":
        kw = {"sketch": random_sketch}
    else:
        kw = {"sketch": lambda img, g, m=args.sketch: extract(img, m)}
    batches = ColorizeBatches(images, args.crop, args.batch_size, args.seed, scale=tuple(args.scale),
                              hints=gen.hints, hint_prob=args.hint_prob, unpaired=args.unpaired,
                              self_ref=args.self_ref, rank=rank, world_size=dist.world_size(), **kw)
    options = SketchOptions(disc_arch="ACPatchDiscriminator", disc=disc.to_dict(), gan_loss=args.gan_loss,
                            gan_weight=args.gan_weight, l1_weight=args.l1_weight,
                            guide_weights=tuple(args.guide_weights), aux_weight=args.aux_weight)
    cfg = TrainConfig(task="sketch", arch="Colorizer", model=asdict(gen), steps=args.steps, batch_size=args.batch_size,
                      lr=args.lr, betas=(args.beta1, 0.999), weight_decay=0.0, warmup=min(100, args.steps // 20),
                      ema=args.ema, amp=args.amp, val_every=args.val_every, image_every=args.val_every,
                      seed=args.seed, options=options)
    meta = {"data": str(args.data), "crop": args.crop, "sketch": args.sketch, "images": len(images),
            "self_ref": args.self_ref, "unpaired": args.unpaired}
    initial = None
    if args.init:
        initial = {"G": initial_state(gen, args.init, args.seed)}
        meta["init"] = str(args.init)
    summary = train(cfg, batches, args.out, evaluate=make_evaluate(val), resume=args.resume, meta=meta,
                    progress=not args.quiet, initial=initial)
    print(f"best validation PSNR {summary['best_score']:.2f} dB; colorizer written to "
          f"{Path(args.out) / 'generator.safetensors'}")
    return summary


def run(args: argparse.Namespace) -> int:
    train_colorizer_cli(args)
    return 0
