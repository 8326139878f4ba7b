"""Folders from strangers through the batch commands (issue 35): a FIFO, a socket or a device
named on the command line is refused unopened (one line) while the other inputs are done; a
symlink alias, an unreadable folder and an input inside the output folder each get their line
and their count; a file name near the file system's limit is written (its temporary fits too);
a newline or an escape sequence in a name cannot print a line of its own."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan import UNet, save_model, segmenter_config
from restore.cli import main
from restore.imageio import ImageError, read_image
from restore.imagewrite import TEMPORARY, _temporary, write_png
from restore.runners.inputs import UsageError, scan_inputs
from restore.runners.outputs import output_path, sweep_temporaries
from restore.runners.report import printable
from restore.runners.sequential import run_batch
from tests import ROOT
from tests.badfiles import colour_frames, grey8

BROKEN_PNG = b"\x89PNG\r\n\x1a\n broken"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    return str(save_model(UNet(segmenter_config("tiny")), path, {"diameter": 0}))


def segment(weights: str, *paths, out, extra=()) -> list[str]:
    return ["segment", *map(str, paths), "-o", str(out), "--weights", weights, "--tile", "32", *extra]


def png(path: Path, array: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grey8() if array is None else array).save(path, format="PNG")
    return path


def within(seconds: float, fn, fifos=()):
    """``fn()``'s value, run in a thread; a failure when it has not returned after ``seconds``
    (a reader blocked on one of ``fifos`` is then set free, so the suite goes on)."""
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            box["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for fifo in fifos:  # a writer that opens and closes: the blocked open() returns, reads EOF
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(30)
        pytest.fail(f"still running after {seconds} s: blocked reading a FIFO?")
    if "error" in box:
        raise box["error"]
    return box["value"]


class Segmenter:
    """A stand-in command: OUT/rel/<stem>_mask.png from each image."""

    def __init__(self, out: Path):
        self.out = out

    def outputs(self, file: Path, rel: Path) -> list[Path]:
        return [output_path(self.out, rel, file, "_mask")]

    def __call__(self, file: Path, rel: Path) -> None:
        img = read_image(file, mode="grey")
        write_png(self.outputs(file, rel)[0], (img > img.mean()).astype(np.uint8) * 255)


# ------------------------------------------------------------------ 1. not a regular file
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_socket_or_device_named_is_refused_unopened(tmp_path, monkeypatch):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock.png"))
    good = png(tmp_path / "a.png")
    opened: list[str] = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, *a, **k: (opened.append(str(p)), real_open(p, *a, **k))[1])
    try:
        found = within(60, lambda: scan_inputs([fifo, tmp_path / "sock.png", "/dev/zero", good]), [fifo])
    finally:
        sock.close()
    assert found.items == [(good, Path("."))]
    assert found.ignored == [(fifo, "not a regular file (a named pipe (FIFO)): not read"),
                             (tmp_path / "sock.png", "not a regular file (a socket): not read"),
                             (Path("/dev/zero"), "not a regular file (a character device): not read")]
    assert not {str(fifo), str(tmp_path / "sock.png"), "/dev/zero"} & set(opened)
    refused = r"not a regular file \(a named pipe \(FIFO\)\): not read"
    with pytest.raises(UsageError, match=rf"no image files found in: .*pipe\.png, /dev/zero \(2 file\(s\) ignored, "
                                         rf"e\.g\. .*pipe\.png: {refused}\)$"):
        within(60, lambda: scan_inputs([fifo, "/dev/zero"]), [fifo])
    # the reader itself never waits on one either
    with pytest.raises(ImageError, match=r"^not a regular file \(a named pipe \(FIFO\)\): not read$"):
        within(60, lambda: read_image(fifo), [fifo])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("runner", ["pipeline", "--no-pipeline"])
def test_restore_segment_with_a_fifo_named_does_the_rest(tmp_path, weights, capsys, runner):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    good, out = png(tmp_path / "a.png"), tmp_path / "out"
    extra = [runner] if runner.startswith("--") else []
    code = within(120, lambda: main(segment(weights, fifo, good, "/dev/zero", out=out, extra=extra)), [fifo])
    lines = capsys.readouterr().err.splitlines()
    assert code == 0 and (out / "a_mask.png").is_file()
    assert f"ignored: {fifo}: not a regular file (a named pipe (FIFO)): not read" in lines
    assert "ignored: /dev/zero: not a regular file (a character device): not read" in lines
    assert lines[-1] == "segment: done 1, skipped 0, failed 0, ignored 2"


# ------------------------------------------------------------------ 2. aliases, unreadable folders
def test_a_symlink_alias_is_done_once_and_said(tmp_path, capsys):
    a = png(tmp_path / "in" / "a.png")
    alias = tmp_path / "in" / "Alias.png"  # sorts first, yet the real name is the one done
    alias.symlink_to("a.png")
    os.link(a, tmp_path / "in" / "hard.png")  # a hard link is the same file too
    (tmp_path / "in" / "again").symlink_to(".", target_is_directory=True)  # a folder under two names
    found = scan_inputs([tmp_path / "in"])
    assert found.items == [(a, Path("."))]
    assert found.ignored == [(tmp_path / "in" / "again", f"same folder as {tmp_path / 'in'}: searched once"),
                             (alias, f"same file as {a}: done once"),
                             (tmp_path / "in" / "hard.png", f"same file as {a}: done once")]
    # named on the command line, link first: the same
    assert scan_inputs([alias, a]).items == [(a, Path("."))]
    assert scan_inputs([alias, a]).ignored == [(alias, f"same file as {a}: done once")]
    # the run counts it, and says why in its line
    seg = Segmenter(tmp_path / "out")
    report = run_batch(found.items, seg, seg.outputs, desc="segment", ignored=found.ignored)
    lines = capsys.readouterr().err.splitlines()
    assert f"ignored: {alias}: same file as {a}: done once" in lines
    assert lines[-1] == "segment: done 1, skipped 0, failed 0, ignored 3" and len(report.ignored) == 3
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a_mask.png"]


def test_an_unreadable_folder_is_named_and_counted(tmp_path, monkeypatch, capsys):
    a = png(tmp_path / "in" / "a.png")
    locked = tmp_path / "in" / "locked"
    png(locked / "b.png")
    real_scandir = os.scandir

    def scandir(path="."):  # what os.walk meets in a folder without read permission
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found = scan_inputs([tmp_path / "in"])
    assert found.items == [(a, Path("."))]
    assert found.ignored == [(locked, "folder not readable: Permission denied")]
    seg = Segmenter(tmp_path / "out")
    run_batch(found.items, seg, seg.outputs, desc="segment", ignored=found.ignored)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"ignored: {locked}: folder not readable: Permission denied",
                     "segment: done 1, skipped 0, failed 0, ignored 1"]
    with pytest.raises(UsageError, match=r"\(.*locked: folder not readable: Permission denied\)$"):
        scan_inputs([locked])


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to search as an unprivileged user")
def test_an_unreadable_folder_for_real(tmp_path):
    """The same without a stand-in: a folder of mode 000, searched by an unprivileged user."""
    top = Path(tempfile.mkdtemp(prefix="unreadable-"))  # /tmp/pytest-of-root is root's alone
    try:
        top.chmod(0o755)
        png(top / "in" / "a.png")
        png(top / "in" / "locked" / "b.png")
        (top / "in").chmod(0o755)
        (top / "in" / "locked").chmod(0)
        code = ("import json, sys; from restore.runners.inputs import scan_inputs; f = scan_inputs([sys.argv[1]]); "
                "print(json.dumps([[str(p) for p, _ in f.items], [[str(p), r] for p, r in f.ignored]]))")
        run = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
                              code, str(top / "in")], cwd=ROOT, capture_output=True, text=True, timeout=120,
                             check=False)
        assert run.returncode == 0, run.stderr
        items, ignored = json.loads(run.stdout)
        assert items == [str(top / "in" / "a.png")]
        assert ignored == [[str(top / "in" / "locked"), "folder not readable: Permission denied"]]
    finally:
        (top / "in" / "locked").chmod(0o755)
        shutil.rmtree(top)


# ------------------------------------------------------------------ 6. inside the output folder
def test_an_input_inside_the_output_folder_is_refused_saying_so(tmp_path, weights, capsys):
    out = tmp_path / "out"
    inside = png(out / "x_mask.png")
    why = f"inside the output folder {out}: outputs are not read as inputs"
    with pytest.raises(UsageError) as info:
        scan_inputs([inside], exclude=[out])
    assert str(info.value) == f"no image files found in: {inside} ({inside}: {why})"
    good = png(tmp_path / "in" / "a.png")
    png(tmp_path / "in" / "out" / "old_mask.png")  # OUT inside the input folder
    found = scan_inputs([tmp_path / "in"], exclude=[tmp_path / "in" / "out"])
    assert found.items == [(good, Path("."))]
    why_in = f"inside the output folder {tmp_path / 'in' / 'out'}: outputs are not read as inputs"
    assert found.ignored == [(tmp_path / "in" / "out", why_in)]
    # as the command line says it: exit 2 with the reason, or the line and the rest done
    assert main(segment(weights, inside, out=out)) == 2
    err = capsys.readouterr().err
    assert err == f"restore segment: error: no image files found in: {inside} ({inside}: {why})\n"
    assert main(segment(weights, inside, good, out=out)) == 0
    lines = capsys.readouterr().err.splitlines()
    assert f"ignored: {inside}: {why}" in lines and lines[-1] == "segment: done 1, skipped 0, failed 0, ignored 1"
    link = tmp_path / "in" / "link.png"  # a link into OUT, found in a folder: the same
    link.symlink_to(out / "x_mask.png")
    found = scan_inputs([tmp_path / "in"], exclude=[out])
    assert (link, why) in found.ignored and link not in [f for f, _ in found.items]


# ------------------------------------------------------------------ 3. long names
def name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


@pytest.mark.parametrize("chars", ["ascii", "two-byte"])
def test_an_output_name_at_the_file_system_s_limit_is_written(tmp_path, chars):
    limit = name_max(tmp_path)
    if limit > 1024:
        pytest.skip("no practical limit on names here")
    names = {"ascii": ["a" * (limit - 4) + ".png", "b" * (limit - 20) + ".png"],
             "two-byte": ["é" * ((limit - 4) // 2) + "a" * ((limit - 4) % 2) + ".png"]}[chars]
    for name in names:
        assert len(os.fsencode(name)) <= limit
        tmp = _temporary(tmp_path / name)
        assert len(os.fsencode(tmp.name)) <= limit and TEMPORARY.match(tmp.name), tmp.name
        assert tmp.name.startswith("." + name[:100])  # recognisable: its output's name, shortened
        write_png(tmp_path / name, grey8())
        np.testing.assert_array_equal(read_image(tmp_path / name), grey8())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no temporary left
    with pytest.raises(OSError, match="File name too long"):  # a name past the limit still fails, cleanly
        write_png(tmp_path / ("c" * limit + ".png"), grey8())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    # what a killed writer leaves under a shortened name is swept like any other
    left = _temporary(tmp_path / names[0])
    left.write_bytes(b"half")
    sweep_temporaries(tmp_path)
    assert not left.exists()


def test_a_batch_whose_output_name_is_at_the_limit(tmp_path, capsys):
    limit = name_max(tmp_path)
    if limit > 1024:
        pytest.skip("no practical limit on names here")
    stem = "s" * (limit - len("_mask.png"))  # its output: exactly the limit
    src = [png(tmp_path / "in" / f"{stem}.png"), png(tmp_path / "in" / ("t" * 236 + ".png"))]  # and 240
    seg = Segmenter(tmp_path / "out")
    report = run_batch([(f, Path(".")) for f in src], seg, seg.outputs, desc="segment")
    assert (report.done, report.failed) == (2, []), report.failed
    written = sorted(len(os.fsencode(p.name)) for p in (tmp_path / "out").iterdir())
    assert written == [245, limit]
    assert capsys.readouterr().err.splitlines() == ["segment: done 2, skipped 0, failed 0, ignored 0"]


# ------------------------------------------------------------------ 4. names that print lines
FORGED = "segment: done 99, skipped 0, failed 0, ignored 0"


def test_printable_escapes_controls_and_keeps_the_rest():
    for plain in ("a.png", "my photo (1).png", "café au lait.jpg", "日本語の写真.png", "Ünïcödé 😀.png", "a\\b.png"):
        assert printable(plain) == plain
    assert printable("x.png\nDone: 0 failed") == "x.png\\nDone: 0 failed"
    assert printable("a\rb\tc\x1b[2Jd\x00e\x7f") == "a\\rb\\tc\\x1b[2Jd\\x00e\\x7f"
    assert printable("a\x85b\u2028c\u2029d\u202ee\u2066f") == "a\\x85b\\u2028c\\u2029d\\u202ee\\u2066f"
    assert printable(os.fsdecode(b"bad\xffname.png")) == "bad\\xffname.png"  # an undecodable byte
    assert printable(Path("dir") / "x\ny.png") == "dir/x\\ny.png"


def test_a_name_cannot_forge_the_summary_line(tmp_path, weights, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / f"x.png\n{FORGED}").write_bytes(BROKEN_PNG)  # fails: its error line
    frames = [Image.fromarray(f) for f in colour_frames(2)]
    frames[0].save(src / f"anim\n{FORGED}.gif", save_all=True, append_images=frames[1:])  # done: a note line
    png(src / "sub" / "\x1b[2Jclear\r.png")  # done, silently
    (src / f"notes\r{FORGED}.txt").write_text("not an image")  # ignored: its line
    out = tmp_path / "out"
    assert main(segment(weights, src, out=out)) == 1
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert [ln for ln in lines if ln.startswith("segment: done")] == [lines[-1]]
    assert lines[-1] == "segment: done 2, skipped 0, failed 1, ignored 1"
    assert "\x1b" not in err and "\r" not in err and len(lines) == 4
    shown = FORGED
    assert f"error: {src}/x.png\\n{shown}: not an image file (or not a format Pillow or pillow-heif reads)" in lines
    assert f"ignored: {src}/notes\\r{shown}.txt: not an image" in lines
    assert any(ln.startswith(f"note: {src}/anim\\n{shown}.gif: ") for ln in lines)
    assert (out / "sub" / "\x1b[2Jclear\r_mask.png").is_file()  # the file itself keeps its name
    # a usage error's line too
    assert main(segment(weights, tmp_path / f"gone\n{FORGED}", out=out)) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"restore segment: error: {tmp_path}/gone\\n{FORGED}: no such file or folder"]
