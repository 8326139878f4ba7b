"""Checked, resumable HTTP downloads: ``download(url, dest, sha256=..., size=...)``.

The bytes go to ``DEST.part`` beside ``dest``; an interrupted download is resumed from there
with an HTTP Range request (a server that ignores Range gets a fresh start), the sha256 is
computed while the bytes arrive, and only a file that matches is renamed onto ``dest``. A
mismatch deletes the ``.part`` and says so, so nothing half-written or altered ever carries
the real name. Written on urllib because ``torch.hub.download_url_to_file`` cannot resume.

Every download has a ceiling, so a server that never stops sending cannot fill the disk: the
published size, else the manifest's ``max_bytes``, else ``MAX_BYTES``. Past it the transfer
stops at once and the ``.part`` is deleted; a ``.part`` already past it is started afresh.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
from http.client import HTTPException
from pathlib import Path
from typing import Any, BinaryIO
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from tqdm import tqdm

try:  # POSIX: keep two processes from appending to the same .part
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

CHUNK = 1 << 20
MAX_BYTES = 4 << 30  # the ceiling of a file whose size nobody states: above every model we know


class DownloadError(ValueError):
    """A download failed; the message is one line that says what to do."""


class _Busy(DownloadError):
    """Another process holds the .part."""


class _Mismatch(DownloadError):
    """The bytes are not the published file: the .part is deleted, not kept for resuming."""


class _TooBig(_Mismatch):
    """More bytes than the ceiling: stopped at once, the .part deleted."""


def part_path(dest: str | os.PathLike) -> Path:
    """Where the bytes of ``dest`` collect until they are verified."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def download(url: str, dest: str | os.PathLike, *, sha256: str | None, size: int | None = None,
             max_bytes: int | None = None, progress: bool = True, timeout: float = 30.0,
             desc: str | None = None) -> Path:
    """Fetch ``url`` to ``dest`` (resuming ``dest.part``), check size and sha256, rename.

    The bytes may not pass ``size`` when it is known, else ``max_bytes``, else ``MAX_BYTES``.
    ``sha256`` None: the download's own digest is not published (a compressed copy of a file
    whose digest is): the caller checks what it unpacks to (``restore.models.wheel_files``).
    Raises DownloadError: offline or refused (the message names the URL and ``dest``, where a
    copy fetched elsewhere can be placed); interrupted (``.part`` kept: run again to resume);
    or a size/sha256 mismatch or too many bytes (``.part`` deleted)."""
    dest = Path(dest)
    part = part_path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    limit = _Limit(size, max_bytes)
    try:
        with open(part, "ab+") as f:
            _lock(f, part)
            h, done = _hash_existing(f, limit.bytes)
            if size is None or done < size:
                # A second go, from zero, when the server ignored our Range and sent it all.
                if _transfer(url, f, h, done, size, limit, progress, timeout, desc or dest.name, dest) == "restart":
                    f.truncate(0)
                    h = hashlib.sha256()
                    _transfer(url, f, h, 0, size, limit, progress, timeout, desc or dest.name, dest)
            f.flush()
            os.fsync(f.fileno())
            got = f.seek(0, os.SEEK_END)
    except _Busy:
        raise
    except _Mismatch:
        part.unlink(missing_ok=True)
        raise
    except BaseException:  # offline, interrupted, Ctrl-C: keep what arrived, not an empty file
        if part.is_file() and part.stat().st_size == 0:
            part.unlink()
        raise
    if size is not None and got != size:
        part.unlink(missing_ok=True)
        raise _Mismatch(f"{url} gave {got} bytes, expected {size}: the download was deleted; "
                        "try again later or fetch the file another way")
    digest = h.hexdigest()
    if sha256 is not None and digest != sha256:
        part.unlink(missing_ok=True)
        raise _Mismatch(f"{url} fails its sha256 check (expected {sha256}, got {digest}): the download "
                        "was deleted (damaged on the way or not the published file); run again to retry")
    os.replace(part, dest)
    _fsync_dir(dest.parent)
    return dest


class _Limit:
    """The most bytes a download may bring, and where that number comes from (for the message)."""

    def __init__(self, size: int | None, max_bytes: int | None) -> None:
        if size is not None:
            self.bytes, self.why = size, "its published size"
        elif max_bytes is not None:
            self.bytes, self.why = max_bytes, "its stated maximum"
        else:
            self.bytes, self.why = MAX_BYTES, "the cap for files of unknown size"

    def exceeded(self, url: str, what: str) -> _TooBig:
        """The one-line error for ``url`` that ``what`` ("offers N bytes", ...)."""
        return _TooBig(f"{url} {what}, more than {self.bytes} ({self.why}): stopped, and the partial download "
                       "was deleted; not the published file")


def _transfer(url: str, f: BinaryIO, h, done: int, size: int | None, limit: _Limit, progress: bool,
              timeout: float, desc: str, dest: Path) -> str | None:
    """Append the rest of ``url`` to ``f`` (which holds ``done`` bytes), updating ``h``, never
    past ``limit`` (``_TooBig``). Returns "restart" when the server did not send the range asked
    for (e.g. the whole file)."""
    headers = {"User-Agent": "unet-restore", "Accept-Encoding": "identity"}
    if done:
        headers["Range"] = f"bytes={done}-"
    try:
        resp = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as e:
        if e.code == 416 and done:  # nothing after our end: the .part is whole (or too long)
            return None
        raise DownloadError(_offline(url, f"HTTP {e.code} {e.reason}", dest)) from None
    except (URLError, OSError, HTTPException) as e:
        raise DownloadError(_offline(url, getattr(e, "reason", e), dest)) from None
    with resp:
        status = resp.status
        if done and status != 206:
            if status == 200:
                return "restart"
            raise DownloadError(_offline(url, f"HTTP {status}", dest))
        start = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
        if done and (start is None or int(start.group(1)) != done):
            return "restart"  # a range other than the one asked for: take the whole file instead
        total = _total(resp, done)
        if size is not None and total is not None and total != size:
            raise _Mismatch(f"{url} offers {total} bytes, expected {size}: not the published file; "
                            "the partial download was deleted")
        if total is not None and total > limit.bytes:  # said so up front: not one byte more
            raise limit.exceeded(url, f"offers {total} bytes")
        bar = tqdm(total=size or total, initial=done, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=desc, disable=not progress, file=sys.stderr, leave=False)
        try:
            # one byte past the ceiling is enough to know: never ask for, or write, more
            while chunk := resp.read(min(CHUNK, limit.bytes - done + 1)):
                if done + len(chunk) > limit.bytes:
                    raise limit.exceeded(url, f"sent at least {done + len(chunk)} bytes")
                f.write(chunk)
                h.update(chunk)
                done += len(chunk)
                bar.update(len(chunk))
        except (OSError, HTTPException) as e:  # reset, timeout, bad chunk: keep the .part for the next run
            f.flush()
            raise DownloadError(_interrupted(url, done, size or total, e)) from None
        finally:
            bar.close()
    if total is not None and done < total:  # the server closed early (http.client does not raise)
        raise DownloadError(_interrupted(url, done, total, "connection closed early"))
    return None


def _total(resp, done: int) -> int | None:
    """The full size of the remote file, from Content-Range or Content-Length."""
    m = re.match(r"bytes (\d+)-\d+/(\d+)", resp.headers.get("Content-Range", ""))
    if m:
        return int(m.group(2))
    length = resp.headers.get("Content-Length")
    return done + int(length) if length and length.isdigit() else None


def _hash_existing(f: BinaryIO, limit: int) -> tuple[Any, int]:
    """sha256 of what an earlier run left in the .part, and its length; a .part longer than
    ``limit`` cannot be the file (a runaway server, a killed run): it is emptied, unread."""
    f.seek(0, os.SEEK_END)
    if f.tell() > limit:
        f.truncate(0)
        return hashlib.sha256(), 0
    h = hashlib.sha256()
    f.seek(0)
    done = 0
    while block := f.read(CHUNK):
        h.update(block)
        done += len(block)
    return h, done


def _offline(url: str, reason, dest: Path) -> str:
    return (f"cannot download {url} ({reason}); download it on a machine with internet access and "
            f"place it at {dest} (or run: restore weights import FILE)")


def _interrupted(url: str, done: int, total: int | None, reason) -> str:
    of = f" of {total}" if total else ""
    return f"download of {url} interrupted after {done}{of} bytes ({reason}); run the same command again to resume"


def _lock(f: BinaryIO, part: Path) -> None:
    if fcntl is None:
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _Busy(f"another process is downloading into {part}; wait for it to finish") from None


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
