"""Augmented-self references (Lee et al., CVPR 2020): the target itself, geometrically distorted.

One random map per call, read with one ``cv2.remap``: output pixel -> zoom (crop), rotation,
flip -> a thin-plate-spline warp through a jittered grid of control points -> input pixel.
Colours are kept; what falls outside the image is white (the paper of clip art).

The thin-plate spline is written here (a 2-D radial-basis fit through ``grid x grid`` control
points, a few lines of numpy): OpenCV's ThinPlateSplineShapeTransformer lives in its shape
module, which the opencv-python wheels (5.1) leave out, and kornia would be a new dependency
for one function.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def _u(r2: np.ndarray) -> np.ndarray:
    """The TPS kernel r^2 log r^2 (0 at r = 0)."""
    return r2 * np.log(r2 + 1e-30)  # 0 * log(tiny) = 0 at the control points themselves


def tps_map(src: np.ndarray, dst: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The thin-plate spline f with f(dst[i]) = src[i] (control points, (K, 2)), at ``points`` (P, 2)."""
    k = len(dst)
    kern = _u(((dst[:, None] - dst[None]) ** 2).sum(-1))
    p = np.hstack([np.ones((k, 1)), dst])
    system = np.zeros((k + 3, k + 3))
    system[:k, :k], system[:k, k:], system[k:, :k] = kern, p, p.T
    coef = np.linalg.solve(system + 1e-8 * np.eye(k + 3), np.vstack([src, np.zeros((3, 2))]))
    d2 = (points**2).sum(1)[:, None] + (dst**2).sum(1)[None] - 2 * points @ dst.T  # |p - c|^2
    basis = _u(np.maximum(d2, 0))
    return basis @ coef[:k] + np.hstack([np.ones((len(points), 1)), points]) @ coef[k:]


def augment_self(img: np.ndarray, g: torch.Generator, grid: int = 4, jitter: float = 0.12,
                 rotate: float = 30.0, zoom: tuple[float, float] = (0.7, 1.0), flip: float = 0.5,
                 fill: float = 1.0) -> np.ndarray:
    """``img`` (H, W, C) float, warped: a random zoom into ``zoom`` of it (1: all of it), a
    rotation in +-``rotate`` degrees, a horizontal flip with probability ``flip``, and a TPS warp
    whose ``grid x grid`` control points move by up to ``jitter`` of the side. Same size and colours."""
    import cv2

    h, w = img.shape[:2]
    r = torch.rand(5, generator=g).tolist()
    scale = zoom[0] + (zoom[1] - zoom[0]) * r[0]
    angle = math.radians(rotate * (2 * r[1] - 1))
    shift = (1 - scale) * (2 * np.array(r[2:4]) - 1)  # the zoomed window stays inside the image
    mirror = -1.0 if r[4] < flip else 1.0
    ctrl = np.stack(np.meshgrid(np.linspace(-1, 1, grid), np.linspace(-1, 1, grid)), -1).reshape(-1, 2)
    moved = ctrl + jitter * 2 * (torch.rand(ctrl.shape, generator=g, dtype=torch.float64).numpy() * 2 - 1)
    ys, xs = np.mgrid[0:h, 0:w]
    pts = np.stack([(xs + 0.5) / w * 2 - 1, (ys + 0.5) / h * 2 - 1], -1).reshape(-1, 2)
    cos, sin = math.cos(angle), math.sin(angle)
    pts = pts @ np.array([[cos, sin], [-sin, cos]]) * scale * np.array([mirror, 1.0]) + shift
    pts = tps_map(ctrl, moved, pts)  # the warp: where each output point is read in the image
    mx = ((pts[:, 0] + 1) / 2 * w - 0.5).reshape(h, w).astype(np.float32)
    my = ((pts[:, 1] + 1) / 2 * h - 0.5).reshape(h, w).astype(np.float32)
    border = (fill,) * (img.shape[2] if img.ndim == 3 else 1)
    return cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border)
