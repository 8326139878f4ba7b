"""The choices of ``restore sketch`` and ``restore train colorizer``, in a module that imports
nothing heavy, so their ``--help`` and usage errors never wait for torch."""
from __future__ import annotations

METHODS = ("xdog", "threshold", "hed")  # line extractors: restore.sketch.extract
REGIONS = {"auto": "auto", "on": True, "off": False}  # --regions -> Colorizer(one_per_region=...)
ALIGN = {"auto": True, "off": False}  # --align -> Colorizer(align=...)
