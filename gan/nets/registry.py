"""Every network of the toolkit, found from the descriptors its files end with.

    from gan.nets.registry import networks, descriptor, descriptor_of
    networks()["UNet"].make({"depth": 3})     # build from a config dict
    descriptor_of(model).kind                  # "segmenter"

A plain dict built by reading each module of ``gan.nets`` for its ``DESCRIPTORS`` tuple: no
decorator, no registration as an import side effect, and no list of networks kept by hand (a
module without descriptors, such as ``blocks``, holds parts of networks).
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import Any

from .descriptor import Descriptor

__all__ = ["Descriptor", "descriptor", "descriptor_of", "networks"]


@functools.cache
def networks() -> dict[str, Descriptor]:
    """Name -> descriptor, for every network in ``gan.nets`` (imported once, on first use)."""
    import gan.nets

    found: dict[str, Descriptor] = {}
    for info in sorted(pkgutil.iter_modules(gan.nets.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"gan.nets.{info.name}")
        for d in getattr(module, "DESCRIPTORS", ()):
            if d.name in found:
                raise RuntimeError(f"two networks are called {d.name!r} ({found[d.name].model.__module__}, "
                                   f"{module.__name__})")
            found[d.name] = d
    return found


def descriptor(name: str) -> Descriptor:
    """The descriptor of architecture ``name``; ValueError naming the known ones."""
    known = networks()
    if name not in known:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(sorted(known))}")
    return known[name]


def descriptor_of(model: Any) -> Descriptor:
    """The descriptor of a network object: by its exact class, or, for a stand-in that runs an
    exported file (``restore.export.backend.OnnxNetwork``), by the ``arch`` it names. ValueError
    for a foreign module."""
    for d in networks().values():
        if type(model) is d.model:
            return d
    arch = getattr(model, "arch", None)
    if isinstance(arch, str) and arch in networks():
        return networks()[arch]
    raise ValueError(f"{type(model).__name__} is not a known architecture")
