"""Inference in fp32, bf16 or fp16, with the combinations that make no sense refused.

Two ways to run a float32 model in lower precision:

- ``autocast(precision, device)``: the model stays float32 and each conv/linear casts its
  weight on every call. Nothing to prepare; right for one-off calls and for training.
- ``cast_model(model, precision)``: the parameters are cast once; ``run`` then feeds it inputs
  of its dtype. On a 2-core AVX512-BF16 CPU this took ~20% off a GFP-GAN forward against
  autocast (86 M parameters are not re-cast per face; benchmarks/bench_gfpgan.py). Networks
  that need float32 somewhere do it themselves (StyleGAN2's styles and its image).

bf16 on a CPU is allowed only where it is native (AVX512-BF16 or AMX: ``cpu_has_bf16``);
elsewhere it would be emulated, slower than fp32. "auto" takes bf16 on a CPU only where it
measured faster than fp32 (``cpu_bf16_is_fast``; benchmarks/bench_precision.py, every bundled
network and GFP-GAN): with AMX, whose tiles make bf16 convolutions fast; and on AMD's
AVX512-BF16 (a 2-core EPYC, Zen 5: 1.33-2.29x fp32). Not on Intel's AVX512-BF16 without AMX (a
2-core Xeon, model 207, AMX not exposed: 0.51-0.93x). fp16 is CUDA only: CPUs have no fast fp16
convolutions, and fp16's range needs the care a GPU kernel library takes.
"""
from __future__ import annotations

import contextlib
import functools

import torch
from torch import nn

from gan.precision_names import PRECISIONS

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_bf16() -> bool:
    """True on CPUs with native bf16 arithmetic (AVX512-BF16 or AMX), where bf16 autocast
    speeds convolutions up; elsewhere it would be emulated and slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@functools.cache  # the hardware does not change; "auto" is resolved per model and per task
def cpu_has_amx() -> bool:
    """True where the CPU's AMX tiles (amx_bf16) are usable: Linux's flags say so."""
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and "amx_bf16" in line.split() for line in f)
    except OSError:  # not Linux: no way to tell here, so "auto" stays fp32 on the CPU
        return False


@functools.cache
def cpu_vendor() -> str:
    """The CPU's vendor id from Linux's /proc/cpuinfo (``GenuineIntel``, ``AuthenticAMD``; "" elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("vendor_id")), "")
    except OSError:
        return ""


def cpu_bf16_is_fast() -> bool:
    """True where bf16 measured faster than fp32 on this kind of CPU: native bf16, and AMX or an
    AMD core (see the module's docstring for the figures behind it)."""
    return cpu_has_bf16() and (cpu_has_amx() or cpu_vendor() == "AuthenticAMD")


def resolve_precision(precision: str, device: str | torch.device = "cpu") -> str:
    """``precision`` checked against ``device`` ("auto": the fastest that is native there).
    Raises ValueError naming the reason for an unknown or unsupported combination."""
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if device.type == "cuda":
        # native only: the default (including_emulation=True) says True on pre-Ampere GPUs (a T4),
        # where bf16 is emulated and slower than fp16
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
        if precision == "auto":
            return "bf16" if bf16 else "fp16"
        if precision == "bf16" and not bf16:
            raise ValueError("this GPU has no bf16 support; use fp16 or fp32")
        return precision
    if device.type != "cpu":
        if precision in ("fp32", "auto"):
            return "fp32"
        raise ValueError(f"precision {precision!r} is supported on cpu and cuda only, not {device.type}")
    if precision == "auto":
        return "bf16" if cpu_bf16_is_fast() else "fp32"
    if precision == "fp16":
        raise ValueError("fp16 needs a CUDA device; on a CPU use bf16 (where it has AVX512-BF16/AMX) or fp32")
    if precision == "bf16" and not cpu_has_bf16():
        raise ValueError("this CPU has no native bf16 (AVX512-BF16 or AMX): bf16 would be emulated and slower "
                         "than fp32; use fp32")
    return precision


def autocast(precision: str, device: str | torch.device = "cpu") -> contextlib.AbstractContextManager:
    """The autocast context for ``precision`` on ``device`` (none for fp32)."""
    device = torch.device(device)
    precision = resolve_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])


def cast_model(model: nn.Module, precision: str, device: str | torch.device | None = None) -> nn.Module:
    """``model`` (in place) on ``device``, in eval mode, its floating tensors in ``precision``'s
    dtype and its 4-D ones channels-last."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    dtype = DTYPES[resolve_precision(precision, device)]
    model.to(device=device, dtype=dtype).eval()
    for t in list(model.parameters()) + list(model.buffers()):
        if t.ndim == 4:
            t.data = t.data.contiguous(memory_format=torch.channels_last)
    return model


def model_dtype(model: nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def run(model: nn.Module, x: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
    """``model(x)`` for inference in ``precision``, returned as float32.

    A model already cast to that precision (``cast_model``) gets inputs of its dtype; a
    float32 model runs under autocast. 4-D inputs go channels-last (oneDNN's and cuDNN's fast
    layout: with channels-last weights from ``cast_model``, ~1.3x on a GFP-GAN forward on a CPU)."""
    device = next(model.parameters()).device
    precision = resolve_precision(precision, device)
    dtype = DTYPES[precision]
    x = x.to(device)
    if x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    cast = model_dtype(model) == dtype
    if not cast and model_dtype(model) != torch.float32:
        raise ValueError(f"the model is in {model_dtype(model)}: cast it to {precision} with cast_model, "
                         "or run it in its own precision")
    with torch.inference_mode(), (contextlib.nullcontext() if cast else autocast(precision, device)):
        out = model(x.to(dtype) if cast else x)
    if isinstance(out, tuple):
        out = out[0]
    return out.float().contiguous()
