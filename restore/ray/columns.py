"""Ray Data's numpy batches as the tasks' UDFs read and fill them (``restore.faces.udf``,
``restore.segment.udf``): a batch is a dict of columns, one entry per row."""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["as_column", "images_of", "udf_device"]


def udf_device(device: str | None) -> str:
    """``device``, else the GPU Ray gave this actor (``num_gpus`` in ``map_batches``), else the CPU."""
    if device is not None:
        return device
    import ray

    return "cuda" if ray.is_initialized() and ray.get_gpu_ids() else "cpu"


def images_of(batch: dict[str, Any], name: str) -> list[np.ndarray]:
    """The batch's pictures (one HxWx3 or HxW array per row, as ``read_images`` gives)."""
    if name not in batch:
        raise KeyError(f"the batch has no {name!r} column (it has {', '.join(batch)}); pass column=")
    return [np.asarray(x) for x in batch[name]]


def as_column(arrays: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    """One array when every row has one shape (Ray stores it as a tensor column), else a list
    (Ray's variable-shaped tensor column)."""
    if arrays and all(a.shape == arrays[0].shape and a.dtype == arrays[0].dtype for a in arrays):
        return np.stack(arrays)
    return arrays
