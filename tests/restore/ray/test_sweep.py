"""The Ray runner's sweep of half-written temporaries (issue 34): what a killed writer leaves under
OUT (``atomic_write``'s ``.<name>.<pid>-<8 hex>.tmp``) is removed, at any depth; everything else,
hidden files and look-alikes included, stays."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from restore.imagewrite import TEMPORARY
from restore.ray.runner import sweep_temporaries
from tests import ROOT

KILLED = """
import os, sys
from restore.imagewrite import atomic_write
with atomic_write(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half a PNG")
    os._exit(9)  # as a SIGKILL: no cleanup
"""

LEFT_BEHIND = [  # the names atomic_write gives (as a worker that died mid-write leaves them)
    ".bar55_1.png.4489-73bf16f4.tmp",
    "sub/.x_mask.png.1-00000000.tmp",
    "sub/deeper/.x_overlay.webp.123456-abcdef01.tmp",
    ".a b.jpg.77-ffffffff.tmp",
]
KEPT = [  # real files, and names that only look like a temporary
    "bar55_1.png",
    "sub/x_mask.png",
    "sub/deeper/x_overlay.webp",
    "report.json",
    ".hidden.png",
    "notes.tmp",
    ".notes.tmp",
    "bar55_1.png.4489-73bf16f4.tmp",  # not hidden
    ".bar55_1.png.4489-73bf16f4.tmp.png",  # does not end in .tmp
    ".bar55_1.png.4489-73bf16fg.tmp",  # not hex
    ".bar55_1.png.4489-73bf16f.tmp",  # 7 hex digits
    ".bar55_1.png.pid-73bf16f4.tmp",  # no pid
    "sub/.4489-73bf16f4.tmp",  # no name
]


def plant(out: Path, names: list[str]) -> None:
    for name in names:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(name.encode())


def files(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}


def test_the_names_are_atomic_write_s():
    assert all(TEMPORARY.match(Path(n).name) for n in LEFT_BEHIND)
    assert not any(TEMPORARY.match(Path(n).name) for n in KEPT)


def test_sweep_removes_what_killed_writers_left_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    plant(out, LEFT_BEHIND + KEPT)
    for target in ("restored/a.png", "faces/sub/a_0.png"):  # two real writers killed mid-write
        run = subprocess.run([sys.executable, "-c", KILLED, str(out / target)], cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 9, run.stderr
    killed = files(out) - set(LEFT_BEHIND + KEPT)
    assert len(killed) == 2 and all(TEMPORARY.match(Path(n).name) for n in killed), killed
    sweep_temporaries(out)
    assert files(out) == set(KEPT)
    for name in KEPT:
        assert (out / name).read_bytes() == name.encode()  # untouched
    assert (out / "restored").is_dir() and (out / "faces" / "sub").is_dir()  # folders stay
    sweep_temporaries(out)  # nothing left to sweep: no error
    assert files(out) == set(KEPT)


def test_sweep_of_a_missing_or_empty_folder(tmp_path):
    sweep_temporaries(tmp_path / "never made")
    assert not (tmp_path / "never made").exists()
    sweep_temporaries(tmp_path)
    assert list(tmp_path.iterdir()) == []
