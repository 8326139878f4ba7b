"""Compatibility shims applied before anything imports basicsr.

basicsr 1.4.2 imports ``torchvision.transforms.functional_tensor``, a module torchvision
removed in 0.17. Its only use there is ``rgb_to_grayscale``, which still lives in
``torchvision.transforms.functional``; we register a stand-in module so basicsr imports.
"""
from __future__ import annotations

import sys
import types


def install_torchvision_shim() -> None:
    """Provide ``torchvision.transforms.functional_tensor`` if torchvision lacks it."""
    name = "torchvision.transforms.functional_tensor"
    if name in sys.modules:
        return
    try:
        import importlib

        importlib.import_module(name)
        return
    except ImportError:
        pass
    from torchvision.transforms import functional as F

    mod = types.ModuleType(name)
    mod.rgb_to_grayscale = F.rgb_to_grayscale  # type: ignore[attr-defined]
    sys.modules[name] = mod


install_torchvision_shim()
