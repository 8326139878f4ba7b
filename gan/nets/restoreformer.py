"""RestoreFormer (Wang et al., CVPR 2022), as gfpgan 1.3.8's ``RestoreFormer``
(``gfpgan/archs/restoreformer_arch.py``, GFPGAN's ``-v RestoreFormer``).

    face (N, 3, 512, 512) in [-1, 1]
      -> encoder: conv, residual blocks down to 16 x 16 (+ self-attention there), a middle
         block with attention; the features of the middle block kept as queries
      -> 1x1 conv -> nearest vector of a 1024-entry codebook at each of the 16 x 16 positions
      -> decoder: its attention blocks take the encoder's (degraded) features as queries and
         the decoder's own, built from the codebook, as keys and values (multi-head
         cross-attention), then residual blocks back up to 512 -> restored face in [-1, 1]

Module names and shapes are the reference's, so the published ``RestoreFormer.pth`` (GFPGAN's
release v1.3.4; its weights under ``params_ema``, else ``params``) loads key for key with
``strict=True`` (``load_published``). ``forward(x)`` returns the image alone (the reference returns
``(image, None)``).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gan.weightio import load_strictly, published_state

from .descriptor import Descriptor, Port
from .vqgan import Codebook, Downsample, ResBlock, Upsample, group_norm, swish

STATE_KEYS = ("params_ema", "params")


@dataclass(frozen=True)
class RestoreFormerConfig:
    """The reference's arguments (defaults: the published ``RestoreFormer.pth``). Attention sits
    at the lowest resolution only, as published (the reference's decoder cannot take more)."""

    resolution: int = 512  # the face's side
    ch: int = 64  # base width; level i has ch * ch_mult[i] channels
    ch_mult: tuple[int, ...] = (1, 2, 2, 4, 4, 8)  # one level per entry, halving the side after each but the last
    num_res_blocks: int = 2
    z_channels: int = 256
    embed_dim: int = 256  # codebook vector size
    n_embed: int = 1024  # codebook entries
    head_size: int = 8  # attention heads

    def __post_init__(self) -> None:
        object.__setattr__(self, "ch_mult", tuple(self.ch_mult))  # JSON gives a list
        if not self.ch_mult or self.resolution % 2 ** (len(self.ch_mult) - 1):
            raise ValueError(f"resolution {self.resolution} must halve {len(self.ch_mult) - 1} times")
        for width in (*(self.ch * m for m in self.ch_mult), self.z_channels):
            if width % 32:
                raise ValueError(f"widths must be multiples of 32 (GroupNorm(32)), not {width}")
        if (self.ch * self.ch_mult[-1]) % self.head_size:
            raise ValueError(f"{self.ch * self.ch_mult[-1]} channels do not split into {self.head_size} heads")

    @property
    def latent_side(self) -> int:
        return self.resolution // 2 ** (len(self.ch_mult) - 1)

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, RestoreFormerConfig] = {
    # RestoreFormer.pth: 512 px faces, 72.7 M parameters.
    "published": RestoreFormerConfig(),
    # Tests: 32 px, 32-64 channels, a 64-entry codebook at 8 x 8.
    "tiny": RestoreFormerConfig(resolution=32, ch=32, ch_mult=(1, 1, 2), num_res_blocks=1, z_channels=32,
                                embed_dim=32, n_embed=64, head_size=2),
}


class ResnetBlock(ResBlock):
    """The VQGAN residual block with RestoreFormer's name for its 1x1 skip (``nin_shortcut``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels)
        if in_channels != out_channels:
            self.nin_shortcut = self._modules.pop("conv_out")

    def skip(self, x: torch.Tensor) -> torch.Tensor:
        return self.nin_shortcut(x) if self.in_channels != self.out_channels else x


class MultiHeadAttnBlock(nn.Module):
    """Multi-head attention over all positions: queries from ``y`` (normalised by ``norm2``) when
    given, else from ``x``; keys and values from ``x``; added back to ``x``."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.heads, self.att_size = heads, channels // heads
        self.norm1 = group_norm(channels)
        self.norm2 = group_norm(channels)  # the queries' norm (the decoder's cross-attention)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h_ = self.norm1(x)
        y = h_ if y is None else self.norm2(y)
        b, c, h, w = x.shape
        # (b, c, hw) -> (b, heads, hw, att) by the reference's reshapes, so the matmuls (and
        # their rounding) are its own.
        q = self.q(y).reshape(b, self.heads, self.att_size, h * w).permute(0, 3, 1, 2).transpose(1, 2)
        k = self.k(h_).reshape(b, self.heads, self.att_size, h * w).permute(0, 3, 1, 2).transpose(1, 2).transpose(2, 3)
        v = self.v(h_).reshape(b, self.heads, self.att_size, h * w).permute(0, 3, 1, 2).transpose(1, 2)
        attn = F.softmax(torch.matmul(q * int(self.att_size) ** -0.5, k), dim=3)
        out = attn.matmul(v).transpose(1, 2).contiguous().view(b, h, w, -1).permute(0, 3, 1, 2)
        return x + self.proj_out(out)


class _Level(nn.Module):
    """One resolution: residual blocks (``block``), an attention block after each at the lowest
    resolution (``attn``), and the resampling to the next (``downsample`` / ``upsample``)."""

    def __init__(self, blocks: list[nn.Module], attn: list[nn.Module], resample: nn.Module | None, name: str) -> None:
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attn)
        if resample is not None:
            self.add_module(name, resample)
        self.resample = resample is not None

    def blocks(self, h: torch.Tensor, queries: torch.Tensor | None = None, encoder: bool = True) -> torch.Tensor:
        for i, block in enumerate(self.block):
            h = block(h)
            if len(self.attn):
                h = self.attn[i](h) if encoder else self.attn[i](h, queries)
        return h


class _Mid(nn.Module):
    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels)
        self.attn_1 = MultiHeadAttnBlock(channels, heads)
        self.block_2 = ResnetBlock(channels, channels)


class MultiHeadEncoder(nn.Module):
    def __init__(self, c: RestoreFormerConfig) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(3, c.ch, 3, 1, 1)
        widths = [c.ch] + [c.ch * m for m in c.ch_mult]
        last = len(c.ch_mult) - 1
        self.down = nn.ModuleList()
        for i in range(len(c.ch_mult)):
            blocks = [ResnetBlock(widths[i] if j == 0 else widths[i + 1], widths[i + 1]) for j in range(c.num_res_blocks)]
            attn = [MultiHeadAttnBlock(widths[i + 1], c.head_size) for _ in blocks] if i == last else []
            self.down.append(_Level(blocks, attn, Downsample(widths[i + 1]) if i != last else None, "downsample"))
        self.mid = _Mid(widths[-1], c.head_size)
        self.norm_out = group_norm(widths[-1])
        self.conv_out = nn.Conv2d(widths[-1], c.z_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The latent map, and the two feature maps the decoder's attention takes as queries:
        after the middle's first block (for the lowest level) and after its last (for the middle)."""
        h = self.conv_in(x)
        for level in self.down:
            h = level.blocks(h)
            if level.resample:
                h = level.downsample(h)
        h = self.mid.block_1(h)
        lowest = h
        h = self.mid.block_2(self.mid.attn_1(h))
        middle = h
        return self.conv_out(swish(self.norm_out(h))), lowest, middle


class MultiHeadDecoderTransformer(nn.Module):
    def __init__(self, c: RestoreFormerConfig) -> None:
        super().__init__()
        top = c.ch * c.ch_mult[-1]
        self.conv_in = nn.Conv2d(c.z_channels, top, 3, 1, 1)
        self.mid = _Mid(top, c.head_size)
        last, width, levels = len(c.ch_mult) - 1, top, []
        for i in reversed(range(len(c.ch_mult))):
            out = c.ch * c.ch_mult[i]
            blocks = [ResnetBlock(width if j == 0 else out, out) for j in range(c.num_res_blocks + 1)]
            attn = [MultiHeadAttnBlock(out, c.head_size) for _ in blocks] if i == last else []
            levels.insert(0, _Level(blocks, attn, Upsample(out) if i != 0 else None, "upsample"))
            width = out
        self.up = nn.ModuleList(levels)
        self.norm_out = group_norm(width)
        self.conv_out = nn.Conv2d(width, 3, 3, 1, 1)

    def forward(self, z: torch.Tensor, lowest: torch.Tensor, middle: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h), middle))
        for level in reversed(self.up):
            h = level.blocks(h, lowest, encoder=False)
            if level.resample:
                h = level.upsample(h)
        return self.conv_out(swish(self.norm_out(h)))


class RestoreFormer(nn.Module):
    """RestoreFormer; ``forward(x)`` restores N x 3 x resolution x resolution faces in [-1, 1]."""

    def __init__(self, config: RestoreFormerConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = config or RestoreFormerConfig(**overrides)
        self.encoder = MultiHeadEncoder(c)
        self.decoder = MultiHeadDecoderTransformer(c)
        self.quantize = Codebook(c.n_embed, c.embed_dim)
        self.quant_conv = nn.Conv2d(c.z_channels, c.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(c.embed_dim, c.z_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.config.resolution
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (s, s):
            raise ValueError(f"RestoreFormer expects N x 3 x {s} x {s} faces, got {tuple(x.shape)}")
        # The code choice from float32 features under autocast (a model cast to bf16/fp16 runs
        # in its own dtype): rounding would pick other codes, whole patches of another face.
        with torch.autocast(x.device.type, enabled=False):
            z, lowest, middle = self.encoder(x.to(self.quant_conv.weight.dtype))
            quant = self.quantize.nearest(self.quant_conv(z))
        return self.decoder(self.post_quant_conv(quant), lowest, middle)


# ----- published checkpoints ---------------------------------------------------------------


def config_from_state_dict(state: dict[str, torch.Tensor]) -> RestoreFormerConfig:
    """The config a RestoreFormer state dict was made with, read from its shapes."""
    try:
        levels = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.down."))
        ch = state["encoder.conv_in.weight"].shape[0]
        ch_mult = tuple(state[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] // ch for i in range(levels))
        blocks = len({k.split(".")[4] for k in state if k.startswith("encoder.down.0.block.")})
        n_embed, embed_dim = state["quantize.embedding.weight"].shape
        z_channels = state["encoder.conv_out.weight"].shape[0]
        resolution = 16 * 2 ** (levels - 1)  # published: attention at 16 x 16 (the shapes do not say)
    except (KeyError, IndexError, ValueError) as e:
        raise ValueError(f"not a RestoreFormer state dict (no {e})") from None
    # Nor do they say the heads: the published 8.
    return RestoreFormerConfig(resolution=resolution, ch=ch, ch_mult=ch_mult, num_res_blocks=blocks,
                               z_channels=z_channels, embed_dim=embed_dim, n_embed=n_embed)


def is_restoreformer(state: dict[str, torch.Tensor]) -> bool:
    """Whether a state dict has RestoreFormer's layout (its cross-attention decoder)."""
    return "decoder.mid.attn_1.norm2.weight" in state and "quantize.embedding.weight" in state


def load_published(path_or_state: str | os.PathLike | dict, config: RestoreFormerConfig | None = None) -> RestoreFormer:
    """A RestoreFormer from the published ``RestoreFormer.pth`` or its state dict, in eval mode.

    Reads with ``weights_only=True``; takes ``params_ema``, else ``params``, else the dict itself;
    the config comes from the shapes unless given (the side and the heads are the published
    ones: 16 x 16 at the lowest level, 8 heads). Loads strictly: ValueError naming the missing,
    unexpected and mis-shaped keys otherwise."""
    state = published_state(path_or_state, STATE_KEYS)
    return load_strictly(lambda: RestoreFormer(config or config_from_state_dict(state)), state)


def _inputs(c: RestoreFormerConfig, side: int | None) -> tuple[Port, ...]:
    s = c.resolution
    return (Port("input", 3, "[-1, 1]", side=s, note=f"a {s} x {s} aligned face; fixed size (codebook prior)"),)


DESCRIPTORS = (Descriptor(
    "RestoreFormer", RestoreFormerConfig, RestoreFormer, kind="face prior", inputs=_inputs, presets=PRESETS,
    published=("gfpgan RestoreFormer: RestoreFormer.pth (GFPGAN release v1.3.4; params_ema or params)",),
    load_published=load_published),)
