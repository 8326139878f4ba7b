"""Ray Data for your own pipelines: the tasks' callable classes, each actor loading its models
once (``FaceRestorerUDF`` lives in ``restore.faces.udf``, ``SegmenterUDF`` in
``restore.segment.udf``; the batch commands' ``--ray`` is ``restore.runners.ray``). Needs the
``ray`` extra: ``pip install "unet-restore[ray]"``.

    from restore.ray import FaceRestorerUDF, SegmenterUDF
"""
from __future__ import annotations

__all__ = ["FaceRestorerUDF", "SegmenterUDF"]


def __getattr__(name: str):
    # imported on use: ``import restore.ray`` loads no model code
    if name == "FaceRestorerUDF":
        from restore.faces.udf import FaceRestorerUDF

        return FaceRestorerUDF
    if name == "SegmenterUDF":
        from restore.segment.udf import SegmenterUDF

        return SegmenterUDF
    raise AttributeError(f"module 'restore.ray' has no attribute {name!r}")
