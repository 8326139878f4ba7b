"""Compatibility shims applied before anything imports basicsr.

basicsr 1.4.2 imports ``torchvision.transforms.functional_tensor``, a module torchvision
removed in 0.17. Its only use there is ``rgb_to_grayscale``, which still lives in
``torchvision.transforms.functional``. A finder placed last on ``sys.meta_path`` makes a
stand-in module when, and only when, that import is asked for and torchvision has no such
module: installing it imports nothing, so ``import gan`` (and ``restore --help``) stays free of
torch and torchvision.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types

NAME = "torchvision.transforms.functional_tensor"


class _StandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Last on ``sys.meta_path``: asked only after the real finders found nothing."""

    def find_spec(self, fullname, path=None, target=None):  # noqa: D102 (importlib protocol)
        return importlib.machinery.ModuleSpec(fullname, self) if fullname == NAME else None

    def create_module(self, spec):  # noqa: D102
        return types.ModuleType(spec.name)

    def exec_module(self, module) -> None:  # noqa: D102
        from torchvision.transforms import functional as F

        module.rgb_to_grayscale = F.rgb_to_grayscale  # type: ignore[attr-defined]


def install_torchvision_shim() -> None:
    """Provide ``torchvision.transforms.functional_tensor`` if torchvision lacks it (lazily)."""
    if not any(isinstance(f, _StandIn) for f in sys.meta_path):
        sys.meta_path.append(_StandIn())


install_torchvision_shim()
