"""A bioimage.io package from elsewhere behind the toolkit's network interface (read by
``restore.segment.bioimageio``): its tensor description (format 0.5, or 0.4's axis strings),
its preprocessing applied to the whole image, its axes reordered, every tile padded to a size it
allows (and by the margin valid convolutions lose), and its output turned into class logits."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SPACE", "PackageConfig", "PackageError", "PackageNetwork", "PackageOnnx", "TensorSpec"]

SPACE = ("z", "y", "x")


class PackageError(ValueError):
    """A malformed or unsupported bioimage.io package."""


@dataclass(frozen=True)
class PackageConfig:
    """What ``restore.Segmenter`` and the tiler read of a network's config. ``padding="valid"``
    means "one tile size": ``valid_input_size`` gives it and the output keeps it."""
    dims: int
    in_channels: int
    out_channels: int
    padding: str = "same"
    depth: int = 0  # tiles of any side: the module pads them to the package's sizes
    fixed: tuple[int, ...] = ()

    def valid_input_size(self, at_least: int) -> int:
        return max(self.fixed) if self.fixed else at_least

    def output_size(self, size: int) -> int:
        return size

    def to_dict(self) -> dict[str, Any]:
        return {"dims": self.dims, "in_channels": self.in_channels, "out_channels": self.out_channels}


@dataclass
class TensorSpec:
    """One input and one output of a package, reduced to what running it needs."""
    in_axes: list[str]  # "batch", "channel", "z", "y", "x" in the tensor's order
    out_axes: list[str]
    in_channels: int
    out_channels: int
    sizes: dict[str, tuple[str, int, int]]  # space axis -> ("fixed", n, 0) or ("step", min, step)
    offsets: dict[str, int]  # output side - input side, per space axis (valid convolutions: negative)
    preprocessing: list[dict] = field(default_factory=list)
    output: str = "logits"  # "logits" (sigmoid/softmax after), "probabilities" (none)

    @property
    def dims(self) -> int:
        return sum(a in SPACE for a in self.in_axes)

    @classmethod
    def parse(cls, rdf: dict, where: Path) -> TensorSpec:
        i, o = rdf["inputs"][0], rdf["outputs"][0]
        v04 = str(rdf.get("format_version")).startswith("0.4.")
        in_axes, in_ch, sizes = _axes(i, "inputs.0", where, v04, is_input=True)
        out_axes, out_ch, out_sizes = _axes(o, "outputs.0", where, v04, is_input=False, in_channels=in_ch)
        if [a for a in in_axes if a in SPACE] != [a for a in out_axes if a in SPACE] or len(sizes) not in (2, 3):
            raise PackageError(f"{where}: fields 'inputs.0.axes' and 'outputs.0.axes' must have the same 2 or 3 "
                               f"space axes (z, y, x) for a segmenter; they are {in_axes} and {out_axes}")
        offsets = {a: out_sizes.get(a, 0) for a in sizes}
        for k, step in enumerate(i.get("preprocessing") or []):
            name = step.get("id") or step.get("name") if isinstance(step, dict) else None
            if name not in _PRE:
                raise PackageError(f"{where}: field 'inputs.0.preprocessing.{k}' is {name!r}; this toolkit applies "
                                   f"{', '.join(_PRE)}")
        post = [(s.get("id") or s.get("name")) if isinstance(s, dict) else None for s in o.get("postprocessing") or []]
        post = [p for p in post if p != "ensure_dtype"]
        if post in ([], ):
            output = "probabilities"
        elif post in (["sigmoid"], ["softmax"]):
            output = "logits"
        else:
            raise PackageError(f"{where}: field 'outputs.0.postprocessing' is {post}; a segmenter's output must be "
                               "class scores: logits followed by sigmoid or softmax, or probabilities")
        return cls(in_axes, out_axes, in_ch, out_ch, sizes, offsets, list(i.get("preprocessing") or []), output)


def _axes(t: dict, where_field: str, where: Path, v04: bool, *, is_input: bool, in_channels: int = 1):
    """(axis names in order, channels, space sizes or offsets) of a tensor description."""
    axes = t.get("axes")
    if not axes:
        raise PackageError(f"{where}: field '{where_field}.axes' is missing")
    names: list[str] = []
    channels = 1
    sizes: dict[str, Any] = {}
    letters = {"b": "batch", "c": "channel", "z": "z", "y": "y", "x": "x"}
    if v04 or isinstance(axes, str):
        if not isinstance(axes, str) or any(a not in letters for a in axes):
            raise PackageError(f"{where}: field '{where_field}.axes' is {axes!r}; b, c, z, y, x are read")
        names = [letters[a] for a in axes]
        shape = t.get("shape")
        if is_input:
            if isinstance(shape, list) and len(shape) == len(names):
                fixed = {n: ("fixed", int(s), 0) for n, s in zip(names, shape)}
            elif isinstance(shape, dict) and "min" in shape and "step" in shape:
                fixed = {n: ("step", int(m), int(s)) if s else ("fixed", int(m), 0)
                         for n, m, s in zip(names, shape["min"], shape["step"])}
            else:
                raise PackageError(f"{where}: field '{where_field}.shape' is missing or malformed")
            channels = fixed["channel"][1] if "channel" in fixed else 1
            sizes = {n: fixed[n] for n in names if n in SPACE}
        else:
            if isinstance(shape, dict):  # reference_tensor, scale, offset: out = in * scale + 2 * offset
                scale = shape.get("scale") or [1] * len(names)
                offset = shape.get("offset") or [0] * len(names)
                for n, sc, off in zip(names, scale, offset):
                    if n in SPACE:
                        if sc is None or float(sc) != 1.0:
                            raise PackageError(f"{where}: field '{where_field}.shape.scale' changes the output's sides")
                        sizes[n] = int(2 * float(off))
                    elif n == "channel":
                        channels = int(in_channels * float(sc or 0) + 2 * float(off))
            elif isinstance(shape, list) and len(shape) == len(names):
                sizes = {n: 0 for n in names if n in SPACE}
                channels = int(shape[names.index("channel")]) if "channel" in names else 1
            else:
                raise PackageError(f"{where}: field '{where_field}.shape' is missing or malformed")
            halo = t.get("halo") or [0] * len(names)
            sizes = {n: sizes.get(n, 0) - 2 * int(h) for n, h in zip(names, halo) if n in SPACE}
        return names, channels, sizes
    for k, a in enumerate(axes):
        if not isinstance(a, dict):
            raise PackageError(f"{where}: field '{where_field}.axes.{k}' is not a mapping")
        kind = a.get("type")
        if kind == "batch":
            names.append("batch")
        elif kind == "channel":
            names.append("channel")
            channels = len(a.get("channel_names") or []) or 1
        elif kind == "space" and a.get("id", "x") in SPACE:
            n = a.get("id", "x")
            names.append(n)
            size = a.get("size")
            if is_input:
                if isinstance(size, int):
                    sizes[n] = ("fixed", size, 0)
                elif isinstance(size, dict) and "min" in size and "step" in size:
                    sizes[n] = ("step", int(size["min"]), int(size["step"]))
                elif isinstance(size, dict) and "axis_id" in size:
                    sizes[n] = ("ref", str(size["axis_id"]), int(size.get("offset", 0)))
                else:
                    raise PackageError(f"{where}: field '{where_field}.axes.{k}.size' is missing or malformed")
            else:
                off = int(size.get("offset", 0)) if isinstance(size, dict) else 0
                if isinstance(a.get("scale"), (int, float)) and float(a["scale"]) != 1.0 and isinstance(size, dict):
                    raise PackageError(f"{where}: field '{where_field}.axes.{k}.scale' changes the output's sides")
                sizes[n] = off - 2 * int(a.get("halo") or 0)
        else:
            raise PackageError(f"{where}: field '{where_field}.axes.{k}' is a {kind} axis"
                               f"{' ' + repr(a.get('id')) if a.get('id') else ''}; a segmenter's tensors have "
                               "batch, channel and space (z, y, x) axes")
    return names, channels, sizes


def _reduce_axes(kwargs: dict, order: list[str]) -> tuple[int, ...] | None:
    """Which axes of the (C, *spatial) sample to reduce over: the package's ``axes`` (0.5 ids
    or 0.4 letters), the batch left out (one sample at a time); None: all."""
    axes = kwargs.get("axes")
    if axes is None:
        return None
    letters = {"c": "channel", "z": "z", "y": "y", "x": "x", "b": "batch"}
    names = [letters.get(a, a) for a in axes] if isinstance(axes, str) else [str(a) for a in axes]
    return tuple(order.index(n) for n in names if n in order)


def _per_channel(values: Any, c: int, dims: int) -> np.ndarray:
    v = np.asarray(values, np.float32).reshape(-1)
    return (v if v.size > 1 else np.repeat(v, c)).reshape(-1, *([1] * dims))


def _scale_range(x, kw, order):
    axes = _reduce_axes(kw, order)
    lo, hi = (np.percentile(x, float(kw.get(k, d)), axis=axes, keepdims=True)
              for k, d in (("min_percentile", 0.0), ("max_percentile", 100.0)))
    return (x - lo) / (hi - lo + float(kw.get("eps", 1e-6)))


def _zero_mean(x, kw, order):
    if kw.get("mode") == "fixed":
        return _fixed(x, kw, order)
    axes = _reduce_axes(kw, order)
    return (x - x.mean(axis=axes, keepdims=True)) / (x.std(axis=axes, keepdims=True) + float(kw.get("eps", 1e-6)))


def _fixed(x, kw, order):
    dims = x.ndim - 1
    return (x - _per_channel(kw["mean"], x.shape[0], dims)) / (_per_channel(kw["std"], x.shape[0], dims)
                                                                + float(kw.get("eps", 1e-6)))


def _scale_linear(x, kw, order):
    dims = x.ndim - 1
    return x * _per_channel(kw.get("gain", 1.0), x.shape[0], dims) + _per_channel(kw.get("offset", 0.0), x.shape[0], dims)


_PRE = {
    "scale_range": _scale_range,
    "zero_mean_unit_variance": _zero_mean,
    "fixed_zero_mean_unit_variance": _fixed,
    "scale_linear": _scale_linear,
    "clip": lambda x, kw, order: np.clip(x, kw.get("min"), kw.get("max")),
    "ensure_dtype": lambda x, kw, order: x,
}


class PackageNetwork(nn.Module):
    """A package's network behind the toolkit's interface: (N, C, *spatial) normalised tiles in,
    (N, K, *spatial) logits out, any tile size; ``prepare`` is the package's preprocessing."""

    def __init__(self, spec: TensorSpec, net: Any) -> None:
        super().__init__()
        self.spec = spec
        self.net = net
        # a fixed input size: tiles that size less what valid convolutions lose (padded back here)
        fixed = tuple(n - max(0, -spec.offsets.get(a, 0)) for a, (kind, n, _) in spec.sizes.items() if kind == "fixed")
        self.config = PackageConfig(spec.dims, spec.in_channels, spec.out_channels,
                                    padding="valid" if fixed else "same", fixed=fixed)

    def prepare(self, image: np.ndarray, in_channels: int, dims: int) -> np.ndarray:
        """Decoded image -> (C, *spatial) float32 through the package's own preprocessing."""
        from .preprocess import to_channels

        x = to_channels(np.asarray(image, np.float32), in_channels, dims).astype(np.float32)
        order = ["channel", *[a for a in self.spec.in_axes if a in SPACE]]
        for step in self.spec.preprocessing:
            name = step.get("id") or step.get("name")
            x = _PRE[name](x, step.get("kwargs") or {}, order).astype(np.float32)
        return np.nan_to_num(x)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.spec
        spatial = list(x.shape[2:])
        space = [a for a in s.in_axes if a in SPACE]
        margins = [max(0, -s.offsets.get(a, 0)) for a in space]  # what valid convolutions lose
        target = [_fit(s.sizes[a], n + m) for a, n, m in zip(space, spatial, margins)]
        pads: list[int] = []
        for n, t, m in reversed(list(zip(spatial, target, margins))):
            lo = m // 2
            pads += [lo, t - n - lo]
        if any(pads):
            mode = "reflect" if all(p < n for p, n in zip(pads, [v for v in reversed(spatial) for _ in (0, 1)])) \
                else "replicate"
            x = F.pad(x, pads, mode=mode)
        if "batch" in s.in_axes:
            y = _from_layout(self._run(_to_layout(x, s.in_axes)), s.out_axes)
        else:  # one sample at a time
            y = torch.cat([_from_layout(self._run(_to_layout(t[None], s.in_axes)), s.out_axes) for t in x])
        y = y.float()
        # the output's origin: the input's, moved by half of what valid convolutions lose
        idx = [slice(None), slice(None)]
        for a, n, t in zip(space, spatial, target):
            out = y.shape[2 + len(idx) - 2]
            lost = t - out
            lo = pads[2 * (len(space) - 1 - space.index(a))] - lost // 2
            idx.append(slice(lo, lo + n))
        y = y[tuple(idx)]
        if s.output == "probabilities":  # back to logits, which the segmenter turns into them again
            y = y.clamp(1e-6, 1 - 1e-6)
            y = torch.log(y / (1 - y)) if y.shape[1] == 1 else torch.log(y)
        return y


class PackageOnnx(PackageNetwork):
    """A package's ONNX weights run by onnxruntime (``OnnxNetwork``), behind the same interface."""

    def __init__(self, spec: TensorSpec, path: Path, device) -> None:
        from restore.export.backend import OnnxNetwork

        runner = OnnxNetwork(path, device)
        runner.multiples = []  # sizes are fitted here
        super().__init__(spec, runner)


def _fit(size: tuple[str, Any, int], n: int) -> int:
    kind, a, b = size
    if kind == "fixed":
        if n > a:
            raise PackageError(f"a tile of {n} px does not fit the package's fixed size {a}")
        return a
    if kind == "step":
        return a if n <= a else a + math.ceil((n - a) / b) * b
    return n  # a size that refers to another axis: as given


def _to_layout(x: torch.Tensor, axes: list[str]) -> torch.Tensor:
    """(N, C, *space) -> the package's order; a tensor without batch or channel axes loses them."""
    have = ["batch", "channel", *[a for a in axes if a in SPACE]]
    if "channel" not in axes:
        x = x[:, 0]
        have.remove("channel")
    if "batch" not in axes:
        x = x[0]
        have.remove("batch")
    return x.permute(*[have.index(a) for a in axes])


def _from_layout(y: torch.Tensor, axes: list[str]) -> torch.Tensor:
    want = ["batch", "channel", *[a for a in axes if a in SPACE]]
    have = list(axes)
    for a in ("batch", "channel"):
        if a not in have:
            y = y.unsqueeze(0)
            have.insert(0, a)
    return y.permute(*[have.index(a) for a in want])
