"""The reference-guided sketch colorizer (Zhang, Ji, Lin 2017, "Style Transfer for Anime Sketches
with Enhanced Residual U-net and Auxiliary Classifier GAN").

    sketch (+ sparse colour hints) -> pixel-unshuffle 2 -> 3x3 head
      -> [residual blocks, 2x2 stride-2 down] x depth                  (encoder; skips kept)
      -> guide decoder 1: a greyscale image                            (entry of the middle)
      -> middle residual blocks, each modulated by the style vector    (FiLM: h * (1 + g) + b)
      -> guide decoder 2: a colour image                               (exit of the middle)
      -> [2x2 up, concatenate the skip, 1x1 fuse, residual blocks] x depth -> 3x3 tail
      -> pixel-shuffle -> tanh, or + the sketch (``from_sketch``)
    reference -> style vector = frozen ImageNet backbone (VGG19 fc1 as the paper, or MobileNetV2's
                 pooled features) or a small trainable encoder, plus a soft colour histogram
    reference -> its own encoder's features, which the sketch's features attend to at the
                 bottleneck and at ``attention - 1`` finer decoder levels (``attention`` > 0;
                 gan/nets/correspondence.py, SCFT): where each colour goes

``from_sketch``: the tail starts at zero and its output is added to the sketch (no tanh, whose
saturation would block the gradient at white and black; values are clamped at inference), so
training begins from the lines on white paper and only has to learn the colours; without it a
short CPU run spends its first hundreds of steps relearning the lines (measured: 200 steps gave
a grey, blurred picture).

``style_in_decoder``: the decoder levels are modulated by the style too. With the middle alone
(the paper's choice), a 1,500-step CPU run coloured every picture in one hue whatever the
reference: the style has to survive three upsampling levels that also carry the skips.

Why guides: skips let a U-Net copy the sketch's detail around its middle, so the middle layers,
where the style enters, would learn little; the guide decoders read the middle directly (losses
weighted 0.3 and 0.9 in the paper) and so keep them learning. They are only run in training.

Its discriminator, a PatchGAN with an auxiliary style head (the paper's AC-GAN), is in
gan/nets/ac_patchgan.py. Images in [-1, 1].
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ResidualBlock
from .correspondence import CrossAttention, ReferenceEncoder, SketchMatch, xdog_torch
from .pix2pix import _crop, _pad_to_multiple
from .descriptor import Descriptor, Port

STYLE_ENCODERS = ("trainable", "mobilenet_v2", "vgg19", "none")
BACKBONE_DIMS = {"mobilenet_v2": 1280, "vgg19": 4096}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ColorizerConfig:
    """Everything needed to rebuild the colorizer; saved as JSON beside its weights."""

    base_channels: int = 32  # width of the top level (after pixel-unshuffle), doubled per level
    depth: int = 3  # stride-2 levels below the top one
    blocks: int = 1  # residual blocks per encoder and decoder level
    middle_blocks: int = 4  # style-modulated residual blocks at the bottom
    max_channels: int = 256
    pixel_unshuffle: int = 2  # fold 2x2 pixels into channels first (1: off)
    style_encoder: str = "trainable"  # one of STYLE_ENCODERS
    style_weights: str = ""  # backbone file, read at construction only (the weights then travel in the state dict)
    style_channels: int = 128  # length of the trainable encoder's vector
    style_size: int = 128  # the reference is resized to this square before encoding
    palette_bins: int = 4  # + a soft RGB histogram with bins**3 entries (0: none)
    hints: bool = True  # a second input: sparse colour strokes (RGB and a mask, 4 channels)
    guide_channels: int = 32  # width of the guide decoders
    style_in_decoder: bool = True  # FiLM the decoder levels too, not only the middle (the paper's place)
    from_sketch: bool = True  # output = sketch + net, no tanh: starts as the sketch itself (lines, white paper)
    attention: int = 0  # sketch-to-reference cross-attention levels, from the bottleneck up (0: off)
    attention_heads: int = 4
    match_level: int = -1  # decoder level of the sketch-keyed correspondence (SketchMatch; -1: off)

    def __post_init__(self) -> None:
        if self.style_encoder not in STYLE_ENCODERS:
            raise ValueError(f"unknown style encoder {self.style_encoder!r}; choose one of {STYLE_ENCODERS}")
        if min(self.base_channels, self.pixel_unshuffle, self.style_size, self.guide_channels) < 1:
            raise ValueError("base_channels, pixel_unshuffle, style_size and guide_channels must be positive")
        if self.depth < 1 or self.blocks < 0 or self.middle_blocks < 1 or self.palette_bins < 0:
            raise ValueError("depth and middle_blocks must be >= 1, blocks and palette_bins >= 0")
        if self.palette_bins == 1:
            raise ValueError("palette_bins must be 0 (off) or >= 2")
        if self.style_dim < 1:
            raise ValueError("no style: choose a style encoder or palette_bins >= 2")
        if not 0 <= self.attention <= self.depth + 1:
            raise ValueError(f"attention must be 0..{self.depth + 1} levels (depth + 1)")
        if not -1 <= self.match_level < self.depth:
            raise ValueError(f"match_level must be -1 (off) or a decoder level 0..{self.depth - 1}")

    @property
    def attention_levels(self) -> tuple[int, ...]:
        """The levels (0 = top, ``depth`` = bottleneck) where the sketch attends to the reference."""
        return tuple(range(self.depth, self.depth - self.attention, -1))

    @property
    def style_dim(self) -> int:
        """Length of the style vector: the encoder's, then the histogram's."""
        enc = {"trainable": self.style_channels, "none": 0, **BACKBONE_DIMS}[self.style_encoder]
        return enc + self.palette_bins**3

    @property
    def aux_dim(self) -> int:
        """Length of the fixed (not trained) end of the style vector: the frozen backbone's
        features and the histogram, what the discriminator's auxiliary head learns to predict
        (a trainable encoder's output would be a moving, unbounded target)."""
        return self.style_dim - (self.style_channels if self.style_encoder == "trainable" else 0)

    @property
    def size_divisor(self) -> int:
        """Input sides are padded to a multiple of this inside ``forward``."""
        return 2**self.depth * self.pixel_unshuffle

    def to_dict(self) -> dict:
        # The backbone file is a training-time detail: the saved state dict holds its weights.
        return asdict(replace(self, style_weights=""))


def palette_histogram(rgb01: torch.Tensor, bins: int) -> torch.Tensor:
    """Soft RGB histogram (N, bins**3) of images in [0, 1], each pixel shared between its nearest
    bins per channel (triangular kernel), square-rooted so small colour areas still count."""
    n = rgb01.shape[0]
    centres = torch.linspace(0, 1, bins, device=rgb01.device, dtype=rgb01.dtype).view(1, 1, bins, 1)
    x = rgb01.clamp(0, 1).reshape(n, 3, 1, -1)
    w = (1 - (x - centres).abs() * (bins - 1)).clamp(min=0)  # (N, 3, bins, P)
    joint = torch.einsum("nip,njp,nkp->nijkp", w[:, 0], w[:, 1], w[:, 2]).mean(-1)
    return joint.reshape(n, -1).clamp(min=0).sqrt()


class StyleEncoder(nn.Module):
    """Reference image (N, 3, H, W) in [-1, 1] -> style vector (N, style_dim)."""

    def __init__(self, c: ColorizerConfig) -> None:
        super().__init__()
        self.config = c
        self.net: nn.Module | None = None
        self.frozen = c.style_encoder in BACKBONE_DIMS
        if c.style_encoder == "trainable":
            w = [3, 32, 64, 128, c.style_channels]
            layers: list[nn.Module] = []
            for a, b in zip(w[:-1], w[1:]):
                layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            self.net = nn.Sequential(*layers)
        elif self.frozen:
            self.net = _backbone(c.style_encoder, c.style_weights)
            self.net.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> StyleEncoder:
        super().train(mode)
        if self.frozen:
            self.net.eval()  # frozen: batch-norm statistics must never update
        return self

    def forward(self, ref: torch.Tensor) -> torch.Tensor:
        c = self.config
        if ref.shape[-2:] != (c.style_size, c.style_size):
            ref = F.interpolate(ref.float(), size=(c.style_size, c.style_size), mode="bilinear",
                                align_corners=False, antialias=True)
        rgb01 = (ref.float() + 1) / 2
        parts = []
        if self.net is not None:
            if self.frozen:
                x = ((rgb01 - self.mean) / self.std).to(ref.dtype)
                with torch.no_grad():
                    parts.append(self.net(x).float())
            else:
                parts.append(self.net(ref).mean(dim=(2, 3)).float())
        if c.palette_bins:
            parts.append(palette_histogram(rgb01, c.palette_bins))
        return torch.cat(parts, dim=1)

    def fixed(self, style: torch.Tensor) -> torch.Tensor:
        """The untrained end of a style vector (``config.aux_dim`` values)."""
        return style[:, style.shape[1] - self.config.aux_dim:]


def _backbone(name: str, weights: str) -> nn.Module:
    """A frozen ImageNet backbone ending in a vector: VGG19 up to fc1 + ReLU (the paper's style
    feature), or MobileNetV2's features, average-pooled (1280). ``weights``: a torchvision state
    dict file (VGG19 defaults to the torch hub cache); empty: random, to be filled by load_state_dict."""
    import torchvision

    from gan.losses.perceptual import detect_backbone, find_vgg19_weights, load_state_dict_file

    if name == "vgg19":
        vgg = torchvision.models.vgg19(weights=None)
        net = nn.Sequential(vgg.features, vgg.avgpool, nn.Flatten(), *vgg.classifier[:2])
    else:
        net = nn.Sequential(torchvision.models.mobilenet_v2(weights=None).features,
                            nn.AdaptiveAvgPool2d(1), nn.Flatten())
    if weights or name == "vgg19":
        path = weights or find_vgg19_weights()
        if path is None:
            raise ValueError("VGG19 weights not found in the torch hub cache: pass style_weights")
        state = load_state_dict_file(path)
        if detect_backbone(state) != name:
            raise ValueError(f"{path} does not hold {name} weights")
        # our Sequential numbers VGG19 as features (0), avgpool (1), flatten (2), fc1 (3)
        rename = {"features.": "0.", "classifier.0.": "3."} if name == "vgg19" else {"features.": "0."}
        keep = {}
        for key, value in state.items():
            for old, new in rename.items():
                if key.startswith(old):
                    keep[new + key[len(old):]] = value
        net.load_state_dict(keep, strict=True)
    return net


def _stage(channels: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*(ResidualBlock(channels, channels, norm="none") for _ in range(blocks)))


def _guide(cin: int, width: int, ups: int, cout: int) -> nn.Sequential:
    """A light decoder: 1x1 to ``width``, then ``ups`` times (2x nearest upsampling, 3x3, ReLU)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, width, 1), nn.ReLU(inplace=True)]
    for _ in range(ups):
        layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(width, width, 3, padding=1),
                   nn.ReLU(inplace=True)]
    layers.append(nn.Conv2d(width, cout, 3, padding=1))
    return nn.Sequential(*layers)


class Colorizer(nn.Module):
    """Residual U-Net with skips; ``forward(sketch, reference, hints=None)`` -> RGB in [-1, 1]."""

    def __init__(self, config: ColorizerConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = config or ColorizerConfig(**overrides)
        f = c.pixel_unshuffle**2
        widths = [min(c.base_channels * 2**j, c.max_channels) for j in range(c.depth + 1)]
        self.style = StyleEncoder(c)
        self.head = nn.Conv2d((5 if c.hints else 1) * f, widths[0], 3, padding=1)
        self.encoders = nn.ModuleList(_stage(widths[j], c.blocks) for j in range(c.depth))
        self.downs = nn.ModuleList(nn.Conv2d(widths[j], widths[j + 1], 2, stride=2) for j in range(c.depth))
        mid = widths[-1]
        self.style_mlp = nn.Sequential(nn.Linear(c.style_dim, 256), nn.LeakyReLU(0.2))
        self.film = nn.ModuleList(nn.Linear(256, 2 * mid) for _ in range(c.middle_blocks))
        self.middle = nn.ModuleList(ResidualBlock(mid, mid, norm="none") for _ in range(c.middle_blocks))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(widths[j + 1], widths[j], 2, stride=2) for j in range(c.depth))
        self.fuse = nn.ModuleList(nn.Conv2d(2 * widths[j], widths[j], 1) for j in range(c.depth))
        self.decoders = nn.ModuleList(_stage(widths[j], c.blocks) for j in range(c.depth))
        self.film_dec = nn.ModuleList(nn.Linear(256, 2 * widths[j]) for j in range(c.depth)) \
            if c.style_in_decoder else None
        self.tail = nn.Conv2d(widths[0], 3 * f, 3, padding=1)
        if c.from_sketch:
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)
        self.guide_grey = _guide(mid, c.guide_channels, c.depth, f)
        self.guide_colour = _guide(mid, c.guide_channels, c.depth, 3 * f)
        levels = c.attention_levels
        ref_levels = levels + ((c.match_level,) if c.match_level >= 0 else ())
        self.reference = ReferenceEncoder(widths, c.pixel_unshuffle, ref_levels, c.blocks) if ref_levels else None
        self.attend = nn.ModuleDict({str(j): CrossAttention(widths[j], widths[j], c.attention_heads)
                                     for j in levels})
        self.match = SketchMatch(widths, c.match_level, heads=c.attention_heads) if c.match_level >= 0 else None

    def encode_reference(self, reference: torch.Tensor) -> dict:
        """What the U-Net needs of a reference (N, 3, h, w): {"style": the style vector} and, with
        attention, {"features": {level: map}, "rgb": the reference at ``style_size``}."""
        if self.reference is None:
            return {"style": self.style(reference)}
        side = self.config.style_size  # resized once: the style encoder takes it as it is
        rgb = reference if reference.shape[-2:] == (side, side) else F.interpolate(
            reference.float(), size=(side, side), mode="bilinear", align_corners=False, antialias=True)
        rgb = rgb.to(reference.dtype)
        out = {"style": self.style(rgb), "features": self.reference(rgb), "rgb": rgb}
        if self.match is not None:  # the reference's own sketch through this U-Net's encoder
            sketch = xdog_torch(rgb)
            hints = sketch.new_zeros(sketch.shape[0], 4, *sketch.shape[2:]) if self.config.hints else None
            out["sketch_features"] = self._encode(sketch, hints)[0]
        return out

    def _attend(self, h: torch.Tensor, level: int, ref: dict | None) -> torch.Tensor:
        if str(level) not in self.attend:
            return h
        if ref is None or "features" not in ref:
            raise ValueError("this colorizer attends to the reference: pass run(..., ref=encode_reference(r))")
        return self.attend[str(level)](h, ref["features"][level].to(h.dtype), ref["rgb"])

    def _unfold(self, h: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        p = self.config.pixel_unshuffle
        h = F.pixel_shuffle(h, p) if p > 1 else h
        return torch.tanh(h) if base is None else h + base

    def _encode(self, sketch: torch.Tensor,
                hints: torch.Tensor | None) -> tuple[list[torch.Tensor], tuple, torch.Tensor | None]:
        """The encoder: features at every level (the skips, then the bottleneck), the padding, the base."""
        c = self.config
        x = sketch
        if c.hints:
            hints = hints if hints is not None else sketch.new_zeros(sketch.shape[0], 4, *sketch.shape[2:])
            x = torch.cat([sketch, hints.to(sketch.dtype)], dim=1)
        x, pads = _pad_to_multiple(x, c.size_divisor)
        base = x[:, :1] if c.from_sketch else None
        h = F.pixel_unshuffle(x, c.pixel_unshuffle) if c.pixel_unshuffle > 1 else x
        h = self.head(h)
        feats = []
        for encode, down in zip(self.encoders, self.downs):
            h = encode(h)
            feats.append(h)
            h = down(h)
        return feats + [h], pads, base

    def _match(self, h: torch.Tensor, level: int, feats: list[torch.Tensor], ref: dict | None) -> torch.Tensor:
        if self.match is None or level != self.config.match_level:
            return h
        if ref is None or "sketch_features" not in ref:
            raise ValueError("this colorizer matches sketches: pass run(..., ref=encode_reference(r))")
        keys = [f.to(h.dtype) for f in ref["sketch_features"][level:]]
        return self.match(h, feats[level:], keys, ref["features"][level].to(h.dtype), ref["rgb"])

    def run(self, sketch: torch.Tensor, style: torch.Tensor, hints: torch.Tensor | None = None,
            guides: bool = False, ref: dict | None = None) -> dict[str, torch.Tensor]:
        """The U-Net on a sketch (N, 1, H, W) given a style vector (N, style_dim) and, for a model
        with attention, ``ref = encode_reference(reference)``; returns {"image"} and, with
        ``guides``, {"grey", "colour"} (the guide decoders' outputs)."""
        c = self.config
        feats, pads, base = self._encode(sketch, hints)
        skips, h = feats[:-1], feats[-1]
        out = {}
        if guides:
            out["grey"] = _crop(self._unfold(self.guide_grey(h)), pads)
        h = self._attend(h, c.depth, ref)
        z = self.style_mlp(style.to(h.dtype))
        for film, block in zip(self.film, self.middle):
            gamma, beta = film(z).to(h.dtype)[:, :, None, None].chunk(2, dim=1)
            h = block(h * (1 + gamma) + beta)
        if guides:
            out["colour"] = _crop(self._unfold(self.guide_colour(h)), pads)
        for j in range(c.depth - 1, -1, -1):
            h = self.fuse[j](torch.cat([self.ups[j](h), skips[j]], dim=1))
            if self.film_dec is not None:
                gamma, beta = self.film_dec[j](z).to(h.dtype)[:, :, None, None].chunk(2, dim=1)
                h = h * (1 + gamma) + beta
            h = self.decoders[j](self._match(self._attend(h, j, ref), j, feats, ref))
        out["image"] = _crop(self._unfold(self.tail(h), base), pads)
        return out

    def forward(self, sketch: torch.Tensor, reference: torch.Tensor,
                hints: torch.Tensor | None = None) -> torch.Tensor:
        """Sketch (N, 1, H, W), reference (N, 3, h, w) of any size, hints (N, 4, H, W) or None
        (colour in [-1, 1] times the mask, then the 0/1 mask) -> colour image (N, 3, H, W)."""
        ref = self.encode_reference(reference)
        return self.run(sketch, ref["style"], hints, ref=ref)["image"]


PRESETS: dict[str, ColorizerConfig] = {
    "tiny": ColorizerConfig(base_channels=8, depth=2, middle_blocks=1, max_channels=32, style_channels=16,
                            style_size=32, palette_bins=2, guide_channels=8, attention=2),
    # The bundled model: trainable style encoder + colour histogram (a frozen backbone's weights
    # would travel in the file: MobileNetV2 adds 8.9 MB), widths 32-192, 4 modulated middle blocks,
    # + sketch-to-reference attention at the bottleneck and the level above it (SCFT).
    "default": ColorizerConfig(max_channels=192, attention=2),
    # Closer to the paper: VGG19 fc1 as the style (needs vgg19-dcbb9e9d.pth in the torch hub
    # cache), wider and deeper; a GPU model.
    "paper": ColorizerConfig(base_channels=64, depth=4, blocks=2, max_channels=512, style_encoder="vgg19",
                             style_size=224, palette_bins=0, guide_channels=64),
}


def _inputs(c: ColorizerConfig, side: int | None) -> tuple[Port, ...]:
    m = c.size_divisor
    ports = (Port("sketch", 1, "[-1, 1] (white paper 1, lines -1)", multiple=m, content="sketch",
                  note=f"sketch sides multiples of {m} with --dynamic"),
             Port("reference", 3, f"[-1, 1], {c.style_size} x {c.style_size} (resize it first)", side=c.style_size,
                  content="reference"))
    if c.hints:
        ports += (Port("hints", 4, "RGB in [-1, 1] and a 0/1 mask (4 channels)", multiple=m, content="hints"),)
    return ports


DESCRIPTORS = (Descriptor("Colorizer", ColorizerConfig, Colorizer, kind="colorizer", inputs=_inputs,
                          presets=PRESETS, variants={"tiny-match": replace(PRESETS["tiny"], match_level=0)}),)
