"""What the face pipeline hands between its stages and returns, and the pixel layouts it keeps:
``Prepared`` (a photo read, its faces found and aligned), ``RestoredFace`` and ``FaceResult``
(``FaceRestorer.restore``'s answer); grey, RGB(A), 8 and 16 bit in, the same layout out."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from restore.colour import to_uint8

from .detect import Detection

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass
class RestoredFace:
    """One face: where it was found, its aligned input crop and the restored crop (S x S x 3)."""

    box: np.ndarray  # x0, y0, x1, y1 in input pixels
    landmarks: np.ndarray  # (5, 2)
    score: float | None
    affine: np.ndarray  # 2x3: input pixels -> aligned face pixels
    cropped: np.ndarray
    restored: np.ndarray
    trust: dict = field(default_factory=dict)  # identity, identity_model, guard, quality (restore.faces.trust)

    @property
    def identity(self) -> float | None:
        """The cosine similarity of the input's and the result's face embeddings, where measured."""
        return self.trust.get("identity")

    def to_dict(self) -> dict:
        d = Detection(self.box, self.landmarks, 0.0).to_dict()
        d["score"] = None if self.score is None else round(float(self.score), 4)
        return {**d, **self.trust}


@dataclass
class FaceResult:
    image: np.ndarray  # restored photo: the input's layout and dtype, ``upscale`` x its size
    faces: list[RestoredFace]
    small_faces: int = 0  # detected, but smaller than ``min_face``: left as they are
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage; net_* = networks
    quality: dict[str, float] | None = None  # the restored photo's no-reference scores, where asked


@dataclass
class Prepared:
    """A photo read, split and its faces found and aligned, ready for the networks."""

    colour: np.ndarray  # HxWx3 or HxW, uint8 or uint16
    grey: bool
    alpha: np.ndarray | None
    rgb8: np.ndarray
    found: list[Detection]
    small: int
    affines: list[np.ndarray]
    crops: list[np.ndarray]  # aligned RGB uint8 S x S faces
    timings: dict[str, float]
    cleaned: np.ndarray | None = None  # the background restorer's RGB uint8 result, where it ran


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """This thread's torch ops on ``n`` intra-op threads. Detection runs on one in every path:
    its float results (boxes, landmarks, hence the aligned crops) depend on the thread count,
    and the pipeline detects in a reader thread of one beside the networks; one thread in both
    paths gives both the same faces, and leaves the cores to the networks."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def split(image: np.ndarray) -> tuple[np.ndarray, bool, np.ndarray | None]:
    """(colour HxWx3 or grey HxW in uint8/uint16, is_grey, alpha or None)."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (2, 3, 4)) or 0 in image.shape:
        raise ValueError(f"expected an HxW, HxWx3 or HxWx4 image, got shape {image.shape}")
    if image.dtype not in (np.uint8, np.uint16):
        image = to_uint8(image)
    alpha = None
    if image.ndim == 3 and image.shape[2] in (2, 4):
        image, alpha = image[..., :-1], image[..., -1]
        image = image[..., 0] if image.shape[2] == 1 else image
    return np.ascontiguousarray(image), image.ndim == 2, alpha


def as_layout(rgb8: np.ndarray, grey: bool, dtype: np.dtype) -> np.ndarray:
    """An RGB uint8 network output in the input's layout: grey by luma, 16-bit by x257."""
    out = np.rint(rgb8.astype(np.float32) @ _LUMA).astype(np.uint8) if grey else rgb8
    return out.astype(np.uint16) * 257 if dtype == np.uint16 else out
