"""Tests of scripts/photo_packages.py (GCompris' Qt resource bundles, KPhotoAlbum's demo album)
on bundles written here to the rcc format; the real packages are not downloaded."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from tests.scripts.test_data_scripts import _load

packages = _load("photo_packages")


def write_rcc(files: dict[str, bytes], version: int = 3, compress: bool = True) -> bytes:
    """A Qt resource bundle holding `files` (path -> bytes), laid out as Qt's rcc writes it:
    the tree breadth first, each directory's children consecutive."""
    tree_dirs: dict[str, dict] = {"": {}}
    for path in files:
        parts = path.split("/")
        for i in range(1, len(parts)):
            tree_dirs.setdefault("/".join(parts[:i]), {})
    nodes = [("", True)]  # (path, is_dir), breadth first
    children: dict[str, tuple[int, int]] = {}
    queue = [""]
    while queue:
        d = queue.pop(0)
        kids = sorted(p for p in list(tree_dirs) + list(files) if p and (p.rpartition("/")[0] == d))
        children[d] = (len(kids), len(nodes))
        for k in kids:
            nodes.append((k, k in tree_dirs))
            if k in tree_dirs:
                queue.append(k)
    names, name_at, data, data_at = b"", {}, b"", {}
    for path, is_dir in nodes[1:]:
        n = path.rsplit("/", 1)[-1]
        if n not in name_at:
            name_at[n] = len(names)
            names += struct.pack(">HI", len(n), 0) + n.encode("utf-16-be")
        if not is_dir:
            blob = files[path]
            blob = struct.pack(">I", len(blob)) + zlib.compress(blob) if compress else blob
            data_at[path] = len(data)
            data += struct.pack(">I", len(blob)) + blob
    tree = b""
    for path, is_dir in nodes:
        n = path.rsplit("/", 1)[-1]
        head = struct.pack(">I", name_at.get(n, 0))
        if is_dir:
            tree += head + struct.pack(">HII", 2, *children[path])
        else:
            tree += head + struct.pack(">HHHI", 1 if compress else 0, 0, 0, data_at[path])
        if version >= 2:
            tree += struct.pack(">Q", 0)
    header_size = 20 + (4 if version >= 3 else 0)
    tree_at, data_off = header_size, header_size + len(tree)
    header = b"qres" + struct.pack(">IIII", version, tree_at, data_off, data_off + len(data))
    if version >= 3:
        header += struct.pack(">I", 0)
    return header + tree + data + names


@pytest.mark.parametrize("version,compress", [(1, False), (2, True), (3, True), (3, False)])
def test_read_rcc_round_trip(version, compress):
    files = {"a/b/c.txt": b"hello", "a/d.bin": bytes(range(256)) * 3, "top.txt": "é".encode()}
    assert packages.read_rcc(write_rcc(files, version, compress)) == files


def test_read_rcc_refuses_other_files():
    with pytest.raises(ValueError, match="qres"):
        packages.read_rcc(b"PK\x03\x04 not a bundle")


def test_readme_credits_both_file_layouts():
    text = ("Copyright: Timothee Giet, 2018\nLicense: CC-BY-SA 4.0\nFiles:\nkey.svg\negypt/egypt.svg\n\n"
            "Copyright: Kurt Kaiser\nLicense: CC0-1.0\nSource: https://commons.wikimedia.org/x.jpg\n"
            "Files:\nbison.webp\n\n"
            "Copyright: aussiegall\nSource: https://commons.wikimedia.org/y.jpg\nLicense: CC-BY-2.0\n"
            "Comments: cropping, sharpening\nFiles: bee.webp\n")
    credits = packages.readme_credits(text)
    assert credits["bison.webp"] == "CC0-1.0 (Kurt Kaiser; https://commons.wikimedia.org/x.jpg)"
    assert credits["bee.webp"].startswith("CC-BY-2.0 (aussiegall; ")
    assert credits["egypt.svg"].startswith("CC-BY-SA 4.0 (Timothee Giet")


def _webp(size) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (120, 60, 30)).save(buf, "WEBP")
    return buf.getvalue()


def test_gcompris_photos_keeps_credited_photos_only(tmp_path, capsys):
    rcc = tmp_path / "usr/share/gcompris-qt/rcc"
    rcc.mkdir(parents=True)
    base = "gcompris/src/activities/erase/resource/"
    readme = ("Copyright: A\nLicense: CC0-1.0\nSource: s\nFiles: big.webp\n\n"
              "Copyright: B\nLicense: PD\nFiles: small.webp\n")
    (rcc / "erase.rcc").write_bytes(write_rcc({
        base + "README": readme.encode(), base + "big.webp": _webp((640, 480)),
        base + "small.webp": _webp((120, 90)), base + "nocredit.webp": _webp((800, 600))}))
    for activity in packages.GCOMPRIS_ACTIVITIES:
        if activity != "erase":
            folder = f"gcompris/src/activities/{activity}/{packages.GCOMPRIS_ACTIVITIES[activity]}"
            (rcc / f"{activity}.rcc").write_bytes(write_rcc({folder + "README": b""}))
    got = packages.gcompris_photos(tmp_path)
    assert [(name, licence) for name, _, _, licence in got] == [("gcompris_erase_big", "CC0-1.0 (A; s)")]
    assert Image.open(io.BytesIO(got[0][1])).size == (640, 480)
    assert "nocredit.webp: no credit" in capsys.readouterr().out  # named, not silently dropped


def test_album_photos_skip_the_logo(tmp_path):
    demo = tmp_path / "usr/share/kphotoalbum/demo"
    demo.mkdir(parents=True)
    for name in ("donna.jpg", "qt-logo.jpg", "snow.jpg"):
        Image.new("RGB", (40, 30)).save(demo / name)
    assert [name for name, *_ in packages.album_photos(tmp_path)] == ["album_donna", "album_snow"]
