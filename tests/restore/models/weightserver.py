"""A local HTTP server on 127.0.0.1 serving weight files (good, truncated, tampered; with and
without Range support), a test manifest pointing at it and an empty cache: the fixtures of the
weights manager's tests; the ``server`` and ``env`` fixtures built on them are in conftest.py."""
from __future__ import annotations

import hashlib
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass

PAYLOAD = bytes(range(256)) * 1200  # 300 kB
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()
TAMPERED = PAYLOAD[:1000] + b"\x00" + PAYLOAD[1001:]


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range: bytes=N-`` unless ``server.honour_range`` is off;
    ``server.cut_after`` bytes into a body it hangs up (an interrupted download); the names in
    ``server.forever`` stream bytes with no Content-Length until the client hangs up."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        srv = self.server
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
        if self.path.lstrip("/") in srv.forever:
            self._stream_forever()
            return
        body = srv.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        start = 0
        if rng and srv.honour_range:
            start = int(re.match(r"bytes=(\d+)-", rng).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        data = body[start:]
        self.wfile.write(data if srv.cut_after is None else data[: srv.cut_after])
        srv.sent += len(data) if srv.cut_after is None else min(len(data), srv.cut_after)

    def _stream_forever(self, seconds: float = 10.0) -> None:
        """A runaway server: 200, no length, 64 kB blocks until the client leaves (or ``seconds``)."""
        self.send_response(200)
        self.end_headers()
        block, end = b"\xff" * 65536, time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                self.wfile.write(block)
                self.server.sent += len(block)
        except OSError:  # the client hung up: what a good downloader does
            pass

    def log_message(self, *args) -> None:
        pass


@contextmanager
def serving(files: dict[str, bytes], forever: set[str] = frozenset()) -> Iterator[ThreadingHTTPServer]:
    """A weights server on 127.0.0.1 for the block: ``files`` by name, those in ``forever``
    streamed without end; ``srv.base`` is its URL, ``srv.requests`` what it was asked."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files = files
    srv.requests, srv.sent, srv.honour_range, srv.cut_after, srv.forever = [], 0, True, None, set(forever)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there any more: connection refused


def write_manifest(path: Path, entries: dict[str, dict]) -> None:
    def value(v):
        return "true" if v is True else "false" if v is False else repr(v) if isinstance(v, (int, float)) else f'"{v}"'

    lines = []
    for name, e in entries.items():
        lines.append(f'[models."{name}"]')
        lines += [f"{k} = {value(v)}" for k, v in e.items() if not isinstance(v, dict)]
        for k, v in e.items():
            if isinstance(v, dict):
                lines.append(f'[models."{name}".{k}]')
                lines += [f"{kk} = {value(vv)}" for kk, vv in v.items()]
    path.write_text("\n".join(lines) + "\n")


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.is_dir() else []
