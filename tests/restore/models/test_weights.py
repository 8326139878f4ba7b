"""The weights manager against a local HTTP server on 127.0.0.1: good, truncated and tampered
files, resumed and restarted downloads, offline, pre-placed files and their records."""
from __future__ import annotations

import hashlib
import sys

import pytest

from restore.models import cache as wc
from restore.models import manifest as wm

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass
from tests.restore.models.weightserver import DIGEST, PAYLOAD, TAMPERED, closed_port_url, leftovers


# --------------------------------------------------------------------------- downloads
def test_fetch_good_file_then_cached(env, server):
    path = wc.fetch("good", progress=False)
    assert path == env / "good.pth" and path.read_bytes() == PAYLOAD
    assert leftovers(env) == ["good.pth", "good.pth.sha256"]  # no .part left
    n = len(server.requests)
    assert wc.fetch("good", progress=False) == path and wc.find_cached("good") == path
    assert len(server.requests) == n  # verified copy in the cache: no network


@pytest.mark.parametrize("name, why", [("short", "bytes, expected"), ("tampered", "sha256"), ("nosize", "sha256")])
def test_bad_download_is_deleted_and_reported(env, name, why):
    with pytest.raises(wm.WeightsError) as e:
        wc.fetch(name, progress=False)
    msg = str(e.value)
    assert why in msg and "deleted" in msg and "\n" not in msg
    if why == "sha256":
        assert DIGEST in msg and hashlib.sha256(TAMPERED).hexdigest() in msg  # expected and got
    assert leftovers(env) == []


def test_resume_with_range(env, server):
    env.mkdir()
    (env / "good.pth.part").write_bytes(PAYLOAD[:100_000])
    assert wc.fetch("good", progress=False).read_bytes() == PAYLOAD
    assert server.requests[-1][1] == "bytes=100000-" and server.sent == len(PAYLOAD) - 100_000


def test_server_ignoring_range_restarts_from_zero(env, server):
    server.honour_range = False
    env.mkdir()
    (env / "good.pth.part").write_bytes(b"junk that is not the start of the file")
    assert wc.fetch("good", progress=False).read_bytes() == PAYLOAD
    assert leftovers(env) == ["good.pth", "good.pth.sha256"]


def test_complete_part_is_verified_without_network(env, server):
    env.mkdir()
    (env / "good.pth.part").write_bytes(PAYLOAD)  # a run that died between download and rename
    assert wc.fetch("good", progress=False).read_bytes() == PAYLOAD
    assert server.requests == []


def test_interrupted_download_keeps_part_and_resumes(env, server):
    server.cut_after = 120_000
    with pytest.raises(wm.WeightsError, match="interrupted after 120000 of 307200 bytes.*resume"):
        wc.fetch("good", progress=False)
    assert (env / "good.pth.part").stat().st_size == 120_000 and not (env / "good.pth").exists()
    server.cut_after = None
    assert wc.fetch("good", progress=False).read_bytes() == PAYLOAD
    assert server.requests[-1][1] == "bytes=120000-"


def test_offline_is_one_line_naming_url_and_path(env, monkeypatch):
    base = closed_port_url()
    for kwargs in ({"url_base": base}, {}):
        if not kwargs:
            monkeypatch.setenv("RESTORE_URL_BASE", base)
        with pytest.raises(wm.WeightsError) as e:
            wc.fetch("good", progress=False, **kwargs)
        msg = str(e.value)
        assert "\n" not in msg and f"{base}/good.bin" in msg and f"place it at {env / 'good.pth'}" in msg
    assert leftovers(env) == []  # no empty .part left behind


def test_http_error_names_the_url(env, server):
    with pytest.raises(wm.WeightsError, match=r"cannot download .*/elsewhere/good\.bin \(HTTP 404"):
        wc.fetch("good", url_base=f"{server.base}/elsewhere", progress=False)


# --------------------------------------------------------------------------- files in the cache
def test_preplaced_file_is_used_offline(env, monkeypatch):
    monkeypatch.setenv("RESTORE_URL_BASE", closed_port_url())
    env.mkdir()
    (env / "good.pth").write_bytes(PAYLOAD)
    assert wc.find_cached("good") == env / "good.pth"
    assert wc.resolve_weights("good") == env / "good.pth"
    assert wc.fetch("good", progress=False) == env / "good.pth"


def test_preplaced_tampered_file_is_refused_not_deleted(env):
    env.mkdir()
    (env / "good.pth").write_bytes(TAMPERED)
    for call in (lambda: wc.find_cached("good"), lambda: wc.resolve_weights("good")):
        with pytest.raises(wm.WeightsError, match="fails its sha256 check.*not using it") as e:
            call()
        assert "\n" not in str(e.value)
    assert (env / "good.pth").read_bytes() == TAMPERED


def test_fetch_replaces_a_damaged_file(env, capsys):
    env.mkdir()
    (env / "good.pth").write_bytes(TAMPERED)
    assert wc.fetch("good", progress=False).read_bytes() == PAYLOAD
    assert "replace it" in capsys.readouterr().err


def test_missing_model_says_how_to_get_it(env, server):
    assert wc.find_cached("good") is None
    with pytest.raises(wm.WeightsError) as e:
        wc.resolve_weights("good")
    msg = str(e.value)
    assert "restore weights fetch good" in msg and f"{server.base}/good.bin" in msg and str(env / "good.pth") in msg
    assert wc.resolve_weights("good", download=True).read_bytes() == PAYLOAD


def test_verification_record_skips_rehash_until_the_file_changes(env, monkeypatch):
    path = wc.fetch("good", progress=False)
    calls = []
    real = wm.sha256
    monkeypatch.setattr(wm, "sha256", lambda p, *a: calls.append(p) or real(p, *a))
    assert wc.find_cached("good") == path and calls == []
    path.write_bytes(TAMPERED)  # same size, new mtime: the record no longer applies
    with pytest.raises(wm.WeightsError, match="sha256"):
        wc.find_cached("good")
    assert calls == [path]


def test_bundled_models_and_unknown_names(env):
    assert wc.resolve_weights("small") == env.parent / "weights" / "small.bin"
    with pytest.raises(wm.WeightsError, match="known models: good, nosize, short, small, tampered"):
        wc.resolve_weights("nope")
