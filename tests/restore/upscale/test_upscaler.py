"""Upscaler against realesrgan 0.3.0's RealESRGANer.enhance (a test extra; skipped where missing):
random weights in the published layouts (tiny RRDBNet x4 and x2, a small SRVGGNetCompact), small
pictures, the same tile, tile_pad, pre_pad, outscale, alpha and 16-bit handling: >= 50 dB."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import gan  # noqa: F401  (the torchvision shim, before basicsr)
from gan.nets.rrdb import RRDBNet, RRDBNetConfig
from gan.nets.srvgg import SRVGGConfig, SRVGGNetCompact
from restore.upscale.upscaler import Upscaler

NETS = {
    "rrdb-x4": RRDBNetConfig(num_feat=8, num_block=1, num_grow_ch=4),
    "rrdb-x2": RRDBNetConfig(num_feat=8, num_block=1, num_grow_ch=4, scale=2),
    "srvgg-x4": SRVGGConfig(num_feat=8, num_conv=2),
}


def network(name: str) -> torch.nn.Module:
    """Our network with random weights that give an image-like output (not all clamped away)."""
    torch.manual_seed(len(name))
    c = NETS[name]
    net = RRDBNet(c) if isinstance(c, RRDBNetConfig) else SRVGGNetCompact(c)
    with torch.no_grad():
        if isinstance(net, RRDBNet):
            net.conv_last.bias.fill_(0.5)
            net.conv_last.weight.mul_(4)
    return net.eval()


def reference(name: str, net: torch.nn.Module, tmp_path, **kw):
    """RealESRGANer with realesrgan's / basicsr's own network holding the same weights."""
    utils = pytest.importorskip("realesrgan.utils", reason="realesrgan==0.3.0 (test extra) missing")
    c = NETS[name]
    if isinstance(c, RRDBNetConfig):
        from basicsr.archs.rrdbnet_arch import RRDBNet as Ref
        ref, scale = Ref(**c.to_dict()), c.scale
    else:
        from realesrgan.archs.srvgg_arch import SRVGGNetCompact as Ref
        ref, scale = Ref(**c.to_dict()), c.upscale
    path = tmp_path / f"{name}.pth"
    torch.save({"params_ema": net.state_dict()}, path)
    return utils.RealESRGANer(scale=scale, model_path=str(path), model=ref, device=torch.device("cpu"), **kw)


def psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    assert a.shape == b.shape and a.dtype == b.dtype
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def picture(h: int, w: int, kind: str, seed: int = 0) -> np.ndarray:
    """A smooth random picture (blocks of colour with noise), RGB(A) order."""
    rng = np.random.default_rng(seed)
    base = rng.random((h // 8 + 2, w // 8 + 2, 4))
    img = np.kron(base, np.ones((8, 8, 1)))[:h, :w] * 0.8 + 0.2 * rng.random((h, w, 4))
    peak = 65535 if kind.endswith("16") else 255
    img = np.rint(img * peak).astype(np.uint16 if peak > 255 else np.uint8)
    return {"grey": img[..., 0], "grey16": img[..., 0], "rgb": img[..., :3], "rgb16": img[..., :3]}.get(kind, img)


def bgr(img: np.ndarray) -> np.ndarray:
    """RGB(A) <-> BGR(A) (cv2's order, RealESRGANer's)."""
    return img if img.ndim == 2 else np.ascontiguousarray(img[..., [2, 1, 0, 3][: img.shape[2]]])


CASES = [  # net, kind, (h, w), tile, tile_pad, pre_pad, outscale, alpha
    ("rrdb-x4", "rgb", (32, 32), 0, 10, 0, None, "realesrgan"),
    ("rrdb-x4", "rgb", (48, 40), 16, 4, 2, 3.5, "realesrgan"),
    ("rrdb-x4", "grey", (33, 35), 16, 6, 0, None, "realesrgan"),
    ("rrdb-x4", "rgba", (40, 36), 20, 4, 0, None, "realesrgan"),
    ("rrdb-x4", "rgba", (40, 36), 0, 10, 3, 2, "bilinear"),
    ("rrdb-x4", "rgb16", (32, 40), 16, 4, 0, None, "realesrgan"),
    ("rrdb-x4", "grey16", (36, 32), 0, 10, 0, 1.5, "realesrgan"),
    ("rrdb-x2", "rgb", (33, 27), 16, 4, 1, None, "realesrgan"),
    ("rrdb-x2", "rgba", (35, 40), 0, 10, 0, 3, "realesrgan"),
    ("rrdb-x2", "rgba16", (40, 35), 16, 4, 3, None, "realesrgan"),
    ("srvgg-x4", "rgb", (48, 40), 24, 6, 1, 2.5, "realesrgan"),
    ("srvgg-x4", "rgba", (32, 32), 0, 10, 0, None, "realesrgan"),
]


@pytest.mark.parametrize("name,kind,size,tile,tile_pad,pre_pad,outscale,alpha", CASES)
def test_equals_realesrganer(tmp_path, name, kind, size, tile, tile_pad, pre_pad, outscale, alpha):
    net = network(name)
    img = picture(*size, kind, seed=len(CASES))
    ref = reference(name, net, tmp_path, tile=tile, tile_pad=tile_pad, pre_pad=pre_pad)
    want, mode = ref.enhance(bgr(img), outscale=outscale, alpha_upsampler=alpha)
    want = bgr(want)
    ours = Upscaler(net, scale=outscale, tile=tile, tile_pad=tile_pad, pre_pad=pre_pad, alpha=alpha, precision="fp32")
    got = ours(img)
    peak = 65535 if img.dtype == np.uint16 else 255
    assert got.dtype == want.dtype == img.dtype and got.shape == want.shape
    assert want.std() > 0.01 * peak  # a picture, not a constant the clamp made
    db = psnr(got, want, peak)
    print(f"{name} {kind} {size} tile {tile}: {db:.1f} dB")
    assert db >= 50, (name, kind, db)
