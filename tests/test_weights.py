"""The weights manager against a local HTTP server on 127.0.0.1: good, truncated and tampered
files, resumed and restarted downloads, offline, pre-placed and imported files, the CLI."""
from __future__ import annotations

import hashlib
import re
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from restore import weights as w
from restore.cli import main
from restore.published import load_checkpoint, load_network, read_state

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PAYLOAD = bytes(range(256)) * 1200  # 300 kB
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()
TAMPERED = PAYLOAD[:1000] + b"\x00" + PAYLOAD[1001:]


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range: bytes=N-`` unless ``server.honour_range`` is off;
    ``server.cut_after`` bytes into a body it hangs up (an interrupted download)."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        srv = self.server
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
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

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files = {"good.bin": PAYLOAD, "short.bin": PAYLOAD[:-5000], "tampered.bin": TAMPERED,
                 "nosize.bin": TAMPERED}
    srv.requests, srv.sent, srv.honour_range, srv.cut_after = [], 0, True, None
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
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


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.is_dir() else []


# --------------------------------------------------------------------------- downloads
def test_fetch_good_file_then_cached(env, server):
    path = w.fetch("good", progress=False)
    assert path == env / "good.pth" and path.read_bytes() == PAYLOAD
    assert leftovers(env) == ["good.pth", "good.pth.sha256"]  # no .part left
    n = len(server.requests)
    assert w.fetch("good", progress=False) == path and w.find_cached("good") == path
    assert len(server.requests) == n  # verified copy in the cache: no network


@pytest.mark.parametrize("name, why", [("short", "bytes, expected"), ("tampered", "sha256"), ("nosize", "sha256")])
def test_bad_download_is_deleted_and_reported(env, name, why):
    with pytest.raises(w.WeightsError) as e:
        w.fetch(name, progress=False)
    msg = str(e.value)
    assert why in msg and "deleted" in msg and "\n" not in msg
    if why == "sha256":
        assert DIGEST in msg and hashlib.sha256(TAMPERED).hexdigest() in msg  # expected and got
    assert leftovers(env) == []


def test_resume_with_range(env, server):
    env.mkdir()
    (env / "good.pth.part").write_bytes(PAYLOAD[:100_000])
    assert w.fetch("good", progress=False).read_bytes() == PAYLOAD
    assert server.requests[-1][1] == "bytes=100000-" and server.sent == len(PAYLOAD) - 100_000


def test_server_ignoring_range_restarts_from_zero(env, server):
    server.honour_range = False
    env.mkdir()
    (env / "good.pth.part").write_bytes(b"junk that is not the start of the file")
    assert w.fetch("good", progress=False).read_bytes() == PAYLOAD
    assert leftovers(env) == ["good.pth", "good.pth.sha256"]


def test_complete_part_is_verified_without_network(env, server):
    env.mkdir()
    (env / "good.pth.part").write_bytes(PAYLOAD)  # a run that died between download and rename
    assert w.fetch("good", progress=False).read_bytes() == PAYLOAD
    assert server.requests == []


def test_interrupted_download_keeps_part_and_resumes(env, server):
    server.cut_after = 120_000
    with pytest.raises(w.WeightsError, match="interrupted after 120000 of 307200 bytes.*resume"):
        w.fetch("good", progress=False)
    assert (env / "good.pth.part").stat().st_size == 120_000 and not (env / "good.pth").exists()
    server.cut_after = None
    assert w.fetch("good", progress=False).read_bytes() == PAYLOAD
    assert server.requests[-1][1] == "bytes=120000-"


def test_offline_is_one_line_naming_url_and_path(env, monkeypatch):
    base = closed_port_url()
    for kwargs in ({"url_base": base}, {}):
        if not kwargs:
            monkeypatch.setenv("RESTORE_URL_BASE", base)
        with pytest.raises(w.WeightsError) as e:
            w.fetch("good", progress=False, **kwargs)
        msg = str(e.value)
        assert "\n" not in msg and f"{base}/good.bin" in msg and f"place it at {env / 'good.pth'}" in msg
    assert leftovers(env) == []  # no empty .part left behind


def test_http_error_names_the_url(env, server):
    with pytest.raises(w.WeightsError, match=r"cannot download .*/elsewhere/good\.bin \(HTTP 404"):
        w.fetch("good", url_base=f"{server.base}/elsewhere", progress=False)


# --------------------------------------------------------------------------- files in the cache
def test_preplaced_file_is_used_offline(env, monkeypatch):
    monkeypatch.setenv("RESTORE_URL_BASE", closed_port_url())
    env.mkdir()
    (env / "good.pth").write_bytes(PAYLOAD)
    assert w.find_cached("good") == env / "good.pth"
    assert w.resolve_weights("good") == env / "good.pth"
    assert w.fetch("good", progress=False) == env / "good.pth"


def test_preplaced_tampered_file_is_refused_not_deleted(env):
    env.mkdir()
    (env / "good.pth").write_bytes(TAMPERED)
    for call in (lambda: w.find_cached("good"), lambda: w.resolve_weights("good")):
        with pytest.raises(w.WeightsError, match="fails its sha256 check.*not using it") as e:
            call()
        assert "\n" not in str(e.value)
    assert (env / "good.pth").read_bytes() == TAMPERED


def test_fetch_replaces_a_damaged_file(env, capsys):
    env.mkdir()
    (env / "good.pth").write_bytes(TAMPERED)
    assert w.fetch("good", progress=False).read_bytes() == PAYLOAD
    assert "replace it" in capsys.readouterr().err


def test_missing_model_says_how_to_get_it(env, server):
    assert w.find_cached("good") is None
    with pytest.raises(w.WeightsError) as e:
        w.resolve_weights("good")
    msg = str(e.value)
    assert "restore weights fetch good" in msg and f"{server.base}/good.bin" in msg and str(env / "good.pth") in msg
    assert w.resolve_weights("good", download=True).read_bytes() == PAYLOAD


def test_verification_record_skips_rehash_until_the_file_changes(env, monkeypatch):
    path = w.fetch("good", progress=False)
    calls = []
    real = w.sha256
    monkeypatch.setattr(w, "sha256", lambda p, *a: calls.append(p) or real(p, *a))
    assert w.find_cached("good") == path and calls == []
    path.write_bytes(TAMPERED)  # same size, new mtime: the record no longer applies
    with pytest.raises(w.WeightsError, match="sha256"):
        w.find_cached("good")
    assert calls == [path]


def test_bundled_models_and_unknown_names(env):
    assert w.resolve_weights("small") == env.parent / "weights" / "small.bin"
    with pytest.raises(w.WeightsError, match="known models: good, nosize, short, small, tampered"):
        w.resolve_weights("nope")


# --------------------------------------------------------------------------- import, conversion
def test_import_recognises_a_published_file(env, tmp_path):
    src = tmp_path / "Downloads" / "whatever.pth"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    assert w.import_file(src) == env / "good.pth"
    assert w.find_cached("good").read_bytes() == PAYLOAD and src.exists()


def test_import_refuses_tampered_and_unknown_files(env, tmp_path):
    src = tmp_path / "x.pth"
    src.write_bytes(TAMPERED)
    with pytest.raises(w.WeightsError, match=r"is not good: its sha256 is \w+, the manifest's is \w+") as e:
        w.import_file(src, "good")
    assert "\n" not in str(e.value)
    with pytest.raises(w.WeightsError, match="matches no model in the manifest.*--name NAME --arch ARCH"):
        w.import_file(src)
    assert leftovers(env) == []


def tiny_unet():
    from gan.unet import UNet, UNetConfig

    cfg = {"in_channels": 1, "out_channels": 2, "base_channels": 4, "depth": 2}
    torch.manual_seed(0)
    return UNet(UNetConfig(**cfg)).eval(), cfg


def test_import_own_model_with_name_and_arch(env, tmp_path):
    model, cfg = tiny_unet()
    src = tmp_path / "mine.pth"
    torch.save({"params_ema": model.state_dict()}, src)
    out = w.import_file(src, "my-unet", arch="UNet", config=cfg)
    assert out == env / "my-unet.safetensors" and w.resolve_weights("my-unet") == out
    loaded, meta = load_network("my-unet")
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert meta["source_file"] == "mine.pth"
    with pytest.raises(w.WeightsError, match="does not fit UNet"):
        w.import_file(src, "wrong", arch="UNet", config={**cfg, "depth": 3})


def test_published_file_of_our_architecture_is_converted_once(env, server, tmp_path, monkeypatch):
    model, cfg = tiny_unet()
    pth = tmp_path / "pub.pth"
    torch.save({"params_ema": model.state_dict()}, pth)
    server.files["pub.pth"] = pth.read_bytes()
    manifest = Path(w.manifest_path())
    manifest.write_text(manifest.read_text() + (
        f'[models.pub]\nfile = "pub.pth"\nurl = "{server.base}/pub.pth"\nsha256 = "{w.sha256(pth)}"\n'
        f'arch = "UNet"\ntask = "test"\nlicence = "MIT"\n[models.pub.config]\n'
        + "".join(f"{k} = {v}\n" for k, v in cfg.items())))
    w.fetch("pub", progress=False)
    conv = env / "pub.safetensors"
    assert conv.is_file() and w.find_cached("pub") == conv  # later loads skip torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load after conversion"))
    loaded, meta = load_network("pub")
    assert meta["source_sha256"] == w.sha256(pth) and meta["arch"] == "UNet"
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    path = tmp_path / "evil.pth"
    torch.save({"params_ema": Evil()}, path)
    with pytest.raises(w.WeightsError, match="weights_only=True"):
        read_state(path)


def test_gfpgan_checkpoint_converts_and_matches(env, tmp_path, monkeypatch):
    gfpgan = pytest.importorskip("gan.gfpgan")
    from gan import serialize

    if "GFPGAN" not in serialize.ARCHITECTURES:  # until gan/serialize.py registers it
        monkeypatch.setitem(serialize.ARCHITECTURES, "GFPGAN", (gfpgan.GFPGANConfig, gfpgan.GFPGAN))
    cfg = gfpgan.GFPGAN_PRESETS["tiny"]
    torch.manual_seed(0)
    model = gfpgan.GFPGAN(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)  # noise-injection weights start at zero: randomize everything
    src = tmp_path / "GFPGANtiny.pth"
    torch.save({"params_ema": model.state_dict()}, src)
    out = w.import_file(src, "tiny-gfpgan", arch="GFPGAN", config=cfg.to_dict())
    loaded, meta = load_network(out)
    assert meta["arch"] == "GFPGAN"
    x = torch.rand(1, 3, cfg.out_size, cfg.out_size) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6)
    with pytest.raises(w.WeightsError, match="does not load as GFPGAN .*mis-shaped") as e:
        load_checkpoint(src, "GFPGAN", {**cfg.to_dict(), "sft_half": not cfg.sft_half})
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------------- CLI
def test_cli_list_fetch_verify_import(env, server, tmp_path, capsys):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"good\s+test\s+0\.3 MB\s+missing\s+MIT", out) and re.search(r"small .*bundled", out)
    assert f"cache: {env}" in out

    assert main(["weights", "fetch", "good", "--quiet"]) == 0
    assert f"good: {env / 'good.pth'}" in capsys.readouterr().out
    assert main(["weights", "fetch", "tampered", "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "fails its sha256 check" in err and "deleted" in err
    assert main(["weights", "fetch", "nope"]) == 2

    assert main(["weights", "verify"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"OK\s+good\s", out) and re.search(r"not fetched\s+short", out) and re.search(r"OK\s+small", out)
    (env / "good.pth").write_bytes(TAMPERED)
    assert main(["weights", "verify"]) == 1
    assert re.search(r"MISMATCH\s+good\s", capsys.readouterr().out)

    src = tmp_path / "dl.pth"
    src.write_bytes(PAYLOAD)
    assert main(["weights", "import", str(src)]) == 0
    assert f"-> {env / 'good.pth'}" in capsys.readouterr().out
    src.write_bytes(TAMPERED)
    assert main(["weights", "import", str(src), "--name", "good"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is not good" in err
    assert main(["weights", "import", str(src), "--arch", "UNet"]) == 2


def test_cli_offline_fetch(env, monkeypatch, capsys):
    monkeypatch.setenv("RESTORE_URL_BASE", closed_port_url())
    assert main(["weights", "fetch", "good"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot download" in err and str(env / "good.pth") in err


# --------------------------------------------------------------------------- the real manifest
def test_real_manifest_entries():
    with w.MANIFEST.open("rb") as f:
        models = tomllib.load(f)["models"]
    assert {"nuclei", "gfpgan-v1.3", "gfpgan-v1.4", "retinaface-resnet50", "parsenet"} <= set(models)
    for name, e in models.items():
        assert re.fullmatch(r"[0-9a-f]{64}", e["sha256"]), name
        assert {"file", "arch", "task", "licence"} <= set(e), name
        if "url" in e:
            assert e["url"].startswith("https://") and e["url"].endswith("/" + e["file"]) and "source" in e, name
        else:
            assert (w.WEIGHTS_DIR / e["file"]).is_file(), name
    assert models["gfpgan-v1.4"]["bytes"] == models["gfpgan-v1.3"]["bytes"] == 348_632_874
    assert "bytes" not in models["parsenet"]  # unpublished: only the sha256 is checked
    gfpgan = pytest.importorskip("gan.gfpgan")
    for name in ("gfpgan-v1.3", "gfpgan-v1.4"):  # the manifest's config is the published preset
        assert gfpgan.GFPGANConfig(**models[name]["config"]) == gfpgan.GFPGAN_PRESETS["published"]
