"""Who a face is: dlib's face-recognition descriptors of this toolkit's aligned faces.

``load_identity()`` gives an ``IdentityModel`` when dlib's ResNet (manifest model
``dlib-face-recognition``, CC0) is in the weights cache, else None (nothing is downloaded here:
``restore weights fetch dlib-face-recognition``). ``model.embed(crops)`` takes aligned faces as
``restore.faces.align`` makes them (RGB uint8, S x S, FFHQ 5-point template) and returns dlib's
128-d descriptors, as ``dlib.face_recognition_model_v1.compute_face_descriptor`` gives them
(not normalised); ``cosine(a, b)`` compares them.

dlib cuts its own 150 px chip (``get_face_chip``, padding 0.25) from its own landmarks. Here
the chip is cut from the aligned crop by one fixed similarity transform (``CHIP_FROM_CROP_512``)
fitted on real photos where both detectors found the same face (scripts/calibrate_dlib_chip.py),
and, as dlib's ``extract_image_chip`` does, the crop is first halved (Gaussian pyramid) while
the chip's footprint is more than twice the chip, so a large crop is not sampled with aliasing.
The network is dlib's, read from its own file without dlib (``gan.nets.dlib_resnet``).
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch

__all__ = ["ARCFACE_FILE", "ArcFaceIdentity", "CHIP", "CHIP_FROM_CROP_512", "DEFAULT_THRESHOLD", "NAME",
           "IdentityModel", "chip_from_crop", "cosine", "cut_chip", "load_identity"]

NAME = "dlib-face-recognition"  # the manifest's name for dlib_face_recognition_resnet_model_v1.dat
CHIP = 150
# Aligned crop (512 px, FFHQ template) -> dlib's chip (150 px, padding 0.25): a similarity
# (scale 0.4272, 1.4 degrees) fitted by least squares to a 3 x 3 grid of chip points on the
# faces of examples/faces, data/photos and two public-domain portraits that both MTCNN (our
# alignment) and dlib's detector with its 5-point shape predictor (get_face_chip_details) found:
# 28 faces, the 5 whose residual was over twice the median face's (profiles, small faces) left
# out; on the other 23 the chip's points land 4.1 px (median) from dlib's, 5.2 px RMS, of 150.
# The descriptor of our chip against that of dlib's own chip of the same face: cosine median
# 0.9945 over the 28 faces, lowest 0.952 (a profile left out of the fit), 0.989 in the fit.
# scripts/calibrate_dlib_chip.py prints these numbers and every face's.
CHIP_FROM_CROP_512 = np.array([[0.427040, -0.010351, -31.8950], [0.010351, 0.427040, -59.9109]])
# dlib calls two faces the same person below a Euclidean distance of 0.6 between descriptors;
# its descriptors' norms are about 1.4 (1.27-1.46 on the photos above), and 0.6 at that norm is
# a cosine of 1 - 0.6^2 / (2 x 1.4^2) = 0.91. Checked on 24 real degraded faces
# (scripts/eval_identity.py, README): against the input face the bundled restorer's results all
# stayed above 0.93 and a random-weight GFP-GAN's fell to a median of 0.88.
DEFAULT_THRESHOLD = 0.91


def chip_from_crop(size: int, m512: np.ndarray = CHIP_FROM_CROP_512) -> np.ndarray:
    """The 2 x 3 transform from an aligned crop of ``size`` px to dlib's 150 px chip."""
    m = np.array(m512, np.float64)
    m[:, :2] *= 512.0 / size
    return m


def cut_chip(crop: np.ndarray, m512: np.ndarray = CHIP_FROM_CROP_512) -> np.ndarray:
    """dlib's 150 x 150 chip (RGB uint8) of an aligned face crop (RGB uint8, square)."""
    crop = np.asarray(crop)
    if crop.ndim != 3 or crop.shape[2] != 3 or crop.shape[0] != crop.shape[1] or crop.dtype != np.uint8:
        raise ValueError(f"an aligned face is an RGB uint8 square, not {crop.dtype} {crop.shape}")
    m = chip_from_crop(crop.shape[0], m512)
    footprint = CHIP / np.hypot(m[0, 0], m[1, 0])  # the chip's side in crop pixels
    while footprint / 2 > CHIP:  # as extract_image_chip picks its pyramid level
        crop = cv2.pyrDown(crop)  # pixel i of the half-size image sits at 2i of the larger
        m[:, :2] *= 2
        footprint /= 2
    return cv2.warpAffine(crop, m, (CHIP, CHIP), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """Cosine similarity of descriptors: two vectors -> a float; (N, D) and (N, D) -> (N,)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    sims = (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)
    return float(sims) if sims.ndim == 0 else sims


class IdentityModel:
    """dlib's face-recognition network on aligned faces; ``batch`` chips per forward pass."""

    threshold = DEFAULT_THRESHOLD  # under this cosine, another person by dlib's own rule

    def __init__(self, net: torch.nn.Module, name: str = "dlib-resnet-v1", device: str | torch.device = "cpu",
                 batch: int = 16) -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.name, self.batch = name, batch
        self.dim = int(net.fc.out_features)

    def chips(self, crops: list[np.ndarray]) -> np.ndarray:
        """The (N, 150, 150, 3) uint8 chips the network sees."""
        return np.stack([cut_chip(c) for c in crops]) if len(crops) else np.zeros((0, CHIP, CHIP, 3), np.uint8)

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        """(N, 150, 150, 3) uint8 chips -> (N, 128) float32 descriptors."""
        out = [np.zeros((0, self.dim), np.float32)]
        with torch.inference_mode():
            for i in range(0, len(chips), self.batch):
                x = torch.from_numpy(np.ascontiguousarray(chips[i:i + self.batch])).to(self.device)
                out.append(self.net(x.permute(0, 3, 1, 2).float() / 255).float().cpu().numpy())
        return np.concatenate(out)

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """Aligned faces (RGB uint8, S x S) -> (N, 128) float32 descriptors, dlib's (not normalised)."""
        return self.embed_chips(self.chips(crops))


ARCFACE_FILE = "arcface_resnet18.pth"  # GFP-GAN's ArcFace, placed in the weights cache by the user
# ArcFace's embeddings are trained on the unit sphere, where strangers sit near cosine 0; 0.4 is
# the usual verification threshold of ArcFace ResNets on LFW-style pairs. Not measured here: the
# weights are not at hand offline (no registry package carries them).
ARCFACE_THRESHOLD = 0.4


class ArcFaceIdentity:
    """GFP-GAN's ArcFace (``arcface_resnet18.pth``, the identity loss of its training) on aligned
    faces: the whole crop in grey at 128 px, as GFP-GAN's identity loss sees a face."""

    name = "arcface-resnet18"
    threshold = ARCFACE_THRESHOLD

    def __init__(self, net: torch.nn.Module, device: str | torch.device = "cpu", batch: int = 16) -> None:
        self.device = torch.device(device)
        self.net, self.batch = net.to(self.device).eval(), batch

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """Aligned faces (RGB uint8, S x S) -> (N, 512) float32 embeddings."""
        from gan.nets.arcface import grey_for_identity

        out = [np.zeros((0, 512), np.float32)]
        with torch.inference_mode():
            for i in range(0, len(crops), self.batch):
                x = torch.from_numpy(np.stack(crops[i:i + self.batch])).to(self.device).permute(0, 3, 1, 2)
                out.append(self.net(grey_for_identity(x.float() / 127.5 - 1)).float().cpu().numpy())
        return np.concatenate(out)


def load_identity(which: str = "auto", device: str | torch.device = "cpu") -> IdentityModel | ArcFaceIdentity | None:
    """A face embedding from the weights cache, or None when it is not there; nothing is
    downloaded. ``dlib``: dlib's ResNet (``restore weights fetch dlib-face-recognition``);
    ``arcface``: GFP-GAN's ``arcface_resnet18.pth`` copied into the cache folder; ``auto``: dlib's,
    else ArcFace's. A cached file that fails its check raises WeightsError."""
    if which not in ("auto", "dlib", "arcface"):
        raise ValueError(f"identity model must be auto, dlib or arcface, not {which!r}")
    from restore.models.cache import find_cached
    from restore.models.manifest import cache_dir

    if which in ("auto", "dlib") and (path := find_cached(NAME)) is not None:
        return IdentityModel(load_identity_network(path), device=device)
    arcface = cache_dir() / ARCFACE_FILE
    if which in ("auto", "arcface") and arcface.is_file():
        from gan.nets.arcface import load_arcface

        return ArcFaceIdentity(load_arcface(arcface), device=device)
    return None


def load_identity_network(path: str | os.PathLike) -> torch.nn.Module:
    """dlib's network from its ``.dat`` or from this toolkit's safetensors conversion of it."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from gan.serialize import load_model

        return load_model(path)[0]
    from gan.nets.dlib_resnet import load_dat

    return load_dat(path)
