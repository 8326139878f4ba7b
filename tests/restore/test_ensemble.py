"""Test-time augmentation (restore/ensemble.py) and its use by Translator, Segmenter and the CLIs."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gan import UNet, save_model, segmenter_config
from restore import Segmenter
from restore.cli import main
from restore.ensemble import ORIENTATIONS, ensemble, orient, unorient
from restore.translate import Translator


def test_orient_unorient_round_trip_on_a_non_square_image():
    x = torch.arange(2 * 3 * 5, dtype=torch.float32).reshape(2, 3, 5)
    seen = set()
    for k in range(8):
        y = orient(x, k)
        assert y.shape[-2:] == ((3, 5) if k % 2 == 0 else (5, 3))
        torch.testing.assert_close(unorient(y, k), x)
        seen.add(tuple(y[0].flatten().tolist()))
    assert len(seen) == 8  # eight different orientations, not one repeated


def test_an_equivariant_run_is_unchanged_and_n1_is_the_run_itself():
    x = torch.rand(3, 7, 9)
    for n in ORIENTATIONS:
        torch.testing.assert_close(ensemble(lambda t: t * 2 + 1, x, n), x * 2 + 1)
    calls = []
    ensemble(lambda t: calls.append(t.shape) or t, x, 1)
    assert calls == [x.shape]


def test_a_run_that_is_not_equivariant_is_averaged_over_orientations():
    # adds a left-to-right ramp: mirrored and mapped back, the ramp runs right-to-left, so the
    # mean of the two is the ramp's mean, flat
    w = 6
    ramp = torch.arange(w, dtype=torch.float32)
    x = torch.rand(1, 4, w)

    def run(t):
        return t + torch.arange(t.shape[-1], dtype=torch.float32)

    torch.testing.assert_close(ensemble(run, x, 2), x + ramp.mean())
    calls = []
    ensemble(lambda t: calls.append(1) or t, x, 8)
    assert len(calls) == 8


def test_invalid_counts_are_refused():
    with pytest.raises(ValueError, match="1, 2, 4, 8"):
        ensemble(lambda t: t, torch.zeros(1, 2, 2), 3)


class Tilted(torch.nn.Module):
    """A generator stand-in that is not flip-equivariant: each output pixel is its left neighbour."""

    arch = "UNetGenerator"  # taken for one by gan.nets.registry.descriptor_of, as an ONNX stand-in is

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(size_divisor=4, in_channels=3, out_channels=3)

    def forward(self, x):
        return torch.roll(x, 1, dims=-1)


def test_translator_tta_is_the_mean_over_the_orientations():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)
    plain = Translator(Tilted(), tile=32)(image)
    both = Translator(Tilted(), tile=32, tta=2)(image)
    # the mirrored pass rolls the other way: the mean of the left and right neighbours
    x = image.astype(np.float64)
    want = (np.roll(x, 1, axis=1) + np.roll(x, -1, axis=1)) / 2
    inner = (slice(None), slice(2, -2))  # tile padding changes what the roll brings in at the edges
    assert np.abs(both[inner].astype(np.float64) - want[inner]).max() <= 1
    assert not np.array_equal(plain, both)
    with pytest.raises(ValueError, match=r"test-time augmentation takes 1, 2, 4, 8 orientations, not 5"):
        Translator(Tilted(), tta=5)


def test_segmenter_tta_and_with_options(tmp_path):
    torch.manual_seed(0)
    path = save_model(UNet(segmenter_config("tiny")), tmp_path / "m.safetensors", {"diameter": 0})
    seg = Segmenter(path, tile=32, diameter=None)
    image = np.random.default_rng(1).integers(0, 256, (40, 48), dtype=np.uint8)
    plain = seg.probabilities(image)
    eight = seg.with_options(tta=8)
    assert eight.tta == 8 and seg.tta == 1 and eight.model is seg.model
    # by hand: the 8 orientations segmented one by one; softmax(mean of log-probabilities) is
    # softmax(mean of logits), as a per-pixel constant drops out
    logp = [unorient(torch.from_numpy(seg.probabilities(np.ascontiguousarray(orient(torch.from_numpy(image), k)
                                                                              .numpy()))).log(), k)
            for k in range(8)]
    want = torch.softmax(torch.stack(logp).mean(0), 0).numpy()
    probs = eight.probabilities(image)
    np.testing.assert_allclose(probs, want, atol=1e-4)
    assert not np.allclose(probs, plain, atol=1e-3)
    with pytest.raises(ValueError, match=r"test-time augmentation takes 1, 2, 4, 8 orientations, not 3"):
        seg.with_options(tta=3)
    with pytest.raises(ValueError, match=r"test-time augmentation takes 1, 2, 4, 8 orientations, not 0"):
        Segmenter(path, tta=0)


def test_cli_refuses_other_counts(tmp_path, capsys):
    for command in ("translate", "segment"):
        with pytest.raises(SystemExit) as e:
            main([command, str(tmp_path), "-o", str(tmp_path / "o"), "--tta", "3"])
        assert e.value.code == 2
        assert "--tta" in capsys.readouterr().err
