"""The precisions a model can run in, by name: a table without torch, so a command's ``--help``
lists them at once (``gan.precision`` runs them)."""
from __future__ import annotations

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
