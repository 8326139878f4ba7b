"""A request's time budget (restore.budget) stops the long loops, and small slices cost little."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from restore import budget
from restore.tiling import fold_batchnorm, tiled_inference


def test_no_budget_never_stops():
    budget.check()
    assert budget.remaining() is None
    with budget.time_budget(0):  # 0: no budget (restore app --max-seconds 0)
        budget.check()
        assert budget.remaining() is None


def test_spent_budget_stops_with_one_line():
    with budget.time_budget(0.01, "this request"):
        budget.check()  # not yet spent
        time.sleep(0.02)
        with pytest.raises(budget.OverBudget, match="this request took longer than the 0.01 s") as e:
            budget.check()
    assert "\n" not in str(e.value) and isinstance(e.value, ValueError)
    budget.check()  # gone with its block


def test_inner_budget_cannot_extend_outer():
    with budget.time_budget(0.01, "outer"), budget.time_budget(100, "inner"):
        assert budget.remaining() < 0.02
        time.sleep(0.02)
        with pytest.raises(budget.OverBudget, match="outer"):
            budget.check()


def test_budget_is_per_thread():
    """Each gradio request runs in its own thread: one's budget is not another's."""
    seen = []
    with budget.time_budget(0.001):
        time.sleep(0.01)
        t = threading.Thread(target=lambda: seen.append(budget.remaining()))
        t.start()
        t.join()
    assert seen == [None]


def test_tiled_inference_stops_between_batches():
    calls = []

    def slow(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        time.sleep(0.05)
        return x

    image = torch.zeros(1, 64, 64)
    with budget.time_budget(0.12), pytest.raises(budget.OverBudget):
        tiled_inference(slow, image, 16, overlap=0, batch_size=1, device="cpu", out_channels=1, out_tile=16)
    assert 2 <= len(calls) <= 4  # 16 tiles in all: stopped after the budget, not at the end


def test_folded_copy_is_reused_until_the_weights_change():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2)).eval()
    first = fold_batchnorm(net)
    assert first is not net and fold_batchnorm(net) is first  # one deep copy, not one per call
    with torch.no_grad():
        net[0].weight.add_(1)  # an optimiser step: folded afresh
    assert fold_batchnorm(net) is not first
    net.train()
    assert fold_batchnorm(net) is net  # training-mode batch norm is not folded
    plain = torch.nn.Conv2d(1, 1, 3)
    assert fold_batchnorm(plain) is plain


def test_small_slices_run_at_their_own_size():
    """A volume of tiny slices: each slice runs at its own size (rounded up to the network's
    step), not mirrored out to the 512 tile (that cost ~0.25 s a slice here)."""
    from restore.segment.segmenter import Segmenter

    seg = Segmenter("nuclei", diameter=None)
    sizes = []
    seg.model.register_forward_pre_hook(lambda m, args: sizes.append(tuple(args[0].shape[2:])))
    vol = (np.random.default_rng(0).random((3, 16, 40)) * 255).astype(np.uint8)
    labels = seg(vol)
    assert labels.shape == (3, 16, 40)
    assert sizes and set(sizes) == {(16, 48)}  # depth 4: multiples of 16
    with budget.time_budget(1e-6), pytest.raises(budget.OverBudget):
        seg(vol)
