"""GFP-GAN's whole pipeline: ``restore faces --bg realesrgan`` against gfpgan 1.3.8's ``GFPGANer``
with ``bg_upsampler=RealESRGANer(RealESRGAN_x2plus layout, tile=400, tile_pad=10, pre_pad=0)``,
as ``inference_gfpgan.py -s 2`` builds it (gfpgan, realesrgan and facexlib: test extras).

Both get the same random weights (GFPGANv1Clean's layout, a small RRDBNet x2 in the published
layout) and the same five landmarks: RetinaFace's weights are not at hand offline, so facexlib's
detector inside GFPGANer's FaceRestoreHelper and ours are replaced by one that returns them."""
from __future__ import annotations

import functools
import math

import cv2
import numpy as np
import pytest
import torch

import gan  # noqa: F401  (the torchvision shim, before gfpgan/basicsr)
from restore.faces.align import FFHQ_TEMPLATE_512
from restore.faces.detect import Detection
from tests.restore.upscale.test_upscaler import bgr, network
from tests.restore.upscale.test_upscaler import reference as realesrganer

# conftest's gfpgan_weights: the published flags, narrower
SMALL = {"out_size": 64, "num_style_feat": 64, "channel_multiplier": 1, "num_mlp": 2, "narrow": 0.125}


def landmarks(side: float, at: tuple[float, float], angle: float) -> np.ndarray:
    """The FFHQ template for a face ``side`` px wide, turned by ``angle`` degrees, its crop's
    top-left corner at ``at``: five landmarks as a detector gives them."""
    pts = FFHQ_TEMPLATE_512.astype(np.float64) * side / 512 - side / 2
    a = math.radians(angle)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return pts @ rot.T + side / 2 + np.asarray(at)


FACES = [landmarks(64, (30, 22), 8.0), landmarks(40, (100, 84), -5.0)]


def photo(h: int = 144, w: int = 160) -> np.ndarray:
    """A smooth random RGB picture."""
    rng = np.random.default_rng(3)
    img = cv2.resize(rng.random((h // 8, w // 8, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(np.rint((img * 0.8 + 0.2 * rng.random((h, w, 3))) * 255), 0, 255).astype(np.uint8)


def detections(faces: list[np.ndarray] | None = None) -> list[Detection]:
    return [Detection(np.r_[lm.min(0) - 4, lm.max(0) + 4], lm.astype(np.float32), 0.99) for lm in faces or FACES]


class FakeRetinaFace:
    """facexlib's detector: ``detect_faces(bgr, threshold)`` -> rows of box, score, 10 coordinates."""

    faces: list[np.ndarray] | None = None  # None: FACES

    def detect_faces(self, image, threshold):
        rows = [np.r_[d.box, d.score, d.landmarks.reshape(-1)] for d in detections(self.faces)]
        return np.array(rows, np.float32)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape and a.dtype == b.dtype
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def gfpganer(monkeypatch, tmp_path, state: dict, upscale: float, bg_upsampler, face_size: int, parse=None):
    """gfpgan's GFPGANer, built offline: facexlib's detector and parser constructors replaced (they
    download), and for a small network its FaceRestoreHelper given that network's face size."""
    utils = pytest.importorskip("gfpgan.utils", reason="gfpgan==1.3.8 (test extra) missing")
    helper = pytest.importorskip("facexlib.utils.face_restoration_helper")
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

    monkeypatch.setattr(helper, "init_detection_model", lambda *a, **k: FakeRetinaFace())
    monkeypatch.setattr(helper, "init_parsing_model", lambda *a, **k: parse)
    if face_size != 512:
        monkeypatch.setattr(utils, "GFPGANv1Clean", lambda **kw: GFPGANv1Clean(**{**kw, **SMALL}))
        monkeypatch.setattr(utils, "FaceRestoreHelper",
                            lambda *a, **kw: helper.FaceRestoreHelper(*a, **{**kw, "face_size": face_size}))
    path = tmp_path / "gfpgan.pth"
    torch.save({"params_ema": state}, path)
    ref = utils.GFPGANer(str(path), upscale=upscale, arch="clean", channel_multiplier=2, bg_upsampler=bg_upsampler,
                         device=torch.device("cpu"))
    ref.face_helper.use_parse = parse is not None
    # GFPGANer draws fresh StyleGAN2 noise for every face (GFPGANv1Clean's randomize_noise=True):
    # its output is not repeatable. Ours uses the checkpoint's stored noise maps; so does it here.
    ref.gfpgan.forward = functools.partial(type(ref.gfpgan).forward, ref.gfpgan, randomize_noise=False)
    return ref


def ours(monkeypatch, weights, upscaler, upscale: float = 2, **kw):
    from restore.faces import restorer

    monkeypatch.setattr(restorer, "detect", lambda detector, image, max_side=0: detections())
    return restorer.FaceRestorer(weights, "mtcnn", precision="fp32", upscale=upscale, bg="realesrgan",
                                 bg_upscaler=upscaler, batch_size=1, colour="model", **kw)  # GFPGANer's colours


def random_parsenet():
    """A narrow facexlib ParseNet (512 px in and out, as the published one; 4-8 channels: cheap)
    with random weights, its output pushed so that its argmax draws a face-like mask: the classes
    pasted (skin, ...) inside a disc, the others (hair, background) outside."""
    from facexlib.parsing.parsenet import ParseNet

    torch.manual_seed(0)
    net = ParseNet(in_size=512, out_size=512, min_feat_size=256, base_ch=4, parsing_ch=19, res_depth=1,
                   ch_range=[4, 8]).eval()

    class Disc(torch.nn.Module):  # the network's own output, pushed towards a disc of skin
        def __init__(self):
            super().__init__()
            self.net = net
            yy, xx = torch.meshgrid(torch.linspace(-1, 1, 512), torch.linspace(-1, 1, 512), indexing="ij")
            self.register_buffer("disc", ((xx**2 + yy**2) < 0.45).float())

        def forward(self, x):
            out, img = self.net(x)
            bias = torch.zeros(19, 512, 512)
            bias[1] = 8 * self.disc - 4
            bias[18] = 4 - 8 * self.disc
            return out.clamp(-1, 1) * 0.5 + bias, img

    return Disc().eval()


def parity(monkeypatch, tmp_path, net, weights, face_size: int, parse: bool) -> float:
    """PSNR of our ``restore faces --upscale 2 --bg realesrgan`` photo against GFPGANer's."""
    up = network("rrdb-x2")
    bg = realesrganer("rrdb-x2", up, tmp_path, tile=400, tile_pad=10, pre_pad=0, half=False)
    parser = random_parsenet() if parse else None
    ref = gfpganer(monkeypatch, tmp_path, net.state_dict(), 2, bg, face_size=face_size, parse=parser)
    image = photo()
    _, _, want = ref.enhance(bgr(image), has_aligned=False, only_center_face=False, paste_back=True)
    want = bgr(want)

    fr = ours(monkeypatch, weights, up, parse=False)
    fr.parser = parser  # as if parsenet were in the weights cache
    got = fr.restore(image)
    assert len(got.faces) == 2 and got.image.shape == want.shape == (288, 320, 3)
    # the background alone is RealESRGANer's, and the faces were pasted onto it
    background = bgr(bg.enhance(bgr(image), outscale=2)[0])
    assert psnr(fr.upscaler(image), background) >= 60
    assert psnr(got.image, background) < 40
    value = psnr(got.image, want)
    print(f"restore faces --bg realesrgan against GFPGANer ({face_size} px faces, parse={parse}): {value:.2f} dB")
    return value


@pytest.mark.parametrize("parse", [False, True], ids=["square-mask", "parsed-mask"])
def test_restore_faces_equals_gfpganer_with_realesrgan_x2(gfpgan_weights, monkeypatch, tmp_path, parse):
    """A 64 px GFP-GAN (the published flags, narrower): GFPGANer's helper told that face size."""
    from gan.serialize import load_model

    net, _ = load_model(gfpgan_weights)
    assert parity(monkeypatch, tmp_path, net, gfpgan_weights, 64, parse) >= 45


@pytest.mark.slow
def test_restore_faces_equals_gfpganer_published_size(monkeypatch, tmp_path):
    """GFPGANer untouched but for detection: the full GFPGANv1Clean of GFPGANv1.3/1.4 (512 px
    faces), random weights, as its command builds it."""
    from gan.nets.gfpgan import load_published
    from tests.gan.nets.test_gfpgan import reference

    ref = reference()  # gfpgan's own GFPGANv1Clean(out_size=512, ...) with random weights
    net = load_published(ref.state_dict()).eval()
    del ref
    assert parity(monkeypatch, tmp_path, net, net, 512, parse=False) >= 45
