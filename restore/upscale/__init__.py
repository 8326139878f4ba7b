"""Upscaling with Real-ESRGAN's published networks (``restore upscale``).

    upscaler.py   Upscaler: RRDBNet / SRVGGNetCompact on pictures, as RealESRGANer.enhance
    job.py        the batch job of ``restore upscale``
    face_enhance.py  --face-enhance: the faces restored by ``restore faces``' models on its picture
    cli.py        the command's arguments and run
"""
from __future__ import annotations

__all__ = ["Upscaler"]


def __getattr__(name: str):
    # Lazy, so ``restore upscale --help`` never imports torch.
    if name == "Upscaler":
        from .upscaler import Upscaler

        return Upscaler
    raise AttributeError(f"module 'restore.upscale' has no attribute {name!r}")
