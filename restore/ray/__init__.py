"""Ray Data for collections on a cluster: ``--ray`` of the batch commands (``runner``) and
callable classes for your own ``ds.map_batches(...)`` pipelines (``udf``). Needs the ``ray``
extra: ``pip install "unet-restore[ray]"``."""
from __future__ import annotations

__all__ = ["FaceRestorerUDF", "SegmenterUDF"]


def __getattr__(name: str):
    if name in __all__:  # imported on use: ``restore.ray.runner`` alone needs no model code
        from . import udf

        return getattr(udf, name)
    raise AttributeError(name)
