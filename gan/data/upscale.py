"""Training batches for the upscalers (task ``upscale``): clean photos in, Real-ESRGAN's
(degraded, sharpened, clean) triples out, every sample a pure function of (seed, step, slot).

Each sample: a photo drawn with probability by its area, a random ``crop`` x ``crop`` window
(photos smaller than the crop are first mirror-padded, reflect-101, as ``RealESRGANDataset``
pads to 400), a random horizontal flip (``use_hflip: True``, no rotation), then
``usm_sharpen`` (the target) and the second-order degradation of the sharpened crop (the input,
``crop / scale`` px), as ``RealESRGANModel.feed_data`` makes them. All in [0, 1].
"""
from __future__ import annotations

import numpy as np
import torch

from .batches import sample_generator
from .realesrgan import SecondOrderDegradation, usm_sharpen


class UpscaleBatches:
    """``batch(step)``: {"input": (B, 3, crop/scale, crop/scale), "target": the sharpened crops,
    and with ``real`` "real": the crops as they are (the GAN stage's discriminator input)}.
    ``workers`` > 1 degrades the samples of a batch in that many threads (about 0.06 s per
    256 px sample on one core: a GPU step is faster than one thread's batch of 12)."""

    def __init__(self, images: list[np.ndarray], crop: int, batch_size: int, degradation: SecondOrderDegradation,
                 seed: int = 0, usm: bool = True, real: bool = False, flip: bool = True,
                 rank: int = 0, world_size: int = 1, workers: int = 1) -> None:
        if not images:
            raise ValueError("no training photos")
        if crop % degradation.scale or crop < 32:
            raise ValueError(f"the crop ({crop}) must be at least 32 px and a multiple of the scale "
                             f"({degradation.scale})")
        self.images, self.crop, self.batch_size, self.seed = images, crop, batch_size, seed
        self.degradation, self.usm, self.real, self.flip = degradation, usm, real, flip
        self.rank, self.world_size, self.workers = rank, world_size, workers
        self._pool = None
        sizes = np.array([im.shape[0] * im.shape[1] for im in images], dtype=np.float64)
        self.probs = torch.as_tensor(sizes / sizes.sum())

    def sample(self, step: int, slot: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(input, target, clean), each (3, H, W) float32 in [0, 1]."""
        import cv2

        g = sample_generator(self.seed, step, slot)
        img = self.images[int(torch.multinomial(self.probs, 1, generator=g))]
        h, w = img.shape[:2]
        if h < self.crop or w < self.crop:
            img = cv2.copyMakeBorder(img, 0, max(0, self.crop - h), 0, max(0, self.crop - w), cv2.BORDER_REFLECT_101)
            h, w = img.shape[:2]
        y = int(torch.randint(0, h - self.crop + 1, (1,), generator=g))
        x = int(torch.randint(0, w - self.crop + 1, (1,), generator=g))
        flip = self.flip and bool(torch.rand(1, generator=g) < 0.5)
        crop = img[y:y + self.crop, x:x + self.crop]
        crop = crop[:, ::-1] if flip else crop
        gt = torch.from_numpy(np.ascontiguousarray(crop, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        target = usm_sharpen(gt) if self.usm else gt
        lq = self.degradation(target, [self.seed, step, slot])
        return lq[0], target[0], gt[0]

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        slots = [self.rank * self.batch_size + j for j in range(self.batch_size)]
        if self.workers > 1:  # samples are pure functions of their slot: threads change nothing but the time
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="degrade")
            samples = list(self._pool.map(lambda slot: self.sample(step, slot), slots))
        else:
            samples = [self.sample(step, slot) for slot in slots]
        out = {"input": torch.stack([s[0] for s in samples]), "target": torch.stack([s[1] for s in samples])}
        if self.real:
            out["real"] = torch.stack([s[2] for s in samples])
        return out
