"""In-memory training data: arrays in, augmented crops out (no photo folders here).

Samples are drawn from a generator seeded by ``(seed, step, slot)``, so a batch depends only
on its step number: a resumed run draws exactly the batches an uninterrupted one would,
without saving any data-loader state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .augment import PairedAugment
from .losses import unet_weight_map


@dataclass
class SegSample:
    image: np.ndarray  # (C, *spatial) float32, normalised
    target: np.ndarray  # (*spatial) int64 class indices
    weight: np.ndarray | None = None  # (*spatial) float32 border weight map


def class_target(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Class indices from a mask: instance labels (or any labels, for 2 classes) become 0/1."""
    if num_classes <= 2:
        return (mask > 0).astype(np.int64)
    if mask.max() >= num_classes:
        raise ValueError(f"mask has label {int(mask.max())} but the model has {num_classes} classes")
    return mask.astype(np.int64)


def make_samples(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], num_classes: int,
                 border_weights: bool, w0: float = 10.0, sigma: float = 5.0) -> list[SegSample]:
    """Pair images (C, *spatial) with class targets and, if asked, the U-Net weight map
    computed once from the instance masks (it is costly; augmentation warps it with the mask)."""
    out = []
    for image, mask in zip(images, masks):
        if image.shape[1:] != mask.shape:
            raise ValueError(f"image {image.shape[1:]} and mask {mask.shape} differ in size")
        weight = unet_weight_map(mask, w0=w0, sigma=sigma).astype(np.float32) if border_weights else None
        out.append(SegSample(image.astype(np.float32), class_target(mask, num_classes), weight))
    return out


def sample_generator(seed: int, step: int, slot: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + step) * 4096 + slot)
    return g


class SegBatches:
    """Draws augmented batches: ``batch(step)`` is a pure function of (seed, step)."""

    def __init__(self, samples: list[SegSample], augment: PairedAugment, batch_size: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        if not samples:
            raise ValueError("no training samples")
        self.samples, self.augment, self.batch_size, self.seed = samples, augment, batch_size, seed
        self.rank, self.world_size = rank, world_size
        # Large images are drawn more often, so every pixel has about the same chance.
        sizes = np.array([np.prod(s.target.shape) for s in samples], dtype=np.float64)
        self.probs = torch.as_tensor(sizes / sizes.sum())

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        images, targets, weights = [], [], []
        for j in range(self.batch_size):
            slot = self.rank * self.batch_size + j  # distinct samples on each DDP rank
            g = sample_generator(self.seed, step, slot)
            s = self.samples[int(torch.multinomial(self.probs, 1, generator=g))]
            extras = [torch.from_numpy(s.weight)] if s.weight is not None else []
            out = self.augment(torch.from_numpy(s.image), torch.from_numpy(s.target), g, *extras)
            images.append(out[0])
            targets.append(out[1].long())
            if extras:
                weights.append(out[2].float())
        batch = {"image": torch.stack(images), "target": torch.stack(targets)}
        if weights:
            batch["weight"] = torch.stack(weights)
        return batch


Evaluate = Callable[[torch.nn.Module], dict]
