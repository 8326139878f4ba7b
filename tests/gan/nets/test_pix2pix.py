"""pix2pix networks: the U-Net generator (any size, pixel-unshuffle, residual) and the PatchGAN."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from gan.nets.pix2pix import (PatchDiscriminator, PatchGANConfig, Pix2PixConfig, UNetGenerator, num_downs_for,
                              receptive_field)
from gan.presets import PATCHGAN_PRESETS, PIX2PIX_PRESETS
from gan.serialize import load_model, save_model


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def tiny_g(**kw) -> UNetGenerator:
    return UNetGenerator(Pix2PixConfig(**{"base_channels": 4, "num_downs": 3, "max_channels": 16, **kw}))


def test_num_downs_for():
    assert num_downs_for(256) == 8 and num_downs_for(128) == 7 and num_downs_for(512) == 9
    assert num_downs_for(300) == 8  # rounds down: the bottleneck never falls below 1x1
    assert num_downs_for(1) == num_downs_for(2) == num_downs_for(3) == 1 and num_downs_for(4) == 2
    assert num_downs_for(256, pixel_unshuffle=2) == 7
    with pytest.raises(ValueError, match=r"size and pixel_unshuffle must be positive, got 0, 1"):
        num_downs_for(0)


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
@pytest.mark.parametrize("size", [(16, 16), (20, 27), (5, 9), (8, 40)])
@pytest.mark.parametrize("unshuffle", [1, 2])
def test_generator_shape_any_size(norm, size, unshuffle):
    torch.manual_seed(0)
    g = tiny_g(norm=norm, pixel_unshuffle=unshuffle, in_channels=2, out_channels=3).train()
    y = g(torch.rand(2, 2, *size) * 2 - 1)
    assert y.shape == (2, 3, *size)
    assert y.abs().max() <= 1  # tanh
    assert g.config.size_divisor == 8 * unshuffle


@pytest.mark.parametrize("size", [(16, 16), (13, 22), (3, 7)])
@pytest.mark.parametrize("unshuffle", [1, 2])
def test_residual_with_zero_correction_is_identity(size, unshuffle):
    """Zeroing the last layer leaves output == input exactly: padding and cropping line up."""
    g = tiny_g(residual=True, final_act="none", norm="none", pixel_unshuffle=unshuffle).eval()
    nn.init.zeros_(g.ups[0][1].weight)
    nn.init.zeros_(g.ups[0][1].bias)
    x = torch.randn(1, 3, *size)
    torch.testing.assert_close(g(x), x, rtol=0, atol=0)


def test_residual_needs_matching_channels_and_bad_options_raise():
    with pytest.raises(ValueError, match="residual"):
        Pix2PixConfig(in_channels=1, out_channels=3, residual=True)
    with pytest.raises(ValueError, match="norm"):
        Pix2PixConfig(norm="layer")
    with pytest.raises(ValueError, match="final_act"):
        Pix2PixConfig(final_act="sigmoid")
    with pytest.raises(ValueError, match="norm"):
        PatchGANConfig(norm="bogus")


def test_skips_change_the_output():
    """Each decoder level reads its encoder level: perturbing the outermost skip changes y."""
    torch.manual_seed(0)
    g = tiny_g(norm="none").eval()
    x = torch.randn(1, 3, 16, 16)
    seen = {}
    g.downs[0].register_forward_hook(lambda m, i, o: seen.setdefault("skip0", o))
    g(x)
    assert seen["skip0"].shape == (1, 4, 8, 8)
    # the first decoder level's input is [skip0, upsampled]: 2 x 4 channels
    assert g.ups[0][1].in_channels == 8 and g.ups[-1][1].in_channels == 16


@pytest.mark.parametrize("num_downs,expected", [(8, 3), (7, 2), (5, 0), (9, 4)])
def test_dropout_levels_as_pix2pix(num_downs, expected):
    with torch.device("meta"):
        g = UNetGenerator(Pix2PixConfig(base_channels=2, num_downs=num_downs))
    drops = [j for j, up in enumerate(g.ups) if any(isinstance(m, nn.Dropout) for m in up)]
    assert len(drops) == expected
    assert all(4 <= j <= num_downs - 2 for j in drops)  # never the outer four, never the innermost


def test_dropout_is_stochastic_in_train_mode_only():
    torch.manual_seed(0)
    g = tiny_g(num_downs=6, dropout=0.5, norm="none")
    x = torch.randn(1, 3, 64, 64)
    assert not torch.equal(g.train()(x), g(x))
    g.eval()
    assert torch.equal(g(x), g(x))


def test_paper_sizes_match_pix2pix():
    with torch.device("meta"):  # no memory, no init cost
        g = UNetGenerator(PIX2PIX_PRESETS["paper"])
        d = PatchDiscriminator(PATCHGAN_PRESETS["paper"])
    # pix2pix's unet_256 has 54_413_955 (its "54.414 M"); plus 576 here for the biases of the
    # outermost and innermost down convs, which pix2pix leaves out though no norm follows them.
    assert n_params(g) == 54_413_955 + 576
    assert n_params(d) == 2_768_705  # pix2pix's basic 70x70 PatchGAN
    assert g.config.size_divisor == 256 and d.config.receptive_field == 70


@pytest.mark.parametrize("model", ["generator", "discriminator", "discriminator_sn"])
def test_every_parameter_gets_a_gradient(model):
    torch.manual_seed(0)
    if model == "generator":
        net = tiny_g(pixel_unshuffle=2, residual=True, final_act="none").train()
        out = net(torch.randn(2, 3, 32, 32))
    else:
        net = PatchDiscriminator(PatchGANConfig(base_channels=4, n_layers=2,
                                                spectral_norm=model.endswith("sn"))).train()
        out = net(torch.randn(2, 3, 32, 32), condition=torch.randn(2, 3, 32, 32))
    out.square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


@pytest.mark.parametrize("n_layers,size,out", [(1, 32, 14), (2, 32, 6), (3, 64, 6)])
def test_patchgan_output_shape(n_layers, size, out):
    d = PatchDiscriminator(PatchGANConfig(in_channels=6, base_channels=4, n_layers=n_layers))
    assert d(torch.randn(2, 6, size, size)).shape == (2, 1, out, out)


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_receptive_field_measured(n_layers):
    """The gradient of one central output logit is non-zero on exactly an r x r input patch."""
    assert receptive_field(3) == 70
    d = PatchDiscriminator(PatchGANConfig(in_channels=1, base_channels=2, n_layers=n_layers, norm="none")).double()
    x = torch.randn(1, 1, 160, 160, dtype=torch.float64, requires_grad=True)
    y = d(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    touched = x.grad[0, 0] != 0
    rows, cols = touched.any(1).nonzero()[:, 0], touched.any(0).nonzero()[:, 0]
    r = receptive_field(n_layers)
    assert rows[-1] - rows[0] + 1 == r and cols[-1] - cols[0] + 1 == r
    assert rows[0] > 0 and rows[-1] < 159  # the patch lies inside the image, not clipped
    assert touched.sum() == r * r


def test_spectral_norm_bounds_each_layer():
    torch.manual_seed(0)
    d = PatchDiscriminator(PatchGANConfig(base_channels=4, n_layers=2, norm="none", spectral_norm=True)).train()
    x = torch.randn(2, 6, 32, 32)
    for _ in range(10):  # a few power iterations, as training does
        d(x)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4
    for conv in convs:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.02)
    assert any("parametrizations.weight.original" in k for k in d.state_dict())


@pytest.mark.parametrize("which", ["generator", "discriminator", "discriminator_sn"])
def test_save_load_same_output(which, tmp_path):
    torch.manual_seed(0)
    if which == "generator":
        model = tiny_g(pixel_unshuffle=2)
        x = torch.randn(2, 3, 24, 20)
    else:
        model = PatchDiscriminator(PatchGANConfig(base_channels=4, n_layers=2, spectral_norm=which.endswith("sn")))
        x = torch.randn(2, 6, 32, 32)
    model.train()(x)  # move batch-norm statistics and spectral-norm vectors off their start
    model.eval()
    path = save_model(model, tmp_path / "m.safetensors", {"note": "x"})
    loaded, meta = load_model(path)
    assert type(loaded) is type(model) and meta["config"] == model.config.to_dict()
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_a_few_steps_lower_the_l1_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    g = tiny_g(norm="none", residual=True, final_act="none", pixel_unshuffle=2).train()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    target = 0.5 * x + 0.1  # a contrast and brightness change: learnable by a tiny net
    opt = torch.optim.Adam(g.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = (g(x) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_init_choice():
    torch.manual_seed(0)
    p2p = UNetGenerator(Pix2PixConfig(base_channels=8, num_downs=3, init="pix2pix"))
    default = UNetGenerator(Pix2PixConfig(base_channels=8, num_downs=3, init="default"))
    convs = lambda m: [x.weight for x in m.modules() if isinstance(x, torch.nn.Conv2d)]  # noqa: E731
    assert max(float(w.std()) for w in convs(p2p)) < 0.03  # N(0, 0.02)
    assert max(float(w.std()) for w in convs(default)) > 0.05  # Kaiming: larger for small fan-in
    with pytest.raises(ValueError, match="init"):
        Pix2PixConfig(init="xavier")
