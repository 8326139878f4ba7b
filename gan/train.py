"""One readable training loop, for segmentation and for GANs.

Read ``train`` top to bottom: build the networks and optimizers from the config, resume if
asked, then loop: draw the batch of this step, take the step (a segmentation step, or the
pix2pix GAN step: D on ``fake.detach()``, then D frozen and the G step, or the colorizer's
variant of it, or GFP-GAN's: G, then D, then the facial-component Ds, in gan/gfpgan_train.py),
update the EMA, log;
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import distributed as dist
from .blocks import center_crop
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .data import prefetch
from .gfpgan_train import gfpgan_param_groups, gfpgan_step, setup_networks
from .losses import GAN_KINDS, SEG_LOSSES, gan_loss, r1_penalty
from .serialize import arch_name, build_model, save_model

TASKS = ("segment", "gan", "colorize", "gfpgan")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainConfig:
    task: str = "segment"  # "segment", "gan", "colorize" (the sketch colorizer) or "gfpgan" (the face restorer)
    arch: str = "UNet"  # the network trained (the generator of a GAN)
    model: dict[str, Any] = field(default_factory=dict)  # its config as a dict
    disc_arch: str = ""  # GAN only: the discriminator
    disc: dict[str, Any] = field(default_factory=dict)
    steps: int = 2000
    batch_size: int = 8
    lr: float = 1e-3
    lr_d: float = 0.0  # 0: same as lr
    betas: tuple[float, float] = (0.9, 0.999)  # pix2pix: (0.5, 0.999)
    net_betas: dict[str, tuple[float, float]] = field(default_factory=dict)  # per network ("D", ...), else betas
    weight_decay: float = 1e-4
    warmup: int = 50  # linear warm-up steps, then cosine decay to 1% of lr
    loss: str = "dice_ce"  # segmentation: a key of gan.losses.SEG_LOSSES
    gan_loss: str = "vanilla"  # GAN: one of GAN_KINDS
    gan_weight: float = 1.0
    l1_weight: float = 100.0
    perceptual_weight: float = 0.0  # needs a perceptual module passed to train()
    r1_weight: float = 0.0  # R1 on D's real inputs, applied lazily every r1_every steps
    r1_every: int = 16
    guide_weights: tuple[float, float] = (0.3, 0.9)  # colorize: L1 of the grey and colour guide decoders
    aux_weight: float = 1.0  # colorize: the AC-GAN term (D's style regression), in D's and G's losses
    face: dict[str, Any] = field(default_factory=dict)  # gfpgan: gan.gfpgan_train.FaceConfig fields
    ema: float = 0.0  # EMA decay of the trained network (0: off); exported when on
    amp: bool = False  # bf16 autocast on CUDA, or on CPUs with native bf16 (AVX512-BF16/AMX)
    channels_last: bool = True  # 2D: ~1.3x faster convolutions on CPU (oneDNN), no slower on GPU
    fused: bool = True  # the fused AdamW kernel (one kernel for all parameters)
    loader_threads: int = 1  # threads preparing the next batches while the step runs (0: inline)
    val_every: int = 200
    image_every: int = 200
    log_every: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}")
        if self.task == "segment" and self.loss not in SEG_LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {sorted(SEG_LOSSES)}")
        if self.task in ("gan", "colorize", "gfpgan") and self.gan_loss not in GAN_KINDS:
            raise ValueError(f"unknown GAN loss {self.gan_loss!r}; choose one of {GAN_KINDS}")


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Warm-up then cosine; a pure function of the step, so resuming needs no scheduler state."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def param_groups(cfg: TrainConfig, key: str, net: nn.Module) -> list:
    """What the optimizer of network ``key`` updates: its trainable parameters; for the gfpgan
    task's G, groups with learning-rate scales (``lr_scale``: the equalised learning rate)."""
    if cfg.task == "gfpgan" and key == "G":
        return gfpgan_param_groups(cfg, net)
    return [p for p in net.parameters() if p.requires_grad]


def seg_loss(name: str, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Apply loss ``name``; targets are centre-cropped to the output of valid-padding models."""
    size = logits.shape[2:]
    target = center_crop(batch["target"][:, None], size)[:, 0]
    weight = center_crop(batch["weight"][:, None], size)[:, 0] if "weight" in batch else None
    return SEG_LOSSES[name](logits, target, weight_map=weight)


def segment_step(cfg: TrainConfig, nets: dict, opts: dict, batch: dict, step: int, **_) -> dict[str, torch.Tensor]:
    with dist.autocast(cfg.amp):
        loss = seg_loss(cfg.loss, nets["G"](batch["image"]), batch)
    dist.backward_step(loss, nets["G"], opts["G"])
    return {"loss": loss}


def gan_step(cfg: TrainConfig, nets: dict, opts: dict, batch: dict, step: int,
             perceptual: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """pix2pix's order: D learns on the detached fake, then G learns through a frozen D.
    With ``gan_weight == 0`` D is left out altogether (a reconstruction-only run, ~2x faster)."""
    G, D = nets["G"], nets["D"]
    a, b = batch["input"], batch["target"]
    with dist.autocast(cfg.amp):
        fake = G(a)
    if not cfg.gan_weight:
        with dist.autocast(cfg.amp):
            loss_l1 = F.l1_loss(fake.float(), b)
            loss_g = cfg.l1_weight * loss_l1
            out = {"l1": loss_l1}
            if perceptual is not None and cfg.perceptual_weight:
                out["perceptual"] = loss_p = perceptual(fake.float(), b.float())
                loss_g = loss_g + cfg.perceptual_weight * loss_p
        dist.backward_step(loss_g, G, opts["G"])
        return {"loss": loss_g, **out}
    # -- D step ---------------------------------------------------------------------------
    D.requires_grad_(True)
    lazy_r1 = cfg.r1_weight > 0 and step % cfg.r1_every == 0
    real = b.detach().requires_grad_(lazy_r1)
    with dist.autocast(cfg.amp):
        pred_real, pred_fake = D(real, condition=a), D(fake.detach(), condition=a)
        loss_d = 0.5 * (gan_loss(pred_real, True, cfg.gan_loss) + gan_loss(pred_fake, False, cfg.gan_loss))
    out = {"loss_d": loss_d}
    if lazy_r1:  # StyleGAN2's lazy regularisation: every N steps, scaled by N
        r1 = r1_penalty(pred_real.float(), real)
        loss_d = loss_d + cfg.r1_weight / 2 * r1 * cfg.r1_every
        out["r1"] = r1
    dist.backward_step(loss_d, D, opts["D"])
    # -- G step ---------------------------------------------------------------------------
    D.requires_grad_(False)
    with dist.autocast(cfg.amp):
        loss_gan = gan_loss(D(fake, condition=a), True, cfg.gan_loss, for_discriminator=False)
        loss_l1 = F.l1_loss(fake, b)
        loss_g = cfg.gan_weight * loss_gan + cfg.l1_weight * loss_l1
        if perceptual is not None and cfg.perceptual_weight:
            loss_p = perceptual(fake.float(), b.float())
            loss_g = loss_g + cfg.perceptual_weight * loss_p
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
    G, D = nets["G"], nets.get("D")
    sketch, ref, b = batch["input"], batch["reference"], batch["target"]
    paired = batch.get("paired")
    w = (paired / paired.sum().clamp(min=1)) if paired is not None else None

    def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # mean over the paired samples
        e = (x.float() - y.float()).abs().mean(dim=(1, 2, 3))
        return e.mean() if w is None else (e * w).sum()

    with dist.autocast(cfg.amp):
        style = G.style(ref)
        out = G.run(sketch, style, batch.get("hints"), guides=any(cfg.guide_weights))
    fake = out["image"]
    scalars = {"l1": l1(fake, b)}
    loss_g = cfg.l1_weight * scalars["l1"]
    if any(cfg.guide_weights):
        grey = (0.299 * b[:, :1] + 0.587 * b[:, 1:2] + 0.114 * b[:, 2:])
        scalars.update(guide_grey=l1(out["grey"], grey), guide_colour=l1(out["colour"], b))
        loss_g = loss_g + cfg.l1_weight * (cfg.guide_weights[0] * scalars["guide_grey"]
                                           + cfg.guide_weights[1] * scalars["guide_colour"])
    if perceptual is not None and cfg.perceptual_weight:
        scalars["perceptual"] = perceptual(fake.float(), b.float())
        loss_g = loss_g + cfg.perceptual_weight * scalars["perceptual"]
    if cfg.gan_weight and D is not None:
        aux = cfg.aux_weight > 0 and D.config.style_dim > 0
        with torch.no_grad(), dist.autocast(cfg.amp):
            style_real = G.style.fixed(G.style(b)).float()
        # -- D step: real/fake, and the style of the real image
        D.requires_grad_(True)
        with dist.autocast(cfg.amp):
            pred_real = D(b, condition=sketch, aux=aux)
            pred_fake = D(fake.detach(), condition=sketch)
            logit_real = pred_real[0] if aux else pred_real
            loss_d = 0.5 * (gan_loss(logit_real, True, cfg.gan_loss) + gan_loss(pred_fake, False, cfg.gan_loss))
        if aux:
            scalars["aux_d"] = F.mse_loss(pred_real[1].float(), style_real)
            loss_d = loss_d + cfg.aux_weight * scalars["aux_d"]
        dist.backward_step(loss_d, D, opts["D"])
        scalars["loss_d"] = loss_d
        # -- G step through a frozen D: look real, with the reference's style
        D.requires_grad_(False)
        with dist.autocast(cfg.amp):
            pred = D(fake, condition=sketch, aux=aux)
            scalars["gan"] = gan_loss(pred[0] if aux else pred, True, cfg.gan_loss, for_discriminator=False)
        loss_g = loss_g + cfg.gan_weight * scalars["gan"]
        if aux:
            scalars["aux_g"] = F.mse_loss(pred[1].float(), G.style.fixed(style).detach().float())
            loss_g = loss_g + cfg.gan_weight * cfg.aux_weight * scalars["aux_g"]
    dist.backward_step(loss_g, G, opts["G"])
    if D is not None:
        D.requires_grad_(True)
    return {"loss": loss_g, **scalars}


def generate(G: nn.Module, batch: dict) -> torch.Tensor:
    """The generator's output on a batch: the colorizer also takes the reference and hints."""
    if "reference" in batch:
        return G(batch["input"], batch["reference"], batch.get("hints"))
    return G(batch["input"])


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


def _grid(batch: dict, fake: torch.Tensor) -> torch.Tensor:
    """input (| reference) | output | target, rows of the batch, mapped from [-1, 1] to [0, 1]."""
    rows = [batch["input"][:4], *([batch["reference"][:4]] if "reference" in batch else []), fake[:4],
            batch["target"][:4]]
    rows = [r.expand(-1, 3, -1, -1) if r.shape[1] == 1 else r for r in rows]
    rows = [F.interpolate(r.float(), size=rows[-1].shape[2:]) if r.shape[1:] != rows[-1].shape[1:] else r.float()
            for r in rows]
    return ((torch.cat([torch.cat(list(r), dim=2) for r in rows], dim=1) + 1) / 2).clamp(0, 1)


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
    gfpgan task's identity loss (like ``perceptual``, never trained or saved)."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    out = Path(out)
    rank, device = dist.init()
    main_rank = rank == 0
    torch.manual_seed(cfg.seed)
    nets = {"G": build_model(cfg.arch, cfg.model)}
    if cfg.task in ("gan", "gfpgan") or (cfg.task == "colorize" and cfg.gan_weight):
        nets["D"] = build_model(cfg.disc_arch, cfg.disc)
    if cfg.task == "gfpgan":
        setup_networks(cfg, nets)  # the facial-component Ds; a frozen decoder stays out of the optimizer
    for k, state in (initial or {}).items():
        nets[k].load_state_dict(state, strict=True)
    layout = torch.contiguous_format
    if cfg.channels_last:
        layout = torch.channels_last if cfg.model.get("dims", 2) == 2 else torch.channels_last_3d
    nets = {k: n.to(device, memory_format=layout) for k, n in nets.items()}
    opts = {k: torch.optim.AdamW(param_groups(cfg, k, n), lr=cfg.lr, betas=tuple(cfg.net_betas.get(k, cfg.betas)), weight_decay=cfg.weight_decay,
                                 fused=cfg.fused or None, foreach=None if cfg.fused else False)
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
        if state["config"] != json.loads(json.dumps(asdict(cfg))):
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
        log("config " + json.dumps(asdict(cfg)))
    writer = SummaryWriter(str(out / "tb")) if main_rank else None
    export_name = "model.safetensors" if cfg.task == "segment" else "generator.safetensors"
    meta = {"task": {"segment": "segmentation", "gan": "translation", "colorize": "colorization",
                     "gfpgan": "face restoration"}[cfg.task],
            "train_config": asdict(cfg), **(meta or {})}
    step_fn = {"segment": segment_step, "gan": gan_step, "colorize": colorize_step, "gfpgan": gfpgan_step}[cfg.task]
    step_kw = {"identity": identity} if cfg.task == "gfpgan" else {}
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
        scalars = step_fn(cfg, nets, opts, batch, step, perceptual=perceptual, **step_kw)
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
        if writer and cfg.task != "segment" and (step + 1) % cfg.image_every == 0:
            with torch.no_grad():
                writer.add_image("train/input_output_target", _grid(batch, generate(ema or nets["G"], batch)), step + 1)

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
                        save_model(exported, out / export_name, {**meta, "val": record})
                    log(f"step {step + 1}: loss {running:.4f}, val score {result['score']:.4f} (best {best:.4f})")
                history.append(record)
                save_model(exported, out / "last.safetensors", {**meta, "val": record})
                if evaluate is None:
                    save_model(exported, out / export_name, {**meta, "val": record})
                save_checkpoint(ckpt_path, {
                    "nets": {k: n.state_dict() for k, n in nets.items()},
                    "opts": {k: o.state_dict() for k, o in opts.items()},
                    "ema": ema.state_dict() if ema is not None else {},
                    "step": step + 1, "best": best, "history": json.dumps(history), "rng": rng_state(),
                    "config": json.loads(json.dumps(asdict(cfg))),
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
