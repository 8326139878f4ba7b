"""The segmentation training loop: loss goes down, output loads, resume is exact."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gan.data.augment import AugmentConfig, PairedAugment
from gan.data.batches import SegBatches, make_samples
from gan.presets import segmenter_config
from gan.serialize import load_model
from gan.train.config import SegmentOptions
from gan.train.loop import TrainConfig, train


def blobs(seed: int, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Bright discs on a noisy background, with instance labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), np.int64)
    for k in range(1, 5):
        cy, cx, r = rng.integers(8, size - 8), rng.integers(8, size - 8), rng.integers(4, 7)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = k
    image = (mask > 0) * 0.8 + rng.normal(0, 0.1, mask.shape)
    return image[None].astype(np.float32), mask


def make_batches(n: int = 3, crop: int = 32, loss_weights: bool = True) -> SegBatches:
    images, masks = zip(*(blobs(i) for i in range(n)))
    samples = make_samples(images, masks, num_classes=2, border_weights=loss_weights)
    return SegBatches(samples, PairedAugment(AugmentConfig(crop=crop, zoom=(0.8, 1.25)), 2), batch_size=2, seed=1)


def cfg(steps: int, loss: str = "dice_ce", **kw) -> TrainConfig:
    return TrainConfig(model=segmenter_config("tiny").to_dict(), steps=steps, lr=3e-3, val_every=3,
                       warmup=2, log_every=1, options=SegmentOptions(loss=loss), **kw)


def test_loss_goes_down_and_model_loads(tmp_path):
    torch.set_num_threads(1)
    summary = train(cfg(45, loss="dice_ce"), make_batches(), tmp_path, progress=False, log=lambda s: None)
    losses = [h["loss"] for h in summary["history"]]
    assert losses[-1] < 0.75 * losses[0], losses
    model, meta = load_model(tmp_path / "model.safetensors")
    assert meta["task"] == "segment"
    assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 2, 32, 32)
    assert (tmp_path / "checkpoint.pt").is_file() and (tmp_path / "last.safetensors").is_file()


def test_resume_is_exact(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    c = cfg(7, loss="wce")
    train(c, make_batches(), tmp_path / "whole", progress=False, log=lambda s: None)

    class Stop(Exception):
        pass

    batches = make_batches()
    real = batches.batch

    def crash_at_5(step):
        if step == 5:  # after the checkpoint of step 3, mid-way to the next one
            raise Stop
        return real(step)

    batches.batch = crash_at_5
    with pytest.raises(Stop):
        train(c, batches, tmp_path / "cut", progress=False, log=lambda s: None)
    logs = []
    train(c, make_batches(), tmp_path / "cut", resume=True, progress=False, log=logs.append)
    assert any("resumed" in line and "step 3" in line for line in logs), logs
    a, _ = load_model(tmp_path / "whole" / "last.safetensors")
    b, _ = load_model(tmp_path / "cut" / "last.safetensors")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name


def test_evaluate_keeps_best(tmp_path):
    scores = iter([0.5, 0.9, 0.7])
    summary = train(cfg(9), make_batches(), tmp_path, progress=False, log=lambda s: None,
                              evaluate=lambda m: {"score": next(scores), "scalars": {"iou": 0.0}})
    _, meta = load_model(tmp_path / "model.safetensors")
    assert summary["best_score"] == 0.9 and meta["val"]["step"] == 6


def test_ema_warms_up_then_keeps_its_decay():
    """The exported EMA follows the trained weights from the start (no lingering initial
    weights), and decays as configured once warmed up."""
    from gan.train.loop import ema_decay, update_ema

    assert ema_decay(0.999, 0) == pytest.approx(0.1) and ema_decay(0.999, 100) == pytest.approx(101 / 110)
    assert ema_decay(0.999, 10_000) == 0.999 and ema_decay(0.5, 20) == 0.5
    model, ema = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    torch.nn.init.zeros_(ema.weight)
    torch.nn.init.ones_(model.weight)
    for step in range(1000):
        update_ema(ema, model, ema_decay(0.999, step))
    # 1,000 steps of 0.999 alone would leave 37% of the start (weight 0.63); warmed up: < 2%
    assert ema.weight.min().item() > 0.98
