"""``SegmenterUDF``: segment images in your own Ray Data pipelines; each actor loads the model once.

    import ray
    from restore.ray import SegmenterUDF

    masks = ray.data.read_images("cells/", include_paths=True).map_batches(
        SegmenterUDF, compute=ray.data.ActorPoolStrategy(size=2), batch_size=4)

It takes a batch in the numpy format (``batch["image"]``: one HxWx3 or HxW array per row, as
``read_images`` gives) and returns it with its columns added; the other columns (``path``)
pass through. An actor that Ray gave a GPU (``num_gpus=1`` in ``map_batches``) runs on it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from restore.ray.columns import as_column, images_of, udf_device

__all__ = ["SegmenterUDF"]


class SegmenterUDF:
    """Segment each row's image: adds ``mask`` (uint8 classes, or uint16 instance labels with
    ``instances=True``) and, with ``overlay=True``, ``overlay`` (the image with the mask's colours).

    ``weights`` and ``options`` are ``restore.segment.Segmenter``'s (``tile``, ``overlap``,
    ``diameter``, ``precision`` ...); ``min_size``, ``fill_holes`` and ``crf`` its call's."""

    def __init__(self, weights: str | Path | None = None, *, device: str | None = None, column: str = "image",
                 instances: bool = False, min_size: int = 16, fill_holes: bool = False, crf: bool = False,
                 overlay: bool = False, **options: Any) -> None:
        from restore.segment.segmenter import Segmenter

        self.seg = Segmenter(weights, device=udf_device(device), **options)
        self.column, self.overlay = column, overlay
        self.call = dict(instances=instances, min_size=min_size, fill_holes=fill_holes, crf=crf)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from restore.segment.overlay import overlay

        images = images_of(batch, self.column)
        masks = []
        for image in images:
            labels = self.seg(image, **self.call)
            masks.append(labels.astype(np.uint16 if self.call["instances"] or labels.max() > 255 else np.uint8))
        batch["mask"] = as_column(masks)
        if self.overlay:
            batch["overlay"] = as_column([overlay(i, m) for i, m in zip(images, masks)])
        return batch
