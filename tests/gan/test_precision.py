"""``gan.precision.resolve_precision`` on faked hardware (issue 34): what "auto" and the explicit
precisions give on CPUs of each vendor with and without AVX512-BF16 and AMX, and on GPUs with
and without bf16. The expectations are written out (from the measurements in the module's
docstring), never recomputed from the code's own formula.

What is faked is what the code reads: Linux's /proc/cpuinfo (``vendor_id``, ``flags``), oneDNN's
"native bf16" answer (``torch.ops.mkldnn._is_mkldnn_bf16_supported``) and ``torch.cuda``."""
from __future__ import annotations

import builtins
import io

import pytest
import torch

import gan.precision as precision
from gan.precision import resolve_precision

INTEL, AMD = "GenuineIntel", "AuthenticAMD"
AMX = "amx_bf16 amx_tile amx_int8"


def _clear_caches() -> None:
    for value in vars(precision).values():  # cpu_has_amx, cpu_vendor, ...: the hardware read once
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()


@pytest.fixture()
def cpu(monkeypatch):
    """``cpu(vendor, flags, onednn_bf16)`` fakes this machine's CPU; vendor None: no
    /proc/cpuinfo (not Linux)."""
    real_open = builtins.open

    def fake(vendor: str | None, flags: str, onednn_bf16: bool) -> None:
        text = (f"processor\t: 0\nvendor_id\t: {vendor}\nmodel name\t: a CPU\n"
                f"flags\t\t: fpu sse sse2 avx avx2 {flags}\n\n") if vendor is not None else None

        def fake_open(file, *args, **kwargs):
            if str(file) == "/proc/cpuinfo":
                if text is None:
                    raise FileNotFoundError(2, "No such file or directory", "/proc/cpuinfo")
                return io.StringIO(text)
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn_bf16)
        _clear_caches()

    yield fake
    monkeypatch.undo()
    _clear_caches()  # the real machine's answers again for the tests after


# (vendor, flags beyond AVX2, oneDNN's native bf16) -> (auto, explicit bf16: kept or refused)
CPUS = {
    "intel-amx (Sapphire Rapids)": (INTEL, f"avx512f avx512_bf16 {AMX}", True, "bf16", "bf16"),
    "intel-avx512bf16-no-amx (model 207, AMX hidden)": (INTEL, "avx512f avx512_bf16", True, "fp32", "bf16"),
    "intel-avx2": (INTEL, "", False, "fp32", "refused"),
    "intel-avx512-no-bf16": (INTEL, "avx512f avx512bw", False, "fp32", "refused"),
    "amd-avx512bf16 (Zen 4/5)": (AMD, "avx512f avx512_bf16", True, "bf16", "bf16"),
    "amd-avx2 (Zen 3)": (AMD, "", False, "fp32", "refused"),
    "amd-flags-but-onednn-says-no": (AMD, "avx512f avx512_bf16", False, "fp32", "refused"),
    "unknown-vendor-avx512bf16": ("", "avx512f avx512_bf16", True, "fp32", "bf16"),
    "unknown-vendor-amx": ("", f"avx512f avx512_bf16 {AMX}", True, "bf16", "bf16"),
    "not-linux (no /proc/cpuinfo)": (None, "", True, "fp32", "bf16"),
    "not-linux-no-bf16": (None, "", False, "fp32", "refused"),
}


@pytest.mark.parametrize("name", list(CPUS))
def test_auto_and_bf16_on_each_kind_of_cpu(cpu, name):
    vendor, flags, onednn_bf16, auto, bf16 = CPUS[name]
    cpu(vendor, flags, onednn_bf16)
    assert resolve_precision("auto", "cpu") == auto
    assert resolve_precision("auto", torch.device("cpu")) == auto
    assert resolve_precision("fp32", "cpu") == "fp32"
    if bf16 == "refused":
        with pytest.raises(ValueError, match=r"this CPU has no native bf16 \(AVX512-BF16 or AMX\)"):
            resolve_precision("bf16", "cpu")
    else:
        assert resolve_precision("bf16", "cpu") == bf16
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", "cpu")


def test_the_faked_cpu_is_what_the_helpers_read(cpu):
    cpu(AMD, "avx512f avx512_bf16", True)
    assert (precision.cpu_vendor(), precision.cpu_has_amx(), precision.cpu_has_bf16()) == (AMD, False, True)
    cpu(INTEL, f"avx512_bf16 {AMX}", True)
    assert (precision.cpu_vendor(), precision.cpu_has_amx(), precision.cpu_bf16_is_fast()) == (INTEL, True, True)
    cpu(None, "", False)
    assert (precision.cpu_vendor(), precision.cpu_has_amx(), precision.cpu_bf16_is_fast()) == ("", False, False)


def fake_gpu(monkeypatch, available: bool, native: bool, emulated: bool) -> None:
    """torch.cuda as on a machine whose GPU has bf16 natively (compute capability 8.0 and up),
    or can only emulate it (``is_bf16_supported``'s default ``including_emulation=True`` says
    True for those too), or neither; ``available`` False: a build that answers without a GPU
    (ROCm's ``is_bf16_supported`` is True without looking at the device)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: native or (including_emulation and emulated))


# (is_available, native bf16, emulated bf16) -> auto, and explicit bf16 kept or refused
GPUS = {
    "ampere-or-later": (True, True, True, "bf16", "bf16"),
    "pascal (no bf16 at all)": (True, False, False, "fp16", "refused"),
    "no-gpu-but-bf16-said": (False, True, True, "fp16", "refused"),
}


@pytest.mark.parametrize("cpu_kind", ["amd-avx512bf16 (Zen 4/5)", "intel-avx2"])
@pytest.mark.parametrize("name", list(GPUS))
def test_auto_and_bf16_on_each_kind_of_gpu(cpu, monkeypatch, name, cpu_kind):
    """On CUDA the CPU's flags do not matter; "auto" is bf16 where the GPU has it, else fp16."""
    available, native, emulated, auto, bf16 = GPUS[name]
    cpu(*CPUS[cpu_kind][:3])
    fake_gpu(monkeypatch, available, native, emulated)
    for device in ("cuda", "cuda:1", torch.device("cuda", 0)):
        assert resolve_precision("auto", device) == auto
        assert resolve_precision("fp16", device) == "fp16"
        assert resolve_precision("fp32", device) == "fp32"
        if bf16 == "refused":
            with pytest.raises(ValueError, match="this GPU has no bf16 support; use fp16 or fp32"):
                resolve_precision("bf16", device)
        else:
            assert resolve_precision("bf16", device) == "bf16"


def test_auto_is_fp16_on_a_gpu_that_only_emulates_bf16(cpu, monkeypatch):
    """A pre-Ampere GPU (a T4) emulates bf16, slower than fp16: auto is fp16 and bf16 is refused,
    as --precision's help says ('fp16 on older ones')."""
    cpu(INTEL, "", False)
    fake_gpu(monkeypatch, available=True, native=False, emulated=True)
    assert resolve_precision("auto", "cuda") == "fp16"
    with pytest.raises(ValueError, match="this GPU has no bf16 support"):
        resolve_precision("bf16", "cuda")


@pytest.mark.parametrize("device", ["mps", "meta"])
def test_other_devices_fp32_only(cpu, device):
    cpu(*CPUS["amd-avx512bf16 (Zen 4/5)"][:3])  # a CPU whose auto is bf16 does not leak into them
    assert resolve_precision("auto", device) == "fp32" and resolve_precision("fp32", device) == "fp32"
    for p in ("bf16", "fp16"):
        with pytest.raises(ValueError, match=f"precision '{p}' is supported on cpu and cuda only, not {device}"):
            resolve_precision(p, device)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_unknown_precision(device):
    with pytest.raises(ValueError, match=r"precision must be one of fp32, bf16, fp16, auto, not 'fp8'"):
        resolve_precision("fp8", device)
