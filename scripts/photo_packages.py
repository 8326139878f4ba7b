"""Photos inside two more Debian packages, for scripts/fetch_photos.py.

  gcompris  gcompris-qt-data 3.1-2: 114 Wikimedia Commons photographs (monuments, wild and
            farm animals, musicians) that GCompris ships as WebP inside Qt resource bundles
            (``.rcc``); each activity's ``resource/README`` names author, source and licence
            per file (CC0, public domain, CC-BY, CC-BY-SA). Training data.
  album     kphotoalbum 5.9.1-1: the 23 photos of KPhotoAlbum's demo album (people, pets,
            holidays; ``qt-logo.jpg`` left out): a family album, so a **held-out collection**,
            never trained on and never used to choose a model (fetch_photos writes it to
            ``test_album/``).
"""
from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

GCOMPRIS_ACTIVITIES = {  # .rcc bundle -> folder of its photos inside the bundle
    "explore_monuments": "resource/",
    "erase": "resource/",
    "explore_world_animals": "resource/animals/",
    "explore_farm_animals": "resource/animals/",
    "explore_world_music": "resource/music/",
}
GCOMPRIS_MIN_SIDE = 400  # smaller WebPs there are thumbnails and icons
ALBUM_SKIP = {"qt-logo.jpg"}


def read_rcc(data: bytes) -> dict[str, bytes]:
    """Every file of a Qt resource bundle (rcc format 1-3), path -> bytes.

    Written here because no maintained Python package reads .rcc files without Qt itself
    (PySide's QResource would pull ~100 MB to read ~40 lines' worth of format). Layout: a
    header (magic, version, tree/data/names offsets), a tree of fixed-size nodes (14 bytes, 22
    from version 2 on with a modification time), names as UTF-16BE with a length and a hash,
    and data blobs with a size, zlib-compressed (qCompress: a 4-byte size first) when flag 1."""
    if data[:4] != b"qres":
        raise ValueError("not a Qt resource bundle (no 'qres' magic)")
    version, tree, payload, names = struct.unpack(">IIII", data[4:20])
    node_size = 22 if version >= 2 else 14

    def name(offset: int) -> str:
        (n,) = struct.unpack(">H", data[names + offset:names + offset + 2])
        return data[names + offset + 6:names + offset + 6 + 2 * n].decode("utf-16-be")

    files: dict[str, bytes] = {}
    stack = [(0, "")]
    while stack:
        index, prefix = stack.pop()
        p = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", data[p:p + 6])
        here = prefix + (name(name_offset) if index else "")
        if flags & 2:  # a directory: its children are consecutive nodes
            count, first = struct.unpack(">II", data[p + 6:p + 14])
            stack.extend((c, f"{here}/" if here else "") for c in range(first, first + count))
            continue
        (offset,) = struct.unpack(">I", data[p + 10:p + 14])
        (size,) = struct.unpack(">I", data[payload + offset:payload + offset + 4])
        blob = data[payload + offset + 4:payload + offset + 4 + size]
        if flags & 4:
            raise ValueError(f"{here}: zstd-compressed resources are not supported")
        files[here] = zlib.decompress(blob[4:]) if flags & 1 else blob
    return files


def readme_credits(text: str) -> dict[str, str]:
    """File name -> "licence (author; source)" from a GCompris resource README: blank-line
    separated blocks of Copyright/Source/License/Files, the files on the Files line or after it."""
    credits = {}
    for block in re.split(r"\n\s*\n", text.strip()):
        fields: dict[str, str] = {}
        files: list[str] = []
        in_files = False
        for line in block.splitlines():
            m = re.match(r"^(Copyright|Source|License|Licence|Comments|Files):\s*(.*)$", line.strip())
            if m:
                in_files = m.group(1) == "Files"
                if in_files:
                    files += m.group(2).split()
                else:
                    fields[m.group(1).replace("Licence", "License")] = m.group(2).strip()
            elif in_files and line.strip():
                files.append(line.strip())
        for f in files:
            credits[Path(f).name] = f"{fields.get('License', '?')} ({fields.get('Copyright', '?')}; " \
                                    f"{fields.get('Source', 'no source given')})"
    return credits


def gcompris_photos(root: Path) -> list[tuple[str, bytes, str, str]]:
    """(name, bytes, member, licence) of the selected photos of an extracted gcompris-qt-data."""
    from io import BytesIO

    from PIL import Image

    out = []
    for activity, folder in GCOMPRIS_ACTIVITIES.items():
        bundle = root / "usr/share/gcompris-qt/rcc" / f"{activity}.rcc"
        files = read_rcc(bundle.read_bytes())
        base = f"gcompris/src/activities/{activity}/{folder}"
        readme = files.get(base + "README")
        if readme is None:
            raise SystemExit(f"{bundle.name}: no {base}README (the package changed; update photo_packages.py)")
        credits = readme_credits(readme.decode("utf-8", "replace"))
        for path in sorted(p for p in files if p.startswith(base) and p.endswith(".webp")):
            if max(Image.open(BytesIO(files[path])).size) < GCOMPRIS_MIN_SIDE:
                continue
            fname = Path(path).name
            if fname not in credits:  # (aulaPalatina.webp in 3.1-2): licence unknown, so not used
                print(f"{bundle.name}:{path}: no credit in its README; left out", flush=True)
                continue
            sub = Path(path).parent.name if Path(path).parent.name not in ("resource", "animals", "music") else ""
            stem = "_".join(s for s in (activity.removeprefix("explore_"), sub, Path(path).stem) if s)
            out.append((f"gcompris_{stem}", files[path], f"{bundle.name}:{path}", credits[fname]))
    return out


def album_photos(root: Path) -> list[tuple[str, bytes, str, str]]:
    """(name, bytes, member, licence) of KPhotoAlbum's demo album in an extracted kphotoalbum."""
    demo = root / "usr/share/kphotoalbum/demo"
    return [(f"album_{f.stem}", f.read_bytes(), str(f.relative_to(root)),
             "GPL-2+ (KPhotoAlbum demo album, the KPhotoAlbum authors)")
            for f in sorted(demo.glob("*.jpg")) if f.name not in ALBUM_SKIP]
