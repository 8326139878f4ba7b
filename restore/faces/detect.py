"""Face detection with five landmarks (eyes, nose tip, mouth corners), for alignment.

Two detectors give the same ``Detection`` records:

* RetinaFace (ResNet-50, facexlib's network) when its weights ``retinaface-resnet50`` are in
  the weights cache: what GFP-GAN itself uses; the more accurate landmarks.
* MTCNN (facenet-pytorch 2.5.3), whose weights ship inside the wheel: works offline, always.

Neither downloads anything: facexlib's own loaders fetch missing files from the network, so
the networks are built here and their state dicts read with ``torch.load(weights_only=True)``.
``restore weights`` is the only place weights are downloaded.

Large photos are detected on a copy whose longer side is at most ``max_side`` px (faces are
found as well, much faster); boxes and landmarks are scaled back to the input's pixels.
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch

DETECTORS = ("auto", "retinaface", "mtcnn")
RETINAFACE = "retinaface-resnet50"  # the weights manager's name for its file


@dataclass
class Detection:
    """One face: ``box`` (x0, y0, x1, y1) and ``landmarks`` (5, 2) as (x, y) in image pixels,
    ordered left eye, right eye, nose, left and right mouth corner (left = smaller x)."""

    box: np.ndarray
    landmarks: np.ndarray
    score: float

    @property
    def size(self) -> float:
        """The box's shorter side in pixels: what ``min_face`` is compared with."""
        return float(min(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    def scaled(self, factor: float) -> Detection:
        return Detection(self.box * factor, self.landmarks * factor, self.score)

    def to_dict(self) -> dict:
        return {"box": [round(float(v), 2) for v in self.box],
                "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
                "score": round(float(self.score), 4)}


class Detector(Protocol):
    name: str

    def __call__(self, image: np.ndarray) -> list[Detection]: ...


class MTCNNDetector:
    """facenet-pytorch's MTCNN; its P/R/O-net weights are read from the installed wheel."""

    name = "mtcnn"

    def __init__(self, device: str | torch.device = "cpu", min_size: int = 20,
                 thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7), score: float = 0.9) -> None:
        # Only the model module: the package's top level also imports its training utilities.
        from facenet_pytorch.models import mtcnn

        self.device = torch.device(device)
        data = Path(mtcnn.__file__).resolve().parent.parent / "data"
        self.nets = []
        for cls, file in ((mtcnn.PNet, "pnet.pt"), (mtcnn.RNet, "rnet.pt"), (mtcnn.ONet, "onet.pt")):
            net = cls(pretrained=False)
            net.load_state_dict(torch.load(data / file, map_location="cpu", weights_only=True))
            self.nets.append(net.to(self.device).eval())
        self.min_size, self.thresholds, self.score = min_size, list(thresholds), score

    def __call__(self, image: np.ndarray) -> list[Detection]:
        from facenet_pytorch.models.utils import detect_face as module

        if min(image.shape[:2]) < self.min_size:  # no face fits (and its pyramid would be empty)
            return []
        with torch.inference_mode(), _fast_pyramid(module):
            boxes, points = module.detect_face(np.ascontiguousarray(image), self.min_size, *self.nets,
                                               self.thresholds, 0.709, self.device)
        # numpy 2: its per-image results can come back as object arrays.
        boxes = np.asarray(np.asarray(boxes[0]).tolist(), float).reshape(-1, 5)
        points = np.asarray(np.asarray(points[0]).tolist(), float).reshape(-1, 5, 2)
        return [Detection(b[:4], p, float(b[4])) for b, p in zip(boxes, points) if b[4] >= self.score]


_PATCH_LOCK = threading.Lock()


@contextlib.contextmanager
def _fast_pyramid(module) -> Iterator[None]:
    """Let MTCNN shrink whole images with OpenCV's INTER_AREA instead of torch's "area"
    interpolation (adaptive average pooling), which took ~40% of its CPU time on a 512 px
    photo. The same box filter up to the weighting of partial pixels; small crops (its second
    and third stages) still go through torch. Scoped to our own calls, under a lock."""
    original = module.imresample

    def imresample(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if img.shape[0] != 1 or img.device.type != "cpu" or img.shape[2] * img.shape[3] < 4096:
            return original(img, size)
        x = cv2.resize(img[0].permute(1, 2, 0).numpy(), (size[1], size[0]), interpolation=cv2.INTER_AREA)
        return torch.from_numpy(x).permute(2, 0, 1)[None]

    with _PATCH_LOCK:
        module.imresample = imresample
        try:
            yield
        finally:
            module.imresample = original


class RetinaFaceDetector:
    """facexlib's RetinaFace (ResNet-50) with the published ``detection_Resnet50_Final.pth``."""

    name = "retinaface"

    def __init__(self, weights: str | os.PathLike, device: str | torch.device = "cpu",
                 score: float = 0.97) -> None:
        from facexlib.detection.retinaface import RetinaFace

        self.device = torch.device(device)
        state = {k.removeprefix("module."): v for k, v in load_state(weights).items()}
        self.net = RetinaFace(network_name="resnet50", half=False, device=self.device)
        self.net.load_state_dict(state, strict=True)
        self.net.eval()
        self.score = score

    def __call__(self, image: np.ndarray) -> list[Detection]:
        bgr = np.ascontiguousarray(image[..., ::-1])  # facexlib takes OpenCV's BGR
        with torch.inference_mode():
            rows = self.net.detect_faces(bgr, self.score)
        return [Detection(r[:4].astype(float), r[5:15].reshape(5, 2).astype(float), float(r[4]))
                for r in np.asarray(rows, np.float32)]


def load_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A published state dict (``.pth``, read with ``weights_only=True``) or a safetensors one."""
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def make_detector(name: str = "auto", device: str | torch.device = "cpu") -> tuple[Detector, str]:
    """The detector ``name`` (auto | retinaface | mtcnn) and a few words on why it was chosen.

    ``auto`` takes RetinaFace when its weights are in the cache, else MTCNN. Asking for
    ``retinaface`` without its weights is an error that says how to get them."""
    from restore.models.cache import find_cached
    from restore.models.manifest import WeightsError

    if name not in DETECTORS:
        raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, not {name!r}")
    path = find_cached(RETINAFACE) if name in ("auto", "retinaface") else None
    if path is not None:
        return RetinaFaceDetector(path, device), f"RetinaFace ({RETINAFACE} in the weights cache)"
    if name == "retinaface":
        raise WeightsError(f"RetinaFace needs {RETINAFACE}, which is not in the weights cache; "
                           f"get it with `restore weights fetch {RETINAFACE}` or use --detector mtcnn")
    why = "asked for" if name == "mtcnn" else f"{RETINAFACE} not in the weights cache"
    return MTCNNDetector(device), f"MTCNN ({why})"


def detect(detector: Detector, image: np.ndarray, max_side: int = 1600) -> list[Detection]:
    """Faces in an RGB uint8 image, largest first; detected on a copy shrunk to ``max_side``
    (0: full size) and mapped back to ``image``'s pixels."""
    h, w = image.shape[:2]
    scale = max_side / max(h, w) if max_side and max(h, w) > max_side else 1.0
    small = image if scale == 1.0 else cv2.resize(
        image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    found = [d.scaled(1 / scale) if scale != 1.0 else d for d in detector(small)]
    return sorted(found, key=lambda d: -(d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))


def center_face(faces: list[Detection], height: int, width: int) -> list[Detection]:
    """The one face whose box centre is nearest the image centre (``--only-center-face``)."""
    if not faces:
        return []
    c = np.array([width / 2, height / 2])
    return [min(faces, key=lambda d: float(np.hypot(*((d.box[:2] + d.box[2:]) / 2 - c))))]


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = max(0.0, float(min(a[2], b[2]) - max(a[0], b[0])))
    h = max(0.0, float(min(a[3], b[3]) - max(a[1], b[1])))
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - w * h
    return w * h / union if union > 0 else 0.0


def merge(first: list[Detection], more: list[Detection], overlap: float = 0.4) -> list[Detection]:
    """``first`` and the faces of ``more`` that none of them covers (box IoU < ``overlap``),
    largest first: the faces of a photo found on two versions of it (``FaceRestorer`` detects
    on the degraded photo and on its restored copy)."""
    extra = [d for d in more if all(box_iou(d.box, f.box) < overlap for f in first)]
    return sorted(first + extra, key=lambda d: -(d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
