"""Training batches of aligned faces for the GFP-GAN restorer: (degraded, clean, landmarks).

Faces are aligned to the FFHQ template (``restore.faces.align``) and already ``out_size``
square, so their 5 landmarks are the template's points: no detector runs during training,
and the facial-component boxes come from those points (``gan.components``). A horizontal
flip (GFP-GAN's only geometric augmentation) mirrors the points and swaps left and right.
Inputs are made on the fly with the degradation (GFP-GAN's model, ``gan.data.degrade``), or
come from explicit pairs. ``batch(step)`` is a pure function of (seed, step): a resumed run
sees exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .batches import sample_generator

# Mirroring swaps the eyes (0, 1) and the mouth corners (3, 4); the nose (2) stays.
FLIP_ORDER = [1, 0, 2, 4, 3]


def flip_landmarks(landmarks: np.ndarray, size: int) -> np.ndarray:
    """The 5 points of a face mirrored left-right (pixel centres at integers, as in OpenCV)."""
    out = landmarks[FLIP_ORDER].copy()
    out[:, 0] = size - 1 - out[:, 0]
    return out


class FaceBatches:
    """Batches {"input", "target": (N, 3, S, S) in [-1, 1], "landmarks": (N, 5, 2)}.

    ``faces``: clean aligned faces, uint8 S x S x 3 (S = ``out_size``); ``inputs``: their
    degraded counterparts for explicit pairs (else None: ``degrade(clean01, seed)`` makes
    them); ``landmarks``: the template's 5 points at S px (x, y)."""

    def __init__(self, faces: list[np.ndarray], out_size: int, batch_size: int, landmarks: np.ndarray,
                 seed: int = 0, degrade: Callable | None = None, inputs: list[np.ndarray] | None = None,
                 flip: bool = True, rank: int = 0, world_size: int = 1) -> None:
        if not faces:
            raise ValueError("no training faces")
        for i, face in enumerate(faces):
            if face.shape != (out_size, out_size, 3) or (inputs is not None and inputs[i].shape != face.shape):
                raise ValueError(f"face {i} is {face.shape}, not {out_size} x {out_size} x 3 (resize it first)")
        if inputs is None and degrade is None:
            raise ValueError("faces without inputs need a degradation")
        self.faces, self.inputs, self.out_size, self.batch_size = faces, inputs, out_size, batch_size
        self.landmarks = np.asarray(landmarks, np.float32).reshape(5, 2)
        self.seed, self.degrade, self.flip, self.rank, self.world_size = seed, degrade, flip, rank, world_size

    def sample(self, step: int, slot: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(degraded, clean) float32 S x S x 3 in [0, 1] and the (5, 2) landmarks."""
        g = sample_generator(self.seed, step, slot)
        i = int(torch.randint(0, len(self.faces), (1,), generator=g))
        flip = self.flip and bool(torch.rand(1, generator=g) < 0.5)
        clean = self.faces[i].astype(np.float32) / 255
        lm = self.landmarks
        if flip:
            clean, lm = clean[:, ::-1], flip_landmarks(lm, self.out_size)
        clean = np.ascontiguousarray(clean)
        if self.inputs is not None:
            lq = self.inputs[i].astype(np.float32) / 255
            lq = np.ascontiguousarray(lq[:, ::-1] if flip else lq)
        else:
            lq = np.clip(self.degrade(clean, [self.seed, step, slot]), 0, 1).astype(np.float32)
        return lq, clean, lm

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        samples = [self.sample(step, self.rank * self.batch_size + j) for j in range(self.batch_size)]
        to_t = lambda a: torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).contiguous() * 2 - 1  # noqa: E731
        return {"input": to_t([s[0] for s in samples]), "target": to_t([s[1] for s in samples]),
                "landmarks": torch.from_numpy(np.stack([s[2] for s in samples]))}
