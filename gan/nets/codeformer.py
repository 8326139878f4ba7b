"""CodeFormer (Zhou et al., NeurIPS 2022), as ``codeformer/basicsr/archs/codeformer_arch.py`` of
codeformer-pip 0.0.4 (sczhou/CodeFormer's network, built as its ``inference_codeformer.py`` does).

    face (N, 3, 512, 512) in [-1, 1]
      -> VQGAN encoder down to a 16 x 16 map (features kept at 32 ... 256 px)
      -> transformer (9 layers, 8 heads, 512 wide, learned positions) predicts, for each of
         the 256 positions, which of the 1024 codebook vectors belongs there
      -> those vectors (AdaIN'd to the encoder's statistics) -> VQGAN generator back up to 512;
         after its first block at each connected resolution (32 ... 256) the encoder's features
         are fused in by a scale and shift, weighted by ``w``
      -> restored face in [-1, 1]

``w`` is CodeFormer's fidelity weight: 0 takes the codebook's face alone (the most restored,
the least like the input), 1 fuses the most of the input's features (the most faithful).
This toolkit's ``--fidelity`` runs the other way (1 restores the most), so a restorer sets
``model.w = 1 - fidelity`` (``w_for_fidelity``). It is a plain float attribute so that one
loaded network serves requests with different weights; ``forward(x, w=...)`` overrides it for
one call. Default 0.5, CodeFormer's own inference default.

Module names and shapes are the reference's, so the published ``codeformer.pth`` (release
v0.1.0, ``params_ema``) loads key for key with ``strict=True`` (``load_published``).
``forward(x)`` returns the image alone (the reference returns ``(image, logits, lq_feat)``), with
CodeFormer's inference options: AdaIN of the codes (``adain_codes=True``, as its
``inference_codeformer.py`` and app), the codes taken greedily (top-1).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gan.weightio import load_strictly, published_state

from .descriptor import Descriptor, Port
from .vqgan import Codebook, Downsample, ResBlock, Upsample, group_norm

STATE_KEYS = ("params_ema", "params")
DEFAULT_W = 0.5  # CodeFormer's inference_codeformer.py --fidelity_weight default


def w_for_fidelity(fidelity: float) -> float:
    """CodeFormer's ``w`` for this toolkit's ``--fidelity`` (1 restores the most: ``w = 0``)."""
    if not 0 <= fidelity <= 1:
        raise ValueError(f"fidelity must be in [0, 1], not {fidelity}")
    return 1.0 - float(fidelity)


@dataclass(frozen=True)
class CodeFormerConfig:
    """The reference's arguments (defaults: the published ``codeformer.pth``, as
    ``inference_codeformer.py`` builds it). The reference fixes its VQGAN (512 px, widths 64 x
    (1, 2, 2, 4, 4, 8), 2 blocks a level, attention at 16 px, 256-d codes); they are fields here
    so that the tests can build a small one."""

    img_size: int = 512
    nf: int = 64
    ch_mult: tuple[int, ...] = (1, 2, 2, 4, 4, 8)
    res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    emb_dim: int = 256  # codebook vector size
    codebook_size: int = 1024
    dim_embd: int = 512  # the transformer's width
    n_head: int = 8
    n_layers: int = 9
    connect_list: tuple[str, ...] = ("32", "64", "128", "256")  # sides where the encoder is fused in

    def __post_init__(self) -> None:
        for name in ("ch_mult", "attn_resolutions", "connect_list"):
            object.__setattr__(self, name, tuple(getattr(self, name)))  # JSON gives lists
        object.__setattr__(self, "connect_list", tuple(str(s) for s in self.connect_list))
        if not self.ch_mult or self.img_size % 2 ** (len(self.ch_mult) - 1):
            raise ValueError(f"img_size {self.img_size} must halve {len(self.ch_mult) - 1} times")
        for width in (*self.channels.values(), self.emb_dim):
            if width % 32:
                raise ValueError(f"widths must be multiples of 32 (GroupNorm(32)), not {width}")
        if self.dim_embd % self.n_head:
            raise ValueError(f"dim_embd {self.dim_embd} does not split into {self.n_head} heads")
        unknown = [s for s in self.connect_list if s not in self.channels or int(s) == self.latent_side]
        if unknown:
            raise ValueError(f"connect_list: no generator level at {unknown} px (sides: {sorted(self.channels)[1:]})")

    @property
    def latent_side(self) -> int:
        return self.img_size // 2 ** (len(self.ch_mult) - 1)

    @property
    def channels(self) -> dict[str, int]:
        """Width at each side (the reference's ``channels`` table)."""
        return {str(self.img_size // 2**i): self.nf * m for i, m in enumerate(self.ch_mult)}

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, CodeFormerConfig] = {
    # codeformer.pth: 512 px faces, 94.1 M parameters.
    "published": CodeFormerConfig(),
    # Tests: 32 px, 32-64 channels, 8 x 8 codes from a 64-entry codebook, a 2-layer transformer.
    "tiny": CodeFormerConfig(img_size=32, nf=32, ch_mult=(1, 1, 2), res_blocks=1, attn_resolutions=(8,), emb_dim=32,
                             codebook_size=64, dim_embd=32, n_head=2, n_layers=2, connect_list=("16", "32")),
}


class AttnBlock(nn.Module):
    """Single-head self-attention over all positions, added back."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h_ = self.norm(x)
        b, c, h, w = x.shape
        q = self.q(h_).reshape(b, c, h * w).permute(0, 2, 1)
        k = self.k(h_).reshape(b, c, h * w)
        attn = F.softmax(torch.bmm(q, k) * int(c) ** -0.5, dim=2)
        out = torch.bmm(self.v(h_).reshape(b, c, h * w), attn.permute(0, 2, 1)).reshape(b, c, h, w)
        return x + self.proj_out(out)


def _encoder_blocks(c: CodeFormerConfig) -> tuple[list[nn.Module], dict[str, int]]:
    """The encoder's flat block list, and at each side the index of its last residual block
    (where the reference keeps the features it fuses later: ``fuse_encoder_block``)."""
    blocks: list[nn.Module] = [nn.Conv2d(3, c.nf, 3, 1, 1)]
    taps, side, width = {}, c.img_size, c.nf
    for i, m in enumerate(c.ch_mult):
        for _ in range(c.res_blocks):
            blocks.append(ResBlock(width, c.nf * m))
            width = c.nf * m
            taps[str(side)] = len(blocks) - 1
            if side in c.attn_resolutions:
                blocks.append(AttnBlock(width))
        if i != len(c.ch_mult) - 1:
            blocks.append(Downsample(width))
            side //= 2
    blocks += [ResBlock(width, width), AttnBlock(width), ResBlock(width, width), group_norm(width),
               nn.Conv2d(width, c.emb_dim, 3, 1, 1)]
    return blocks, taps


def _generator_blocks(c: CodeFormerConfig) -> tuple[list[nn.Module], dict[str, int]]:
    """The generator's flat block list, and at each side the index of the block after which the
    encoder is fused in (``fuse_generator_block``): the first residual block, or at an attention
    side the last one."""
    width, side = c.nf * c.ch_mult[-1], c.latent_side
    blocks: list[nn.Module] = [nn.Conv2d(c.emb_dim, width, 3, 1, 1), ResBlock(width, width), AttnBlock(width),
                               ResBlock(width, width)]
    taps = {}
    for i in reversed(range(len(c.ch_mult))):
        for j in range(c.res_blocks):
            blocks.append(ResBlock(width, c.nf * c.ch_mult[i]))
            width = c.nf * c.ch_mult[i]
            if j == 0 or side in c.attn_resolutions:
                taps[str(side)] = len(blocks) - 1
            if side in c.attn_resolutions:
                blocks.append(AttnBlock(width))
        if i != 0:
            blocks.append(Upsample(width))
            side *= 2
    blocks += [group_norm(width), nn.Conv2d(width, 3, 3, 1, 1)]
    return blocks, taps


class _Blocks(nn.Module):
    """A flat list of blocks (the published ``encoder.blocks.N`` / ``generator.blocks.N``)."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)


class TransformerSALayer(nn.Module):
    """Pre-norm self-attention (positions added to queries and keys) and a GELU MLP."""

    def __init__(self, dim: int, heads: int, dim_mlp: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=0.0)
        self.linear1 = nn.Linear(dim, dim_mlp)
        self.linear2 = nn.Linear(dim_mlp, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, tgt: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        t = self.norm1(tgt)
        q = k = t + pos
        tgt = tgt + self.self_attn(q, k, value=t)[0]  # need_weights: the reference's path (and rounding)
        return tgt + self.linear2(F.gelu(self.linear1(self.norm2(tgt))))


class FuseSFT(nn.Module):
    """The encoder's features (with the generator's) -> a scale and a shift of the generator's,
    added back weighted by ``w`` (the reference's ``Fuse_sft_block``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.encode_enc = ResBlock(2 * channels, channels)
        self.scale = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.2, True),
                                   nn.Conv2d(channels, channels, 3, padding=1))
        self.shift = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.2, True),
                                   nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, enc: torch.Tensor, dec: torch.Tensor, w: float) -> torch.Tensor:
        enc = self.encode_enc(torch.cat([enc, dec], dim=1))
        return dec + w * (dec * self.scale(enc) + self.shift(enc))


def _mean_std(feat: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    b, c = feat.shape[:2]
    flat = feat.reshape(b, c, -1)  # (a view, unless channels-last)
    return flat.mean(dim=2).view(b, c, 1, 1), (flat.var(dim=2) + eps).sqrt().view(b, c, 1, 1)


def adain(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """``content`` with the per-channel mean and standard deviation of ``style``."""
    style_mean, style_std = _mean_std(style)
    content_mean, content_std = _mean_std(content)
    return (content - content_mean.expand(content.shape)) / content_std.expand(content.shape) * \
        style_std.expand(content.shape) + style_mean.expand(content.shape)


class CodeFormer(nn.Module):
    """CodeFormer; ``forward(x, w=None)`` restores N x 3 x img_size x img_size faces in [-1, 1]
    with fidelity weight ``w`` (None: ``self.w``)."""

    def __init__(self, config: CodeFormerConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = c = config or CodeFormerConfig(**overrides)
        self.w = DEFAULT_W
        enc, self.encoder_taps = _encoder_blocks(c)
        gen, self.generator_taps = _generator_blocks(c)
        self.encoder = _Blocks(enc)
        self.quantize = Codebook(c.codebook_size, c.emb_dim)
        self.generator = _Blocks(gen)
        self.position_emb = nn.Parameter(torch.zeros(c.latent_side**2, c.dim_embd))
        self.feat_emb = nn.Linear(c.emb_dim, c.dim_embd)
        self.ft_layers = nn.Sequential(*(TransformerSALayer(c.dim_embd, c.n_head, 2 * c.dim_embd)
                                         for _ in range(c.n_layers)))
        self.idx_pred_layer = nn.Sequential(nn.LayerNorm(c.dim_embd), nn.Linear(c.dim_embd, c.codebook_size, bias=False))
        self.fuse_convs_dict = nn.ModuleDict({s: FuseSFT(c.channels[s]) for s in c.connect_list})

    def forward(self, x: torch.Tensor, w: float | None = None, adain_codes: bool = True) -> torch.Tensor:
        c = self.config
        w = self.w if w is None else w
        s = c.img_size
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (s, s):
            raise ValueError(f"CodeFormer expects N x 3 x {s} x {s} faces, got {tuple(x.shape)}")
        fuse = {s: self.encoder_taps[s] for s in c.connect_list} if w > 0 else {}
        # The code choice from float32 features under autocast (a model cast to bf16/fp16 runs
        # in its own dtype): rounding would pick other codes, whole patches of another face.
        with torch.autocast(x.device.type, enabled=False):
            x = x.to(self.feat_emb.weight.dtype)
            kept = {}
            for i, block in enumerate(self.encoder.blocks):
                x = block(x)
                if i in fuse.values():
                    kept[str(x.shape[-1])] = x
            lq_feat = x
            # Which code at each position: the transformer over the 16 x 16 tokens, (HW, N, C) order.
            pos = self.position_emb.unsqueeze(1).repeat(1, x.shape[0], 1)
            tokens = self.feat_emb(lq_feat.flatten(2).permute(2, 0, 1))
            for layer in self.ft_layers:
                tokens = layer(tokens, pos)
            logits = self.idx_pred_layer(tokens).permute(1, 0, 2)  # (N, HW, codebook)
            # top-1 of the softmax, as the reference (not argmax of the logits: ties after rounding)
            index = torch.topk(F.softmax(logits, dim=2), 1, dim=2)[1]
            n, side = x.shape[0], c.latent_side
            x = self.quantize.lookup(index, (n, side, side, c.emb_dim))
            if adain_codes:
                x = adain(x, lq_feat)

        taps = {self.generator_taps[s]: s for s in fuse}
        for i, block in enumerate(self.generator.blocks):
            x = block(x)
            if i in taps:
                x = self.fuse_convs_dict[taps[i]](kept[taps[i]], x, w)
        return x


# ----- published checkpoints ---------------------------------------------------------------


def is_codeformer(state: dict[str, torch.Tensor]) -> bool:
    """Whether a state dict has CodeFormer's layout (its code-predicting transformer)."""
    return "idx_pred_layer.1.weight" in state and "position_emb" in state


def config_from_state_dict(state: dict[str, torch.Tensor]) -> CodeFormerConfig:
    """The config a CodeFormer state dict was made with, read from its shapes: the encoder's
    blocks in order (residual, attention, downsampling) give the levels, widths and attention
    sides, the learned positions the codes' side; the transformer its width, depth and codebook.
    The heads are not in the shapes: the published 8."""
    try:
        nf = state["encoder.blocks.0.weight"].shape[0]
        kinds, i = [], 1
        while f"encoder.blocks.{i}.conv.weight" in state or f"encoder.blocks.{i}.norm1.weight" in state \
                or f"encoder.blocks.{i}.q.weight" in state:
            key = f"encoder.blocks.{i}."
            kinds.append(("res", state[key + "conv2.weight"].shape[0]) if key + "norm1.weight" in state
                         else ("attn", 0) if key + "q.weight" in state else ("down", 0))
            i += 1
        levels = [[]]
        for kind in kinds[:-3]:  # the last three: the middle's residual, attention, residual
            levels[-1].append(kind)
            if kind[0] == "down":
                levels.append([])
        side = round(state["position_emb"].shape[0] ** 0.5)
        img_size = side * 2 ** (len(levels) - 1)
        ch_mult = tuple(next(w for k, w in lv if k == "res") // nf for lv in levels)
        res_blocks = sum(1 for k, _ in levels[0] if k == "res")
        attn = tuple(img_size // 2**j for j, lv in enumerate(levels) if any(k == "attn" for k, _ in lv))
        codebook_size, dim_embd = state["idx_pred_layer.1.weight"].shape
        n_layers = len({k.split(".")[1] for k in state if k.startswith("ft_layers.")})
        connect = sorted({k.split(".")[1] for k in state if k.startswith("fuse_convs_dict.")}, key=int)
        emb_dim = state["quantize.embedding.weight"].shape[1]
    except (KeyError, ValueError, StopIteration) as e:
        raise ValueError(f"not a CodeFormer state dict (no {e})") from None
    return CodeFormerConfig(img_size=img_size, nf=nf, ch_mult=ch_mult, res_blocks=res_blocks, attn_resolutions=attn,
                            emb_dim=emb_dim, codebook_size=codebook_size, dim_embd=dim_embd, n_layers=n_layers,
                            connect_list=tuple(connect))


def load_published(path_or_state: str | os.PathLike | dict, config: CodeFormerConfig | None = None) -> CodeFormer:
    """A CodeFormer from the published ``codeformer.pth`` or its state dict, in eval mode, ``w``
    at CodeFormer's default 0.5.

    Reads with ``weights_only=True``; takes ``params_ema``, else ``params``, else the dict itself;
    the config comes from the shapes unless given. Loads strictly: ValueError naming the missing,
    unexpected and mis-shaped keys otherwise."""
    state = published_state(path_or_state, STATE_KEYS)
    return load_strictly(lambda: CodeFormer(config or config_from_state_dict(state)), state)


def _inputs(c: CodeFormerConfig, side: int | None) -> tuple[Port, ...]:
    s = c.img_size
    return (Port("input", 3, "[-1, 1]", side=s,
                 note=f"a {s} x {s} aligned face; fixed size (codebook prior); fidelity weight w fixed at export"),)


DESCRIPTORS = (Descriptor(
    "CodeFormer", CodeFormerConfig, CodeFormer, kind="face prior", inputs=_inputs, presets=PRESETS,
    published=("CodeFormer: codeformer.pth (sczhou/CodeFormer release v0.1.0; params_ema)",),
    load_published=load_published),)
