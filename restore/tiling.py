"""Overlap-tile inference (Ronneberger et al. 2015, Fig. 2) for any model, 2D and 3D.

The image is covered by a grid of overlapping *output* tiles. Each one is predicted from an
input tile that adds the model's context margin around it (zero for a "same"-padding model,
``(tile - out_tile) / 2`` for a valid-convolution U-Net); where that input reaches past the
image, it is mirrored. Overlapping predictions are blended with a constant or Gaussian window.

Memory: the image is never copied or padded as a whole. Each input tile is read from the
image (float or uint8, left in its own dtype) by slicing, or by reflected indices at the
borders, straight into a preallocated batch buffer. The blend needs no full-size weight map:
the tile grid is a Cartesian product of 1-D start lists and the window is separable, so the sum
of weights at a pixel is a product of 1-D sums. Each tile's window is divided by that sum
before it is added, and the accumulator is the result. Peak memory is the image, the float32
output, and one batch of tiles with the model's activations.

Speed: on the CPU the model's work per tile is the same as in any tiler; what we save is around
it. ``fold_batchnorm`` folds eval-mode BatchNorm into the preceding convolution (of a copy of
the model), and ``reuse_freed_memory`` stops glibc from returning the model's large temporaries
to the kernel after every batch (which made the kernel page-fault and zero them again). Both are
on by default and can be switched off; ``benchmarks/bench_tiling.py --decompose`` shows each.

We write this ourselves rather than call MONAI's ``sliding_window_inference`` (the reference
in ``benchmarks/bench_tiling.py``): MONAI pads with constants, needs a float tensor of the whole
image plus a full-size count map, and has no notion of valid-convolution context margins.
"""
from __future__ import annotations

import contextlib
import copy
import ctypes
import itertools
import threading
import weakref
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.nn.utils.fusion import fuse_conv_bn_eval

from restore import budget

__all__ = ["tiled_inference", "tile_starts", "reflect_index", "window_1d", "probe_output_shape",
           "reuse_freed_memory", "fold_batchnorm"]

BLENDS = ("gaussian", "constant")


def tile_starts(size: int, tile: int, stride: int, align: int = 1) -> list[int]:
    """Starts of tiles of length ``tile`` every ``stride`` covering ``range(size)``.

    The last tile ends flush with the image (as in MONAI). With ``align > 1`` every start is a
    multiple of ``align`` (a valid U-Net of depth d is only shift-equivariant by multiples of
    2**d), so the last tile may instead reach past the end, by less than ``align``. An image
    shorter than one tile gets a single tile at 0.
    """
    if tile < 1 or stride < 1 or align < 1:
        raise ValueError("tile, stride and align must be positive")
    stride = max(align, stride // align * align)
    last = max(0, -(-(size - tile) // align) * align)  # ceil to a multiple of align
    starts = list(range(0, last, stride))
    return starts + [last]


def reflect_index(idx: Tensor, size: int) -> Tensor:
    """Map any integer positions into ``range(size)`` by mirroring at the edges (no edge repeat).

    Repeats the reflection for positions further out than ``size``, as ``numpy.pad(mode=
    "reflect")`` does, so a pad wider than the image needs no special case."""
    if size == 1:
        return torch.zeros_like(idx)
    period = 2 * (size - 1)
    idx = idx.remainder(period)
    return torch.where(idx >= size, period - idx, idx)


def window_1d(length: int, blend: str, sigma_scale: float = 0.125) -> Tensor:
    """1-D blending window in float64; the N-D window is the outer product of these.

    Gaussian as in MONAI / nnU-Net: sigma = ``sigma_scale * length``, peak 1 at the centre,
    floored so that every weight stays positive."""
    if blend == "constant":
        return torch.ones(length, dtype=torch.float64)
    if blend != "gaussian":
        raise ValueError(f"blend must be one of {BLENDS}, not {blend!r}")
    x = torch.arange(length, dtype=torch.float64) - (length - 1) / 2
    sigma = max(sigma_scale * length, 1e-6)
    return torch.exp(-0.5 * (x / sigma) ** 2).clamp_min(1e-6)


@dataclass
class _Axis:
    """Where the tiles lie along one spatial axis."""

    starts: list[int]  # output-tile starts (image coordinates)
    src: list[slice | Tensor]  # input-tile positions: a slice, or reflected indices at a border
    dst: list[slice]  # where each tile's kept output goes in the image
    crop: list[slice]  # which part of the output tile is kept
    weight: list[Tensor]  # float32 blend weight of the kept part, already normalised


def _plan_axis(size: int, tile: int, out_tile: int, stride: int, align: int, window: Tensor) -> _Axis:
    lo = (tile - out_tile) // 2  # context margin before the output tile (centre crop, as a U-Net does)
    starts = tile_starts(size, out_tile, stride, align)
    total = torch.zeros(size, dtype=torch.float64)  # sum of 1-D windows at each position
    dst, crop = [], []
    for s in starts:
        a, b = s, min(s + out_tile, size)
        dst.append(slice(a, b))
        crop.append(slice(0, b - a))
        total[a:b] += window[: b - a]
    src: list[slice | Tensor] = []
    weight = []
    for s, d in zip(starts, dst):
        first = s - lo
        if first >= 0 and first + tile <= size:
            src.append(slice(first, first + tile))
        else:
            src.append(reflect_index(torch.arange(first, first + tile), size))
        weight.append((window[: d.stop - d.start] / total[d]).float())
    return _Axis(starts, src, dst, crop, weight)


def _as_tuple(value: int | Sequence[int], n: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * n
    value = tuple(int(v) for v in value)
    if len(value) != n:
        raise ValueError(f"{name} has {len(value)} entries for {n} spatial dims")
    return value


def _model_device(model: Callable) -> torch.device:
    if isinstance(model, torch.nn.Module):
        for p in itertools.chain(model.parameters(), model.buffers()):
            return p.device
    return torch.device("cpu")


def _default_align(model: Callable) -> int:
    """2**depth for a valid-padding U-Net (its pooling grid), else 1."""
    config = getattr(model, "config", None)
    if getattr(config, "padding", None) == "valid" and isinstance(getattr(config, "depth", None), int):
        return 2 ** config.depth
    return 1


def probe_output_shape(model: Callable, tile: Sequence[int], in_channels: int,
                   device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> tuple[int, ...]:
    """(out_channels, *out_tile): the model's output shape for one input tile of size ``tile``.

    Read from ``model.config`` (``out_channels``, ``output_size``) when the model has one (our
    U-Nets); otherwise the model is run once on a tile of zeros."""
    config = getattr(model, "config", None)
    if callable(getattr(config, "output_size", None)) and isinstance(getattr(config, "out_channels", None), int):
        return (config.out_channels, *(config.output_size(t) for t in tile))
    with torch.inference_mode():
        y = model(torch.zeros((1, in_channels, *tile), device=device, dtype=dtype))
    return tuple(y.shape[1:])


_heap_lock = threading.Lock()
_heap_users = 0


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None
    except OSError:  # pragma: no cover - platforms without a C library handle
        return None


@contextlib.contextmanager
def reuse_freed_memory(enabled: bool = True):
    """Let glibc reuse the model's freed temporaries instead of handing them back to the kernel.

    glibc serves every block above its mmap threshold (32 MB at most, by default) with a fresh
    mmap and unmaps it on free, so a model whose activations are tens of MB gets each of them
    page-faulted and zeroed by the kernel again in every batch: for batches of four 512^2 tiles
    of the default U-Net that was about 45% of the CPU time (all of it system time). Inside
    this context the thresholds are raised, so freed blocks are reused; on leaving, they are
    set to glibc's own steady state (32 MB mmap, 64 MB trim) and the kept memory is released
    with ``malloc_trim``. The price is fragmentation: the heap's high-water mark sits above the
    model's live peak (about +200 MB for that U-Net batch) while the context is open. Nothing
    happens off glibc. The setting is process-wide; concurrent users are counted."""
    global _heap_users
    libc = _glibc() if enabled else None
    if libc is None:
        yield
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # from <malloc.h>
    with _heap_lock:
        _heap_users += 1
        if _heap_users == 1:
            libc.mallopt(m_mmap_threshold, 1 << 30)
            libc.mallopt(m_trim_threshold, 1 << 30)
    try:
        yield
    finally:
        with _heap_lock:
            _heap_users -= 1
            if _heap_users == 0:
                libc.mallopt(m_mmap_threshold, 32 << 20)
                libc.mallopt(m_trim_threshold, 64 << 20)
                libc.malloc_trim(0)


def _foldable_pairs(model: torch.nn.Module) -> list[tuple[torch.nn.Sequential, str, str]]:
    """(container, conv name, batch-norm name) for every conv directly followed by an eval-mode
    BatchNorm inside an ``nn.Sequential``, where the order of the two is certain."""
    pairs = []
    convs = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    for seq in model.modules():
        if not isinstance(seq, torch.nn.Sequential):
            continue
        items = list(seq._modules.items())
        for (cname, conv), (bname, bn) in zip(items, items[1:]):
            if (isinstance(conv, convs) and isinstance(bn, torch.nn.modules.batchnorm._BatchNorm)
                    and not bn.training and bn.running_mean is not None):
                pairs.append((seq, cname, bname))
    return pairs


def fold_batchnorm(model: Callable) -> Callable:
    """A copy of ``model`` with each conv -> eval-mode BatchNorm pair of an ``nn.Sequential``
    folded into one conv (``torch.nn.utils.fusion.fuse_conv_bn_eval``); ``model`` itself if
    there is none, or if it is not an ``nn.Module``.

    The same function up to float rounding (about 1e-7 relative), minus one pass over every
    normalised activation and its allocation: less time and a lower memory peak."""
    if not isinstance(model, torch.nn.Module):
        return model
    # The copy is kept for as long as ``model`` lives and its tensors are unchanged: a volume
    # segmented slice by slice calls this once per slice, and the deep copy cost ~60 ms each.
    # The key changes when a tensor is replaced or updated in place (an optimiser step bumps
    # ``_version``), so a model being trained is folded afresh.
    key = (tuple((t.data_ptr(), _version(t)) for t in itertools.chain(model.parameters(), model.buffers())),
           tuple(m.training for m in model.modules()))
    with _fold_lock:
        cached = _folded.get(model)
    if cached is not None and cached[0] == key:
        return model if cached[1] is None else cached[1]
    folded = None  # nothing to fold (the cache must not hold ``model`` itself: it would never go)
    if _foldable_pairs(model):
        folded = copy.deepcopy(model)
        for seq, cname, bname in _foldable_pairs(folded):
            conv, bn = seq._modules[cname], seq._modules[bname]
            seq._modules[cname] = fuse_conv_bn_eval(conv, bn)
            seq._modules[bname] = torch.nn.Identity()
    with _fold_lock:
        _folded[model] = (key, folded)
    return model if folded is None else folded


def _version(t: Tensor) -> int:
    try:
        return t._version
    except RuntimeError:  # an inference-mode tensor keeps no version counter
        return -1


# model -> (its tensors' and modules' state, its folded copy or None)
_folded: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_fold_lock = threading.Lock()


def _to_tensor(image: Tensor | np.ndarray) -> Tensor:
    if isinstance(image, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(image))
    if not isinstance(image, Tensor):
        raise TypeError(f"image must be a torch.Tensor or numpy array, not {type(image).__name__}")
    return image


def _read_tile(image: Tensor, src: Sequence[slice | Tensor], out: Tensor) -> None:
    """Copy one input tile (C, *tile) of ``image`` into ``out``, mirroring past the edges."""
    x = image
    for d, s in enumerate(src, start=1):
        if isinstance(s, slice):
            x = x.narrow(d, s.start, s.stop - s.start)
        else:  # gather only from the rows the tile touches, so the copy stays tile-sized
            first = int(s.min())
            x = x.narrow(d, first, int(s.max()) - first + 1).index_select(d, s - first)
    out.copy_(x)  # also casts uint8 / float64 to the buffer's dtype


def tiled_inference(
    model: Callable[[Tensor], Tensor],
    image: Tensor | np.ndarray,
    tile: int | Sequence[int],
    overlap: float = 0.25,
    blend: str = "gaussian",
    batch_size: int = 4,
    out_tile: int | Sequence[int] | None = None,
    out_channels: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    progress: bool = False,
    sigma_scale: float = 0.125,
    align: int | Sequence[int] | None = None,
    channels_last: bool = False,
    reuse_memory: bool = True,
    fold_bn: bool = True,
) -> Tensor:
    """Run ``model`` over ``image`` (C, *spatial) tile by tile; returns (out_channels, *spatial).

    ``model`` maps (N, C, *tile) to (N, K, *out_tile). ``tile`` is the input tile; ``out_tile``
    (default: probed, see :func:`probe_output_shape`) is the centred part of it that the model
    predicts, smaller than ``tile`` for valid convolutions. Output tiles overlap by
    ``overlap`` of their size and are blended with a ``"gaussian"`` (sigma = ``sigma_scale`` *
    out_tile) or ``"constant"`` window. Input is mirrored where a tile reaches past the image,
    so any image size works, including one smaller than a tile.

    Tiles go to ``device`` (default: the model's) as ``dtype`` (default float32) in batches of
    ``batch_size``, in ``channels_last`` layout if asked, and run under
    ``torch.inference_mode()``. uint8 input is cast, not rescaled: wrap the model
    (``lambda t: net(t / 255)``) to normalise. ``align`` (default 2**depth for a valid U-Net
    with a ``config``, else 1) keeps tile starts on the model's pooling grid. On the CPU,
    ``reuse_memory`` runs the model inside :func:`reuse_freed_memory`; ``fold_bn`` runs a copy
    made by :func:`fold_batchnorm` (the caller's model is left as it is). The result is float32
    on the CPU; a (H, W) or (D, H, W) image without channels is read as one channel.
    """
    image = _to_tensor(image)
    if image.device.type != "cpu":
        image = image.cpu()
    ndim = len(tile) if not isinstance(tile, int) else image.dim() - 1
    if image.dim() == ndim:
        image = image.unsqueeze(0)
    if ndim not in (1, 2, 3) or image.dim() != ndim + 1:
        raise ValueError(f"image must be (C, *spatial) with 1-3 spatial dims; got shape {tuple(image.shape)}")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), not {overlap}")
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    tile = _as_tuple(tile, ndim, "tile")
    device = torch.device(device) if device is not None else _model_device(model)
    if fold_bn:
        model = fold_batchnorm(model)
    dtype = dtype or torch.float32
    if out_tile is None or out_channels is None:
        probed = probe_output_shape(model, tile, image.shape[0], device, dtype)
        if out_channels is not None and probed[0] != out_channels:
            raise ValueError(f"model gives {probed[0]} channels, expected {out_channels}")
        out_channels, out_tile = probed[0], out_tile if out_tile is not None else probed[1:]
    out_tile = _as_tuple(out_tile, ndim, "out_tile")
    if any(o < 1 or o > t for o, t in zip(out_tile, tile)):
        raise ValueError(f"out_tile {out_tile} must be positive and no larger than tile {tile}")
    align = _as_tuple(align if align is not None else _default_align(model), ndim, "align")

    spatial = tuple(image.shape[1:])
    axes = [
        _plan_axis(n, t, o, max(1, int(o * (1 - overlap))), a, window_1d(o, blend, sigma_scale))
        for n, t, o, a in zip(spatial, tile, out_tile, align)
    ]
    grid = list(itertools.product(*[range(len(ax.starts)) for ax in axes]))

    # Tiles are gathered on the CPU in float32 (so reading uint8 costs one cast per tile) and
    # cast to ``dtype`` on the device; pinned memory lets that copy run asynchronously.
    pin = device.type == "cuda"
    buf = torch.empty((batch_size, image.shape[0], *tile), dtype=torch.float32, pin_memory=pin)
    if channels_last and ndim in (2, 3):
        fmt = torch.channels_last if ndim == 2 else torch.channels_last_3d
        buf = buf.contiguous(memory_format=fmt)
    out = torch.zeros((out_channels, *spatial), dtype=torch.float32)  # the accumulator is the result
    batches = range(0, len(grid), batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="tiles", unit="batch")
    with torch.inference_mode(), reuse_freed_memory(reuse_memory and device.type == "cpu"):
        for b0 in batches:
            budget.check()  # a request's time budget (restore.budget), between batches
            chunk = grid[b0:b0 + batch_size]
            for k, ids in enumerate(chunk):
                _read_tile(image, [ax.src[i] for ax, i in zip(axes, ids)], buf[k])
            x = buf[: len(chunk)]
            if device.type != "cpu" or dtype != torch.float32:
                x = x.to(device=device, dtype=dtype, non_blocking=pin)
            y = model(x)
            if not isinstance(y, Tensor) or tuple(y.shape[1:]) != (out_channels, *out_tile):
                got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
                raise ValueError(f"model output {got} does not match out_channels {out_channels}, out_tile {out_tile}")
            y = y.to(device="cpu", dtype=torch.float32)
            for k, ids in enumerate(chunk):
                sel = [(ax.dst[i], ax.crop[i], ax.weight[i]) for ax, i in zip(axes, ids)]
                w = sel[0][2]
                for d in range(1, ndim):  # outer product of the normalised 1-D windows
                    w = w.unsqueeze(-1) * sel[d][2]
                src = y[k][(slice(None), *[c for _, c, _ in sel])]
                out[(slice(None), *[d for d, _, _ in sel])].addcmul_(src, w)
            # Free this batch's output before the next forward, so that it does not sit in the
            # middle of the memory the model's temporaries are about to reuse.
            del y, src, w
    return out
