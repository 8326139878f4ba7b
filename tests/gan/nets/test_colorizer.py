"""The sketch colorizer (gan/nets/colorizer.py), its data (gan/data/sketch.py) and training step
(gan/train/loop.py, task "colorize"), with tiny presets on CPU."""
from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from gan.data.sketch import ColorizeBatches, hue_matrix, shuffle_patches
from gan.data.tps import augment_self, tps_map
from gan.nets.ac_patchgan import ACPatchDiscriminator
from gan.nets.colorizer import Colorizer, ColorizerConfig, palette_histogram
from gan.presets import AC_PATCHGAN_PRESETS, COLORIZER_PRESETS
from gan.serialize import load_model, save_model
from gan.train.loop import TrainConfig, train
from gan.train.steps import colorize_step
from restore.sketch.extract import random_sketch
from tests import ROOT

TINY = COLORIZER_PRESETS["tiny"]


def clipart(seed: int, h: int = 48, w: int = 56) -> np.ndarray:
    """Flat-colour shapes with black outlines on white, uint8 HxWx3."""
    from skimage.draw import ellipse, ellipse_perimeter

    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 255, np.uint8)
    for _ in range(3):
        cy, cx = rng.integers(10, h - 10), rng.integers(10, w - 10)
        ry, rx = rng.integers(5, 12), rng.integers(5, 12)
        img[ellipse(cy, cx, ry, rx, shape=(h, w))] = rng.integers(0, 256, 3)
        for d in (0, 1):
            img[ellipse_perimeter(cy, cx, ry + d, rx + d, shape=(h, w))] = 0
    return img


def refs(n: int = 1, size: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    red = torch.zeros(n, 3, size, size) - 1
    red[:, 0] = 0.8
    blue = torch.zeros(n, 3, size, size) - 1
    blue[:, 2] = 0.8
    return red, blue


def trained_like(cfg: ColorizerConfig = TINY, seed: int = 0) -> Colorizer:
    """A colorizer whose tail is not zero: a new one starts as its sketch (from_sketch), so no
    input but the sketch would reach its output yet, nor any gradient but the tail's."""
    torch.manual_seed(seed)
    net = Colorizer(cfg)
    torch.nn.init.normal_(net.tail.weight, std=0.05)
    for attend in net.attend.values():  # their output starts at zero too
        torch.nn.init.normal_(attend.out.weight, std=0.05)
    return net


def sketch(n: int = 1, h: int = 37, w: int = 45) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.where(torch.rand(n, 1, h, w) < 0.1, -1.0, 1.0)


def test_shapes_any_size_and_save_load(tmp_path):
    for cfg in (TINY, replace(TINY, hints=False, palette_bins=0), replace(TINY, style_encoder="none")):
        torch.manual_seed(0)
        net = Colorizer(cfg).eval()
        red, _ = refs()
        hints = torch.zeros(1, 4, 37, 45) if cfg.hints else None
        with torch.no_grad():
            y = net(sketch(), red, hints)
        assert y.shape == (1, 3, 37, 45)
        save_model(net, tmp_path / "c.safetensors")
        again, meta = load_model(tmp_path / "c.safetensors")
        with torch.no_grad():
            assert torch.equal(again(sketch(), red, hints), y)
        assert meta["arch"] == "Colorizer" and meta["config"] == cfg.to_dict()


def test_two_references_give_two_results():
    net = trained_like().eval()
    red, blue = refs()
    with torch.no_grad():
        a, b = net(sketch(), red), net(sketch(), blue)
        assert (a - b).abs().max() > 1e-3
        s_red, s_blue = net.style(red), net.style(blue)
        assert s_red.shape == (1, TINY.style_dim) and not torch.allclose(s_red, s_blue)
        # the reference reaches the output through its encoding only: same encoding, same output
        assert torch.equal(net.run(sketch(), s_red, ref=net.encode_reference(red))["image"], a)
        with pytest.raises(ValueError, match="attends to the reference"):
            net.run(sketch(), s_red)


def test_hints_change_the_output():
    net = trained_like().eval()
    red, _ = refs()
    hints = torch.zeros(1, 4, 37, 45)
    hints[:, 1, 10:14, 10:14] = 0.9
    hints[:, 3, 10:14, 10:14] = 1
    with torch.no_grad():
        assert (net(sketch(), red, hints) - net(sketch(), red)).abs().max() > 1e-4


def test_a_new_colorizer_starts_as_its_sketch():
    net = Colorizer(TINY).eval()
    red, _ = refs()
    with torch.no_grad():
        y = net(sketch(), red)
    assert torch.equal(y, sketch().expand_as(y))


def test_palette_histogram_is_a_unit_vector_of_the_colours():
    img = torch.zeros(2, 3, 8, 8)
    img[0, 0] = 1  # pure red
    h = palette_histogram(img, 4)
    assert torch.allclose((h**2).sum(1), torch.ones(2))
    assert h[0].argmax() == 3 * 16 and h[1].argmax() == 0  # red bin (r=3, g=0, b=0); black


def test_every_parameter_learns_and_guides_get_gradients():
    """One colorize step with D and the AC head: every trainable parameter of G (guide decoders
    included) and of D receives a gradient."""
    G = trained_like()
    D = ACPatchDiscriminator(replace(AC_PATCHGAN_PRESETS["tiny"], style_dim=TINY.aux_dim))
    batch = ColorizeBatches([clipart(i) for i in range(3)], 32, 4, sketch=random_sketch).batch(0)
    batch["hints"][:, :, 4:8, 4:8] = 0.5  # make sure the hint input is used
    cfg = TrainConfig(task="colorize", arch="Colorizer", disc_arch="ACPatchDiscriminator", fused=False)
    grads: dict[str, dict[str, torch.Tensor]] = {"G": {}, "D": {}}

    class Spy(torch.optim.SGD):  # records the gradients the step computed
        def __init__(self, params, key):
            self.key = key
            super().__init__(params, lr=0.0)

        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    grads[self.key][id(p)] = None if p.grad is None else p.grad.clone()

    opts = {"G": Spy([p for p in G.parameters() if p.requires_grad], "G"), "D": Spy(D.parameters(), "D")}
    out = colorize_step(cfg, {"G": G, "D": D}, opts, batch, step=0)
    assert {"l1", "guide_grey", "guide_colour", "gan", "aux_d", "aux_g", "loss_d"} <= set(out)
    for key, net in (("G", G), ("D", D)):
        for name, p in net.named_parameters():
            g = grads[key][id(p)]
            assert g is not None and g.abs().sum() > 0, f"{key}.{name} got no gradient"
    assert any(n.startswith("guide_grey") for n, _ in G.named_parameters())


def test_frozen_backbone_stays_frozen_and_is_not_named_in_the_saved_config(tmp_path):
    cfg = replace(TINY, style_encoder="mobilenet_v2", style_weights="")
    net = Colorizer(cfg).train()
    assert not any(p.requires_grad for p in net.style.net.parameters())
    assert not net.style.net.training  # batch norm statistics never update
    assert cfg.style_dim == 1280 + 8
    weighted = replace(cfg, style_weights="/somewhere/mobilenet.pth")
    assert weighted.to_dict()["style_weights"] == ""
    with pytest.raises(ValueError, match=r"perceptual weights not found: /somewhere/mobilenet.pth"):
        Colorizer(weighted)  # a named file must exist


def test_batches_are_a_pure_function_of_the_step():
    images = [clipart(i) for i in range(4)]
    mk = lambda **kw: ColorizeBatches(images, 32, 3, seed=5, sketch=random_sketch, **kw)  # noqa: E731
    a, b = mk().batch(7), mk().batch(7)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["target"], mk().batch(8)["target"])
    assert a["input"].shape == (3, 1, 32, 32) and a["reference"].shape == a["target"].shape == (3, 3, 32, 32)
    assert a["hints"].shape == (3, 4, 32, 32) and set(a["hints"][:, 3].unique().tolist()) <= {0.0, 1.0}
    assert a["input"].min() >= -1 and a["target"].max() <= 1
    unpaired = mk(unpaired=1.0).batch(0)
    assert torch.equal(unpaired["paired"], torch.zeros(3))
    with pytest.raises(ValueError, match=r"give either a sketch extractor or the sketches"):
        ColorizeBatches(images, 32, 3)  # neither an extractor nor sketches


def test_hue_rotation_keeps_greys_and_patch_shuffle_keeps_pixels():
    m = hue_matrix(1.3)
    assert np.allclose(m @ np.ones(3), np.ones(3), atol=1e-6) and np.allclose(m @ m.T, np.eye(3), atol=1e-6)
    img = np.arange(8 * 8 * 3, dtype=np.float32).reshape(8, 8, 3)
    out = shuffle_patches(img, 4, torch.Generator().manual_seed(0))
    assert not np.array_equal(out, img) and np.array_equal(np.sort(out.ravel()), np.sort(img.ravel()))


def test_attention_levels_and_a_model_without_them_carried_over(tmp_path):
    """The tiny preset attends at the bottleneck and the level above; the attention output starts
    at zero, so a colorizer without attention, carried over by ``--init``'s initial_state, gives
    the same colours; after that its output depends on where the reference's colours are."""
    from restore.train.colorizer import initial_state

    assert TINY.attention_levels == (2, 1) and set(Colorizer(TINY).attend) == {"2", "1"}
    plain = trained_like(replace(TINY, attention=0))
    path = save_model(plain, tmp_path / "plain.safetensors", {"task": "colorization"})
    net = Colorizer(TINY)
    net.load_state_dict(initial_state(TINY, path, seed=0))
    red, blue = refs()
    with torch.no_grad():
        assert torch.allclose(net.eval()(sketch(), red), plain.eval()(sketch(), red), atol=1e-6)
    net = trained_like().eval()
    left = torch.cat([red[..., :20], blue[..., 20:]], dim=-1)  # red | blue, and blue | red:
    right = torch.flip(left, dims=[-1])                         # the same colours, elsewhere
    with torch.no_grad():
        assert net.style.fixed(net.style(left)).allclose(net.style.fixed(net.style(right)), atol=1e-6)
        assert not torch.allclose(net(sketch(), left), net(sketch(), right), atol=1e-4)
        # one style vector, the references' features swapped: only the attention can tell them apart
        enc_left, enc_right = net.encode_reference(left), net.encode_reference(right)
        a = net.run(sketch(), enc_left["style"], ref=enc_left)["image"]
        b = net.run(sketch(), enc_left["style"], ref=enc_right)["image"]
        assert (a - b).abs().max() > 1e-3
    with pytest.raises(ValueError, match="attention must be"):
        replace(TINY, attention=4)


def test_augmented_self_reference_is_the_target_warped_colours_kept():
    g = lambda s=0: torch.Generator().manual_seed(s)  # noqa: E731
    img = np.random.default_rng(0).random((40, 48, 3)).astype(np.float32)
    same = augment_self(img, g(), jitter=0, rotate=0, zoom=(1, 1), flip=0)
    assert np.abs(same - img).max() < 1e-5  # no distortion: the image itself
    mirrored = augment_self(img, g(), jitter=0, rotate=0, zoom=(1, 1), flip=1)
    assert np.abs(mirrored - img[:, ::-1]).max() < 1e-5
    ctrl = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1], [0, 0.2]], float)
    moved = ctrl + 0.1
    assert np.allclose(tps_map(ctrl, moved, moved), ctrl, atol=1e-6)  # through every control point
    art = clipart(3, 64, 64).astype(np.float32) / 255
    warped = augment_self(art, g(1))
    assert np.array_equal(warped, augment_self(art, g(1))) and not np.allclose(warped, art, atol=0.1)
    # colours kept: every warped pixel is near a colour of the picture (or the white paper)
    palette = np.unique((art * 255).round().reshape(-1, 3), axis=0) / 255
    nearest = np.abs(warped.reshape(-1, 1, 3) - palette[None]).max(-1).min(-1)
    assert np.mean(nearest < 0.02) > 0.9
    batches = ColorizeBatches([clipart(i) for i in range(3)], 32, 4, sketch=random_sketch, self_ref=1.0, grids=(4,))
    b = batches.batch(0)
    assert not torch.equal(b["reference"], b["target"]) and b["reference"].shape == b["target"].shape


def test_short_training_lowers_the_loss(tmp_path):
    images = [clipart(i) for i in range(6)]
    batches = ColorizeBatches(images, 32, 4, seed=0, sketch=random_sketch)
    disc = replace(AC_PATCHGAN_PRESETS["tiny"], style_dim=TINY.aux_dim)
    cfg = TrainConfig(task="colorize", arch="Colorizer", model=asdict(TINY), disc_arch="ACPatchDiscriminator",
                      disc=disc.to_dict(), steps=40, batch_size=4, lr=2e-3, betas=(0.5, 0.999), warmup=5,
                      val_every=40, loader_threads=0, fused=False)
    summary = train(cfg, batches, tmp_path, progress=False, log=lambda s: None)
    losses = summary["losses"]
    assert np.mean(losses[-10:]) < 0.75 * np.mean(losses[:5])
    net, meta = load_model(tmp_path / "generator.safetensors")
    assert isinstance(net, Colorizer) and meta["task"] == "sketch"


# --------------------------------------------------------------------------- the bundled model
EXAMPLES = ROOT / "examples" / "sketch"
# Measured with the bundled model: +2.19, +2.76 and +2.15 dB over the one-colour fill (monkey,
# dog, ladybug); an untrained or lagging-EMA model (output ~ the sketch) scores about -1 dB.
GAIN_MIN, GAIN_MEAN = 1.5, 2.0


def test_bundled_colorizer_colours_held_out_clip_art():
    """weights/colorizer.safetensors (manifest-checked) on the three held-out example pictures:
    each XDoG sketch coloured with its original as the reference beats the one-colour flat fill,
    and a reference of other colours gives another result."""
    from restore.sketch.colorizer import Colorizer as Apply
    from restore.sketch.colorizer import flat_fill, psnr, read_rgb
    from restore.sketch.extract import xdog

    colorizer = Apply("colorizer")
    gains = []
    for name in ("monkey", "dog", "ladybug"):
        truth = read_rgb(EXAMPLES / f"{name}.png")
        s = xdog(truth)
        out = colorizer(s, truth).astype(np.float32) / 255
        gains.append(psnr(out, truth) - psnr(flat_fill(s, truth, per_region=False), truth))
    assert min(gains) > GAIN_MIN and np.mean(gains) > GAIN_MEAN, gains
    monkey, ladybug = read_rgb(EXAMPLES / "monkey.png"), read_rgb(EXAMPLES / "ladybug.png")
    s = xdog(monkey)
    a, b = colorizer(s, monkey).astype(np.float32), colorizer(s, ladybug).astype(np.float32)
    assert np.abs(a - b).mean() > 5  # grey levels: the reference steers the colours


def test_torch_xdog_is_the_extractors_xdog():
    """The reference's own sketch, made inside the network, is the one `--extract xdog` draws."""
    from gan.nets.correspondence import xdog_torch
    from restore.sketch.extract import xdog

    img = clipart(3, 64, 72)
    mine = (xdog_torch(torch.from_numpy(img.transpose(2, 0, 1).copy())[None].float() / 127.5 - 1) + 1) / 2
    theirs = xdog(img)
    assert np.abs(mine[0, 0].numpy() - theirs).mean() < 0.01
    assert ((mine[0, 0].numpy() < 0.5) == (theirs < 0.5)).mean() > 0.99


def test_sketch_match_starts_at_zero_and_finds_the_same_place():
    """match_level: the reference's XDoG sketch goes through the colorizer's own encoder, so an
    aligned reference gives each query its own place as the best key from the first step; the
    output starts as the model without it (``--init`` carries a model over unchanged)."""
    cfg = replace(TINY, match_level=0)
    net = trained_like(cfg).eval()
    img = clipart(5, 32, 32)  # the tiny preset sees references at 32 x 32
    ref = torch.from_numpy(img.transpose(2, 0, 1).copy())[None].float() / 127.5 - 1
    from gan.nets.correspondence import xdog_torch

    x = xdog_torch(ref)
    with torch.no_grad():
        without = Colorizer(replace(cfg, match_level=-1))
        without.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("match.")})
        assert torch.allclose(net(x, ref), without.eval()(x, ref), atol=1e-6)
        feats = net._encode(x, None)[0]
        keys = net.encode_reference(ref)["sketch_features"]
        q, k = net.match.describe(feats), net.match.describe(keys)
        best = (q @ k.transpose(-1, -2)).argmax(-1)  # (N, heads, tokens)
        same = (best == torch.arange(best.shape[-1])).float().mean()
        assert same > 0.9  # the coarser levels tell even alike flat insides apart
        torch.nn.init.normal_(net.match.out.weight, std=0.05)
        assert (net(x, ref) - without(x, ref)).abs().max() > 1e-3
    with pytest.raises(ValueError, match="match_level"):
        replace(TINY, match_level=TINY.depth)
