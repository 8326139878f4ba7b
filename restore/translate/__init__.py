"""Paired translation: a trained image-to-image generator (pix2pix, the bundled restorer) on photos
and films (``restore translate``).

    translator.py   Translator: tiled inference on RGB uint8 images
    job.py          the batch job of ``restore translate``
    video.py        a film frame by frame, its sound kept
    cli.py          the command's arguments and run
"""
from __future__ import annotations

__all__ = ["Translator"]


def __getattr__(name: str):
    # Lazy, so ``restore translate --help`` never imports torch.
    if name == "Translator":
        from .translator import Translator

        return Translator
    raise AttributeError(f"module 'restore.translate' has no attribute {name!r}")
