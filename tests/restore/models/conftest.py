"""Fixtures of the weights manager's tests: a local weights server and a test manifest + cache."""
from __future__ import annotations

import hashlib

import pytest

from tests.restore.models.weightserver import (
    DIGEST,
    PAYLOAD,
    TAMPERED,
    serving,
    write_manifest,
)


@pytest.fixture
def server():
    files = {"good.bin": PAYLOAD, "short.bin": PAYLOAD[:-5000], "tampered.bin": TAMPERED, "nosize.bin": TAMPERED}
    with serving(files) as srv:
        yield srv


@pytest.fixture
def env(tmp_path, monkeypatch, server):
    """A test manifest (one bundled model, four downloadable from ``server``) and an empty cache."""
    wdir = tmp_path / "weights"
    wdir.mkdir()
    (wdir / "small.bin").write_bytes(b"bundled")
    entries = {
        "small": {"file": "small.bin", "bytes": 7, "sha256": hashlib.sha256(b"bundled").hexdigest(),
                  "arch": "UNet", "task": "test", "licence": "CC0"},
    }
    for name, n in (("good", len(PAYLOAD)), ("short", len(PAYLOAD)), ("tampered", len(PAYLOAD)), ("nosize", None)):
        e = {"file": f"{name}.pth", "url": f"{server.base}/{name}.bin", "sha256": DIGEST, "arch": "Other",
             "task": "test", "licence": "MIT"}
        if n is not None:
            e["bytes"] = n
        entries[name] = e
    write_manifest(wdir / "manifest.toml", entries)
    monkeypatch.setenv("RESTORE_MANIFEST", str(wdir / "manifest.toml"))
    monkeypatch.setenv("RESTORE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("RESTORE_URL_BASE", raising=False)
    return tmp_path / "cache"
