"""What a network is, written once beside it: the ``Descriptor`` each network file ends with.

Everything outside the network's own file reads these (``gan.nets.registry``): saving and
loading (``gan.serialize``), the named presets (``gan.presets``), the export specs
(``restore.export.specs``), and the wrappers that feed it real pictures. So a new network is
its file (config, module, descriptor) plus, if it has published weights, a manifest entry.

    DESCRIPTORS = (Descriptor("UNet", UNetConfig, UNet, kind="segmenter", inputs=_inputs,
                              output="logits", presets=PRESETS),)

As timm keeps a pretrained config beside each model: the idea, without a decorator that
fills a registry as a side effect of importing.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

KINDS = ("face prior", "image-to-image", "upscaler", "segmenter", "colorizer", "discriminator", "embedding",
         "edges")
RANGES = {"[-1, 1]": (-1.0, 1.0), "[0, 1]": (0.0, 1.0)}  # value ranges a port or an output can have


@dataclass(frozen=True)
class Port:
    """One input of a network: what it holds and which sizes it takes."""

    name: str
    channels: int
    range: str  # "[-1, 1]", "[0, 1]", or how the values are made (e.g. percentile normalisation)
    multiple: int = 1  # each spatial side a multiple of this (the exported axes stay symbolic)
    side: int | None = None  # the one side it takes (fixed size), or None
    dims: int = 2  # spatial dimensions: 2 images, 3 volumes
    content: str = "photo"  # what a test example shows: photo | sketch | reference | hints
    note: str = ""  # what a user of the exported file should know about this input

    @property
    def fixed(self) -> bool:
        return self.side is not None


@dataclass(frozen=True)
class Descriptor:
    """A network as the rest of the toolkit sees it.

    ``inputs(config, side)`` gives its ports for a test or export of about ``side`` pixels
    (None: the network's usual size), already rounded to what the network takes.
    ``load_published(state, config)`` reads a published checkpoint's key layout (the names in
    ``published``) into the network; None: a plain strict ``load_state_dict``.
    """

    name: str  # the architecture's name in saved files
    config: type
    model: type
    kind: str
    inputs: Callable[[Any, int | None], tuple[Port, ...]]
    output: str = "image"  # image | logits | probability | score | embedding
    output_range: str = "[-1, 1]"
    scale: int = 1  # output side / input side
    presets: Mapping[str, Any] = field(default_factory=dict)  # name -> config; "tiny" for tests
    variants: Mapping[str, Any] = field(default_factory=dict)  # more small configs the tests run
    published: tuple[str, ...] = ()  # the published checkpoint layouts it reads
    load_published: Callable[..., Any] | None = None
    read_published: Callable[[Any], Any] | None = None  # path -> network: a published file that is no torch pickle
    build: Callable[[Any], Any] | None = None  # config -> module, when the class takes no config
    exports: bool = True  # to ONNX (restore.export)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind {self.kind!r} is not one of {KINDS}")
        if "tiny" not in self.presets:
            raise ValueError(f"{self.name}: the presets need a 'tiny' one, for the tests")

    def make(self, config: Any = None) -> Any:
        """The network built from ``config`` (a config object or a dict; default: ``presets["default"]``,
        else the config class's defaults)."""
        if config is None:
            config = self.presets.get("default") or self.config()
        elif isinstance(config, Mapping):
            config = config_from_dict(self.config, dict(config))
        return self.build(config) if self.build is not None else self.model(config)

    def test_configs(self) -> dict[str, Any]:
        """The tiny preset and the variants: the small configs every registry test runs."""
        return {"tiny": self.presets["tiny"], **self.variants}


def pixels_in(x: Any, range_: str) -> Any:
    """A float tensor of 0..255 pixel values in a port's range (``[-1, 1]`` or ``[0, 1]``): the
    one place the wrappers' input scaling is written."""
    if range_.startswith("[-1, 1]"):
        return x / 127.5 - 1
    if range_.startswith("[0, 1]"):
        return x / 255
    raise ValueError(f"no pixel scaling for the range {range_!r}")


def unit_in(x: Any, range_: str) -> Any:
    """A float tensor of values in [0, 1] (a luminance, a picture read as floats) in a port's range."""
    if range_.startswith("[-1, 1]"):
        return x * 2 - 1
    if range_.startswith("[0, 1]"):
        return x
    raise ValueError(f"no scaling for the range {range_!r}")


def pixels_out(y: Any, range_: str) -> Any:
    """A network's output in ``range_`` back to 0..255 (float, rounded, clamped: ``.byte()`` it)."""
    low, high = RANGES[range_]
    return ((y.clamp(low, high) - low) * (255 / (high - low))).round()


def config_from_dict(config_cls: type, values: dict[str, Any]) -> Any:
    """``config_cls(**values)``, with one readable ValueError for keys it does not have."""
    import dataclasses

    names = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"{config_cls.__name__} has no field(s) {', '.join(unknown)}")
    return config_cls(**values)
