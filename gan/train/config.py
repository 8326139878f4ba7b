"""``TrainConfig``: everything a training run is, frozen, saved in every checkpoint and export
(``train_config``), so a resume or a reader of the file knows exactly how it was trained.

The fields every task shares are ``TrainConfig``'s own; what only one task reads is its section,
``TrainConfig.options``: ``SegmentOptions``, ``TranslateOptions``, ``SketchOptions``,
``FacesOptions`` or ``UpscaleOptions`` (the GAN tasks share ``GanOptions``' fields). ``task`` is
one of the task words of ``gan.tasks`` (``segment``, ``translate``, ``sketch``, ``faces``, ``upscale``).

Earlier versions had one flat config (``task="gan"``, ``loss=``, ``gan_weight=``, ``face=`` ...,
every task's fields side by side). That layout still works: ``TrainConfig(task="gan",
gan_weight=0.5)`` puts ``gan_weight`` in the section, ``cfg.gan_weight`` reads it from there,
and ``TrainConfig.from_dict`` reads the flat dicts old checkpoints and files hold.
"""
from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any, Union

from gan.losses.adversarial import GAN_KINDS
from gan.losses.segmentation import SEG_LOSSES
from gan.tasks import task_word


@dataclass(frozen=True)
class SegmentOptions:
    """The ``segment`` task's section."""

    loss: str = "dice_ce"  # a key of gan.losses.segmentation.SEG_LOSSES

    def __post_init__(self) -> None:
        if self.loss not in SEG_LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {sorted(SEG_LOSSES)}")


@dataclass(frozen=True)
class GanOptions:
    """The fields every GAN task's section has: its discriminator and the weights of its losses."""

    disc_arch: str = ""  # the discriminator
    disc: dict[str, Any] = field(default_factory=dict)  # its config as a dict
    gan_loss: str = "vanilla"  # one of GAN_KINDS
    gan_weight: float = 1.0
    l1_weight: float = 100.0
    perceptual_weight: float = 0.0  # needs a perceptual module passed to train()
    r1_weight: float = 0.0  # R1 on D's real inputs, applied lazily every r1_every steps
    r1_every: int = 16

    def __post_init__(self) -> None:
        if self.gan_loss not in GAN_KINDS:
            raise ValueError(f"unknown GAN loss {self.gan_loss!r}; choose one of {GAN_KINDS}")


@dataclass(frozen=True)
class TranslateOptions(GanOptions):
    """The ``translate`` task's section (pix2pix)."""


@dataclass(frozen=True)
class SketchOptions(GanOptions):
    """The ``sketch`` task's section (the reference-guided colorizer)."""

    guide_weights: tuple[float, float] = (0.3, 0.9)  # L1 of the grey and colour guide decoders
    aux_weight: float = 1.0  # the AC-GAN term (D's style regression), in D's and G's losses

    def __post_init__(self) -> None:
        object.__setattr__(self, "guide_weights", tuple(self.guide_weights))
        super().__post_init__()


@dataclass(frozen=True)
class FaceConfig:
    """The face-only settings of a ``faces`` run (GFP-GAN's published values by default)."""

    pyramid_weight: float = 1.0  # L1 of the U-Net's intermediate RGB outputs
    pyramid_until: int = 50_000  # GFP-GAN's remove_pyramid_loss: off from this step on
    style_weight: float = 50.0  # Gram style term of the perceptual loss
    component_weight: float = 1.0  # GAN loss of the facial-component discriminators (0: none built)
    component_style_weight: float = 200.0  # Gram style of their features
    component_gan_loss: str = "vanilla"
    component: dict[str, Any] | None = None  # ComponentDiscriminatorConfig fields (None: GFP-GAN's)
    identity_weight: float = 10.0  # ArcFace embedding L1; only with an identity network
    fix_decoder: bool = False  # freeze the StyleGAN2 prior: no gradients, not in the optimizer
    randomize_noise: bool = True  # fresh StyleGAN2 noise maps per step, as GFP-GAN trains
    equalized_lr: bool = True  # G's learning rate scaled per weight as GFP-GAN's layers scale it
    eye_size: int = 0  # crop sides; 0: GFP-GAN's 80 / 120 at 512, scaled (gan.components.crop_sizes)
    mouth_size: int = 0

    def __post_init__(self) -> None:
        if self.component_gan_loss not in GAN_KINDS:
            raise ValueError(f"unknown component GAN loss {self.component_gan_loss!r}; choose one of {GAN_KINDS}")

    @property
    def components(self) -> bool:
        return bool(self.component_weight or self.component_style_weight)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FacesOptions(GanOptions):
    """The ``faces`` task's section (GFP-GAN): the GAN fields, and the face-only ones in ``face``."""

    face: FaceConfig = field(default_factory=FaceConfig)  # a dict of its fields is taken too

    def __post_init__(self) -> None:
        if isinstance(self.face, dict):
            object.__setattr__(self, "face", FaceConfig(**self.face))
        super().__post_init__()


UPSCALE_STAGES = ("net", "gan")


@dataclass(frozen=True)
class UpscaleOptions(GanOptions):
    """The ``upscale`` task's section (Real-ESRGAN): ``stage`` "net" is Real-ESRNet (L1 alone, no
    discriminator), "gan" adds the perceptual and GAN terms against the U-Net discriminator. The
    defaults are train_realesrgan_x4plus.yml's loss weights."""

    disc_arch: str = "UNetDiscriminatorSN"
    l1_weight: float = 1.0
    perceptual_weight: float = 1.0  # needs a perceptual module passed to train(); "gan" stage only
    gan_weight: float = 0.1
    stage: str = "gan"

    def __post_init__(self) -> None:
        if self.stage not in UPSCALE_STAGES:
            raise ValueError(f"unknown upscale stage {self.stage!r}; choose one of {UPSCALE_STAGES}")
        super().__post_init__()


TaskOptions = Union[SegmentOptions, TranslateOptions, SketchOptions, FacesOptions, UpscaleOptions]

# The section of each task word; the trainable tasks are its keys.
OPTIONS: dict[str, type] = {"segment": SegmentOptions, "translate": TranslateOptions, "sketch": SketchOptions,
                            "faces": FacesOptions, "upscale": UpscaleOptions}
TASKS = tuple(OPTIONS)
# Every section's field names: the earlier flat config's task-specific fields.
FLAT_FIELDS = frozenset(f.name for section in OPTIONS.values() for f in fields(section))


@dataclass(frozen=True, init=False)
class TrainConfig:
    task: str = "segment"  # a task word: "segment", "translate", "sketch", "faces" or "upscale" (earlier words read)
    arch: str = "UNet"  # the network trained (the generator of a GAN)
    model: dict[str, Any] = field(default_factory=dict)  # its config as a dict
    steps: int = 2000
    batch_size: int = 8
    lr: float = 1e-3
    lr_d: float = 0.0  # 0: same as lr
    betas: tuple[float, float] = (0.9, 0.999)  # pix2pix: (0.5, 0.999)
    net_betas: dict[str, tuple[float, float]] = field(default_factory=dict)  # per network ("D", ...), else betas
    weight_decay: float = 1e-4
    warmup: int = 50  # linear warm-up steps, then cosine decay to 1% of lr
    ema: float = 0.0  # EMA decay of the trained network (0: off); exported when on
    amp: bool = False  # bf16 autocast on CUDA, or on CPUs with native bf16 (AVX512-BF16/AMX)
    channels_last: bool = True  # 2D: ~1.3x faster convolutions on CPU (oneDNN), no slower on GPU
    fused: bool = True  # the fused AdamW kernel (one kernel for all parameters)
    loader_threads: int = 1  # threads preparing the next batches while the step runs (0: inline)
    val_every: int = 200
    image_every: int = 200
    log_every: int = 10
    seed: int = 0
    options: TaskOptions | None = None  # the task's section (a dict of its fields is taken too)

    def __init__(self, task: str = "segment", options: TaskOptions | dict[str, Any] | None = None,
                 **kw: Any) -> None:
        """The common fields by name and the task's section as ``options`` (None: its defaults).
        A section field given by name (``gan_weight=``, the flat layout) goes into the section
        and overrides ``options``; another task's section field is ignored, as it always was."""
        try:
            task = task_word(task)
        except ValueError:
            task = ""
        if task not in OPTIONS:
            raise ValueError(f"task must be one of {TASKS}")
        common = {f.name: f for f in fields(TrainConfig) if f.name not in ("task", "options")}
        unknown = kw.keys() - common.keys() - FLAT_FIELDS
        if unknown:
            raise TypeError(f"TrainConfig() got unexpected keyword argument(s) {sorted(unknown)}")
        for name, f in common.items():
            value = kw[name] if name in kw else (f.default if f.default_factory is MISSING else f.default_factory())
            object.__setattr__(self, name, value)
        object.__setattr__(self, "betas", tuple(self.betas))
        object.__setattr__(self, "net_betas", {k: tuple(v) for k, v in self.net_betas.items()})
        section = OPTIONS[task]
        if options is None:
            options = section()
        elif isinstance(options, dict):
            options = section(**options)
        elif type(options) is not section:
            raise TypeError(f"task {task!r} takes {section.__name__} options, not {type(options).__name__}")
        own = {f.name for f in fields(section)}
        flat = {k: v for k, v in kw.items() if k in own}
        object.__setattr__(self, "task", task)
        object.__setattr__(self, "options", replace(options, **flat) if flat else options)

    def __getattr__(self, name: str) -> Any:
        """The flat layout's reads (``cfg.gan_weight``): the section's field of that name."""
        options = self.__dict__.get("options")
        if name in FLAT_FIELDS and hasattr(options, name):
            return getattr(options, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form saved in checkpoints and exported files (``train_config``)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """A config from its saved form: ``to_dict``'s, or an earlier version's flat one (every
        task's fields side by side, old task words); fields of other tasks' sections, and fields
        this version no longer has, are dropped."""
        known = {f.name for f in fields(cls)} | FLAT_FIELDS
        return cls(**{k: v for k, v in d.items() if k in known})
