"""Overlap-tile inference: tiled output equals whole-image output wherever it should."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import restore.tiling as tiling
from gan.nets.unet import UNet, UNetConfig
from restore.tiling import (fold_batchnorm, probe_output_shape, reflect_index, reuse_freed_memory, tile_starts,
                            tiled_inference, window_1d)


def mirror_pad(x: torch.Tensor, pads: list[tuple[int, int]]) -> torch.Tensor:
    """Reference whole-image mirror padding (numpy's reflect repeats for wide pads)."""
    return torch.from_numpy(np.pad(x.numpy(), [(0, 0), *pads], mode="reflect"))


def valid_convnet(dims: int, cin: int = 2, cout: int = 3) -> nn.Module:
    """Unpadded 5x5 then 3x3 convolutions: output = input minus 3 px on each side."""
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    torch.manual_seed(0)
    return nn.Sequential(conv(cin, 4, 5), nn.ReLU(), conv(4, cout, 3)).eval()


def pointwise(dims: int, cin: int = 2, cout: int = 3) -> nn.Module:
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    torch.manual_seed(0)
    return nn.Sequential(conv(cin, cout, 1), nn.Tanh()).eval()


def identity(x: torch.Tensor) -> torch.Tensor:
    return x.clone()


# --- geometry -------------------------------------------------------------------------------

@pytest.mark.parametrize("size,tile,stride", [(100, 32, 24), (32, 32, 24), (33, 32, 24), (10, 32, 24), (97, 7, 1)])
def test_tile_starts_cover_the_image_last_tile_flush(size, tile, stride):
    starts = tile_starts(size, tile, stride)
    assert starts[0] == 0 and starts == sorted(set(starts))
    covered = np.zeros(size, bool)
    for s in starts:
        covered[s:s + tile] = True
    assert covered.all()
    assert starts[-1] == max(0, size - tile)  # flush with the end, as MONAI
    assert all(b - a <= stride for a, b in zip(starts, starts[1:]))


def test_tile_starts_aligned_may_pass_the_end():
    starts = tile_starts(38, 20, 15, align=4)
    assert starts == [0, 12, 20] and all(s % 4 == 0 for s in starts)
    assert tile_starts(4096, 512, 384) == [0, 384, 768, 1152, 1536, 1920, 2304, 2688, 3072, 3456, 3584]


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_reflect_index_matches_numpy_even_for_wide_pads(size):
    pad = 3 * size + 2
    ref = np.pad(np.arange(size), pad, mode="reflect") if size > 1 else np.zeros(size + 2 * pad, int)
    got = reflect_index(torch.arange(-pad, size + pad), size)
    assert got.tolist() == ref.tolist()


def test_gaussian_window_peaks_in_the_centre():
    w = window_1d(9, "gaussian", 0.125)
    assert w.argmax() == 4 and w[0] < 0.01 and torch.allclose(w, w.flip(0))
    assert torch.equal(window_1d(5, "constant"), torch.ones(5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"blend must be one of \('gaussian', 'constant'\), not 'median'"):
        window_1d(5, "median")


def test_probe_reads_the_config_or_runs_the_model():
    torch.manual_seed(0)
    unet = UNet(UNetConfig(in_channels=1, out_channels=2, padding="valid", norm="none", base_channels=4, depth=2))
    unet.eval()
    from_config = probe_output_shape(unet, (60, 64), 1)
    assert from_config == (2, 20, 24)
    assert probe_output_shape(lambda x: unet(x), (60, 64), 1) == from_config  # no config: runs it
    assert probe_output_shape(valid_convnet(3), (10, 11, 12), 2) == (3, 4, 5, 6)


# --- tiled == whole image -------------------------------------------------------------------

@pytest.mark.parametrize("dims,shape,tile", [(2, (37, 50), 16), (2, (9, 6), 16), (3, (13, 17, 11), 10)])
@pytest.mark.parametrize("blend", ["gaussian", "constant"])
def test_valid_convnet_tiled_equals_whole_image(dims, shape, tile, blend):
    model = valid_convnet(dims)
    torch.manual_seed(1)
    image = torch.randn(2, *shape)
    # out_tile is probed by running the model once; the margin (3 px) is mirror padded.
    got = tiled_inference(model, image, tile, overlap=0.3, blend=blend, batch_size=3)
    with torch.inference_mode():
        want = model(mirror_pad(image, [(3, 3)] * dims)[None])[0]
    assert got.shape == (3, *shape) and got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dims,shape,tile", [(2, (23, 31), 8), (3, (9, 12, 7), (4, 6, 5))])
@pytest.mark.parametrize("blend", ["gaussian", "constant"])
def test_pointwise_model_tiled_equals_whole_image(dims, shape, tile, blend):
    model = pointwise(dims)
    image = torch.rand(2, *shape)
    got = tiled_inference(model, image, tile, overlap=0.5, blend=blend)
    with torch.inference_mode():
        want = model(image[None])[0]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("shape", [(36, 52), (37, 43), (11, 9)])
def test_valid_unet_tiled_equals_unet_on_mirror_padded_image(shape):
    torch.manual_seed(0)
    model = UNet(UNetConfig(in_channels=1, out_channels=2, padding="valid", norm="none",
                            base_channels=4, depth=2)).eval()
    tile = 60
    out_tile = model.config.output_size(tile)
    margin = (tile - out_tile) // 2
    assert (out_tile, margin) == (20, 20)
    image = torch.randn(1, *shape)
    got = tiled_inference(model, image, tile, overlap=0.25, batch_size=2)
    # Whole image: mirror pad by the margin, and on the far side up to the pooling grid.
    pads = [(margin, model.config.valid_input_size(n + 2 * margin) - n - margin) for n in shape]
    with torch.inference_mode():
        want = model(mirror_pad(image, pads)[None])[0][:, : shape[0], : shape[1]]
    assert got.shape == (2, *shape)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("blend", ["gaussian", "constant"])
@pytest.mark.parametrize("shape,tile", [((1, 45, 29), 16), ((2, 5, 7), 16), ((1, 11, 14, 9), 6)])
def test_identity_model_gives_the_image_back(blend, shape, tile):
    image = torch.rand(shape)
    got = tiled_inference(identity, image, tile, overlap=0.4, blend=blend, batch_size=5)
    torch.testing.assert_close(got, image, atol=1e-6, rtol=0)


# --- options --------------------------------------------------------------------------------

def test_batch_size_and_channels_last_do_not_change_the_result():
    model = valid_convnet(2)
    image = torch.randn(2, 41, 35)
    results = [tiled_inference(model, image, 14, batch_size=b) for b in (1, 2, 7, 100)]
    results.append(tiled_inference(model, image, 14, batch_size=3, channels_last=True))
    for r in results[1:]:
        torch.testing.assert_close(r, results[0], atol=1e-6, rtol=0)


def test_memory_reuse_changes_nothing_and_is_undone():
    model = valid_convnet(2)
    image = torch.randn(2, 33, 29)
    with reuse_freed_memory():  # nested users: only the outermost restores glibc's settings
        assert tiling._heap_users in (0, 1)  # 0 off glibc
        on = tiled_inference(model, image, 12, reuse_memory=True)
    assert tiling._heap_users == 0
    off = tiled_inference(model, image, 12, reuse_memory=False)
    assert torch.equal(on, off)


def test_batchnorm_folding_keeps_the_function_and_the_callers_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 3, 1), nn.BatchNorm2d(3))
    for bn in (model[1], model[4]):
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.normal_()
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    image = torch.randn(2, 23, 19)
    with torch.inference_mode():
        torch.testing.assert_close(folded(image[None]), model(image[None]), atol=1e-5, rtol=1e-5)
    on = tiled_inference(model, image, 10, fold_bn=True)
    off = tiled_inference(model, image, 10, fold_bn=False)
    torch.testing.assert_close(on, off, atol=1e-5, rtol=1e-5)
    assert isinstance(model[1], nn.BatchNorm2d)  # the caller's model is untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert fold_batchnorm(model.train()) is model  # batch statistics: nothing to fold
    assert fold_batchnorm(identity) is identity


def test_uint8_and_numpy_input_match_float_input():
    model = valid_convnet(2, cin=1)
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, size=(1, 30, 27), dtype=np.uint8)
    want = tiled_inference(model, torch.from_numpy(u8).float(), 12)
    torch.testing.assert_close(tiled_inference(model, torch.from_numpy(u8), 12), want, atol=1e-5, rtol=0)
    torch.testing.assert_close(tiled_inference(model, u8, 12), want, atol=1e-5, rtol=0)
    # A channel-less (H, W) image with a per-axis tile is read as one channel.
    torch.testing.assert_close(tiled_inference(model, u8[0], (12, 12)), want, atol=1e-5, rtol=0)


def test_gaussian_blend_favours_the_nearer_tile_centre():
    # Each tile predicts its own mean everywhere, so overlaps show how tiles are weighted.
    def tile_mean(x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()

    image = torch.zeros(1, 16, 24)
    image[:, :, 12:] = 1.0  # the tiles at x=0 and x=8 (centres 7.5, 15.5) see means 0.25, 0.75
    out_c = tiled_inference(tile_mean, image, 16, overlap=0.5, blend="constant")
    out_g = tiled_inference(tile_mean, image, 16, overlap=0.5, blend="gaussian")
    torch.testing.assert_close(out_c[0, :, 8:16], torch.full((16, 8), 0.5))  # plain average
    assert (out_g[0, :, 14:16] > 0.7).all()  # next to the centre of the second tile
    assert (out_g[0, :, 8:10] < 0.3).all()  # next to the centre of the first tile
    torch.testing.assert_close(out_g[0, :, :8], torch.full((16, 8), 0.25))  # one tile only


def test_matches_monai_with_the_same_windows():
    monai = pytest.importorskip("monai.inferers")
    torch.manual_seed(0)
    model = nn.Conv2d(1, 2, 3, padding=1).eval()  # "same" padding: no context margin
    image = torch.randn(1, 70, 53)
    for blend in ("constant", "gaussian"):
        ours = tiled_inference(model, image, 24, overlap=0.25, blend=blend)
        w = window_1d(24, blend)
        with torch.inference_mode():
            ref = monai.sliding_window_inference(image[None], 24, 4, model, overlap=0.25,
                                                 roi_weight_map=(w[:, None] * w[None, :]).float())[0]
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_bad_arguments_are_refused():
    image = torch.rand(1, 20, 20)
    with pytest.raises(ValueError, match="blend"):
        tiled_inference(identity, image, 8, blend="median")
    with pytest.raises(ValueError, match="overlap"):
        tiled_inference(identity, image, 8, overlap=1.0)
    with pytest.raises(ValueError, match="channels"):
        tiled_inference(identity, image, 8, out_channels=3)
    with pytest.raises(ValueError, match="out_tile"):
        tiled_inference(identity, image, 8, out_tile=6)  # the model does not crop
