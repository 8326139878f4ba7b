"""The pipelined `restore faces` (issue 14): faces of several photos share network calls, reading
runs ahead and writing behind, and what it writes is what the photo-at-a-time path writes,
byte for byte; failures, Ctrl-C and --skip-existing behave as in ``run_batch``."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage import data

from restore.cli import main
from restore.runners.pipeline import run_pipeline


def photo_folder(root: Path) -> Path:
    face = cv2.resize(data.astronaut(), (192, 192), interpolation=cv2.INTER_AREA)
    root.mkdir(parents=True)
    Image.fromarray(face).save(root / "a.png")
    Image.fromarray(face[:, ::-1]).save(root / "b.jpg", quality=95)
    Image.fromarray(np.concatenate([face, face[:, ::-1]], axis=1)).save(root / "c_two.png")  # two faces
    Image.fromarray(face.mean(2).astype(np.uint8)).save(root / "d_grey.png")
    Image.fromarray(np.dstack([face, np.full(face.shape[:2], 200, np.uint8)]), "RGBA").save(root / "e_rgba.png")
    Image.fromarray(np.full((64, 80, 3), 128, np.uint8)).save(root / "f_wall.png")  # no face
    (root / "g_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    Image.fromarray(face[::-1]).save(root / "h.webp", lossless=True)
    return root


def outputs_of(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
            and p.name != "report.json"}


def report_of(out: Path) -> list[dict]:
    """report.json without the timings, output paths relative to ``out``."""
    entries = json.loads((out / "report.json").read_text())
    return [{k: (str(Path(v).relative_to(out)) if k == "output" and v else v) for k, v in e.items() if k != "seconds"}
            for e in entries]


def test_pipeline_writes_what_photo_at_a_time_writes(tmp_path, weights, capsys):
    src = photo_folder(tmp_path / "in")
    # calls of 3 faces: within a photo one at a time, across photos in the pipeline
    base = ["faces", str(src), "--weights", weights, "--tile", "64", "--precision", "fp32", "--batch-size", "3"]
    assert main(base + ["-o", str(tmp_path / "one"), "--no-pipeline"]) == 1  # the broken file
    one = capsys.readouterr().err
    assert main(base + ["-o", str(tmp_path / "pipe")]) == 1
    pipe = capsys.readouterr().err
    a, b = outputs_of(tmp_path / "one"), outputs_of(tmp_path / "pipe")
    assert a.keys() == b.keys() and len(a) >= 7 + 6  # 7 photos restored, their face crops
    assert [k for k in a if a[k] != b[k]] == []  # byte for byte
    assert report_of(tmp_path / "one") == report_of(tmp_path / "pipe")
    for text in (one, pipe):  # the same lines: the broken file named once, the same summary
        assert [ln for ln in text.splitlines() if ln.startswith("error: ")] == [
            f"error: {src / 'g_broken.png'}: not an image file (or not a format Pillow or pillow-heif reads)"]
        assert "faces: done 7, skipped 0, failed 1, ignored 0" in text
    # resume: all done ones skipped, across the pipeline too
    assert main(base + ["-o", str(tmp_path / "pipe"), "--skip-existing", "--quiet"]) == 1
    assert outputs_of(tmp_path / "pipe") == b


def test_a_face_network_writes_the_same_bytes_pipelined_or_not(tmp_path, gfpgan_weights, gfpgan_calls, capsys):
    """With a real face network (GFP-GAN) the grouping of faces reaches the network: in calls of
    3 faces, one photo at a time and across photos in the pipeline, every call has exactly 3
    faces (the last one filled up) and both runs write the same bytes."""
    calls = gfpgan_calls
    src = photo_folder(tmp_path / "in")
    base = ["faces", str(src), "--weights", gfpgan_weights, "--bg", "resize", "--precision", "fp32",
            "--batch-size", "3", "--quiet"]
    assert main(base + ["-o", str(tmp_path / "one"), "--no-pipeline"]) == 1  # the broken file
    assert calls and set(calls) == {3}, calls  # 1, 1, 2, 1, 1, 1 faces a photo: each call filled up to 3
    calls.clear()
    assert main(base + ["-o", str(tmp_path / "pipe")]) == 1
    assert calls and set(calls) == {3}, calls
    capsys.readouterr()
    a, b = outputs_of(tmp_path / "one"), outputs_of(tmp_path / "pipe")
    assert a.keys() == b.keys() and len(a) == 7 + 6  # 7 photos restored, 6 face crops
    assert [k for k in a if a[k] != b[k]] == []  # byte for byte
    assert report_of(tmp_path / "one") == report_of(tmp_path / "pipe")


def test_a_failed_network_call_fails_its_photos_only(tmp_path, weights, capsys, monkeypatch):
    from restore.faces.restorer import FaceRestorer

    src = photo_folder(tmp_path / "in")
    real = FaceRestorer.restore_crops
    calls = []

    def flaky(self, crops):
        calls.append(len(crops))
        if len(calls) == 2:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(self, crops)

    monkeypatch.setattr(FaceRestorer, "restore_crops", flaky)
    out = tmp_path / "out"
    assert main(["faces", str(src), "-o", str(out), "--weights", weights, "--tile", "64", "--batch-size", "2",
                 "--quiet"]) == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error: ")]
    simulated = [ln for ln in err if "out of memory (simulated)" in ln]
    assert simulated and len(err) == len(simulated) + 1  # the group's photos, and the broken file
    entries = {Path(e["input"]).name: e for e in json.loads((out / "report.json").read_text())}
    for line in simulated:
        name = Path(line.split(": ")[1]).name
        assert "simulated" in entries[name]["error"] and not (out / "restored" / f"{Path(name).stem}.png").exists()
    assert sum(e["error"] is None for e in entries.values()) == 7 - len(simulated)


def test_ctrl_c_leaves_no_half_output_and_resumes(tmp_path, weights, capsys, monkeypatch):
    from restore.faces.restorer import FaceRestorer

    src = photo_folder(tmp_path / "in")
    real = FaceRestorer.restore_crops
    calls = []

    def interrupted(self, crops):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, crops)

    monkeypatch.setattr(FaceRestorer, "restore_crops", interrupted)
    out = tmp_path / "out"
    args = ["faces", str(src), "-o", str(out), "--weights", weights, "--tile", "64", "--batch-size", "1"]
    assert main(args) == 130
    assert "Run again with --skip-existing to resume" in capsys.readouterr().err
    restored = {p.stem for p in (out / "restored").glob("*")}
    crops = {p.stem.rsplit("_", 1)[0] for p in (out / "faces").glob("*")}
    assert crops <= restored and not [p for p in out.rglob("*") if p.name.startswith(".")]  # no half set
    monkeypatch.setattr(FaceRestorer, "restore_crops", real)
    assert main(args + ["--skip-existing", "--quiet"]) == 1  # the broken file, again
    assert len(list((out / "restored").glob("*"))) == 7


def test_run_pipeline_groups_in_order_and_keeps_run_batch_rules(tmp_path, capsys):
    groups, saved = [], []
    items = [(tmp_path / f"{i}.txt", Path(".")) for i in range(7)]
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "2.out").write_text("earlier")  # skipped with skip_existing

    def outputs(f, rel):
        return [tmp_path / "done" / f"{f.stem}.out"] if f.stem != "6" else [tmp_path / "done" / "5.out"]

    def load(f, rel):
        if f.stem == "4":
            raise ValueError("unreadable")
        return int(f.stem)

    def compute(values):
        groups.append(values)
        return [v * 10 if v != 3 else ValueError("bad face") for v in values]

    def save(f, rel, value):
        outputs(f, rel)[0].write_text(str(value))
        saved.append(value)
        return value

    report = run_pipeline(items, outputs, load, compute, save, batch=2, size=lambda v: 1, skip_existing=True,
                          desc="t")
    assert groups == [[0, 1], [3, 5]] and saved == [0, 10, 50]
    assert (report.done, report.skipped) == (3, 1)
    reasons = dict((f.stem, r) for f, r in report.failed)
    assert reasons == {"3": "bad face", "4": "unreadable",
                       "6": f"would overwrite the output of {items[5][0]} (same name); rename one of them"}
    assert capsys.readouterr().err.strip().splitlines()[-1] == "t: done 3, skipped 1, failed 3, ignored 0"
