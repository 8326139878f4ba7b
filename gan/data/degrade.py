"""GFP-GAN's synthetic degradation model: makes (degraded, clean) pairs from clean images.

The pipeline and its order follow GFP-GAN's ``FFHQDegradationDataset`` (Wang et al. 2021):

    blur (random iso/aniso Gaussian kernel) -> downsample by a random factor (bilinear)
    -> Gaussian noise -> JPEG -> resize back (bilinear) -> colour jitter -> greyscale
    -> round to 8 bits

Kernels come from basicsr (``bivariate_Gaussian`` & co.); JPEG matches its ``add_jpg_compression``.
basicsr's ``random_*`` helpers draw from the global ``np.random``/``random`` state, which is
shared by every thread and data-loader worker; so here every random number is drawn from the
caller's ``np.random.Generator`` and basicsr's deterministic functions are called with those
values. The result depends on the seed alone.

Images are HxWx3 float32 RGB in [0, 1]. basicsr and GFP-GAN work in BGR; the only step where
the order matters is JPEG (OpenCV's encoder converts BGR to YCbCr), so it is fed BGR.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Union

import cv2
import numpy as np
from basicsr.data import degradations as bsr  # noqa: E402

from gan import _compat  # noqa: F401  (torchvision shim before basicsr is imported)

KERNELS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
Range = Union[tuple[float, float], None]


@dataclass(frozen=True)
class DegradeConfig:
    """Ranges and probabilities of every stage. A range of ``None`` (or a probability of 0)
    turns that stage off. Values are drawn uniformly from each range."""

    blur_kernel_size: int = 41                          # odd
    kernel_list: tuple[str, ...] = ("iso", "aniso")     # any of KERNELS
    kernel_prob: tuple[float, ...] = (0.5, 0.5)
    blur_sigma: Range = (0.1, 10.0)                     # pixels, for both axes of aniso kernels
    betag_range: tuple[float, float] = (0.5, 4.0)       # shape of generalized kernels
    betap_range: tuple[float, float] = (1.0, 2.0)       # shape of plateau kernels
    blur_prob: float = 1.0
    downsample_range: Range = (0.8, 8.0)                # factor; < 1 upsamples, as in GFP-GAN
    noise_range: Range = (0.0, 20.0)                    # sigma on the 0-255 scale
    noise_gray_prob: float = 0.0                        # same noise on all channels (GFP-GAN: 0)
    jpeg_range: Range = (60.0, 100.0)                   # quality
    color_jitter_prob: float = 0.3
    color_jitter_shift: float = 20.0                    # per-channel shift, 0-255 scale
    gray_prob: float = 0.01

    def __post_init__(self) -> None:
        # lists (e.g. from a JSON checkpoint) become tuples, so the config stays hashable
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, list):
                object.__setattr__(self, f.name, tuple(v))
        if self.blur_kernel_size % 2 != 1:
            raise ValueError(f"blur_kernel_size must be odd, got {self.blur_kernel_size}")
        if len(self.kernel_list) != len(self.kernel_prob) or not self.kernel_list:
            raise ValueError("kernel_list and kernel_prob must be non-empty and of equal length")
        unknown = set(self.kernel_list) - set(KERNELS)
        if unknown:
            raise ValueError(f"unknown kernel type(s) {sorted(unknown)}; choose from {KERNELS}")
        for name in ("blur_sigma", "downsample_range", "noise_range", "jpeg_range"):
            r = getattr(self, name)
            if r is not None and (len(r) != 2 or r[0] > r[1]):
                raise ValueError(f"{name} must be (low, high) with low <= high, got {r}")
        if self.downsample_range is not None and self.downsample_range[0] <= 0:
            raise ValueError("downsample_range must be positive")


Mixture = tuple[tuple[DegradeConfig, float], ...]

# GFP-GAN's training ranges (options/train_gfpgan_v1.yml).
GFPGAN = DegradeConfig()
# Old photos are mostly mildly degraded: a little blur, at most ~2.5x lost resolution, light
# grain, good JPEG, a weaker colour cast. A net trained on the full GFP-GAN ranges alone
# over-smooths such photos (see /work/shared/DATA.md), so train on a mixture of both.
MILD = DegradeConfig(blur_sigma=(0.1, 2.0), downsample_range=(1.0, 2.5), noise_range=(0.0, 8.0),
                     jpeg_range=(70.0, 100.0), color_jitter_prob=0.2, color_jitter_shift=10.0)

# Nothing at all: teaches a restorer to leave an already good photo alone.
NONE = DegradeConfig(blur_prob=0.0, downsample_range=None, noise_range=None, jpeg_range=None,
                     color_jitter_prob=0.0, gray_prob=0.0)

# Only JPEG: a downsized, re-saved photo (web copies, phone shares). No blur at all, so a
# restorer that only ever saw blurred input learns to sharpen, and over-sharpens these.
JPEG_ONLY = DegradeConfig(blur_prob=0.0, downsample_range=None, noise_range=None, jpeg_range=(30.0, 90.0),
                          color_jitter_prob=0.0, gray_prob=0.0)

DEGRADE_PRESETS: dict[str, DegradeConfig | Mixture] = {
    "gfpgan": GFPGAN,
    "mild": MILD,
    "mixed": ((MILD, 0.6), (GFPGAN, 0.4)),
    # Weighted towards what old photos are: mostly mild, some heavy, some untouched.
    "old-photo": ((MILD, 0.75), (GFPGAN, 0.15), (NONE, 0.10)),
    # Untouched: scores how much a restorer changes photos that need nothing.
    "none": NONE,
    "jpeg": JPEG_ONLY,
    # mixed, plus JPEG-only and untouched photos, so that a restorer leaves alone what is not
    # blurred. Measured, not bundled: it also leaves real degradations alone (weights/restorer.md).
    "photo": ((MILD, 0.5), (GFPGAN, 0.3), (JPEG_ONLY, 0.1), (NONE, 0.1)),
    # mixed, plus JPEG-only photos but no untouched ones: "photo" without the share that
    # taught a restorer to call real degradations clean.
    "mixed-jpeg": ((MILD, 0.55), (GFPGAN, 0.35), (JPEG_ONLY, 0.1)),
}

SeedLike = Union[int, Sequence[int], np.random.Generator, None]


def as_rng(seed: SeedLike) -> np.random.Generator:
    """A Generator from an int, a sequence of ints (e.g. ``(seed, index)``) or a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def sample_params(config: DegradeConfig, rng: np.random.Generator) -> dict[str, Any]:
    """Draw the parameters of one degradation (kernel, scale, noise sigma, JPEG quality, jitter,
    greyscale). Every stage draws the same numbers whether on or off, so turning one stage off
    leaves the draws of the others unchanged."""
    p: dict[str, Any] = {}
    probs = np.asarray(config.kernel_prob, dtype=np.float64)
    kind = config.kernel_list[int(rng.choice(len(probs), p=probs / probs.sum()))]
    lo, hi = config.blur_sigma or (0.0, 0.0)
    sig_x, sig_y = rng.uniform(lo, hi), rng.uniform(lo, hi)
    theta = rng.uniform(-math.pi, math.pi)
    beta = rng.uniform(*(config.betag_range if kind.startswith("generalized") else config.betap_range))
    use_blur = rng.uniform() < config.blur_prob
    if config.blur_sigma is not None and use_blur and hi > 0:
        p["blur"] = {"kernel": kind, "sigma_x": sig_x, "sigma_y": sig_y, "theta": theta, "beta": beta}
    scale = rng.uniform(*(config.downsample_range or (1.0, 1.0)))
    if config.downsample_range is not None:
        p["scale"] = scale
    sigma = rng.uniform(*(config.noise_range or (0.0, 0.0)))
    gray_noise = rng.uniform() < config.noise_gray_prob
    if config.noise_range is not None and config.noise_range[1] > 0:
        p["noise"] = {"sigma": sigma, "gray": bool(gray_noise)}
    quality = rng.uniform(*(config.jpeg_range or (100.0, 100.0)))
    if config.jpeg_range is not None:
        p["jpeg_quality"] = int(round(quality))
    jitter = rng.uniform(-1.0, 1.0, 3) * config.color_jitter_shift / 255.0
    if rng.uniform() < config.color_jitter_prob and config.color_jitter_shift > 0:
        p["color_jitter"] = jitter.astype(np.float32)
    p["gray"] = bool(rng.uniform() < config.gray_prob)
    return p


def make_kernel(size: int, blur: dict[str, Any]) -> np.ndarray:
    """The blur kernel of ``sample_params(...)["blur"]``, built by basicsr (sums to 1)."""
    kind, sx, sy, theta = blur["kernel"], blur["sigma_x"], blur["sigma_y"], blur["theta"]
    iso = kind.endswith("iso") and not kind.endswith("aniso")
    if iso:
        sy, theta = sx, 0.0
    if kind in ("iso", "aniso"):
        kernel = bsr.bivariate_Gaussian(size, sx, sy, theta, isotropic=iso)
    elif kind.startswith("generalized"):
        kernel = bsr.bivariate_generalized_Gaussian(size, sx, sy, theta, blur["beta"], isotropic=iso)
    else:
        kernel = bsr.bivariate_plateau(size, sx, sy, theta, blur["beta"], isotropic=iso)
    return kernel.astype(np.float32)


def apply_params(clean: np.ndarray, params: dict[str, Any], config: DegradeConfig,
                 rng: np.random.Generator) -> np.ndarray:
    """Degrade ``clean`` with drawn ``params``; ``rng`` supplies the noise pixels."""
    h, w = clean.shape[:2]
    img = clean
    if "blur" in params:
        img = cv2.filter2D(img, -1, make_kernel(config.blur_kernel_size, params["blur"]))
    if "scale" in params:
        size = (max(1, int(w // params["scale"])), max(1, int(h // params["scale"])))
        img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
    if "noise" in params:
        # Written out rather than basicsr's generate_gaussian_noise, which draws from np.random.
        shape = img.shape[:2] + (1,) if params["noise"]["gray"] else img.shape
        noise = rng.standard_normal(shape, dtype=np.float32) * np.float32(params["noise"]["sigma"] / 255.0)
        img = np.clip(img + noise, 0.0, 1.0)
    if "jpeg_quality" in params:
        img = jpeg(img, params["jpeg_quality"])
    if img.shape[:2] != (h, w):
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    if "color_jitter" in params:
        img = np.clip(img + params["color_jitter"], 0.0, 1.0)
    if params["gray"]:
        img = np.repeat(cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    # GFP-GAN rounds the low-quality image to 8 bits at the end
    return (np.clip(np.round(img * 255.0), 0, 255) / 255.0).astype(np.float32)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip of an RGB float image; the same bytes as basicsr's add_jpg_compression,
    but quantized to uint8 here, because OpenCV 5 logs a warning for float input. OpenCV's
    encoder expects BGR (its YCbCr conversion weights the channels), so it is given BGR."""
    bgr = np.clip(np.round(img[..., ::-1] * 255.0), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", bgr, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1], dtype=np.float32) / 255.0


def _check_image(clean: np.ndarray) -> np.ndarray:
    if clean.ndim != 3 or clean.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {clean.shape}")
    return np.ascontiguousarray(clean, dtype=np.float32)


def degrade(clean: np.ndarray, config: DegradeConfig, rng: np.random.Generator) -> np.ndarray:
    """One degraded copy of ``clean`` (HxWx3 float32 RGB in [0, 1]); same size, dtype, range."""
    clean = _check_image(clean)
    return apply_params(clean, sample_params(config, rng), config, rng)


class Degradation:
    """A degradation config, or a weighted mixture of configs, applied with a given seed.

    >>> deg = Degradation(DEGRADE_PRESETS["mixed"])
    >>> lq = deg(clean, seed)               # seed: int, (seed, index) or np.random.Generator
    """

    def __init__(self, config: DegradeConfig | Sequence[tuple[DegradeConfig, float]] | str):
        if isinstance(config, str):
            if config not in DEGRADE_PRESETS:
                raise ValueError(f"unknown degradation preset {config!r}; choose from {sorted(DEGRADE_PRESETS)}")
            config = DEGRADE_PRESETS[config]
        if isinstance(config, DegradeConfig):
            config = ((config, 1.0),)
        self.configs: tuple[DegradeConfig, ...] = tuple(c for c, _ in config)
        weights = np.asarray([wt for _, wt in config], dtype=np.float64)
        if not len(weights) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError("a mixture needs at least one config and non-negative weights with a positive sum")
        self.weights = weights / weights.sum()

    def choose(self, rng: np.random.Generator) -> int:
        """Index of the mixture component used for one image."""
        return int(rng.choice(len(self.weights), p=self.weights)) if len(self.weights) > 1 else 0

    def __call__(self, clean: np.ndarray, seed: SeedLike = None) -> np.ndarray:
        """The degraded image; ``seed=None`` draws fresh entropy (not reproducible)."""
        return self.sample(clean, seed)[0]

    def sample(self, clean: np.ndarray, seed: SeedLike = None) -> tuple[np.ndarray, dict[str, Any]]:
        """The degraded image and what was drawn for it (``component``: index in the mixture)."""
        rng = as_rng(seed)
        index = self.choose(rng)
        config = self.configs[index]
        params = sample_params(config, rng)
        return apply_params(_check_image(clean), params, config, rng), {"component": index, **params}

    def __repr__(self) -> str:
        return f"Degradation({list(zip(self.configs, self.weights.round(4).tolist()))})"

    def to_dict(self) -> list[dict[str, Any]]:
        """JSON-ready list of {"weight": w, **config} (for checkpoints and model cards)."""
        return [{"weight": float(w), **config_to_dict(c)} for c, w in zip(self.configs, self.weights)]

    @classmethod
    def from_dict(cls, items: list[dict[str, Any]]) -> Degradation:
        """Inverse of ``to_dict``."""
        return cls([(config_from_dict({k: v for k, v in d.items() if k != "weight"}), d["weight"])
                    for d in items])


def config_to_dict(config: DegradeConfig) -> dict[str, Any]:
    """The fields of a config as plain JSON values."""
    out = {}
    for f in fields(config):
        v = getattr(config, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def config_from_dict(d: dict[str, Any]) -> DegradeConfig:
    """A config from ``config_to_dict`` output (unknown keys raise)."""
    return replace(DegradeConfig(), **d)
