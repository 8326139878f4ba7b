"""``FaceRestorerUDF``: restore faces in your own Ray Data pipelines; each actor loads the models once.

    import ray
    from restore.ray import FaceRestorerUDF

    ds = ray.data.read_images("photos/", mode="RGB", include_paths=True)   # or s3://bucket/photos
    ds = ds.map_batches(FaceRestorerUDF, fn_constructor_kwargs={"weights": "gfpgan-v1.4"},
                        compute=ray.data.ActorPoolStrategy(size=2), batch_size=8)
    ds.write_images("restored/", column="image")           # or .write_parquet(...): faces too

It takes a batch in the numpy format (``batch["image"]``: one HxWx3 or HxW array per row, as
``read_images`` gives) and returns it with its columns added; the other columns (``path``)
pass through. An actor that Ray gave a GPU (``num_gpus=1`` in ``map_batches``) runs on it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from restore.ray.columns import as_column, images_of, udf_device

__all__ = ["FaceRestorerUDF"]


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

        self.fr = FaceRestorer(weights, device=udf_device(device), **options)
        self.fr.fixed_batch = True
        self.column = column

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        preps = [self.fr.prepare(image) for image in images_of(batch, self.column)]
        crops = [c for p in preps for c in p.crops]
        restored = self.fr.restore_crops(crops) if crops else []
        images, faces, k = [], [], 0
        for p in preps:
            result = self.fr.finish(p, restored[k:k + len(p.crops)])
            k += len(p.crops)
            images.append(result.image)
            faces.append(json.dumps([f.to_dict() for f in result.faces]))
        batch[self.column] = as_column(images)
        batch["faces"] = np.array(faces, dtype=object)
        return batch
