"""Real-ESRGAN's second-order degradation (Wang et al. 2021), made on the fly from clean crops.

    gt -> USM-sharpened gt (the L1 and perceptual target; the degradation starts from it too)
    first order:  blur (kernel1) -> resize (up / down / keep, area / bilinear / bicubic)
                  -> Gaussian or Poisson noise (colour or grey) -> JPEG
    second order: blur (kernel2, with probability 0.8) -> resize towards 1/scale
                  -> noise -> either [resize to 1/scale + final sinc] then JPEG, or JPEG then
                  [resize + final sinc] (even odds) -> rounded to 8 bits

Kernels: isotropic / anisotropic Gaussian, generalized Gaussian and plateau (basicsr's
``bivariate_*``), or with probability 0.1 a sinc (``circular_lowpass_kernel``), sizes 7..21;
the final sinc with probability 0.8. Probabilities and ranges are Real-ESRGAN's defaults
(options/train_realesrgan_x4plus.yml, identical in train_realesrnet_x4plus.yml), the order is
``RealESRNetModel.feed_data``'s and the kernels ``RealESRGANDataset.__getitem__``'s (realesrgan 0.3.0).

The pieces are basicsr's (a runtime dependency of this toolkit, gan/data/degrade.py): the kernels
and ``DiffJPEG``. What is written here, and why:
- basicsr's ``random_*`` helpers and its noise generators draw from the global ``np.random``,
  ``random`` and torch RNGs, which the training step and the batch-preparing threads share; here
  the parameters come from the caller's ``np.random.Generator`` and the noise pixels from a
  ``torch.Generator`` seeded by it, so a degradation is a pure function of its seed (an exact
  resume needs that). The noise functions below are basicsr's ``generate_*_noise_pt`` with a
  generator; tests/gan/data/test_realesrgan_degrade.py checks them against basicsr's.
- Real-ESRGAN degrades a whole batch with one resize scale and mixes batches through a 180-sample
  pool to make them diverse; here every sample draws its own parameters, which is what the pool
  approximates, so there is no pool. Real-ESRGAN degrades a 400 px crop and then cuts the 256 px
  training crop; here the training crop itself is degraded.
- Speed, measured per 256 px crop on one core: ``USMSharp``'s 51 x 51 Gaussian runs as two 1D
  passes (``usm_sharpen``: 0.56 s -> 0.08 s) and ``filter2D``'s blur through ``cv2.filter2D``
  (``blur``: 0.066 s -> 0.012 s); both equal basicsr's within float rounding (tested).

Images are (C, H, W) or (1, C, H, W) float32 RGB tensors in [0, 1] on the CPU.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from gan import _compat  # noqa: F401  (torchvision shim before basicsr is imported)
from basicsr.data import degradations as bsr  # noqa: E402
from basicsr.utils.diffjpeg import DiffJPEG  # noqa: E402

from .degrade import make_kernel  # noqa: E402

KERNELS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
MODES = ("area", "bilinear", "bicubic")  # Real-ESRGAN's random.choice of resize modes
KERNEL_SIZES = tuple(2 * v + 1 for v in range(3, 11))  # 7, 9, ..., 21 (RealESRGANDataset.kernel_range)
PAD_TO = 21  # every kernel is zero-padded to 21 x 21
Range = tuple[float, float]


@dataclass(frozen=True)
class SecondOrderConfig:
    """Real-ESRGAN's degradation settings; the defaults are train_realesrgan_x4plus.yml's."""

    # the first degradation
    kernel_list: tuple[str, ...] = KERNELS
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1
    blur_sigma: Range = (0.2, 3.0)
    betag_range: Range = (0.5, 4.0)
    betap_range: Range = (1.0, 2.0)
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: Range = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5  # else Poisson
    noise_range: Range = (1.0, 30.0)
    poisson_scale_range: Range = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: Range = (30.0, 95.0)
    # the second degradation
    second_blur_prob: float = 0.8
    kernel_list2: tuple[str, ...] = KERNELS
    kernel_prob2: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob2: float = 0.1
    blur_sigma2: Range = (0.2, 1.5)
    betag_range2: Range = (0.5, 4.0)
    betap_range2: Range = (1.0, 2.0)
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: Range = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: Range = (1.0, 25.0)
    poisson_scale_range2: Range = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: Range = (30.0, 95.0)
    # the final sinc filter
    final_sinc_prob: float = 0.8

    def __post_init__(self) -> None:
        for f in fields(self):  # lists (from JSON) become tuples, so the config stays hashable
            if isinstance(getattr(self, f.name), list):
                object.__setattr__(self, f.name, tuple(getattr(self, f.name)))
        for names, probs in ((self.kernel_list, self.kernel_prob), (self.kernel_list2, self.kernel_prob2)):
            if len(names) != len(probs) or not names or set(names) - set(KERNELS):
                raise ValueError(f"kernel lists must name some of {KERNELS}, one probability each")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


REALESRGAN = SecondOrderConfig()

SeedLike = Union[int, Sequence[int], np.random.Generator, None]


# ----- the stages ------------------------------------------------------------------------------


def _batch(img: torch.Tensor) -> torch.Tensor:
    return img[None] if img.dim() == 3 else img


def blur(img: torch.Tensor, kernel: np.ndarray | torch.Tensor) -> torch.Tensor:
    """basicsr's ``filter2D`` (reflect padding, correlation) with one kernel, run by OpenCV's
    ``cv2.filter2D`` (BORDER_REFLECT_101 is torch's reflect; a DFT for large kernels: 6x faster
    than the 21 x 21 conv on a 256 px crop, equal within 1e-6). A picture smaller than the
    kernel's reach (a tiny crop after a strong downscale) gets the kernel's centre, renormalised,
    since reflect padding cannot reach further than the picture."""
    import cv2

    img = _batch(img)
    k = np.asarray(kernel, dtype=np.float32)
    reach = min(img.shape[-2:]) - 1
    if k.shape[-1] // 2 > reach:
        c = k.shape[-1] // 2
        k = k[c - reach:c + reach + 1, c - reach:c + reach + 1]
        k = k / k.sum()
    out = [cv2.filter2D(np.ascontiguousarray(im.permute(1, 2, 0).numpy()), -1, k, borderType=cv2.BORDER_REFLECT_101)
           for im in img.float()]
    out = [o[..., None] if o.ndim == 2 else o for o in out]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def resize(img: torch.Tensor, mode: str, scale: float | None = None,
           size: tuple[int, int] | None = None) -> torch.Tensor:
    """``F.interpolate`` by a factor or to a size (at least 1 x 1), as Real-ESRGAN calls it."""
    img = _batch(img)
    if size is None:
        h, w = img.shape[-2:]
        if math.floor(h * scale) < 1 or math.floor(w * scale) < 1:
            size = (max(1, math.floor(h * scale)), max(1, math.floor(w * scale)))
        else:
            return F.interpolate(img, scale_factor=scale, mode=mode)
    return F.interpolate(img, size=(max(1, size[0]), max(1, size[1])), mode=mode)


def gaussian_noise(img: torch.Tensor, sigma: float, gray: bool, generator: torch.Generator) -> torch.Tensor:
    """basicsr's ``generate_gaussian_noise_pt`` (one image) added and clipped to [0, 1]: the same
    draws in the same order (grey noise first, when grey, then the colour noise it replaces)."""
    img = _batch(img)
    b, c, h, w = img.shape
    s = torch.tensor([sigma], dtype=img.dtype).view(b, 1, 1, 1)
    g = torch.tensor([1.0 if gray else 0.0], dtype=img.dtype).view(b, 1, 1, 1)
    if gray:
        noise_gray = (torch.randn(h, w, dtype=img.dtype, generator=generator) * s / 255.0).view(b, 1, h, w)
    noise = torch.randn(b, c, h, w, dtype=img.dtype, generator=generator) * s / 255.0
    if gray:
        noise = noise * (1 - g) + noise_gray * g
    return torch.clamp(img + noise, 0, 1)


def _poisson(img8: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    vals = 2 ** np.ceil(np.log2(len(torch.unique(img8))))
    v = img8.new_tensor([vals]).view(1, 1, 1, 1)
    return torch.poisson(img8 * v, generator=generator) / v - img8


def poisson_noise(img: torch.Tensor, scale: float, gray: bool, generator: torch.Generator) -> torch.Tensor:
    """basicsr's ``generate_poisson_noise_pt`` (one image) added and clipped to [0, 1]."""
    from torchvision.transforms.functional import rgb_to_grayscale

    img = _batch(img)
    b, c, h, w = img.shape
    g = torch.tensor([1.0 if gray else 0.0], dtype=img.dtype).view(b, 1, 1, 1)
    if gray:
        grey = torch.clamp((rgb_to_grayscale(img, num_output_channels=1) * 255.0).round(), 0, 255) / 255.0
        noise_gray = _poisson(grey, generator).expand(b, 3, h, w)
    img8 = torch.clamp((img * 255.0).round(), 0, 255) / 255.0
    noise = _poisson(img8, generator)
    if gray:
        noise = noise * (1 - g) + noise_gray * g
    s = torch.tensor([scale], dtype=img.dtype).view(b, 1, 1, 1)
    return torch.clamp(img + noise * s, 0, 1)


_JPEG: DiffJPEG | None = None
_USM: torch.Tensor | None = None  # cv2's 1D Gaussian of 51 taps


@torch.no_grad()
def jpeg(img: torch.Tensor, quality: float) -> torch.Tensor:
    """basicsr's ``DiffJPEG`` (not differentiable: plain rounding), as Real-ESRGAN compresses;
    the input clamped to [0, 1] first, as it does."""
    global _JPEG
    if _JPEG is None:
        _JPEG = DiffJPEG(differentiable=False).requires_grad_(False)  # its tables are Parameters
    img = torch.clamp(_batch(img), 0, 1)
    return _JPEG(img, quality=img.new_tensor([float(quality)]))


@torch.no_grad()
def usm_sharpen(img: torch.Tensor, weight: float = 0.5, threshold: float = 10.0) -> torch.Tensor:
    """basicsr's ``USMSharp`` (radius 50, weight 0.5, threshold 10): Real-ESRGAN's sharpened
    targets. Its 51 x 51 Gaussian is the outer product of cv2's 1D kernel, so it runs here as
    two 1D passes (about 25x faster than basicsr's 2D conv on a 256 px crop; equal to it within
    float rounding, tests/gan/data/test_realesrgan_degrade.py). Needs sides above 25 px (the
    kernel is reflect-padded)."""
    global _USM
    if _USM is None:
        import cv2

        _USM = torch.from_numpy(cv2.getGaussianKernel(51, 0)[:, 0].astype(np.float32))
    img = _batch(img)
    k = _USM.to(img.dtype)

    def gauss(x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = F.pad(x, (25, 25, 25, 25), mode="reflect").reshape(b * c, 1, h + 50, w + 50)
        x = F.conv2d(F.conv2d(x, k.view(1, 1, -1, 1)), k.view(1, 1, 1, -1))
        return x.reshape(b, c, h, w)

    residual = img - gauss(img)
    soft_mask = gauss((torch.abs(residual) * 255 > threshold).to(img.dtype))
    sharp = torch.clip(img + weight * residual, 0, 1)
    return soft_mask * sharp + (1 - soft_mask) * img


# ----- drawing the parameters ------------------------------------------------------------------


def as_rng(seed: SeedLike) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _beta(rng: np.random.Generator, low_high: Range) -> float:
    """basicsr's draw of a generalized/plateau shape: below or above 1, even odds."""
    return float(rng.uniform(low_high[0], 1) if rng.uniform() < 0.5 else rng.uniform(1, low_high[1]))


def draw_kernel(rng: np.random.Generator, kinds: Sequence[str], probs: Sequence[float], sinc_prob: float,
                sigma: Range, betag: Range, betap: Range) -> tuple[np.ndarray, dict[str, Any]]:
    """One blur kernel, zero-padded to 21 x 21, and what was drawn (RealESRGANDataset's draws:
    a size of 7..21, a sinc with ``sinc_prob``, else one of ``kinds`` by ``probs``)."""
    size = int(KERNEL_SIZES[int(rng.integers(len(KERNEL_SIZES)))])
    if rng.uniform() < sinc_prob:
        omega = float(rng.uniform(math.pi / 3 if size < 13 else math.pi / 5, math.pi))
        with np.errstate(invalid="ignore", divide="ignore"):  # basicsr divides 0/0 at the centre, then sets it
            kernel = bsr.circular_lowpass_kernel(omega, size, pad_to=False)
        info = {"kernel": "sinc", "omega": omega}
    else:
        p = np.asarray(probs, dtype=np.float64)
        kind = kinds[int(rng.choice(len(p), p=p / p.sum()))]
        sx = float(rng.uniform(*sigma))
        iso = not kind.endswith("aniso")
        sy, theta = (sx, 0.0) if iso else (float(rng.uniform(*sigma)), float(rng.uniform(-math.pi, math.pi)))
        beta = _beta(rng, betag) if kind.startswith("generalized") else _beta(rng, betap) if kind.startswith(
            "plateau") else 0.0
        info = {"kernel": kind, "sigma_x": sx, "sigma_y": sy, "theta": theta, "beta": beta}
        kernel = make_kernel(size, info)
    pad = (PAD_TO - size) // 2
    info["size"] = size
    return np.pad(kernel, ((pad, pad), (pad, pad))).astype(np.float32), info


def _resize_scale(rng: np.random.Generator, probs: Sequence[float], low_high: Range) -> float:
    way = int(rng.choice(3, p=np.asarray(probs, dtype=np.float64) / sum(probs)))  # up, down, keep
    return float(rng.uniform(1, low_high[1])) if way == 0 else float(rng.uniform(low_high[0], 1)) if way == 1 else 1.0


def _noise(rng: np.random.Generator, gaussian_prob: float, sigma: Range, poisson: Range, gray_prob: float) -> dict:
    if rng.uniform() < gaussian_prob:
        return {"type": "gaussian", "sigma": float(rng.uniform(*sigma)), "gray": bool(rng.uniform() < gray_prob)}
    return {"type": "poisson", "scale": float(rng.uniform(*poisson)), "gray": bool(rng.uniform() < gray_prob)}


def sample_params(config: SecondOrderConfig, rng: np.random.Generator) -> dict[str, Any]:
    """Everything one degradation draws: the three kernels (as the dataset draws them), then the
    resizes, noises, JPEG qualities and the final order (as ``feed_data`` draws them), and the
    seed of the noise pixels."""
    c = config
    k1, i1 = draw_kernel(rng, c.kernel_list, c.kernel_prob, c.sinc_prob, c.blur_sigma, c.betag_range, c.betap_range)
    k2, i2 = draw_kernel(rng, c.kernel_list2, c.kernel_prob2, c.sinc_prob2, c.blur_sigma2, c.betag_range2,
                         c.betap_range2)
    sinc = None
    if rng.uniform() < c.final_sinc_prob:
        size = int(KERNEL_SIZES[int(rng.integers(len(KERNEL_SIZES)))])
        with np.errstate(invalid="ignore", divide="ignore"):
            sinc = bsr.circular_lowpass_kernel(float(rng.uniform(math.pi / 3, math.pi)), size, pad_to=PAD_TO)
    p: dict[str, Any] = {"kernel1": k1, "blur1": i1, "kernel2": k2, "blur2": i2, "sinc": sinc}
    p["resize1"] = (_resize_scale(rng, c.resize_prob, c.resize_range), MODES[int(rng.integers(3))])
    p["noise1"] = _noise(rng, c.gaussian_noise_prob, c.noise_range, c.poisson_scale_range, c.gray_noise_prob)
    p["jpeg1"] = float(rng.uniform(*c.jpeg_range))
    p["second_blur"] = bool(rng.uniform() < c.second_blur_prob)
    p["resize2"] = (_resize_scale(rng, c.resize_prob2, c.resize_range2), MODES[int(rng.integers(3))])
    p["noise2"] = _noise(rng, c.gaussian_noise_prob2, c.noise_range2, c.poisson_scale_range2, c.gray_noise_prob2)
    p["sinc_first"] = bool(rng.uniform() < 0.5)
    p["final_mode"] = MODES[int(rng.integers(3))]
    p["jpeg2"] = float(rng.uniform(*c.jpeg_range2))
    p["noise_seed"] = int(rng.integers(2**62))
    return p


def _add_noise(img: torch.Tensor, noise: dict[str, Any], generator: torch.Generator) -> torch.Tensor:
    if noise["type"] == "gaussian":
        return gaussian_noise(img, noise["sigma"], noise["gray"], generator)
    return poisson_noise(img, noise["scale"], noise["gray"], generator)


@torch.no_grad()
def apply_params(gt: torch.Tensor, params: dict[str, Any], scale: int) -> torch.Tensor:
    """The low-quality picture made from ``gt`` ((C, H, W) or (1, C, H, W), [0, 1]) with drawn
    ``params``: (1, C, H // scale, W // scale), rounded to 8 bits."""
    gt = _batch(gt).float()
    h, w = gt.shape[-2:]
    generator = torch.Generator().manual_seed(params["noise_seed"])
    # -- the first degradation
    out = blur(gt, params["kernel1"])
    out = resize(out, params["resize1"][1], scale=params["resize1"][0])
    out = _add_noise(out, params["noise1"], generator)
    out = jpeg(out, params["jpeg1"])
    # -- the second degradation
    if params["second_blur"]:
        out = blur(out, params["kernel2"])
    s2, mode2 = params["resize2"]
    out = resize(out, mode2, size=(int(h / scale * s2), int(w / scale * s2)))
    out = _add_noise(out, params["noise2"], generator)
    # -- [resize back + the final sinc] and JPEG, in either order
    final = (h // scale, w // scale)

    def back(x: torch.Tensor) -> torch.Tensor:
        x = resize(x, params["final_mode"], size=final)
        return blur(x, params["sinc"]) if params["sinc"] is not None else x  # no sinc: a unit pulse, skipped

    out = jpeg(back(out), params["jpeg2"]) if params["sinc_first"] else back(jpeg(out, params["jpeg2"]))
    return torch.clamp((out * 255.0).round(), 0, 255) / 255.0


class SecondOrderDegradation:
    """Real-ESRGAN's degradation at ``scale`` (2 or 4), applied with a seed.

    >>> deg = SecondOrderDegradation(scale=4)
    >>> lq = deg(gt, seed=(run_seed, step, slot))      # (1, 3, H/4, W/4), the same for the same seed
    """

    def __init__(self, config: SecondOrderConfig = REALESRGAN, scale: int = 4) -> None:
        if scale < 1:
            raise ValueError(f"scale must be a positive integer, not {scale}")
        self.config, self.scale = config, int(scale)

    def sample(self, gt: torch.Tensor, seed: SeedLike = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """The degraded picture and what was drawn for it."""
        params = sample_params(self.config, as_rng(seed))
        return apply_params(gt, params, self.scale), params

    def __call__(self, gt: torch.Tensor, seed: SeedLike = None) -> torch.Tensor:
        return self.sample(gt, seed)[0]

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, **self.config.to_dict()}
