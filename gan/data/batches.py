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

from gan.losses.segmentation import unet_weight_map

from .augment import PairedAugment


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


def prefetch(batches, start: int, stop: int, workers: int = 1, depth: int = 2):
    """Yield ``(step, batches.batch(step))`` for start <= step < stop, preparing the next
    ``depth`` batches in ``workers`` background threads so the training step never waits on
    data (cv2, numpy and torch release the GIL in their heavy parts). Batches are pure
    functions of the step, so the order and content are exactly those of a plain loop.
    ``workers=0`` prepares them inline."""
    if workers <= 0:
        for step in range(start, stop):
            yield step, batches.batch(step)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batches") as pool:
        queue: deque = deque()
        nxt = start
        while nxt < stop and len(queue) < depth:
            queue.append((nxt, pool.submit(batches.batch, nxt)))
            nxt += 1
        while queue:
            step, future = queue.popleft()
            if nxt < stop:
                queue.append((nxt, pool.submit(batches.batch, nxt)))
                nxt += 1
            yield step, future.result()


class PairBatches:
    """Aligned (input, target) crops for image-to-image GANs, as tensors in [-1, 1].

    ``pairs`` are (input, target) uint8 HxWx3 arrays of equal size; with ``degrade`` the
    input may be None and is made from the target crop on the fly (``degrade(crop01, seed)``
    with a seed derived from (seed, step, slot), so it is reproducible). Each sample takes a
    random scale in ``scale`` (a crop of side crop/s resized to ``crop``), a random position
    and a random horizontal flip, identically on both sides; with ``rotate`` also a random
    multiple of 90 degrees (with the flip: all 8 orientations, the usual augmentation of
    restoration training sets, for data with no natural "up").
    """

    def __init__(self, pairs: list[tuple[np.ndarray | None, np.ndarray]], crop: int, batch_size: int,
                 seed: int = 0, degrade: Callable | None = None, scale: tuple[float, float] = (1.0, 1.0),
                 flip: bool = True, rotate: bool = False, rank: int = 0, world_size: int = 1) -> None:
        if not pairs:
            raise ValueError("no training pairs")
        for inp, tgt in pairs:
            if min(tgt.shape[:2]) < crop:  # a too-large crop/s is clipped to the image in sample()
                raise ValueError(f"an image of {tgt.shape[1]}x{tgt.shape[0]} is smaller than the crop ({crop})")
            if inp is None and degrade is None:
                raise ValueError("a pair without input needs a degradation")
        self.pairs, self.crop, self.batch_size, self.seed = pairs, crop, batch_size, seed
        self.degrade, self.scale, self.flip, self.rotate = degrade, scale, flip, rotate
        self.rank, self.world_size = rank, world_size
        sizes = np.array([t.shape[0] * t.shape[1] for _, t in pairs], dtype=np.float64)
        self.probs = torch.as_tensor(sizes / sizes.sum())

    def sample(self, step: int, slot: int) -> tuple[np.ndarray, np.ndarray]:
        """One (input, target) pair of float32 HxWx3 crops in [0, 1]."""
        import cv2  # basicsr's dependency; the fastest area/cubic resize at hand

        g = sample_generator(self.seed, step, slot)
        inp, tgt = self.pairs[int(torch.multinomial(self.probs, 1, generator=g))]
        lo, hi = np.log(self.scale[0]), np.log(self.scale[1])
        s = float(np.exp(lo + (hi - lo) * torch.rand(1, generator=g).item()))
        side = min(int(round(self.crop / s)), *tgt.shape[:2])
        y = int(torch.randint(0, tgt.shape[0] - side + 1, (1,), generator=g))
        x = int(torch.randint(0, tgt.shape[1] - side + 1, (1,), generator=g))
        flip = self.flip and bool(torch.rand(1, generator=g) < 0.5)
        # drawn only when on, so runs without it keep their exact batches
        turns = int(torch.randint(0, 4, (1,), generator=g)) if self.rotate else 0

        def cut(img: np.ndarray) -> np.ndarray:
            c = img[y:y + side, x:x + side]
            if side != self.crop:
                interp = cv2.INTER_AREA if side > self.crop else cv2.INTER_CUBIC
                c = cv2.resize(c, (self.crop, self.crop), interpolation=interp)
            c = c[:, ::-1] if flip else c
            c = np.rot90(c, turns) if turns else c
            return np.ascontiguousarray(c, dtype=np.float32) / 255.0

        target = cut(tgt)
        if inp is None:
            seed = [self.seed, step, slot]
            source = np.clip(self.degrade(target, seed), 0, 1).astype(np.float32)
        else:
            source = cut(inp)
        return source, target

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        samples = [self.sample(step, self.rank * self.batch_size + j) for j in range(self.batch_size)]
        to_t = lambda a: torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).contiguous() * 2 - 1  # noqa: E731
        return {"input": to_t([s[0] for s in samples]), "target": to_t([s[1] for s in samples])}
