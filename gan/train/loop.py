"""One readable training loop, for segmentation and for GANs.

Read ``train`` top to bottom: look up the task's trainer (gan/train/trainers.py: its networks,
their optimizers' parameters, its step, its export and image grid), build the networks and
optimizers from the config, resume if asked, then loop: draw the batch of this step, take the
task's step (a segmentation step, or the pix2pix GAN step: D on ``fake.detach()``, then D frozen
and the G step, or the colorizer's variant of it, or GFP-GAN's: G, then D, then the
facial-component Ds, in gan/train/gfpgan.py), update the EMA, log;
every ``val_every`` steps run the caller's evaluation, keep the best, write the checkpoint
atomically. Batches are a pure function of (seed, step) and the checkpoint holds every RNG
state, so a run interrupted (even by SIGKILL) and resumed ends with the same weights as an
uninterrupted one.

``torchrun --nproc_per_node N`` runs it data-parallel (gloo on CPU, nccl on GPU): each rank
draws its own samples, gradients are averaged after every backward, rank 0 alone writes.
"""
from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from gan.data.batches import prefetch
from gan.serialize import arch_name, save_model

from . import TrainingDiverged
from . import distributed as dist
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .trainers import TRAINERS


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Warm-up then cosine; a pure function of the step, so resuming needs no scheduler state."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def param_groups(cfg: TrainConfig, key: str, net: nn.Module) -> list:
    """What the optimizer of network ``key`` updates (the task's trainer says): its trainable
    parameters; for the faces task's G, groups with learning-rate scales (``lr_scale``)."""
    return TRAINERS[cfg.task].param_groups(cfg, key, net)


def saved_config(saved: dict[str, Any]) -> dict[str, Any] | None:
    """A checkpoint's config in today's JSON form (an earlier version's flat one read too);
    None when it is not a config this version reads."""
    try:
        return TrainConfig.from_dict(saved).to_dict()
    except (TypeError, ValueError):
        return None


def ema_decay(decay: float, step: int) -> float:
    """The EMA decay at 0-based ``step``: ``decay``, warmed up as (1 + step) / (10 + step) (TF's
    ExponentialMovingAverage with num_updates). Without the warm-up an EMA of 0.999 still holds
    37% of the initial weights after 1,000 steps: measured on the colorizer, its validation
    PSNR there was 10.6 dB against 14.1 for the trained weights themselves."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def train(cfg: TrainConfig, batches, out: str | Path, evaluate: Callable[[nn.Module], dict] | None = None,
          resume: bool = False, log: Callable[[str], None] = print, progress: bool = True,
          meta: dict[str, Any] | None = None, perceptual: nn.Module | None = None,
          initial: dict[str, dict[str, torch.Tensor]] | None = None,
          identity: nn.Module | None = None) -> dict[str, Any]:
    """Train; writes ``out/<name>.safetensors`` (``model`` for segmentation, ``generator``
    for a GAN: the best by validation score, or the last), ``out/last.safetensors``,
    ``out/checkpoint.pt`` and TensorBoard logs in ``out/tb``. ``evaluate(net)`` returns
    {"score": float (higher is better), "scalars": {...}, "images": {name: HxWx3 uint8}}.
    ``initial`` maps a network's key ("G", "D") to a state dict to start from (fine-tuning);
    a resumed checkpoint takes precedence. ``identity``: the frozen ArcFace network of the
    faces task's identity loss (like ``perceptual``, never trained or saved)."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    out = Path(out)
    rank, device = dist.init()
    main_rank = rank == 0
    task = TRAINERS[cfg.task]
    torch.manual_seed(cfg.seed)
    nets = task.networks(cfg)  # "G", then its discriminators
    for k, state in (initial or {}).items():
        nets[k].load_state_dict(state, strict=True)
    layout = torch.contiguous_format
    if cfg.channels_last:
        layout = torch.channels_last if cfg.model.get("dims", 2) == 2 else torch.channels_last_3d
    nets = {k: n.to(device, memory_format=layout) for k, n in nets.items()}
    opts = {k: torch.optim.AdamW(task.param_groups(cfg, k, n), lr=cfg.lr, betas=tuple(cfg.net_betas.get(k, cfg.betas)),
                                 weight_decay=cfg.weight_decay, fused=cfg.fused or None,
                                 foreach=None if cfg.fused else False)
            for k, n in nets.items()}
    ema = copy.deepcopy(nets["G"]).eval().requires_grad_(False) if cfg.ema else None
    if perceptual is not None:
        perceptual = perceptual.to(device)
    if identity is not None:
        identity = identity.to(device).eval().requires_grad_(False)
    start, best, history = 0, -math.inf, []
    ckpt_path = out / "checkpoint.pt"
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        if saved_config(state["config"]) != cfg.to_dict():
            log("warning: resuming with a config that differs from the checkpoint's")
        for k in nets:
            nets[k].load_state_dict(state["nets"][k])
            opts[k].load_state_dict(state["opts"][k])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        start, best, history = state["step"], state["best"], json.loads(state["history"])
        set_rng_state(state["rng"])
        log(f"resumed from {ckpt_path} at step {start}")
    elif resume:
        log(f"no checkpoint at {ckpt_path}; starting from scratch")
    dist.broadcast_params(nets)  # every rank starts from rank 0's weights
    if main_rank:
        out.mkdir(parents=True, exist_ok=True)
        for k, n in nets.items():
            log(f"{k}: {arch_name(n)}, {sum(p.numel() for p in n.parameters()) / 1e6:.2f} M parameters")
        log("config " + json.dumps(cfg.to_dict()))
    writer = SummaryWriter(str(out / "tb")) if main_rank else None
    meta = {"task": cfg.task, "train_config": cfg.to_dict(), **(meta or {})}
    for n in nets.values():
        n.train()
    bar = tqdm(prefetch(batches, start, cfg.steps, cfg.loader_threads), initial=start, total=cfg.steps,
               disable=not (progress and main_rank), desc="train", unit="step", dynamic_ncols=True)
    t0, running, losses, step_seconds = time.perf_counter(), None, [], []
    t_last = t0
    for step, batch in bar:
        for k, opt in opts.items():
            base = cfg.lr_d if k == "D" and cfg.lr_d else cfg.lr
            for group in opt.param_groups:
                group["lr"] = base * lr_factor(step, cfg) * group.get("lr_scale", 1.0)
        batch = {k: v.to(device) for k, v in batch.items()}
        for key in ("image", "input", "target", "reference", "hints"):
            if key in batch and batch[key].dim() == 4 and batch[key].is_floating_point():
                batch[key] = batch[key].contiguous(memory_format=layout)
        scalars = task.step(cfg, nets, opts, batch, step, perceptual=perceptual, identity=identity)
        values = {k: v.item() for k, v in scalars.items()}
        if not all(math.isfinite(v) for v in values.values()):
            raise TrainingDiverged(f"step {step + 1}: loss is not finite ({values}); stopped. The last good "
                                   f"checkpoint ({ckpt_path}, step {start if not history else history[-1]['step']}) "
                                   "is kept: lower --lr and --resume")
        if ema is not None:
            update_ema(ema, nets["G"], ema_decay(cfg.ema, step))
        losses.append(values["loss"])
        step_seconds.append(time.perf_counter() - t_last)  # the whole iteration, data wait included
        t_last = time.perf_counter()
        running = values["loss"] if running is None else 0.9 * running + 0.1 * values["loss"]
        bar.set_postfix(loss=f"{running:.4f}")
        if writer and (step + 1) % cfg.log_every == 0:
            for name, value in values.items():
                writer.add_scalar(f"train/{name}", value, step + 1)
            writer.add_scalar("train/lr", opts["G"].param_groups[0]["lr"], step + 1)
        if writer and (step + 1) % cfg.image_every == 0:
            with torch.no_grad():
                images = task.grid(batch, ema or nets["G"])
            if images is not None:
                writer.add_image("train/input_output_target", images, step + 1)

        if (step + 1) % cfg.val_every == 0 or step + 1 == cfg.steps:
            exported = ema if ema is not None else nets["G"]
            record: dict[str, Any] = {"step": step + 1, "loss": running}
            if main_rank:
                if evaluate is not None:
                    exported.eval()
                    result = evaluate(exported)
                    exported.train(ema is None)
                    record.update(score=result["score"], **result.get("scalars", {}))
                    for name, value in result.get("scalars", {}).items():
                        writer.add_scalar(f"val/{name}", value, step + 1)
                    for name, image in result.get("images", {}).items():
                        writer.add_image(f"val/{name}", image, step + 1, dataformats="HWC")
                    if result["score"] > best:
                        best = result["score"]
                        save_model(exported, out / task.export_name, {**meta, "val": record})
                    log(f"step {step + 1}: loss {running:.4f}, val score {result['score']:.4f} (best {best:.4f})")
                history.append(record)
                save_model(exported, out / "last.safetensors", {**meta, "val": record})
                if evaluate is None:
                    save_model(exported, out / task.export_name, {**meta, "val": record})
                save_checkpoint(ckpt_path, {
                    "nets": {k: n.state_dict() for k, n in nets.items()},
                    "opts": {k: o.state_dict() for k, o in opts.items()},
                    "ema": ema.state_dict() if ema is not None else {},
                    "step": step + 1, "best": best, "history": json.dumps(history), "rng": rng_state(),
                    "config": cfg.to_dict(),
                })
            dist.barrier()
    dist.assert_in_sync(nets)
    if dist.world_size() > 1 and main_rank:
        log(f"all {dist.world_size()} ranks hold the same weights")
    if writer:
        writer.close()
    summary = {"steps": cfg.steps, "best_score": best, "seconds": time.perf_counter() - t0, "history": history,
               "losses": losses, "step_seconds": step_seconds}
    if main_rank:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
