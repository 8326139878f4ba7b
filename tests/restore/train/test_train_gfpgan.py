"""Training the GFP-GAN face restorer (task ``faces``): every loss term, exact resume, the CLI
and its export in ``restore faces``. Tiny preset (32 px), one thread, synthetic faces."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from gan.data.degrade import Degradation
from gan.data.faces import FaceBatches
from gan.losses.perceptual import GFPGAN_VGG_LAYERS, PerceptualLoss
from gan.nets.arcface import ResNetArcFace
from gan.nets.components import COMPONENTS
from gan.nets.gfpgan import GFPGAN
from gan.presets import GFPGAN_TRAIN_PRESETS
from gan.serialize import build_model, load_model
from gan.train.checkpoint import load_checkpoint
from gan.train.gfpgan import generator_terms, gfpgan_step, setup_networks, train_settings
from gan.train.loop import TrainConfig, train
from restore.cli import main
from restore.faces.align import template
from tests import ROOT

GEN, DISC, COMP = GFPGAN_TRAIN_PRESETS["tiny"]


@pytest.fixture(autouse=True)
def one_thread():
    """Two threads on two busy cores thrash (10-50x slower); one is steady."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def synthetic_face(seed: int, size: int = 64) -> np.ndarray:
    """An aligned 'face': a skin ellipse, dark eyes and a red mouth at the FFHQ template's points."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    img = np.empty((size, size, 3), np.float32)
    img[:] = rng.uniform(0.2, 0.8, 3) * (0.7 + 0.3 * xx[..., None] / size)
    skin = ((xx - size / 2) / (0.36 * size)) ** 2 + ((yy - 0.56 * size) / (0.46 * size)) ** 2 < 1
    img[skin] = rng.uniform([0.6, 0.4, 0.3], [0.95, 0.75, 0.6])
    pts = template(size)
    for x, y in pts[:2]:
        img[(xx - x) ** 2 + (yy - y) ** 2 < (0.045 * size) ** 2] = (0.1, 0.07, 0.05)
    (x0, y0), (x1, y1) = pts[3], pts[4]
    img[(np.abs(yy - (y0 + y1) / 2) < 0.025 * size) & (xx > x0) & (xx < x1)] = (0.7, 0.15, 0.2)
    return (img * 255).round().astype(np.uint8)


def face_folder(root: Path, n: int, size: int = 64) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(synthetic_face(i, size)).save(root / f"face{i}.png")
    return root


def tiny_config(face: dict | None = None, **kw) -> TrainConfig:
    """GFP-GAN's settings at the tiny preset; keywords of the faces section go into it."""
    settings = train_settings()
    options = settings.pop("options")
    section = {k: kw.pop(k) for k in list(kw) if hasattr(options, k)}
    options = dataclasses.replace(options, disc=DISC.to_dict(), face={"component": COMP.to_dict(), **(face or {})},
                                  **section)
    return TrainConfig(**{**settings, "model": GEN.to_dict(), "options": options, "batch_size": 2, **kw})


def tiny_batches(seed: int = 0, batch_size: int = 2) -> FaceBatches:
    faces = [synthetic_face(i, 32) for i in range(3)]
    return FaceBatches(faces, 32, batch_size, template(32), seed=seed, degrade=Degradation("mild"))


@pytest.fixture(scope="module")
def perceptual(tmp_path_factory) -> PerceptualLoss:
    """GFP-GAN's perceptual + style loss over a randomly initialised MobileNetV2 file (plumbing:
    its VGG19 layer names map to MobileNetV2 stages)."""
    path = tmp_path_factory.mktemp("mnv2") / "mobilenet_v2.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), path)
    loss = PerceptualLoss(weights=path, layers=GFPGAN_VGG_LAYERS, vgg_names=True, style_weight=1.0)
    assert loss.layers == {"block1": 0.1, "block3": 0.1, "block6": 1.0, "block13": 1.0, "block17": 1.0}
    return loss


def networks(cfg: TrainConfig) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    nets = {"G": build_model(cfg.arch, cfg.model), "D": build_model(cfg.options.disc_arch, cfg.options.disc)}
    setup_networks(cfg, nets)
    return nets


def test_every_loss_term_is_finite_and_reaches_what_it_should(perceptual):
    cfg = tiny_config(face={"fix_decoder": True})
    nets = networks(cfg)
    G = nets["G"]
    opts = {k: torch.optim.Adam([p for p in n.parameters() if p.requires_grad], lr=1e-3) for k, n in nets.items()}
    identity = ResNetArcFace().eval().requires_grad_(False)  # random weights: plumbing only
    batch = tiny_batches().batch(0)
    for name in ["D", *(f"D_{p}" for p in COMPONENTS)]:
        nets[name].requires_grad_(False)  # as in the G step
    terms, fake, _, _ = generator_terms(cfg, nets, batch, 0, perceptual, identity)
    assert set(terms) == {"pixel", "pyramid", "perceptual", "style", "gan", "gan_left_eye", "gan_right_eye",
                          "gan_mouth", "component_style", "identity"}
    trainable = {n: p for n, p in G.named_parameters() if p.requires_grad}
    assert trainable and not any(n.startswith("stylegan_decoder.") for n in trainable)  # the frozen prior

    def reached(term: torch.Tensor) -> set[str]:
        grads = torch.autograd.grad(term, list(trainable.values()), retain_graph=True, allow_unused=True)
        return {n for n, g in zip(trainable, grads) if g is not None and g.abs().sum() > 0}

    for name, term in terms.items():
        assert torch.isfinite(term) and term.ndim == 0, name
        hit = reached(term)
        assert any(n.startswith("final_linear.") for n in hit) != (name == "pyramid"), name  # the latent code
        assert any(n.startswith("condition_scale.") for n in hit) != (name == "pyramid"), name  # the SFT maps
        assert any(n.startswith("toRGB.") for n in hit) == (name == "pyramid"), name  # the U-Net's RGB outputs
    # The whole step: every discriminator learns, each component D from its crops; the prior stays put.
    decoder = {k: v.clone() for k, v in G.stylegan_decoder.state_dict().items()}
    out = gfpgan_step(cfg, nets, opts, batch, 0, perceptual, identity)
    assert all(torch.isfinite(v) for v in out.values()) and "r1" in out  # step 0: a lazy R1 step
    for name in ["D", *(f"D_{p}" for p in COMPONENTS)]:
        grads = [p.grad for p in nets[name].parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0, name
    assert all(p.grad is None for p in G.stylegan_decoder.parameters())
    for k, v in G.stylegan_decoder.state_dict().items():
        assert torch.equal(v, decoder[k]), k


def test_generator_learning_rates_emulate_the_equalised_lr():
    """Adam ignores a gradient's scale, so lr x 1/sqrt(fan_in) on a stored weight moves it as
    GFP-GAN's equalised layers (N(0, 1) weights times 1/sqrt(fan_in) at run time) move theirs."""
    from gan.nets.stylegan2_disc import EqualConv2d
    from gan.train.gfpgan import gfpgan_param_groups

    cfg = tiny_config()
    G = build_model(cfg.arch, cfg.model)
    scale = {id(p): g["lr_scale"] for g in gfpgan_param_groups(cfg, G) for p in g["params"]}
    assert len(scale) == sum(1 for _ in G.parameters())
    conv = G.stylegan_decoder.style_convs[0].modulated_conv.weight  # (1, out, in, 3, 3)
    assert scale[id(conv)] == pytest.approx(1 / (conv.shape[2] * 9) ** 0.5)
    assert scale[id(G.final_linear.weight)] == pytest.approx(1 / G.final_linear.weight.shape[1] ** 0.5)
    assert scale[id(G.final_linear.bias)] == 1 and scale[id(G.stylegan_decoder.style_convs[0].weight)] == 1
    # one Adam step each: an equalised conv, and a plain weight (its effective value) with scaled lr
    torch.manual_seed(0)
    eq = EqualConv2d(8, 4, 3, padding=1)
    plain = torch.nn.Parameter((eq.weight * eq.scale).detach().clone())
    x = torch.randn(2, 8, 5, 5)
    runs = [(eq.weight, 2e-3, lambda: eq.weight * eq.scale), (plain, 2e-3 * eq.scale, lambda: plain)]
    for param, lr, effective in runs:
        opt = torch.optim.Adam([param], lr=lr, betas=(0.0, 0.99))
        torch.nn.functional.conv2d(x, effective(), padding=1).pow(2).mean().backward()
        opt.step()
    torch.testing.assert_close(plain, eq.weight * eq.scale, rtol=1e-4, atol=1e-6)


def test_component_discriminators_see_only_their_crops():
    from gan.nets.components import component_boxes, crop_components, crop_sizes

    lm = torch.from_numpy(template(512))[None]
    boxes = component_boxes(lm, 512)[0]
    sides = boxes[:, 2:] - boxes[:, :2]
    assert torch.allclose(sides[0], sides[1]) and 80 < sides[0, 0] < 90 and 105 < sides[2, 0] < 120
    assert boxes[0, 2] < 256 < boxes[1, 0] and boxes[2, 1] > boxes[0, 3]  # left | right eye; mouth below
    from gan.data.faces import flip_landmarks

    flipped = component_boxes(torch.from_numpy(flip_landmarks(template(512), 512))[None], 512)[0]
    assert torch.allclose(flipped[0, [0, 2]], 511 - boxes[1, [2, 0]], atol=1e-3)  # mirrored and swapped
    image = torch.randn(1, 3, 64, 64, requires_grad=True)
    small = component_boxes(torch.from_numpy(template(64))[None], 64)
    crops = crop_components(image, small, *crop_sizes(64))
    assert crops["left_eye"].shape[-1] == 16 and crops["mouth"].shape[-1] == 24
    D = build_model("FacialComponentDiscriminator", COMP.to_dict())
    D(crops["left_eye"]).sum().backward()
    grad = image.grad[0].abs().sum(0)
    x0, y0, x1, y1 = small[0, 0].tolist()
    inside = grad[int(y0):int(y1) + 2, int(x0):int(x1) + 2].sum()
    assert inside > 0 and torch.isclose(inside, grad.sum())  # nothing outside the left eye's box


def native_fused_leaky_relu(x, bias, negative_slope=0.2, scale=2**0.5):
    shape = [1, -1] + [1] * (x.ndim - 2)
    return torch.nn.functional.leaky_relu(x + bias.view(shape), negative_slope) * scale


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                t.add_(torch.randn(t.shape, generator=gen) * 0.1 * (t.std().item() if t.numel() > 1 else 1.0))
    return model


def test_component_discriminator_and_arcface_match_gfpgan(monkeypatch, tmp_path):
    import gan  # noqa: F401  (the torchvision shim before gfpgan)

    fused = pytest.importorskip("basicsr.ops.fused_act.fused_act")
    monkeypatch.setattr(fused, "fused_leaky_relu", native_fused_leaky_relu)  # its CUDA-only kernel
    from gfpgan.archs.arcface_arch import ResNetArcFace as RefArcFace
    from gfpgan.archs.gfpganv1_arch import FacialComponentDiscriminator as RefD

    torch.manual_seed(0)
    ref = randomize_(RefD()).eval()
    ours = build_model("FacialComponentDiscriminator", {})
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 20, 20)
    want, want_feats = ref(x, return_feats=True)
    got, feats = ours(x, return_feats=True)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    for a, b in zip(feats, want_feats):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # ArcFace: the published file's layout (DataParallel's "module." prefix included) loads weights-only.
    from gan.nets.arcface import load_arcface

    ref = randomize_(RefArcFace("IRBlock", [2, 2, 2, 2], use_se=False)).eval()
    torch.save({f"module.{k}": v for k, v in ref.state_dict().items()}, tmp_path / "arcface_resnet18.pth")
    net = load_arcface(tmp_path / "arcface_resnet18.pth")
    faces = torch.randn(2, 1, 128, 128)
    torch.testing.assert_close(net(faces), ref(faces), rtol=1e-4, atol=1e-4)
    torch.save({"conv1.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not an arcface_resnet18"):
        load_arcface(tmp_path / "other.pth")


def test_prior_loads_clean_and_converted_basicsr_layouts(monkeypatch, tmp_path):
    import gan  # noqa: F401
    from gan.nets.prior import load_prior
    from gan.nets.stylegan2 import StyleGAN2Generator

    fused = pytest.importorskip("basicsr.ops.fused_act.fused_act")
    arch = pytest.importorskip("gfpgan.archs.stylegan2_bilinear_arch")
    monkeypatch.setattr(fused, "fused_leaky_relu", native_fused_leaky_relu)
    monkeypatch.setattr(arch, "fused_leaky_relu", native_fused_leaky_relu)
    dec = GEN.decoder()
    kw = dict(out_size=dec.out_size, num_style_feat=dec.num_style_feat, num_mlp=dec.num_mlp,
              channel_multiplier=dec.channel_multiplier, narrow=dec.narrow)
    torch.manual_seed(1)
    clean = randomize_(StyleGAN2Generator(dec))
    torch.save({"params_ema": clean.state_dict()}, tmp_path / "clean.pth")
    ref = randomize_(arch.StyleGAN2GeneratorBilinear(**kw)).eval()
    torch.save({"params_ema": ref.state_dict(), "params": {}}, tmp_path / "basicsr.pth")
    model = GFPGAN(GEN)
    assert "clean layout" in load_prior(model.stylegan_decoder, tmp_path / "clean.pth")
    for k, v in clean.state_dict().items():
        assert torch.equal(model.stylegan_decoder.state_dict()[k], v), k
    assert "converted" in load_prior(model.stylegan_decoder, tmp_path / "basicsr.pth")
    w = torch.randn(2, dec.num_latent, dec.num_style_feat)
    z = torch.randn(2, dec.num_style_feat)
    with torch.no_grad():
        for styles, latent in (([w], True), ([z], False)):
            torch.testing.assert_close(model.stylegan_decoder(styles, input_is_latent=latent, randomize_noise=False),
                                       ref(styles, input_is_latent=latent, randomize_noise=False)[0],
                                       rtol=1e-4, atol=1e-4)
    small = StyleGAN2Generator(dataclasses.replace(dec, out_size=16))
    torch.save(small.state_dict(), tmp_path / "small.pth")
    with pytest.raises(ValueError, match="does not fit the decoder"):
        load_prior(model.stylegan_decoder, tmp_path / "small.pth")


def test_few_steps_lower_the_pixel_loss_on_a_fixed_batch(tmp_path):
    fixed = tiny_batches(batch_size=4).batch(0)

    class Fixed:
        def batch(self, step):
            return fixed

    cfg = tiny_config(steps=30, batch_size=4, ema=0.0, val_every=30)
    torch.manual_seed(cfg.seed)
    start = build_model(cfg.arch, cfg.model)  # what train() starts from (same seed, built first)
    train(cfg, Fixed(), tmp_path, progress=False, log=lambda s: None)
    end, meta = load_model(tmp_path / "generator.safetensors")
    assert meta["task"] == "faces"
    with torch.no_grad():
        before = (start(fixed["input"]) - fixed["target"]).abs().mean()
        after = (end(fixed["input"]) - fixed["target"]).abs().mean()
    assert after < 0.7 * before, (before, after)


class Interrupted(RuntimeError):
    pass


def test_resume_is_exact(tmp_path):
    """Interrupted after the checkpoint of step 3 and resumed, a run ends with the weights,
    optimizer states and EMA of an uninterrupted one: batches are pure functions of the step,
    and the checkpoint holds every net, optimizer and RNG state (the decoder's noise is random)."""
    cfg = tiny_config(steps=6, val_every=3, r1_every=2, face={"pyramid_until": 4})
    good = tiny_batches()

    class Cut:
        def batch(self, step):
            if step == 4:
                raise Interrupted
            return good.batch(step)

    train(cfg, good, tmp_path / "whole", progress=False, log=lambda s: None)
    with pytest.raises(Interrupted):
        train(cfg, Cut(), tmp_path / "cut", progress=False, log=lambda s: None)
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"] == 3
    train(cfg, good, tmp_path / "cut", resume=True, progress=False, log=lambda s: None)
    a, b = load_checkpoint(tmp_path / "whole" / "checkpoint.pt"), load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert set(a["nets"]) == {"G", "D", "D_left_eye", "D_right_eye", "D_mouth"} == set(a["opts"])
    for net in a["nets"]:
        for k, v in a["nets"][net].items():
            assert torch.equal(v, b["nets"][net][k]), (net, k)
    for k, v in a["ema"].items():
        assert torch.equal(v, b["ema"][k]), k
    assert a["opts"]["D_mouth"]["state"][0]["exp_avg"].equal(b["opts"]["D_mouth"]["state"][0]["exp_avg"])


def cli_args(data: Path, out: Path, steps: int = 2, *extra: str) -> list[str]:
    return ["train", "gfpgan", "--data", str(data), "--out", str(out), "--preset", "tiny", "--steps", str(steps),
            "--batch-size", "2", "--val-every", "2", "--threads", "1", "--quiet", "--perceptual", "none", *extra]


def test_cli_trains_and_restore_faces_takes_the_export(tmp_path, capsys):
    data = face_folder(tmp_path / "faces", 5)
    Image.fromarray(synthetic_face(9, 64)[:, :48]).save(data / "not_square.png")
    assert main(cli_args(data, tmp_path / "run")) == 2  # a non-square image is reported before training
    assert "not square" in capsys.readouterr().err
    assert main(cli_args(data, tmp_path / "run", 2, "--skip-bad")) == 0
    out = capsys.readouterr().out
    assert "identity loss off" in out and "perceptual loss off" in out and "holding out 1 of 5" in out
    model, meta = load_model(tmp_path / "run" / "generator.safetensors")
    assert meta["arch"] == "GFPGAN" and meta["task"] == "faces"
    code = main(["faces", str(data / "face0.png"), "-o", str(tmp_path / "restored"), "--aligned",
                 "--weights", str(tmp_path / "run"), "--quiet"])
    assert code == 0
    restored = np.asarray(Image.open(tmp_path / "restored" / "restored" / "face0.png"))
    assert restored.shape == (64, 64, 3)


def test_cli_prior_fixed_decoder_pairs_and_fine_tuning(tmp_path, capsys, perceptual):
    from gan.nets.stylegan2 import StyleGAN2Generator

    clean = face_folder(tmp_path / "B", 3)
    degraded = tmp_path / "A"
    degraded.mkdir()
    for f in clean.iterdir():
        Image.open(f).resize((16, 16)).resize((64, 64)).save(degraded / f.name)
    torch.manual_seed(3)
    prior = StyleGAN2Generator(GEN.decoder()).state_dict()
    torch.save({"params_ema": prior}, tmp_path / "prior.pth")
    torch.save(ResNetArcFace().state_dict(), tmp_path / "arcface.pth")  # random: plumbing only
    args = cli_args(clean, tmp_path / "run", 2, "--prior", str(tmp_path / "prior.pth"), "--fix-decoder",
                    "--identity-weights", str(tmp_path / "arcface.pth"), "--perceptual", "auto",
                    "--perceptual-weights", str(perceptual.weights_path))
    args[2:4] = ["--pairs", str(degraded), str(clean)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "StyleGAN2 prior from" in out and "identity loss: ArcFace from" in out and "mobilenet_v2" in out
    model, _ = load_model(tmp_path / "run" / "last.safetensors")
    for k, v in prior.items():
        assert torch.equal(model.stylegan_decoder.state_dict()[k], v), k  # frozen (its EMA too)
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    options = state["config"]["options"]  # the faces task's section
    assert options["perceptual_weight"] == 1 and options["face"]["identity_weight"] == 10
    groups = state["opts"]["G"]["param_groups"]  # by learning-rate scale (the equalised lr)
    assert len(groups) > 1 and all(0 < g["lr_scale"] <= 1 for g in groups)
    n_params = sum(len(g["params"]) for g in groups)
    assert n_params == sum(1 for n, _ in model.named_parameters() if not n.startswith("stylegan_decoder."))
    # fine-tuning starts from a trained generator (lr 0: the export is that generator)
    tuned = cli_args(clean, tmp_path / "tuned", 2, "--init-weights", str(tmp_path / "run"), "--lr", "0")
    assert main(tuned) == 0
    again, _ = load_model(tmp_path / "tuned" / "last.safetensors")
    start, _ = load_model(tmp_path / "run" / "generator.safetensors")
    for k, v in start.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k
    # ... or from a published-style .pth (GFPGANv1.3/1.4 hold params_ema), read weights-only
    torch.save({"params_ema": start.state_dict()}, tmp_path / "GFPGANtiny.pth")
    tuned[tuned.index("--init-weights") + 1] = str(tmp_path / "GFPGANtiny.pth")
    assert main(tuned) == 0
    again, _ = load_model(tmp_path / "tuned" / "last.safetensors")
    assert all(torch.equal(again.state_dict()[k], v) for k, v in start.state_dict().items())
    capsys.readouterr()
    assert main(cli_args(clean, tmp_path / "x", 2, "--fix-decoder")) == 2
    assert "--fix-decoder freezes a pretrained decoder" in capsys.readouterr().err
    assert main(cli_args(clean, tmp_path / "x", 2, "--init-weights", str(tmp_path / "run"), "--preset", "small")) == 2
    assert "does not match" in capsys.readouterr().err


def test_torchrun_two_processes_stay_in_sync(tmp_path):
    data = face_folder(tmp_path / "faces", 4)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           "-m", "restore", *cli_args(data, tmp_path / "run", 2)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "all 2 ranks hold the same weights" in done.stdout
