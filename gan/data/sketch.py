"""Training data of the sketch colorizer: colour images in, (sketch, reference, target, hints) out.

Everything is made on the fly from colour images, and every random choice comes from a
generator seeded by (seed, step, slot), so a batch is a pure function of its step (exact resume,
as ``gan.data``). For one sample:

- target: a random crop (random scale, position, flip) of an image padded with white to the
  crop size, then a random hue rotation about the grey axis (white and black stay put), so the
  colours cannot be guessed from the lines alone and must be read from the reference;
- sketch: ``sketch(target_before_hue, g)`` (a caller's extractor, e.g. XDoG with random
  parameters), or the same crop of a sketch given with the image (HED, real pairs);
- reference: with probability ``self_ref``, the augmented-self reference of SCFT (Lee et al.
  2020): the target itself, colours kept, zoomed, turned, flipped and warped by a thin-plate
  spline (gan/data/tps.py), so a colorizer that attends to the reference learns which part of
  the sketch each colour belongs to even when nothing lines up. Otherwise another view of the
  same image (its own crop, scale and flip, the same hue rotation, a small brightness change),
  cut into a grid of patches that are shuffled, so the network learns the palette and texture
  rather than where each colour sits. With probability ``unpaired`` it is a view of another
  image instead (unpaired style; ``paired`` is then 0 and the training step leaves out the
  reconstruction losses of that sample);
- hints: with probability ``hint_prob``, 1..``max_hints`` small squares of the target's
  colour at random points off the lines (mostly on coloured pixels), as a user's strokes.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from .batches import sample_generator
from .tps import augment_self

SketchFn = Callable[[np.ndarray, torch.Generator], np.ndarray]


def _rand(g: torch.Generator) -> float:
    return float(torch.rand(1, generator=g))


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """An int in [lo, hi)."""
    return int(torch.randint(lo, hi, (1,), generator=g))


def hue_matrix(angle: float) -> np.ndarray:
    """3x3 rotation of RGB about the grey axis (1, 1, 1) by ``angle`` radians (Rodrigues)."""
    k = np.full(3, 1 / math.sqrt(3))
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return (math.cos(angle) * np.eye(3) + math.sin(angle) * cross
            + (1 - math.cos(angle)) * np.outer(k, k)).astype(np.float32)


def shuffle_patches(img: np.ndarray, grid: int, g: torch.Generator) -> np.ndarray:
    """Cut ``img`` (H, W, C) into grid x grid patches and put them back in a random order."""
    if grid <= 1:
        return img
    h, w = img.shape[0] // grid, img.shape[1] // grid
    patches = [img[i * h:(i + 1) * h, j * w:(j + 1) * w] for i in range(grid) for j in range(grid)]
    order = torch.randperm(len(patches), generator=g).tolist()
    rows = [np.concatenate([patches[order[i * grid + j]] for j in range(grid)], axis=1) for i in range(grid)]
    out = img.copy()
    out[:h * grid, :w * grid] = np.concatenate(rows, axis=0)
    return out


def pad_white(img: np.ndarray, size: int) -> np.ndarray:
    """Pad an image (H, W[, C]) with white (255) to at least ``size`` a side, centred."""
    h, w = img.shape[:2]
    ph, pw = max(0, size - h), max(0, size - w)
    if not ph and not pw:
        return img
    pad = [(ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)] + [(0, 0)] * (img.ndim - 2)
    return np.pad(img, pad, constant_values=255)


class ColorizeBatches:
    """``batch(step)`` -> {"input": sketch (N, 1, c, c), "reference", "target" (N, 3, c, c),
    "hints" (N, 4, c, c) when ``hints``, "paired" (N,) when ``unpaired`` > 0}, all in [-1, 1]
    except the hint mask and ``paired`` (0/1). ``images`` are uint8 HxWx3; ``sketches``
    (optional) uint8 HxW line drawings of the same sizes, used instead of ``sketch``."""

    def __init__(self, images: list[np.ndarray], crop: int, batch_size: int, seed: int = 0,
                 sketch: SketchFn | None = None, sketches: list[np.ndarray] | None = None,
                 scale: tuple[float, float] = (0.5, 1.0), hue: bool = True, grids: tuple[int, ...] = (1, 2, 4),
                 hints: bool = True, hint_prob: float = 0.5, max_hints: int = 12, unpaired: float = 0.0,
                 self_ref: float = 0.0, rank: int = 0, world_size: int = 1) -> None:
        if not images:
            raise ValueError("no training images")
        if (sketch is None) == (sketches is None):
            raise ValueError("give either a sketch extractor or the sketches")
        if sketches is not None and [s.shape[:2] for s in sketches] != [i.shape[:2] for i in images]:
            raise ValueError("each sketch must have the size of its image")
        self.images = [pad_white(i, crop) for i in images]
        self.sketches = None if sketches is None else [pad_white(s, crop) for s in sketches]
        self.crop, self.batch_size, self.seed, self.sketch = crop, batch_size, seed, sketch
        self.scale, self.hue, self.grids = scale, hue, grids
        self.hints, self.hint_prob, self.max_hints, self.unpaired = hints, hint_prob, max_hints, unpaired
        self.self_ref = self_ref
        self.rank, self.world_size = rank, world_size
        sizes = np.array([i.shape[0] * i.shape[1] for i in self.images], dtype=np.float64)
        self.probs = torch.as_tensor(sizes / sizes.sum())

    def _view(self, img: np.ndarray, g: torch.Generator, *others: np.ndarray) -> list[np.ndarray]:
        """A random crop (scale, position, flip) of ``img`` resized to the crop size, float in
        [0, 1]; the same geometry is cut from ``others``."""
        import cv2

        lo, hi = np.log(self.scale[0]), np.log(self.scale[1])
        side = min(int(round(self.crop / math.exp(lo + (hi - lo) * _rand(g)))), *img.shape[:2])
        y, x = _randint(g, 0, img.shape[0] - side + 1), _randint(g, 0, img.shape[1] - side + 1)
        flip = _rand(g) < 0.5
        out = []
        for a in (img, *others):
            c = a[y:y + side, x:x + side]
            if side != self.crop:
                c = cv2.resize(c, (self.crop, self.crop), interpolation=cv2.INTER_AREA if side > self.crop
                               else cv2.INTER_CUBIC)
            out.append(np.ascontiguousarray(c[:, ::-1] if flip else c, dtype=np.float32) / 255)
        return out

    def _pick(self, g: torch.Generator) -> int:
        return int(torch.multinomial(self.probs, 1, generator=g))

    def _hue(self, g: torch.Generator) -> np.ndarray:
        return hue_matrix(2 * math.pi * _rand(g)) if self.hue else np.eye(3, dtype=np.float32)

    def _hints(self, target: np.ndarray, sketch: np.ndarray, g: torch.Generator) -> np.ndarray:
        hints = np.zeros((4, *sketch.shape), np.float32)
        if _rand(g) >= self.hint_prob:
            return hints
        off_line = sketch > 0.5
        coloured = off_line & (target.min(axis=2) < 0.9)
        cand = np.flatnonzero(coloured if coloured.sum() >= 8 else off_line)
        if not len(cand):
            return hints
        h, w = sketch.shape
        for _ in range(_randint(g, 1, self.max_hints + 1)):
            y, x = divmod(int(cand[_randint(g, 0, len(cand))]), w)
            r = _randint(g, 1, 4)
            ys, xs = slice(max(0, y - r), y + r + 1), slice(max(0, x - r), x + r + 1)
            hints[:3, ys, xs] = target[y, x][:, None, None] * 2 - 1
            hints[3, ys, xs] = 1
        return hints

    def sample(self, step: int, slot: int) -> dict[str, np.ndarray]:
        g = sample_generator(self.seed, step, slot)
        i = self._pick(g)
        if self.sketches is not None:
            target, sketch = self._view(self.images[i], g, self.sketches[i])
        else:
            (target,) = self._view(self.images[i], g)
            sketch = np.clip(self.sketch(target, g), 0, 1).astype(np.float32)
        rot = self._hue(g)
        paired = not (self.unpaired and _rand(g) < self.unpaired and len(self.images) > 1)
        if not paired:  # another image, its own hue
            j = self._pick(g)
            j = j if j != i else (i + 1) % len(self.images)
            (ref,) = self._view(self.images[j], g)
            ref_rot = self._hue(g)
        else:
            (ref,) = self._view(self.images[i], g)
            ref_rot = rot
        target = np.clip(target @ rot.T, 0, 1)
        if paired and self.self_ref and _rand(g) < self.self_ref:
            ref = augment_self(target, g)
        else:
            ref = np.clip(ref @ ref_rot.T * (0.9 + 0.2 * _rand(g)), 0, 1)
            ref = shuffle_patches(ref, self.grids[_randint(g, 0, len(self.grids))], g)
        out = {"input": sketch[None], "reference": ref.transpose(2, 0, 1), "target": target.transpose(2, 0, 1),
               "paired": np.float32(paired)}
        if self.hints:
            out["hints"] = self._hints(target, sketch, g)
        return out

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        samples = [self.sample(step, self.rank * self.batch_size + j) for j in range(self.batch_size)]
        out = {}
        for key in samples[0]:
            t = torch.from_numpy(np.stack([s[key] for s in samples])).contiguous()
            out[key] = t * 2 - 1 if key in ("input", "reference", "target") else t
        if not self.unpaired:
            del out["paired"]
        return out
