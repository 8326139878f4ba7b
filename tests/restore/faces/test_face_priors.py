"""RestoreFormer and CodeFormer in ``restore faces``: face priors like GFP-GAN (aligned crops,
colours kept by default), and CodeFormer's own fidelity weight behind ``--fidelity``
(w = 1 - fidelity) instead of the pixel blend. Their networks' parity with the reference code is
tested in tests/gan/nets."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gan.nets import codeformer, restoreformer
from gan.nets.descriptor import pixels_in, pixels_out
from restore import FaceRestorer


def _tiny(module, cls):
    torch.manual_seed(0)
    return cls(module.PRESETS["tiny"]).eval()


@pytest.fixture(scope="module")
def crop():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (1, 1, 3), dtype=np.uint8)


def _direct(net, crop, **kw):
    x = pixels_in(torch.from_numpy(crop[None]).permute(0, 3, 1, 2).float(), "[-1, 1]")
    with torch.inference_mode():
        y = net(x, **kw)
    return pixels_out(y, "[-1, 1]").byte().permute(0, 2, 3, 1).numpy()[0]


@pytest.mark.parametrize("fidelity", [1.0, 0.3])
def test_codeformer_takes_fidelity_as_its_own_weight(fidelity):
    net = _tiny(codeformer, codeformer.CodeFormer)
    fr = FaceRestorer(net, "mtcnn", precision="fp32", identity="off")
    side = fr.face_size
    rng = np.random.default_rng(1)
    face = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    fr = fr.with_options(fidelity=fidelity)
    assert fr.codeformer_w == pytest.approx(1 - fidelity)
    (got,) = fr.restore_crops([face])
    np.testing.assert_array_equal(got, _direct(net, face, w=1 - fidelity))
    assert net.w == codeformer.DEFAULT_W  # the shared network was not changed
    assert fr.trust.colour == "keep"  # a face prior: the input's colours by default


def test_restoreformer_is_a_face_prior_with_the_pixel_blend():
    net = _tiny(restoreformer, restoreformer.RestoreFormer)
    fr = FaceRestorer(net, "mtcnn", precision="fp32", identity="off", fidelity=0.5)
    assert fr.is_gfpgan and fr.codeformer_w is None and fr.trust.colour == "keep"
    side = fr.face_size
    face = np.random.default_rng(2).integers(0, 256, (side, side, 3), dtype=np.uint8)
    (got,) = fr.restore_crops([face])
    full = _direct(net, face).astype(np.float32)
    np.testing.assert_array_equal(got, np.rint(0.5 * full + 0.5 * face.astype(np.float32)).astype(np.uint8))
