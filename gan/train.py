"""One readable training loop.

Read top to bottom: build the model and optimizer from the config, resume if asked, then loop:
draw the batch of this step, forward, loss, backward, step; every ``val_every`` steps run the
caller's evaluation, keep the best model, and write the checkpoint atomically. Batches are a
pure function of (seed, step) and the checkpoint holds every RNG state, so an interrupted run
resumed from its checkpoint ends with the same weights as an uninterrupted one.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .blocks import center_crop
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .data import SegBatches
from .losses import SEG_LOSSES
from .serialize import arch_name, build_model, save_model


@dataclass(frozen=True)
class SegTrainConfig:
    arch: str = "UNet"
    model: dict[str, Any] = field(default_factory=dict)  # the network's config as a dict
    steps: int = 2000
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 50  # linear warm-up steps, then cosine decay to 1% of lr
    loss: str = "dice_ce"  # a key of gan.losses.SEG_LOSSES
    val_every: int = 200
    seed: int = 0
    log_every: int = 10


def lr_factor(step: int, cfg: SegTrainConfig) -> float:
    """Warm-up then cosine; a pure function of the step, so resuming needs no scheduler state."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def seg_loss(name: str, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Apply loss ``name``; targets are centre-cropped to the output of valid-padding models."""
    size = logits.shape[2:]
    target = center_crop(batch["target"][:, None], size)[:, 0]
    weight = center_crop(batch["weight"][:, None], size)[:, 0] if "weight" in batch else None
    fn = SEG_LOSSES[name]
    return fn(logits, target, weight_map=weight) if name in ("wce", "dice_ce") else fn(logits, target)


def train_segmenter(cfg: SegTrainConfig, batches: SegBatches, out: str | Path,
                    evaluate: Callable[[nn.Module], dict] | None = None, resume: bool = False,
                    log: Callable[[str], None] = print, progress: bool = True,
                    meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train a segmentation network; writes ``out/model.safetensors`` (best by validation
    score, or last if there is no validation), ``out/last.safetensors`` and
    ``out/checkpoint.pt``. ``evaluate(model)`` returns {"score": float, "scalars": {...},
    "images": {name: HxWx3 uint8}}. Returns the final summary dict."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.loss not in SEG_LOSSES:
        raise ValueError(f"unknown loss {cfg.loss!r}; choose one of {sorted(SEG_LOSSES)}")
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch, cfg.model)
    # channels-last convolutions are ~1.3x faster on CPU (oneDNN) and no slower on GPU
    layout = torch.channels_last if cfg.model.get("dims", 2) == 2 else torch.channels_last_3d
    model = model.to(memory_format=layout)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, best, history = 0, -math.inf, []
    ckpt_path = out / "checkpoint.pt"
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        if state["config"] != json.loads(json.dumps(asdict(cfg))):
            log("warning: resuming with a config that differs from the checkpoint's")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, best, history = state["step"], state["best"], json.loads(state["history"])
        set_rng_state(state["rng"])
        log(f"resumed from {ckpt_path} at step {start}")
    elif resume:
        log(f"no checkpoint at {ckpt_path}; starting from scratch")
    log(f"model {arch_name(model)}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    log("config " + json.dumps(asdict(cfg)))

    writer = SummaryWriter(str(out / "tb"))
    meta = {"task": "segmentation", "train_config": asdict(cfg), **(meta or {})}
    model.train()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress,
               desc="train", unit="step", dynamic_ncols=True)
    t0, running = time.perf_counter(), 0.0
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(step, cfg)
        batch = batches.batch(step)
        loss = seg_loss(cfg.loss, model(batch["image"].contiguous(memory_format=layout)), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

        running = loss.item() if step == start else 0.9 * running + 0.1 * loss.item()
        bar.set_postfix(loss=f"{running:.4f}")
        if (step + 1) % cfg.log_every == 0:
            writer.add_scalar("train/loss", loss.item(), step + 1)
            writer.add_scalar("train/lr", opt.param_groups[0]["lr"], step + 1)

        if (step + 1) % cfg.val_every == 0 or step + 1 == cfg.steps:
            record: dict[str, Any] = {"step": step + 1, "loss": running}
            if evaluate is not None:
                model.eval()
                result = evaluate(model)
                model.train()
                record.update(score=result["score"], **result.get("scalars", {}))
                for name, value in result.get("scalars", {}).items():
                    writer.add_scalar(f"val/{name}", value, step + 1)
                for name, image in result.get("images", {}).items():
                    writer.add_image(f"val/{name}", image, step + 1, dataformats="HWC")
                if result["score"] > best:
                    best = result["score"]
                    save_model(model, out / "model.safetensors", {**meta, "val": record})
                log(f"step {step + 1}: loss {running:.4f}, val score {result['score']:.4f} (best {best:.4f})")
            history.append(record)
            save_model(model, out / "last.safetensors", {**meta, "val": record})
            if evaluate is None:
                save_model(model, out / "model.safetensors", {**meta, "val": record})
            save_checkpoint(ckpt_path, {
                "model": model.state_dict(), "optimizer": opt.state_dict(), "step": step + 1,
                "best": best, "history": json.dumps(history), "rng": rng_state(),
                "config": json.loads(json.dumps(asdict(cfg))),
            })
    writer.close()
    seconds = time.perf_counter() - t0
    summary = {"steps": cfg.steps, "best_score": best, "seconds": seconds, "history": history}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
