"""The runners' sweep of half-written temporaries (issue 34): what a killed writer leaves under OUT
(``atomic_write``'s ``.<name>.<pid>-<8 hex>.tmp``) is removed, at any depth; everything else,
hidden files and look-alikes included, stays. Every runner sweeps OUT when it starts and when it
ends: a ``restore faces`` folder run killed while writing, resumed with ``--skip-existing``
(pipelined or not), keeps no temporary; so does a run of films."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from restore.cli import main
from restore.imagewrite import TEMPORARY
from restore.runners.outputs import sweep_temporaries
from tests import ROOT
from tests.restore.faces.conftest import weights  # noqa: F401 - the tiny face model's fixture
from tests.restore.faces.test_pipeline import outputs_of, photo_folder, report_of

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


def temporaries(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if TEMPORARY.match(p.name))


@pytest.mark.parametrize("runner", ["pipeline", "--no-pipeline"])
def test_a_resumed_faces_run_keeps_nothing_a_killed_run_half_wrote(tmp_path, weights, capsys,  # noqa: F811
                                                                    monkeypatch, runner):
    monkeypatch.setenv("RESTORE_HOME", str(tmp_path / "cache"))  # MTCNN and the tiny model only
    src = photo_folder(tmp_path / "in")
    for f in src.iterdir():  # two photos: a (one face) and bar55 (two)
        if f.name != "a.png":
            f.unlink() if f.name != "c_two.png" else f.rename(src / "bar55.png")
    out = tmp_path / "out"
    args = ["faces", str(src), "-o", str(out), "--weights", weights, "--tile", "64", "--precision", "fp32"]
    args += [runner] if runner.startswith("--") else []
    assert main(args + ["--quiet"]) == 0
    finished, report = outputs_of(out), report_of(out)
    assert {"restored/bar55.png", "faces/bar55_1.png", "restored/a.png"} <= finished.keys()

    # killed while writing bar55's second face crop: its photo not written yet, the crop's temporary left
    (out / "restored" / "bar55.png").unlink()
    (out / "faces" / "bar55_1.png").unlink()
    (out / "faces" / ".bar55_1.png.4489-73bf16f4.tmp").write_bytes(b"half a PNG")
    killed = subprocess.run([sys.executable, "-c", KILLED, str(out / "restored" / "bar55.png")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)  # a real writer, SIGKILL-like
    assert killed.returncode == 9, killed.stderr
    assert len(temporaries(out)) == 2
    plant(out, ["faces/notes.tmp", "faces/.hidden.png"])  # not temporaries: they stay
    capsys.readouterr()

    assert main(args + ["--skip-existing"]) == 0
    assert "faces: done 1, skipped 1, failed 0, ignored 0" in capsys.readouterr().err
    assert temporaries(out) == []
    assert (out / "faces" / "notes.tmp").read_bytes() == b"faces/notes.tmp"
    assert (out / "faces" / ".hidden.png").read_bytes() == b"faces/.hidden.png"
    assert {k: v for k, v in outputs_of(out).items() if k in finished} == finished  # the same bytes
    assert report_of(out) == report


def test_a_run_of_films_sweeps_what_a_killed_one_left(tmp_path):
    from restore.video.folder import run_videos

    src, out = tmp_path / "clip.mp4", tmp_path / "out"
    src.write_bytes(b"a film")
    plant(out, ["restored/.clip.mp4.4489-73bf16f4.tmp", "restored/notes.tmp"])

    def process(file: Path, dst: Path, **kw) -> dict:
        assert temporaries(out) == []  # swept before the first film
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(file.read_bytes())
        (dst.parent / ".other.mp4.77-0000abcd.tmp").write_bytes(b"")  # as a writer killed at the end
        return {"input": str(file)}

    report, _ = run_videos(process, [(src, Path("."))], out, subfolder="restored", quiet=True)
    assert report.done == 1 and temporaries(out) == []  # swept after the last one
    assert (out / "restored" / "clip.mp4").read_bytes() == b"a film" and (out / "restored" / "notes.tmp").exists()
