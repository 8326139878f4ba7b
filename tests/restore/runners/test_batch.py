"""The runners' inputs, reports and ``run_batch``: finding inputs, one line per bad file, exit
codes, resume, no partial output."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from restore.imageio import ImageError, is_volume, read_image, read_volume
from restore.imagewrite import write_png
from restore.runners.inputs import UsageError, find_inputs, scan_inputs
from restore.runners.outputs import output_path
from restore.runners.report import BatchReport, describe_error
from restore.runners.sequential import run_batch
from tests.badfiles import BAD_REASONS, make_mixed_folder


@pytest.fixture()
def mixed(tmp_path) -> tuple[Path, dict[str, list[Path]]]:
    root = tmp_path / "in"
    return root, make_mixed_folder(root)


class Segmenter:
    """A stand-in command: thresholds each image into OUT/rel/<stem>_mask.png."""

    def __init__(self, out: Path):
        self.out = out
        self.calls: list[Path] = []

    def outputs(self, file: Path, rel: Path) -> list[Path]:
        return [output_path(self.out, rel, file, "_mask")]

    def __call__(self, file: Path, rel: Path) -> None:
        self.calls.append(file)
        img = read_volume(file).max(0) if is_volume(file) else read_image(file, mode="grey")
        write_png(self.outputs(file, rel)[0], (img > img.mean()).astype(np.uint8) * 255)


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error: ")]


# ------------------------------------------------------------------ find_inputs
def test_find_inputs_folder(mixed):
    root, files = mixed
    items = find_inputs([root])
    found = [f for f, _ in items]
    assert sorted(found) == sorted(files["good"] + files["volume"] + files["bad"])
    assert not set(found) & set(files["ignored"])
    assert items == sorted(items, key=lambda it: it[0].relative_to(root).parts)  # stable order
    rels = {f.relative_to(root).as_posix(): rel for f, rel in items}
    assert rels["grey8.png"] == Path(".") and rels["sub/grey8.png"] == Path("sub")


def test_scan_names_every_file(mixed, tmp_path):
    """Every file of the folder is an input or ignored with a reason: nothing vanishes."""
    root, files = mixed
    found = scan_inputs([root])
    ignored = dict(found.ignored)
    assert sorted(ignored) == sorted(files["ignored"])
    assert ignored[root / ".DS_Store"] == "hidden file"
    assert ignored[root / "README.txt"] == ignored[root / "sub" / "clip.mp4"] == "not an image"
    every = {p for p in root.rglob("*") if not p.is_dir()}  # the FIFO and the alias too
    assert every == {f for f, _ in found.items} | set(ignored)
    # by content: a JPEG without an extension and an upper-case .JPG are inputs
    names = {f.name for f, _ in found.items}
    assert {"camera_file", "UPPER.JPG", "phone.heic", "photo.avif", "anim_gif.gif", "pixmap.ppm"} <= names
    # a hidden folder is one entry, not searched; an empty folder with only junk says so
    (root / ".thumbnails").mkdir()
    write_png(root / ".thumbnails" / "t.png", np.zeros((4, 4), np.uint8))
    assert dict(scan_inputs([root]).ignored)[root / ".thumbnails"] == "hidden folder (not searched)"
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("hello")
    with pytest.raises(UsageError, match=r"no image files found in: .*junk \(.*junk/notes\.txt: not an image\)$"):
        scan_inputs([junk])
    # a symlink loop is cut, not followed for ever
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    assert len(scan_inputs([root]).items) == len(found.items)


def test_find_inputs_files_and_errors(mixed, tmp_path):
    root, _ = mixed
    readme = root / "README.txt"
    items = find_inputs([readme, root / "sub" / "grey8.png", root / "sub"])
    # an explicit file is used whatever its extension; rel "." for explicit files;
    # sub/grey8.png, reached twice, is listed once
    assert items[0] == (readme, Path("."))
    assert [f.name for f, _ in items].count("grey8.png") == 1
    with pytest.raises(UsageError, match="no such file"):
        find_inputs([root, tmp_path / "missing"])
    with pytest.raises(UsageError, match=r"no input files or folders given"):
        find_inputs([])
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(UsageError, match="no image files"):
        find_inputs([tmp_path / "empty_dir"])
    assert find_inputs([tmp_path / "empty_dir"], allow_empty=True) == []
    # the output folder inside the input folder is not searched again
    write_png(root / "out" / "x_mask.png", np.zeros((4, 4), np.uint8))
    assert all("out" not in f.parts for f, _ in find_inputs([root], exclude=[root / "out"]))
    assert any("out" in f.parts for f, _ in find_inputs([root]))


# ------------------------------------------------------------------ run_batch
def test_mixed_folder_batch(mixed, tmp_path, capsys):
    root, files = mixed
    out = tmp_path / "out"
    seg = Segmenter(out)
    found = scan_inputs([root])
    report = run_batch(found.items, seg, seg.outputs, desc="segment", ignored=found.ignored)
    err = capsys.readouterr().err
    ok = files["good"] + files["volume"]
    assert report.done == len(ok) and report.skipped == 0
    assert sorted(f for f, _ in report.failed) == sorted(files["bad"])
    assert report.exit_code == 1
    # one line per bad file naming it and the reason, nothing else, no traceback
    lines = _error_lines(err)
    assert len(lines) == len(files["bad"])
    for bad in files["bad"]:
        [line] = [ln for ln in lines if ln.startswith(f"error: {bad}: ")]
        assert BAD_REASONS[bad.name] in line
    assert "Traceback" not in err
    summary = (f"segment: done {len(ok)}, skipped 0, failed {len(files['bad'])}, "
               f"ignored {len(files['ignored'])}")
    assert err.strip().splitlines()[-1] == summary
    # each ignored file named once; each animated file one note saying only frame 1 was used
    assert sorted(ln for ln in err.splitlines() if ln.startswith("ignored: ")) == sorted(
        f"ignored: {p}: {r}" for p, r in found.ignored)
    notes = [ln for ln in err.splitlines() if ln.startswith("note: ")]
    assert len(notes) == len(files["animated"])
    for path in files["animated"]:
        [line] = [ln for ln in notes if ln.startswith(f"note: {path}: ")]
        assert "of 3 frames: only the first frame was read" in line
    assert report.notes.keys() == set(files["animated"])
    # outputs mirror the input folders: same stem in two folders does not collide
    assert (out / "grey8_mask.png").exists() and (out / "sub" / "grey8_mask.png").exists()
    assert not np.array_equal(read_image(out / "grey8_mask.png"),
                              read_image(out / "sub" / "grey8_mask.png"))
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".*"))
    written = sorted(p.relative_to(out) for p in out.rglob("*.png"))
    assert len(written) == len(ok)


def test_all_good_exit_0_and_skip_existing(mixed, tmp_path, capsys):
    root, files = mixed
    out = tmp_path / "out"
    items = [(f, r) for f, r in find_inputs([root]) if f in files["good"]]
    seg = Segmenter(out)
    assert run_batch(items, seg, seg.outputs).exit_code == 0
    assert len(seg.calls) == len(items)
    # resume: nothing redone; one output removed -> only that input redone
    seg2 = Segmenter(out)
    r2 = run_batch(items, seg2, seg2.outputs, skip_existing=True)
    assert (r2.done, r2.skipped, r2.exit_code) == (0, len(items), 0) and seg2.calls == []
    (out / "sub" / "grey8_mask.png").unlink()
    seg3 = Segmenter(out)
    r3 = run_batch(items, seg3, seg3.outputs, skip_existing=True)
    assert seg3.calls == [root / "sub" / "grey8.png"] and r3.done == 1
    # without skip_existing everything is done again
    seg4 = Segmenter(out)
    assert run_batch(items, seg4, seg4.outputs).done == len(items)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"done {len(items)}, skipped 0, failed 0, ignored 0"


def test_failure_leaves_no_partial_output(tmp_path, capsys):
    src = tmp_path / "a.png"
    write_png(src, np.zeros((4, 4), np.uint8))
    out = tmp_path / "out"
    outs = [out / "a_1.png", out / "a_2.png"]

    def process(file, rel):
        write_png(outs[0], np.zeros((4, 4), np.uint8))  # first output done...
        raise OSError(28, "No space left on device", str(outs[1]))  # ...second fails

    report = run_batch([(src, Path("."))], process, lambda f, r: outs)
    assert report.exit_code == 1 and report.failed == [(src, f"No space left on device: {outs[1]}")]
    assert list(out.iterdir()) == []  # the half set was removed
    lines = _error_lines(capsys.readouterr().err)
    assert lines == [f"error: {src}: No space left on device: {outs[1]}"]


def test_unexpected_error_one_line_then_debug(tmp_path, capsys, monkeypatch):
    items = [(tmp_path / f"{i}.png", Path(".")) for i in range(3)]
    done = []

    def process(file, rel):
        if file.name == "1.png":
            raise RuntimeError("weights are\nmissing")
        done.append(file)
        write_png(tmp_path / "o" / file.name, np.zeros((2, 2), np.uint8))

    outputs = lambda f, r: [tmp_path / "o" / f.name]  # noqa: E731
    report = run_batch(items, process, outputs)
    err = capsys.readouterr().err
    assert len(done) == 2 and report.done == 2 and len(report.failed) == 1
    assert _error_lines(err) == [f"error: {items[1][0]}: RuntimeError: weights are missing"]
    assert "Traceback" not in err
    monkeypatch.setenv("RESTORE_DEBUG", "1")
    run_batch(items[1:2], process, outputs)
    assert "Traceback" in capsys.readouterr().err


def test_keyboard_interrupt_then_resume(tmp_path, capsys):
    items = [(tmp_path / f"{i}.png", Path(".")) for i in range(4)]
    out = tmp_path / "o"
    outputs = lambda f, r: [out / f.name]  # noqa: E731

    def interrupted(file, rel):
        if file.name == "2.png":
            write_png(out / file.name, np.zeros((2, 2), np.uint8))
            raise KeyboardInterrupt
        write_png(out / file.name, np.full((2, 2), 9, np.uint8))

    with pytest.raises(KeyboardInterrupt):
        run_batch(items, interrupted, outputs)
    assert sorted(p.name for p in out.iterdir()) == ["0.png", "1.png"]  # 2.png rolled back
    assert "--skip-existing" in capsys.readouterr().err
    calls = []
    report = run_batch(items, lambda f, r: (calls.append(f.name),
                                             write_png(out / f.name, np.ones((2, 2), np.uint8))),
                       outputs, skip_existing=True)
    assert calls == ["2.png", "3.png"] and (report.done, report.skipped) == (2, 2)
    assert (read_image(out / "0.png") == 9).all()


def test_collisions_and_missing_outputs(tmp_path, capsys):
    a, b = tmp_path / "x" / "img.png", tmp_path / "y" / "img.png"
    out = tmp_path / "out"
    outputs = lambda f, r: [output_path(out, r, f, "_mask")]  # noqa: E731

    def process(file, rel):
        write_png(outputs(file, rel)[0], np.zeros((2, 2), np.uint8))

    report = run_batch([(a, Path(".")), (b, Path("."))], process, outputs)
    assert report.done == 1 and report.failed[0][0] == b and str(a) in report.failed[0][1]
    lazy = run_batch([(a, Path("."))], lambda f, r: None, lambda f, r: [out / "never.png"])
    assert lazy.done == 0 and "never.png" in lazy.failed[0][1]
    capsys.readouterr()


def test_quiet_and_report():
    assert BatchReport(done=3).exit_code == 0
    assert BatchReport(done=3, failed=[(Path("x"), "bad")]).exit_code == 1
    assert BatchReport(1, 2, []).summary("faces") == "faces: done 1, skipped 2, failed 0, ignored 0"
    assert describe_error(ImageError("empty file (0 bytes)")) == "empty file (0 bytes)"
    assert describe_error(PermissionError(13, "Permission denied", "o/x.png")) == \
        "Permission denied: o/x.png"
    assert describe_error(MemoryError()) == "out of memory"
    assert describe_error(KeyError("k")) == "KeyError: 'k'"


def test_an_error_line_is_capped_at_500_characters(tmp_path, capsys):
    """A reason is one line of at most 500 characters: longer ones keep their first 497 and "..."."""
    assert describe_error(ValueError("y" * 500)) == "y" * 500  # exactly 500: whole
    assert describe_error(ValueError("y" * 501)) == "y" * 497 + "..."
    assert describe_error(OSError("z" * 5000)) == "z" * 497 + "..."
    # newlines and runs of blanks collapse first; the type of an unexpected error counts too
    text = describe_error(RuntimeError("shapes differ:\n" + "[1, 3,  64, 64] " * 100))
    assert len(text) == 500 and text.endswith("...") and "\n" not in text
    assert text[:497] == ("RuntimeError: shapes differ: " + "[1, 3, 64, 64] " * 100)[:497]
    short = "  bad\n  value  "
    assert describe_error(ValueError(short)) == "bad value"
    # the error line of run_batch carries the capped reason
    item = (tmp_path / "a.png", Path("."))

    def process(file, rel):
        raise ValueError("w" * 1000)

    report = run_batch([item], process, lambda f, r: [tmp_path / "o.png"], quiet=True)
    assert report.failed == [(item[0], "w" * 497 + "...")]
    assert _error_lines(capsys.readouterr().err) == [f"error: {item[0]}: {'w' * 497}..."]


def test_quiet_prints_only_errors(tmp_path, capsys):
    items = [(tmp_path / "gone.png", Path("."))]
    run_batch(items, lambda f, r: read_image(f), lambda f, r: [tmp_path / "o.png"], quiet=True)
    assert capsys.readouterr().err.splitlines() == [f"error: {items[0][0]}: no such file"]
