"""Applying trained networks to real images, and the ``restore`` CLI."""
from __future__ import annotations

import gan  # noqa: F401  (applies the torchvision shim before anything imports basicsr)

__all__ = ["Colorizer", "FaceRestorer", "Segmenter", "Translator"]


def __getattr__(name: str):
    # Lazy, so ``import restore`` stays cheap for the CLI's --help.
    if name == "Segmenter":
        from restore.segment.segmenter import Segmenter

        return Segmenter
    if name == "FaceRestorer":
        from restore.faces.restorer import FaceRestorer

        return FaceRestorer
    if name == "Colorizer":
        from restore.sketch.colorizer import Colorizer

        return Colorizer
    if name == "Translator":
        from .translate import Translator

        return Translator
    raise AttributeError(f"module 'restore' has no attribute {name!r}")
