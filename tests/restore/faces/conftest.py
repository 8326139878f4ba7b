"""Fixtures of the face tests: an empty weights cache (no published models here), a tiny
restorer as the face model, and a small random GFP-GAN as a real face network."""
from __future__ import annotations

import pytest
import torch

from gan.nets.restorer import Restorer
from gan.presets import PIX2PIX_PRESETS
from gan.serialize import save_model


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    """No weights cache: MTCNN and the given models only, whatever the developer has cached."""
    monkeypatch.setenv("RESTORE_HOME", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A restorer-shaped network that visibly changes what it is given (its tail is not zero)."""
    torch.manual_seed(0)
    model = Restorer(PIX2PIX_PRESETS["tiny-restorer"])
    torch.nn.init.normal_(model.tail.weight, std=0.05)
    return str(save_model(model, tmp_path_factory.mktemp("w") / "tiny.safetensors"))


@pytest.fixture(scope="module")
def gfpgan_weights(tmp_path_factory):
    """A GFP-GAN with random weights at 64 px (the published flags, an eighth of the widths): a
    face network that restores aligned crops in batched calls. The tiny restorer calls none, and
    the 32-px tiny GFP-GAN is too narrow to show it, but at this size a face's last float bits
    depend on how many faces share its call (measured: 4 of 13 outputs differ between calls of 3
    and calls of 1-2), which is what ``fixed_batch`` is there for."""
    from gan.nets.gfpgan import GFPGAN, GFPGANConfig
    from tests.gan.nets.test_stylegan2 import randomize_

    torch.manual_seed(0)
    config = GFPGANConfig(out_size=64, num_style_feat=64, channel_multiplier=1, num_mlp=2, narrow=0.125)
    model = randomize_(GFPGAN(config)).eval()
    return str(save_model(model, tmp_path_factory.mktemp("w") / "gfpgan64.safetensors"))


@pytest.fixture
def gfpgan_calls(monkeypatch) -> list[int]:
    """The batch size of every GFP-GAN forward call made during the test, in order."""
    from gan.nets.gfpgan import GFPGAN

    calls: list[int] = []
    forward = GFPGAN.forward

    def counted(self, x, *args, **kwargs):
        calls.append(x.shape[0])
        return forward(self, x, *args, **kwargs)

    monkeypatch.setattr(GFPGAN, "forward", counted)
    return calls
