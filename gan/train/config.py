"""``TrainConfig``: everything a training run is, frozen, saved in every checkpoint and export
(``train_config``), so a resume or a reader of the file knows exactly how it was trained."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gan.losses.adversarial import GAN_KINDS
from gan.losses.segmentation import SEG_LOSSES

TASKS = ("segment", "gan", "colorize", "gfpgan")


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
    loss: str = "dice_ce"  # segmentation: a key of gan.losses.segmentation.SEG_LOSSES
    gan_loss: str = "vanilla"  # GAN: one of GAN_KINDS
    gan_weight: float = 1.0
    l1_weight: float = 100.0
    perceptual_weight: float = 0.0  # needs a perceptual module passed to train()
    r1_weight: float = 0.0  # R1 on D's real inputs, applied lazily every r1_every steps
    r1_every: int = 16
    guide_weights: tuple[float, float] = (0.3, 0.9)  # colorize: L1 of the grey and colour guide decoders
    aux_weight: float = 1.0  # colorize: the AC-GAN term (D's style regression), in D's and G's losses
    face: dict[str, Any] = field(default_factory=dict)  # gfpgan: gan.train.gfpgan.FaceConfig fields
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
