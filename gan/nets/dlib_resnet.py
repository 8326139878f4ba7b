"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``, CC0-1.0): 150 px
RGB face chips -> 128-d descriptors (LFW 99.38%), read from dlib's own file without dlib.

The network is ``anet_type`` of dlib's ``dnn_face_recognition_ex.cpp``: a 7x7/2 convolution, an
affine (frozen batch norm), ReLU, 3x3/2 max pooling, then residual levels of 32, 64, 128, 256,
256 channels (3, 4, 3, 3, 1 blocks; every level after the first starts with a block that halves
the side), a global average and a 128 x 256 matrix without bias. Where dlib's layers differ
from the usual ones, this file does what dlib does:

- a strided convolution and the pools have no padding (dlib pads only stride-1 layers);
- the shortcut of a halving block is a 2x2/2 average pool of its input, and ``add_prev`` sums
  tensors of different shapes by zero-padding the smaller one at the end of each axis (more
  channels than the shortcut, or a side one pixel off: 8 px give a 3 px block and a 4 px pool);
- the input is ``(RGB - mean) / 256`` with the mean stored in the file.

``load_dat(path)`` streams dlib's serialisation (``dlib/serialize.h``, ``dlib/dnn/core.h``,
``layers.h``): the loss, a version number per layer from the top down, the input layer, then
each layer's details from the bottom up. Every tag, version and shape is checked against the
architecture, every size against the bytes left in the file; a damaged, truncated or foreign
file is one ValueError line.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .descriptor import Descriptor, Port

MEAN = (122.782, 117.001, 104.298)  # dlib's input_rgb_image_sized averages (read back from the file)


@dataclass(frozen=True)
class DlibResNetConfig:
    """The published network's shape (defaults) or a smaller one for tests."""

    widths: tuple[int, ...] = (32, 64, 128, 256, 256)  # channels of each level
    blocks: tuple[int, ...] = (3, 4, 3, 3, 1)  # residual blocks per level; levels after the first halve the side
    embedding: int = 128
    size: int = 150  # the chip's side
    mean: tuple[float, float, float] = MEAN

    def __post_init__(self) -> None:
        for name in ("widths", "blocks", "mean"):
            object.__setattr__(self, name, tuple(getattr(self, name)))  # JSON gives lists
        if len(self.widths) != len(self.blocks) or not self.widths or min(self.widths + self.blocks) < 1:
            raise ValueError("widths and blocks must be as many positive numbers")
        if len(self.mean) != 3 or self.embedding < 1:
            raise ValueError("mean needs three values and embedding a positive size")
        if _final_side(self) < 1:
            raise ValueError(f"a {self.size} px input shrinks to nothing through {len(self.widths)} levels")

    def to_dict(self) -> dict:
        return asdict(self)


def _final_side(c: DlibResNetConfig) -> int:
    side = ((c.size - 7) // 2 + 1 - 3) // 2 + 1  # the stem's convolution and max pool, unpadded
    for _ in c.widths[1:]:
        side = max((side - 3) // 2 + 1, (side - 2) // 2 + 1) if side >= 3 else 0
    return side


class Affine(nn.Module):
    """dlib's ``affine_``: a per-channel ``gamma * x + beta`` (batch norm frozen at training's end)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight[:, None, None] + self.bias[:, None, None]


def add_prev(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: the sum over the larger of each axis, the smaller tensor zero-padded."""
    if a.shape == b.shape:
        return a + b
    shape = [max(x, y) for x, y in zip(a.shape, b.shape)]

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, shape[3] - t.shape[3], 0, shape[2] - t.shape[2], 0, shape[1] - t.shape[1]))

    return pad(a) + pad(b)


class Block(nn.Module):
    """``ares`` / ``ares_down``: conv, affine, ReLU, conv, affine, + the input (or its 2x2 average
    when the block halves the side), ReLU."""

    def __init__(self, cin: int, cout: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv1 = nn.Conv2d(cin, cout, 3, 2 if down else 1, 0 if down else 1)
        self.affine1 = Affine(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.affine2 = Affine(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        return F.relu(add_prev(y, F.avg_pool2d(x, 2, 2) if self.down else x))


class DlibResNet(nn.Module):
    """RGB chips in [0, 1], (N, 3, size, size) -> (N, embedding) descriptors (not normalised)."""

    def __init__(self, config: DlibResNetConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or DlibResNetConfig()
        self.register_buffer("mean", torch.tensor(c.mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.conv = nn.Conv2d(3, c.widths[0], 7, 2, 0)
        self.affine = Affine(c.widths[0])
        blocks, cin = [], c.widths[0]
        for level, (width, n) in enumerate(zip(c.widths, c.blocks)):
            for i in range(n):
                blocks.append(Block(cin, width, down=level > 0 and i == 0))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, c.embedding, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x * 255 - self.mean) / 256  # dlib's input_rgb_image_sized, from pixels in [0, 1]
        x = F.max_pool2d(F.relu(self.affine(self.conv(x))), 3, 2)
        return self.fc(self.blocks(x).mean((2, 3)))


# --------------------------------------------------------------------------- dlib's serialisation
class _Stream:
    """dlib's serialised values, read one at a time from ``f`` (``size`` bytes); every read and
    every size checked, so a bad file stops at the first value that cannot be right."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f, self.size = f, size

    def left(self) -> int:
        return self.size - self.f.tell()

    def bytes(self, n: int, what: str) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise ValueError(f"ends inside {what} (at byte {self.f.tell()})")
        return data

    def int(self, what: str) -> int:
        """``pack_int``: a control byte (low nibble: byte count, bit 7: sign), then little-endian bytes."""
        head = self.bytes(1, what)[0]
        n = head & 0x0F
        if n == 0 or n > 8 or head & 0x70:
            raise ValueError(f"no integer where {what} should be (byte 0x{head:02x} at {self.f.tell() - 1})")
        value = int.from_bytes(self.bytes(n, what), "little")
        return -value if head & 0x80 else value

    def expect_int(self, want: int | tuple[int, ...], what: str) -> int:
        got = self.int(what)
        if got not in (want if isinstance(want, tuple) else (want,)):
            raise ValueError(f"{what} is {got}, expected {want}")
        return got

    def string(self, what: str, limit: int = 64) -> str:
        n = self.int(what)
        if not 0 <= n <= limit:
            raise ValueError(f"{what} would be a string of {n} bytes")
        try:
            return self.bytes(n, what).decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"{what} is not text") from None

    def tag(self, want: tuple[str, ...], what: str) -> str:
        got = self.string(what)
        if got not in want:
            raise ValueError(f"{what} is {got!r}, expected {' or '.join(map(repr, want))}")
        return got

    def float(self, what: str) -> float:
        """``float_details``: a mantissa and an exponent (value = mantissa * 2**exponent)."""
        mantissa, exponent = self.int(what), self.int(what)
        if exponent >= 32000:  # dlib's inf, -inf, nan
            raise ValueError(f"{what} is not a finite number")
        return float(np.ldexp(float(mantissa), exponent))

    def bool(self, what: str) -> bool:
        ch = self.bytes(1, what)
        if ch not in (b"0", b"1"):
            raise ValueError(f"no boolean where {what} should be")
        return ch == b"1"

    def dims(self, version: int, what: str) -> tuple[int, ...]:
        self.expect_int(version, f"{what}'s version")
        dims = tuple(self.int(f"{what}'s shape") for _ in range(4))
        if min(dims) < 0:
            raise ValueError(f"{what} has a negative dimension {dims}")
        return dims

    def tensor(self, what: str) -> np.ndarray:
        """A tensor: version 2, four dimensions, then raw little-endian float32."""
        dims = self.dims(2, what)
        count = int(np.prod(dims, dtype=object))
        if 4 * count > self.left():  # never allocate from a size the file cannot hold
            raise ValueError(f"{what} of shape {list(dims)} needs {4 * count} bytes, the file has {self.left()} left")
        data = np.frombuffer(self.bytes(4 * count, what), dtype="<f4").astype(np.float32)
        if not np.isfinite(data).all():
            raise ValueError(f"{what} holds values that are not finite")
        return data.reshape(dims)


def _layers(c: DlibResNetConfig) -> list[tuple]:
    """The network as dlib stacks it, from the input up: ("con", filters, side, stride),
    ("affine", channels), ("relu",), ("max_pool" | "avg_pool", side, stride), ("add_prev",),
    ("tag",) / ("skip",) (dlib's bookkeeping layers), ("fc", outputs, inputs)."""
    out: list[tuple] = [("con", c.widths[0], 7, 2), ("affine", c.widths[0]), ("relu",), ("max_pool", 3, 2)]
    for level, (width, n) in enumerate(zip(c.widths, c.blocks)):
        for i in range(n):
            down = level > 0 and i == 0
            out += [("tag",), ("con", width, 3, 2 if down else 1), ("affine", width), ("relu",), ("con", width, 3, 1),
                    ("affine", width)]
            out += [("tag",), ("skip",), ("avg_pool", 2, 2)] if down else []
            out += [("add_prev",), ("relu",)]
    return out + [("avg_pool", 0, 1), ("fc", c.embedding, c.widths[-1])]


def _details(s: _Stream, layer: tuple, what: str, params: list) -> None:
    """One layer's own fields (``serialize(item.details)``); its weights appended to ``params``."""
    kind = layer[0]
    if kind == "con":
        _, filters, side, stride = layer
        version = s.tag(("con_4", "con_5", "con_6"), what)
        values = s.tensor(f"{what}'s parameters")
        s.expect_int(filters, f"{what}'s filter count")
        s.expect_int(side, f"{what}'s rows"), s.expect_int(side, f"{what}'s columns")
        s.expect_int(stride, f"{what}'s vertical stride"), s.expect_int(stride, f"{what}'s horizontal stride")
        pad = 0 if stride != 1 else side // 2
        s.expect_int(pad, f"{what}'s vertical padding"), s.expect_int(pad, f"{what}'s horizontal padding")
        shape, bias = s.dims(1, f"{what}'s filters"), s.dims(1, f"{what}'s biases")
        for k in range(4):
            s.float(f"{what}'s learning rate and decay multipliers")
        use_bias = s.bool(f"{what}'s use_bias") if version != "con_4" else True
        if version == "con_6" and s.bool(f"{what}'s use_relu"):
            raise ValueError(f"{what} has a fused ReLU, which this network does not")
        n = int(np.prod(shape))
        if shape[0] != filters or shape[2:] != (side, side) or bias != (1, filters, 1, 1) or not use_bias \
                or values.size != n + filters:
            raise ValueError(f"{what} holds filters {list(shape)} and {values.size} values, not a {filters}-filter "
                             f"{side}x{side} convolution with bias")
        params.append((values.ravel()[:n].reshape(shape), values.ravel()[n:]))
    elif kind == "affine":
        version = s.tag(("affine_", "affine_2"), what)
        values = s.tensor(f"{what}'s parameters")
        gamma, beta = s.dims(1, f"{what}'s gamma"), s.dims(1, f"{what}'s beta")
        s.expect_int(0, f"{what}'s mode (0: convolutional)")
        if version == "affine_2" and s.bool(f"{what}'s disabled flag"):
            raise ValueError(f"{what} is disabled, which this network's are not")
        if gamma != (1, layer[1], 1, 1) or beta != gamma or values.size != 2 * layer[1]:
            raise ValueError(f"{what} holds {values.size} values as {list(gamma)}, not {layer[1]} channels")
        params.append((values.ravel()[: layer[1]], values.ravel()[layer[1]:]))
    elif kind == "relu":
        if s.tag(("relu_", "relu_2"), what) == "relu_2" and s.bool(f"{what}'s disabled flag"):
            raise ValueError(f"{what} is disabled, which this network's are not")
    elif kind in ("max_pool", "avg_pool"):
        _, side, stride = layer
        s.tag((f"{kind}_2",), what)
        s.expect_int(side, f"{what}'s rows"), s.expect_int(side, f"{what}'s columns")
        s.expect_int(stride, f"{what}'s vertical stride"), s.expect_int(stride, f"{what}'s horizontal stride")
        pad = 0 if stride != 1 else side // 2
        s.expect_int(pad, f"{what}'s vertical padding"), s.expect_int(pad, f"{what}'s horizontal padding")
    elif kind == "add_prev":
        s.tag(("add_prev_",), what)
    elif kind == "fc":
        _, outputs, inputs = layer
        version = s.tag(("fc_2", "fc_3"), what)
        s.expect_int(outputs, f"{what}'s outputs"), s.expect_int(inputs, f"{what}'s inputs")
        values = s.tensor(f"{what}'s parameters")
        weights, _ = s.dims(1, f"{what}'s weights"), s.dims(1, f"{what}'s biases")
        s.expect_int(1, f"{what}'s bias mode (1: none)")
        for k in range(4):
            s.float(f"{what}'s learning rate and decay multipliers")
        if version == "fc_3":
            s.bool(f"{what}'s use_bias")
        if weights != (inputs, outputs, 1, 1) or values.size != inputs * outputs:
            raise ValueError(f"{what} holds {values.size} values as {list(weights)}, not {inputs} x {outputs}")
        params.append((values.reshape(inputs, outputs),))


def read_dat(f: BinaryIO, size: int, config: DlibResNetConfig | None = None) -> DlibResNet:
    """The network in dlib's serialised ``anet_type`` (``size`` bytes from ``f``); ValueError otherwise."""
    c = config or DlibResNetConfig()
    s = _Stream(f, size)
    layers = _layers(c)
    s.expect_int(1, "the loss layer's version")
    if s.tag(("loss_metric_", "loss_metric_2"), "the loss layer") == "loss_metric_2":
        s.float("the loss' margin"), s.float("the loss' distance threshold")
    versions = {}  # dlib writes each layer's version from the top down, before anything else
    for i in range(len(layers) - 1, 0, -1):
        kind = layers[i][0]
        versions[i] = s.expect_int(1 if kind in ("tag", "skip") else (1, 2), f"layer {i}'s ({kind}) version")
    versions[0] = s.expect_int((2, 3), "the input layer's version")  # the convolution on the input, with it
    s.tag(("input_rgb_image_sized",), "the input layer")
    mean = tuple(s.float("the input's channel mean") for _ in range(3))
    s.expect_int(c.size, "the input's rows"), s.expect_int(c.size, "the input's columns")
    params: list = []
    for i, layer in enumerate(layers):  # from the bottom up: each layer's details and training state
        if layer[0] in ("tag", "skip"):
            continue
        what = f"layer {i} ({layer[0]})"
        _details(s, layer, what, params)
        for flag in ("setup", "gradient", "disabled"):
            s.bool(f"{what}'s {flag} flag")
        # x_grad, the cached output, then params_grad (version 2) or, on the input, grad_final
        for _ in range(3 if i == 0 or versions[i] == 2 else 2):
            s.tensor(f"{what}'s training state")
        if i == 0 and versions[0] == 3:
            s.expect_int(1, "the input layer's sample expansion factor")
    if s.left() != 0:
        raise ValueError(f"has {s.left()} bytes after the network")
    return _network(c, mean, params)


def _network(c: DlibResNetConfig, mean: tuple, params: list) -> DlibResNet:
    if any(abs(a - b) > 0.01 for a, b in zip(mean, c.mean)):
        c = DlibResNetConfig(c.widths, c.blocks, c.embedding, c.size, tuple(round(m, 6) for m in mean))
    net = DlibResNet(c)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    affines = [m for m in net.modules() if isinstance(m, Affine)]
    it = iter(params)
    with torch.no_grad():
        for m in sorted(convs + affines, key=_order(net)):
            a, b = next(it)
            m.weight.copy_(torch.from_numpy(a))
            m.bias.copy_(torch.from_numpy(b))
        net.fc.weight.copy_(torch.from_numpy(next(it)[0].T.copy()))
    return net.eval().requires_grad_(False)


def _order(net: nn.Module):
    """Modules in dlib's bottom-up order (conv1, affine1, conv2, affine2 within a block)."""
    rank = {id(m): i for i, m in enumerate(m for m in net.modules() if isinstance(m, (nn.Conv2d, Affine)))}
    return lambda m: rank[id(m)]


def load_dat(path: str | os.PathLike, config: DlibResNetConfig | None = None) -> DlibResNet:
    """``dlib_face_recognition_resnet_model_v1.dat`` -> the network, frozen, in eval mode.
    ValueError, one line naming the file, when it is not that network."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return read_dat(f, os.fstat(f.fileno()).st_size, config)
    except ValueError as e:
        raise ValueError(f"{path} is not dlib's face-recognition network: {' '.join(str(e).split())[:300]}") from None


def _inputs(c: DlibResNetConfig, side: int | None) -> tuple[Port, ...]:
    return (Port("input", 3, "[0, 1]", side=c.size,
                 note=f"an RGB face chip of {c.size} px cut as dlib's get_face_chip (padding 0.25); fixed size"),)


DESCRIPTORS = (Descriptor(
    "DlibResNet", DlibResNetConfig, DlibResNet, kind="embedding", inputs=_inputs, output="embedding",
    output_range="unbounded",
    presets={"tiny": DlibResNetConfig(widths=(8, 8, 16), blocks=(1, 1, 1), embedding=16, size=64),
             "default": DlibResNetConfig()},
    published=("dlib's dlib_face_recognition_resnet_model_v1.dat (dlib's own serialisation, read by load_dat)",),
    read_published=load_dat),)
