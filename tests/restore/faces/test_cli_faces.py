"""`restore faces` end to end, through main() as a user runs it."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from restore.cli import main
from restore.faces.own_scale import face_region
from tests.badfiles import BAD_REASONS, make_mixed_folder


@pytest.fixture(scope="module")
def face_photo():
    return cv2.resize(data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def report(out):
    return {e["input"]: e for e in json.loads((out / "report.json").read_text())}


def test_mixed_folder_every_good_file_done_each_bad_one_line(tmp_path, capsys, weights, face_photo):
    files = make_mixed_folder(tmp_path / "in")
    Image.fromarray(face_photo).save(tmp_path / "in" / "sub" / "astronaut.jpg", quality=95)
    grey_alpha = np.dstack([face_photo[:40, :48, 0], np.arange(40 * 48).reshape(40, 48) % 256]).astype(np.uint8)
    Image.fromarray(grey_alpha, "LA").save(tmp_path / "in" / "grey_alpha.png")
    files["good"].append(tmp_path / "in" / "grey_alpha.png")
    out = tmp_path / "out"
    code, _, err = run(capsys, "faces", tmp_path / "in", "-o", out, "--weights", weights, "--tile", 64)
    assert code == 1
    assert "Traceback" not in err and "tiny.safetensors" in err and "MTCNN" in err  # which model, which detector
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    bad = files["bad"] + files["volume"]  # a multi-page TIFF is not a photo
    film = [p for p in files["ignored"] if p.suffix == ".mp4"]  # a broken video: one line too
    assert len(lines) == len(bad) + len(film) and any("clip.mp4: not a readable video" in ln for ln in lines)
    entries = report(out)
    for path in bad:
        (line,) = [line for line in lines if path.name in line]
        assert BAD_REASONS.get(path.name, "volume") in line
        assert BAD_REASONS.get(path.name, "volume") in entries[str(path)]["error"]
    for good in files["good"]:
        rel = good.parent.relative_to(tmp_path / "in")
        restored = out / "restored" / rel / f"{good.stem}.png"
        with Image.open(good) as im, Image.open(restored) as res:
            assert res.size in (im.size, im.size[::-1])  # EXIF-rotated input: rotated size
            mode = res.mode
        assert entries[str(good)]["error"] is None and entries[str(good)]["faces"] == []
        if good.name in ("grey8.png", "palette_grey.png"):
            assert mode == "L"
        if good.name == "grey16.png":
            assert mode.startswith("I;16")
        if good.name in ("rgba.png", "grey_alpha.png"):  # alpha kept (grey + alpha as RGBA)
            assert mode == "RGBA"
            with Image.open(good) as im, Image.open(restored) as res:
                np.testing.assert_array_equal(np.array(res)[..., 3], np.array(im)[..., -1])
    with Image.open(out / "restored" / "rgb_exif6.png") as im:  # EXIF 6: the red corner is now top-right
        rotated = np.array(im)
    assert rotated[3, -3, 0] > 150 and rotated[3, -3, 1] < 120 and rotated[-3, 3].min() > 150
    face = entries[str(tmp_path / "in" / "sub" / "astronaut.jpg")]
    assert len(face["faces"]) == 1 and face["seconds"] > 0
    (f,) = face["faces"]
    assert len(f["box"]) == 4 and np.array(f["landmarks"]).shape == (5, 2) and f["score"] > 0.9
    with Image.open(out / "faces" / "sub" / "astronaut_0.png") as im:
        assert im.size == (1024, 512)  # aligned input | restored
    assert len(entries) == len(files["good"]) + len(bad) + len(film) + 1
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".*"))


def test_skip_existing_keeps_earlier_report_entries(tmp_path, capsys, weights, face_photo):
    inp = tmp_path / "in"
    inp.mkdir()
    Image.fromarray(face_photo).save(inp / "a.png")
    Image.fromarray(face_photo[:, ::-1]).save(inp / "b.png")
    out = tmp_path / "out"
    assert run(capsys, "faces", inp, "-o", out, "--weights", weights, "--bg", "none", "--quiet")[0] == 0
    first = report(out)
    (face,) = first[str(inp / "a.png")]["faces"]
    # --bg none: the restorer (not a face prior) restores the face at its own scale, in a margin
    # around its box; outside that region every pixel is the input's own
    y0, y1, x0, x1 = face_region(np.array(face["box"]), *face_photo.shape[:2])
    outside = np.ones(face_photo.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    restored = np.array(Image.open(out / "restored" / "a.png"))
    np.testing.assert_array_equal(restored[outside], face_photo[outside])
    assert (restored[~outside] != face_photo[~outside]).any()
    (out / "restored" / "b.png").unlink()
    stamp = (out / "restored" / "a.png").stat().st_mtime_ns
    code, _, err = run(capsys, "faces", inp, "-o", out, "--weights", weights, "--bg", "none", "--skip-existing")
    assert code == 0 and "skipped 1" in err
    assert (out / "restored" / "a.png").stat().st_mtime_ns == stamp
    second = report(out)
    assert second[str(inp / "a.png")] == first[str(inp / "a.png")]  # kept as it was
    assert (out / "restored" / "b.png").is_file() and len(second[str(inp / "b.png")]["faces"]) == 1


def test_aligned_crops_and_upscale(tmp_path, capsys, weights, face_photo):
    crop = cv2.resize(face_photo[20:110, 70:160], (96, 96))
    Image.fromarray(crop).save(tmp_path / "crop.png")
    out = tmp_path / "out"
    code, _, _ = run(capsys, "faces", tmp_path / "crop.png", "-o", out, "--weights", weights, "--aligned",
                     "--upscale", "2", "--quiet")
    assert code == 0
    with Image.open(out / "restored" / "crop.png") as im:
        assert im.size == (192, 192)
    (entry,) = report(out).values()
    assert entry["faces"][0]["box"] == [0, 0, 96, 96] and entry["faces"][0]["score"] is None


def test_usage_errors_exit_2_without_traceback(tmp_path, capsys, weights):
    code, _, err = run(capsys, "faces", tmp_path / "missing", "-o", tmp_path / "o", "--weights", weights)
    assert code == 2 and "missing" in err and "Traceback" not in err
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    code, _, err = run(capsys, "faces", tmp_path / "a.png", "-o", tmp_path / "o", "--weights", "nope")
    assert code == 2 and "nope" in err and "Traceback" not in err
    code, _, err = run(capsys, "faces", tmp_path / "a.png", "-o", tmp_path / "o", "--weights", weights,
                       "--detector", "retinaface")
    assert code == 2 and "restore weights fetch retinaface-resnet50" in err
    for bad in (["--fidelity", "1.5"], ["--upscale", "3"], ["--bg", "esrgan"]):
        with pytest.raises(SystemExit) as e:
            main(["faces", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), *bad])
        assert e.value.code == 2
