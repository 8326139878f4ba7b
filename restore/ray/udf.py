"""Callable classes for your own Ray Data pipelines: each actor loads the models once.

    import ray
    from restore.ray import FaceRestorerUDF, SegmenterUDF

    ds = ray.data.read_images("photos/", mode="RGB", include_paths=True)   # or s3://bucket/photos
    ds = ds.map_batches(FaceRestorerUDF, fn_constructor_kwargs={"weights": "gfpgan-v1.4"},
                        compute=ray.data.ActorPoolStrategy(size=2), batch_size=8)
    ds.write_images("restored/", column="image")           # or .write_parquet(...): faces too

    masks = ray.data.read_images("cells/", include_paths=True).map_batches(
        SegmenterUDF, compute=ray.data.ActorPoolStrategy(size=2), batch_size=4)

Both take a batch in the numpy format (``batch["image"]``: one HxWx3 or HxW array per row,
as ``read_images`` gives) and return it with their columns added; the other columns (``path``)
pass through. An actor that Ray gave a GPU (``num_gpus=1`` in ``map_batches``) runs on it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FaceRestorerUDF", "SegmenterUDF"]


def _device(device: str | None) -> str:
    if device is not None:
        return device
    import ray

    return "cuda" if ray.is_initialized() and ray.get_gpu_ids() else "cpu"


def _images(batch: dict[str, Any], column: str) -> list[np.ndarray]:
    if column not in batch:
        raise KeyError(f"the batch has no {column!r} column (it has {', '.join(batch)}); pass column=")
    return [np.asarray(x) for x in batch[column]]


def _column(arrays: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    """One array when every row has one shape (Ray stores it as a tensor column), else a list
    (Ray's variable-shaped tensor column)."""
    if arrays and all(a.shape == arrays[0].shape and a.dtype == arrays[0].dtype for a in arrays):
        return np.stack(arrays)
    return arrays


class FaceRestorerUDF:
    """Restore the faces of each row's photo: ``image`` becomes the restored photo (its size
    times ``upscale``) and ``faces`` (JSON) lists each face's box, landmarks and score.

    ``weights`` and ``options`` are ``restore.faces.FaceRestorer``'s (``detector``, ``upscale``,
    ``bg``, ``fidelity``, ``precision``, ``batch_size`` ...). The faces of all photos in a batch
    go through the network together, in calls of ``batch_size`` padded to that size, so a photo's
    bytes do not depend on the batch it landed in: they are ``restore faces``'s, at one precision."""

    def __init__(self, weights: str | Path | None = None, *, device: str | None = None, column: str = "image",
                 **options: Any) -> None:
        from restore.faces.restorer import FaceRestorer

        self.fr = FaceRestorer(weights, device=_device(device), **options)
        self.fr.fixed_batch = True
        self.column = column

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        preps = [self.fr.prepare(image) for image in _images(batch, self.column)]
        crops = [c for p in preps for c in p.crops]
        restored = self.fr.restore_crops(crops) if crops else []
        images, faces, k = [], [], 0
        for p in preps:
            result = self.fr.finish(p, restored[k:k + len(p.crops)])
            k += len(p.crops)
            images.append(result.image)
            faces.append(json.dumps([f.to_dict() for f in result.faces]))
        batch[self.column] = _column(images)
        batch["faces"] = np.array(faces, dtype=object)
        return batch


class SegmenterUDF:
    """Segment each row's image: adds ``mask`` (uint8 classes, or uint16 instance labels with
    ``instances=True``) and, with ``overlay=True``, ``overlay`` (the image with the mask's colours).

    ``weights`` and ``options`` are ``restore.segment.Segmenter``'s (``tile``, ``overlap``,
    ``diameter``, ``precision`` ...); ``min_size``, ``fill_holes`` and ``crf`` its call's."""

    def __init__(self, weights: str | Path | None = None, *, device: str | None = None, column: str = "image",
                 instances: bool = False, min_size: int = 16, fill_holes: bool = False, crf: bool = False,
                 overlay: bool = False, **options: Any) -> None:
        from restore.segment.segmenter import Segmenter

        self.seg = Segmenter(weights, device=_device(device), **options)
        self.column, self.overlay = column, overlay
        self.call = dict(instances=instances, min_size=min_size, fill_holes=fill_holes, crf=crf)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from restore.segment.overlay import overlay

        images = _images(batch, self.column)
        masks = []
        for image in images:
            labels = self.seg(image, **self.call)
            masks.append(labels.astype(np.uint16 if self.call["instances"] or labels.max() > 255 else np.uint8))
        batch["mask"] = _column(masks)
        if self.overlay:
            batch["overlay"] = _column([overlay(i, m) for i, m in zip(images, masks)])
        return batch
