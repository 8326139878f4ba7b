"""Fixtures of the face tests: an empty weights cache (no published models here) and a tiny
restorer as the face model."""
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
