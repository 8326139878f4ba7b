"""Every picture a user has (issue 12), through every batch command as a user runs it: GIF
(static and animated), APNG, WebP, PPM/PGM, AVIF, HEIC, TGA, ICO, BMP, an upper-case .JPG, a
JPEG without an extension, an ICC-tagged JPEG; a .DS_Store, a README and a video named as
ignored; each file done, skipped, failed or ignored, and the summary counting all four;
``--format jpg|webp`` outputs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gan import UNet, save_model, segmenter_config
from gan.nets.restorer import Restorer
from gan.presets import PIX2PIX_PRESETS
from restore.cli import main
from restore.imageio import read_image
from tests.badfiles import ICC_SRGB, colour_frames, make_mixed_folder
from tests.restore.sketch.test_sketch import clipart, tiny_model

NEW_FORMATS = ("static.gif", "anim_gif.gif", "anim_apng.png", "anim_webp.webp", "pixmap.ppm", "greymap.pgm",
               "photo.avif", "phone.heic", "UPPER.JPG", "camera_file", "icc_linear.jpg", "targa.tga",
               "icon.ico", "bitmap.BMP")


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RESTORE_HOME", str(tmp_path / "cache"))  # no published face weights here


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("models")
    restorer = Restorer(PIX2PIX_PRESETS["tiny-restorer"])
    torch.nn.init.normal_(restorer.tail.weight, std=0.05)
    ref = d / "ref.png"
    Image.fromarray(clipart(3)).save(ref)
    return {"segment": str(save_model(UNet(segmenter_config("tiny")), d / "seg.safetensors", {"diameter": 0})),
            "restorer": str(save_model(restorer, d / "restorer.safetensors")),
            "colorizer": str(tiny_model(d / "colorizer.safetensors")), "ref": str(ref)}


def command(name: str, models: dict[str, str], src, out) -> list[str]:
    base = {"segment": ["segment", "--weights", models["segment"], "--tile", "32"],
            "faces": ["faces", "--weights", models["restorer"], "--tile", "64"],
            "translate": ["translate", "--weights", models["restorer"], "--tile", "64"],
            "sketch": ["sketch", "--weights", models["colorizer"], "--style", models["ref"]]}[name]
    return base[:1] + [str(src), "-o", str(out)] + base[1:]


def outputs_of(name: str, out, rel, stem: str, ext: str = ".png") -> list:
    return {"segment": [out / rel / f"{stem}_mask.png", out / rel / f"{stem}_overlay{ext}"],
            "faces": [out / "restored" / rel / f"{stem}{ext}"],
            "translate": [out / rel / f"{stem}{ext}"],
            "sketch": [out / rel / f"{stem}{ext}", out / rel / f"{stem}_compare{ext}"]}[name]


@pytest.mark.parametrize("name", ["segment", "faces", "translate", "sketch"])
def test_every_file_of_a_phone_and_web_folder_is_accounted_for(name, models, tmp_path, capsys):
    root = tmp_path / "in"
    files = make_mixed_folder(root)
    out = tmp_path / "out"
    code = main(command(name, models, root, out))
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    lines = err.splitlines()
    # a multi-page TIFF is a volume: segment reads it, the photo commands refuse it
    failed = files["bad"] + (files["volume"] if name != "segment" else [])
    done = files["good"] + (files["volume"] if name == "segment" else [])
    # faces and translate take films: the broken clip.mp4 is a video that fails (its own summary line)
    videos = [p for p in files["ignored"] if p.suffix == ".mp4"] if name in ("faces", "translate") else []
    skipped = [p for p in files["ignored"] if p not in videos]
    desc = {"segment": "segment", "faces": "faces", "translate": "translate", "sketch": "sketch"}[name]
    summary = f"{desc}: done {len(done)}, skipped 0, failed {len(failed)}, ignored {len(skipped)}"
    assert summary in lines
    if videos:
        assert "videos: done 0, skipped 0, failed 1, ignored 0" in lines
    assert sorted(ln for ln in lines if ln.startswith("error: ")) == sorted(
        ln for ln in lines if any(ln.startswith(f"error: {p}: ") for p in failed + videos))
    assert len([ln for ln in lines if ln.startswith("error: ")]) == len(failed) + len(videos)
    ignored = sorted(ln.split(": ")[1] for ln in lines if ln.startswith("ignored: "))
    assert ignored == sorted(str(p) for p in skipped)
    notes = [ln for ln in lines if ln.startswith("note: ")]
    assert sorted(ln.split(": ")[1] for ln in notes) == sorted(str(p) for p in files["animated"])
    assert all("only the first frame was read" in ln for ln in notes)
    for path in done:
        rel = path.parent.relative_to(root)
        stem = path.stem if name != "segment" or path not in files["volume"] else None
        if stem is None:
            continue
        for o in outputs_of(name, out, rel, stem):
            assert o.is_file(), (path, o)
    assert {p.name for p in files["good"]} >= set(NEW_FORMATS)
    if name == "faces":  # the report says it too, one entry per input
        entries = {e["input"]: e for e in json.loads((out / "report.json").read_text())}
        for path in files["animated"]:
            assert any("only the first frame was read" in n for n in entries[str(path)]["notes"])
        assert entries[str(root / "pixmap.ppm")]["notes"] == []
        assert len(entries) == len(done) + len(failed) + len(videos) and entries[str(videos[0])]["error"]
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary files left
    # resume: the done ones are skipped, the bad ones fail again, the others are ignored again
    assert main(command(name, models, root, out) + ["--skip-existing", "--quiet"]) == 1
    capsys.readouterr()


def test_new_formats_read_right(models, tmp_path, capsys):
    """The pixels that reach the network: HEIC/AVIF close to their source, the GIF/APNG/WebP
    animation's first frame exactly, the ICC JPEG converted to sRGB."""
    files = make_mixed_folder(tmp_path / "in")
    by_name = {p.name: p for p in files["good"]}
    frames = colour_frames()
    close = {"phone.heic": frames[2], "photo.avif": frames[1], "UPPER.JPG": frames[1], "camera_file": frames[2]}
    for n, src in close.items():
        assert np.abs(read_image(by_name[n]).astype(int) - src).mean() < 4, n
    for n in ("anim_gif.gif", "anim_apng.png", "anim_webp.webp"):
        np.testing.assert_array_equal(read_image(by_name[n]), frames[0])
    assert np.abs(read_image(by_name["icc_linear.jpg"]).astype(int) - ICC_SRGB).max() <= 2


@pytest.mark.parametrize("fmt,ext", [("jpg", ".jpg"), ("webp", ".webp")])
def test_output_format(fmt, ext, models, tmp_path, capsys):
    src = tmp_path / "in"
    files = make_mixed_folder(src)
    keep = {"rgba.png", "grey16.png", "phone.heic", "UPPER.JPG"}
    for p in files["good"] + files["bad"] + files["volume"] + [f for f in files["ignored"] if f.suffix == ".mp4"]:
        if p.name not in keep:
            p.unlink()
    for name in ("faces", "translate", "segment", "sketch"):
        out = tmp_path / f"out_{name}"
        assert main(command(name, models, src, out) + ["--format", fmt, "--quality", "90"]) == 0, name
        err = capsys.readouterr().err
        for p in (p for p in files["good"] if p.name in keep):
            for o in outputs_of(name, out, p.parent.relative_to(src), p.stem, ext):
                assert o.is_file(), o
                if o.name.endswith("_mask.png"):
                    continue  # masks stay lossless
                with Image.open(o) as im:
                    assert im.format == {"jpg": "JPEG", "webp": "WEBP"}[fmt]
                    assert im.mode in ("RGB", "RGBA", "L")  # 8-bit
        if name == "faces":
            assert "written as 8-bit" in err  # the 16-bit photo, said in its note line
            if fmt == "jpg":
                assert "alpha flattened onto white" in err
    # a tenth of the PNG size is what JPEG users come for; far smaller on real photos
    png = tmp_path / "png"
    assert main(command("translate", models, src, png)) == 0
    assert (tmp_path / "out_translate" / f"UPPER{ext}").stat().st_size < (png / "UPPER.png").stat().st_size
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(command("translate", models, src, png) + ["--quality", "0"])
    assert stop.value.code == 2 and "argument --quality: quality must be in 1..100" in capsys.readouterr().err
