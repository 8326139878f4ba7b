"""The Gradio app end to end: `restore app` in a subprocess on loopback, every endpoint through
gradio_client with the bundled examples and models, 16 concurrent calls, bad uploads, and a
headless Chromium that visits every tab and runs each tab's first example.

RESTORE_SCREENSHOTS=docs writes the browser's screenshots to docs/app_<tab>.png (the README's).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from gan.serialize import load_model, save_model

pytestmark = pytest.mark.slow
gradio_client = pytest.importorskip("gradio_client")
from gradio_client import handle_file

from tests import ROOT
from tests.apps.conftest import (CHROMIUM, CHROMIUM_ARGS, DONE, EXAMPLES, FIRST_EXAMPLE, MAX_FILE_SIZE,
                                TABS, _bundled_colorizer, psnr, rgb)


# --------------------------------------------------------------------------- the parts, without a server
def test_runtime_offers_what_is_here_with_licences(tmp_path, monkeypatch, tiny_colorizer):
    from restore.apps.runtime import Runtime

    monkeypatch.setenv("RESTORE_HOME", str(tmp_path / "cache"))  # nothing fetched
    # tiny_colorizer says "colorization" (an earlier word); this copy says today's "sketch"
    today = save_model(load_model(tiny_colorizer)[0], tmp_path / "today.safetensors", {"task": "sketch"})
    rt = Runtime("cpu", models=[tiny_colorizer, today])
    assert {v: k for k, v in rt.choices("segment")}["nuclei"] == "nuclei (bundled, Apache-2.0)"
    assert [v for _, v in rt.choices("faces")] == ["restorer"]  # no GFP-GAN fetched
    names = {tiny_colorizer.name, "today.safetensors"}  # by name: the page shows no server folder
    assert names <= {v for _, v in rt.choices("sketch")} and not names & {v for _, v in rt.choices("translate")}
    assert rt.weights("today.safetensors") == str(today) and rt.weights("nuclei") == "nuclei"
    table = rt.licence_table()
    assert "| gfpgan-v1.4 | faces | no (`restore weights fetch gfpgan-v1.4`) | Apache-2.0 (" in table
    assert "| nuclei | segment | bundled |" in table and "| today.safetensors | sketch | your file |" in table
    assert rt.describe().startswith("**device:** cpu") and "segment fp32" in rt.describe()
    assert rt.precision["segment"] == "fp32"
    assert Runtime("cpu", precision="fp32").precision == dict.fromkeys(rt.precision, "fp32")
    with pytest.raises(ValueError, match="no such model file"):
        Runtime("cpu", models=[tmp_path / "missing.safetensors"])
    (tmp_path / "other").mkdir()
    twin = save_model(load_model(tiny_colorizer)[0], tmp_path / "other" / "today.safetensors", {"task": "sketch"})
    with pytest.raises(ValueError, match="share a name"):
        Runtime("cpu", models=[today, twin])


def test_with_options_share_the_networks():
    from restore.faces.restorer import FaceRestorer
    from restore.segment.segmenter import Segmenter

    fr = FaceRestorer("restorer", "mtcnn", parse=False)
    other = fr.with_options(upscale=2, bg="none", fidelity=0.5)
    assert other.model is fr.model and other.detector is fr.detector and other.translator is fr.translator
    assert (other.upscale, other.bg, other.fidelity) == (2, "none", 0.5)
    assert (fr.upscale, fr.bg, fr.fidelity) == (1, "restorer", 1.0)  # the shared one is untouched
    assert other.restore(np.full((40, 48, 3), 90, np.uint8)).image.shape == (80, 96, 3)
    with pytest.raises(ValueError, match="upscale"):
        fr.with_options(upscale=3)
    with pytest.raises(ValueError, match="bg='restorer'"):
        FaceRestorer("restorer", "mtcnn", bg="none", parse=False).with_options(bg="restorer")  # no background net
    seg = Segmenter("nuclei")
    small = seg.with_options(tile=300, diameter=None)
    assert small.model is seg.model and small.tile == 304 and small.diameter is None  # tiles: multiples of 16
    assert seg.tile == 512 and seg.diameter == "auto"
    with pytest.raises(ValueError, match="diameter"):
        seg.with_options(diameter=-1)


def test_areas_and_diameter_field():
    from restore.apps.handlers import _diameter, areas

    labels = np.zeros((10, 10), np.uint16)
    labels[1:3, 1:3], labels[6:9, 6:9] = 1, 2
    assert areas(labels, True, 2) == [["background", 87, 87.0, "-"], ["objects", 13, 13.0, "2"]]
    assert areas((labels > 0).astype(np.uint8), False, 2)[1] == ["foreground", 13, 13.0, "2"]
    assert [_diameter(t) for t in ("auto", " None ", "24", "")] == ["auto", None, 24.0, "auto"]
    with pytest.raises(ValueError, match="diameter"):
        _diameter("big")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_handlers_on_cuda_match_the_cpu():
    """The app's GPU path (bf16/fp16 by default) against the CPU in fp32, in-process."""
    from restore.apps.handlers import Handlers
    from restore.apps.runtime import Runtime

    gpu, cpu = Handlers(Runtime("auto")), Handlers(Runtime("cpu", precision="fp32"))
    assert gpu.rt.device.type == "cuda" and gpu.rt.precision["translate"] in ("bf16", "fp16")
    image = str(EXAMPLES / "faces" / "two_faces_small.jpg")
    assert psnr(gpu.translate(image, "restorer", None)[0][1], cpu.translate(image, "restorer", None)[0][1]) > 40
    nuclei = str(EXAMPLES / "nuclei" / "dsb2018_heldout.png")
    a = np.asarray(Image.open(gpu.segment(nuclei, "nuclei", 512, "auto", False, 16, False, False)[1])) > 0
    b = np.asarray(Image.open(cpu.segment(nuclei, "nuclei", 512, "auto", False, 16, False, False)[1])) > 0
    assert (a & b).sum() / (a | b).sum() > 0.99
    photo = str(EXAMPLES / "faces" / "astronaut_degraded.jpg")  # one call per tab: faces and sketch too
    (_, after), crops, files, status, _ = gpu.faces([photo], "auto", "mtcnn", 1.0, 1, "resize")
    (_, ref), _, _, _, _ = cpu.faces([photo], "auto", "mtcnn", 1.0, 1, "resize")
    assert "1 face(s) restored" in status and psnr(after, ref) > 40
    d = EXAMPLES / "sketch"
    out = gpu.sketch(str(d / "dog.png"), "xdog", str(d / "ladybug.png"), None, "colorizer")[0]
    ref = cpu.sketch(str(d / "dog.png"), "xdog", str(d / "ladybug.png"), None, "colorizer")[0]
    assert psnr(out, ref) > 40


# --------------------------------------------------------------------------- the endpoints
def test_named_endpoints(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert {"/faces", "/faces_video", "/sketch", "/segment", "/translate", "/upscale"} <= set(api["named_endpoints"])


def test_faces(client):
    photo = EXAMPLES / "faces" / "astronaut_degraded.jpg"
    (before, after), crops, files, status, table = client.predict(
        [handle_file(photo)], "auto", "auto", 1.0, 2, "resize", 0, "auto", api_name="/faces")
    assert rgb(after).shape == (1024, 1024, 3) == rgb(before).shape  # upscale 2; the slider's pair matches
    (pair,) = crops  # one face, aligned: input | restored, its caption naming the photo and its scores
    assert rgb(pair["image"]).shape == (256, 512, 3) and pair["caption"].startswith("astronaut_degraded.jpg #0")
    assert "NIQE" in pair["caption"] and "BRISQUE" in pair["caption"]
    assert table["headers"] == ["photo", "face", "identity", "guard", "NIQE", "BRISQUE"]
    assert len(table["data"]) == 1 and table["data"][0][:2] == ["astronaut_degraded.jpg", 0]
    assert len(files) == 1 and Path(files[0]).name == "astronaut_degraded_restored.png"
    assert rgb(files[0]).shape == (1024, 1024, 3)
    assert "1 face(s) restored" in status and "restorer" in status


def test_faces_heic_phone_photo(client, tmp_path):
    """A phone's HEIC (upper-case extension, as iPhones name them) goes through the same reader."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    photo = tmp_path / "IMG_0001.HEIC"
    Image.open(EXAMPLES / "faces" / "astronaut_degraded.jpg").save(photo, format="HEIF", quality=92)
    (before, after), crops, files, status, _ = client.predict(
        [handle_file(photo)], "auto", "mtcnn", 1.0, 1, "resize", api_name="/faces")
    assert rgb(before).shape == (512, 512, 3) and rgb(crops[0]["image"]).shape == (256, 512, 3)
    assert Path(files[0]).name == "IMG_0001_restored.png" and "1 face(s) restored" in status


def test_faces_two_uploads_of_one_name_keep_both(client, tmp_path):
    """a.png and a.jpg in one request: two results (a_restored.png, a_jpg_restored.png), each
    its own photo (background "none": the pixels as uploaded)."""
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.full((48, 64, 3), 200, np.uint8)).save(tmp_path / "a.jpg")
    _, _, files, status, _ = client.predict([handle_file(tmp_path / "a.png"), handle_file(tmp_path / "a.jpg")],
                                         "auto", "mtcnn", 1.0, 1, "none", api_name="/faces")
    assert [Path(f).name for f in files] == ["a_restored.png", "a_jpg_restored.png"]
    np.testing.assert_array_equal(rgb(files[0]), rgb(tmp_path / "a.png"))
    np.testing.assert_array_equal(rgb(files[1]), rgb(tmp_path / "a.jpg"))
    assert "No face found in a.png" in status and "No face found in a.jpg" in status


def test_faces_without_a_face(client, tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(100, 140, (96, 128, 3), dtype=np.uint8)).save(tmp_path / "wall.png")
    _, crops, files, status, _ = client.predict(
        [handle_file(tmp_path / "wall.png")], "auto", "mtcnn", 1.0, 1, "none", api_name="/faces")
    assert not crops and "No face found in wall.png" in status
    np.testing.assert_array_equal(rgb(files[0]), rgb(tmp_path / "wall.png"))  # background "none": unchanged


def test_segment(client):
    image = EXAMPLES / "nuclei" / "dsb2018_heldout.png"
    shown, mask, table, status = client.predict(
        handle_file(image), "nuclei", 512, "auto", True, 16, False, False, api_name="/segment")
    h, w = np.asarray(Image.open(image)).shape[:2]
    assert rgb(shown).shape == (h, w, 3)
    labels = np.asarray(Image.open(mask))
    assert labels.shape == (h, w)
    n = len(np.unique(labels)) - 1
    assert 8 <= n <= 30  # 15 nuclei in this crop
    rows = {r[0]: r for r in table["data"]}
    assert table["headers"] == ["class", "area (px)", "% of image", "objects"]
    assert int(rows["objects"][3]) == n and rows["objects"][1] == np.count_nonzero(labels)
    assert "nuclei" in status


def test_translate(client):
    image = EXAMPLES / "faces" / "two_faces_small.jpg"
    (before, after), file, status = client.predict(handle_file(image), "restorer", None, api_name="/translate")
    x, y = rgb(image), rgb(file)
    assert y.shape == x.shape and rgb(after).shape == x.shape
    np.testing.assert_array_equal(rgb(before), x)  # the slider's left side is the input
    assert 25 < psnr(x, y) < 60  # changed, but the same picture
    assert "restorer" in status


def test_translate_uploaded_generator(client, tmp_path):
    """Any trained generator file, uploaded: here a tiny pix2pix one."""
    from gan.nets.restorer import Restorer
    from gan.nets.unet import UNet
    from gan.presets import PIX2PIX_PRESETS, segmenter_config

    torch.manual_seed(0)
    model = Restorer(PIX2PIX_PRESETS["tiny-restorer"])
    torch.nn.init.normal_(model.tail.weight, std=0.05)  # it starts as the identity: make it do something
    gen = save_model(model, tmp_path / "my_generator.safetensors", {"task": "translation"})
    image = EXAMPLES / "faces" / "two_faces_small.jpg"
    _, file, status = client.predict(handle_file(image), "restorer", handle_file(gen), api_name="/translate")
    x, y = rgb(image), rgb(file)
    assert y.shape == x.shape and psnr(x, y) < 60 and "my_generator.safetensors" in status
    seg = save_model(UNet(segmenter_config("tiny")), tmp_path / "segmenter.safetensors")
    with pytest.raises(Exception, match=r"^segmenter\.safetensors is not an image-to-image generator") as err:
        client.predict(handle_file(image), "restorer", handle_file(seg), api_name="/translate")  # refused
    assert "/" not in str(err.value)  # named as uploaded, not by its path in gradio's cache


@pytest.mark.parametrize("bundled", [False, True], ids=["tiny", "bundled"])
def test_sketch(client, tiny_colorizer, bundled):
    assert _bundled_colorizer() or not bundled, "weights/colorizer.safetensors is missing"
    weights = "colorizer" if bundled else tiny_colorizer.name  # a --model file: offered by name
    d = EXAMPLES / "sketch"
    result, compare, files, status, colours, lines = client.predict(
        handle_file(d / "dog.png"), "xdog", handle_file(d / "ladybug.png"), None, weights, None, api_name="/sketch")
    h, w = np.asarray(Image.open(d / "dog.png")).shape[:2]
    file = files[0]
    assert [Path(f).name for f in files] == ["dog_coloured.png", "dog_flat.png", "dog_lines.png"]
    assert rgb(result).shape == (h, w, 3) and rgb(file).shape == (h, w, 3) and rgb(colours).shape == (h, w, 3)
    assert np.asarray(Image.open(files[2])).shape == (h, w, 4)
    assert rgb(compare).shape[1] > 2 * w  # sketch | reference | result
    assert "xdog" in status
    if bundled:  # a trained model colours: the result is not grey
        out = rgb(file).astype(np.int16)
        assert np.abs(out[..., 0] - out[..., 2]).mean() > 5


def test_sketch_extraction_only(client):
    _, compare, files, _, _, _ = client.predict(
        handle_file(EXAMPLES / "sketch" / "monkey.png"), "threshold", None, None, None, None, api_name="/sketch")
    lines = np.asarray(Image.open(files[0]))
    assert lines.ndim == 2 and {0, 255} <= set(np.unique(lines)) and compare is None


# --------------------------------------------------------------------------- the queue and bad input
def test_sixteen_concurrent_calls_complete(client, tmp_path):
    small = tmp_path / "small.png"
    Image.fromarray(rgb(EXAMPLES / "faces" / "astronaut_degraded.jpg")[::8, ::8]).save(small)  # 64 x 64
    jobs = [client.submit(handle_file(small), "restorer", None, api_name="/translate") for _ in range(16)]
    results = [job.result(timeout=300) for job in jobs]
    assert len(results) == 16
    assert all(rgb(r[1]).shape == (64, 64, 3) for r in results)


def test_corrupt_uploads_are_clear_errors(client, tmp_path):
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes((EXAMPLES / "faces" / "astronaut_degraded.jpg").read_bytes()[:20000])
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not an image" * 50)
    with pytest.raises(Exception, match=r"^truncated\.jpg: .*truncated") as err:
        client.predict(handle_file(truncated), "restorer", None, api_name="/translate")
    assert "Traceback" not in str(err.value) and "\n" not in str(err.value)
    assert "/" not in str(err.value)  # nothing of gradio's upload folder
    with pytest.raises(Exception, match=r"^junk\.png: not an image file") as err:
        client.predict([handle_file(junk)], "auto", "auto", 1.0, 1, "none", api_name="/faces")
    assert "/tmp" not in str(err.value) and "gradio" not in str(err.value)


def test_oversized_uploads_are_clear_errors(client, server, tmp_path):
    wide = tmp_path / "wide.png"
    Image.fromarray(np.zeros((1000, 5000), np.uint8)).save(wide)  # 5 MP, a few kB
    with pytest.raises(Exception, match=r"wide\.png: image too large: 5000x1000"):
        client.predict(handle_file(wide), "nuclei", 512, "auto", True, 16, False, False, api_name="/segment")
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(MAX_FILE_SIZE + 1000))
    with pytest.raises(ValueError, match="exceeds the maximum file size"):  # gradio_client checks first
        client.predict(handle_file(big), "restorer", None, api_name="/translate")
    with big.open("rb") as f:  # and the server refuses it too
        r = httpx.post(server + "gradio_api/upload", files={"files": ("big.png", f, "image/png")})
    assert r.status_code == 413 and "maximum" in r.text


# --------------------------------------------------------------------------- the page, in a browser
def _not_blank(path: Path) -> None:
    img = np.asarray(Image.open(path).convert("RGB"))
    assert img.shape[0] > 300 and img.shape[1] > 600
    assert img.std() > 20 and len(np.unique(img.reshape(-1, 3)[::7], axis=0)) > 200


def test_browser_visits_every_tab_and_runs_examples(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no {CHROMIUM} (Debian package chromium; .ci/run installs it)")
    shots = os.environ.get("RESTORE_SCREENSHOTS")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server, wait_until="networkidle")
            header = page.locator("#runtime").inner_text()
            assert "device:" in header and "precision:" in header
            for label, key in TABS.items():
                page.get_by_role("tab", name=label).click()
                # one click on the tab's example fills its inputs and runs it on the bundled models
                page.get_by_role("button", name=FIRST_EXAMPLE[key], exact=True).click()
                page.wait_for_function(f"document.querySelector('#{key}-status').innerText.includes({DONE[key]!r})"
                                       " || document.querySelector('.toast-body') !== null", timeout=120_000)
                toasts = page.locator(".toast-body")
                assert toasts.count() == 0, toasts.all_inner_texts()  # an error or warning popped up
                page.wait_for_load_state("networkidle")  # the result images
                page.wait_for_timeout(500)
                shot = tmp_path / f"app_{key}.png"
                page.screenshot(path=str(shot), full_page=True)
                _not_blank(shot)
                if shots:
                    Path(ROOT / shots).mkdir(exist_ok=True)
                    shutil.copyfile(shot, ROOT / shots / shot.name)
            # a photo without faces and a corrupt file: a message in the page, not a traceback
            rng = np.random.default_rng(0)
            Image.fromarray(rng.integers(100, 140, (96, 128, 3), dtype=np.uint8)).save(tmp_path / "wall.png")
            (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"junk" * 100)
            page.get_by_role("tab", name="Faces").click()
            for name, message in (("wall.png", "No face found in wall.png"), ("junk.jpg", "junk.jpg: ")):
                page.locator("#faces-photos button[aria-label='Clear']").first.click()
                page.locator("#faces-photos input[type=file]").set_input_files(str(tmp_path / name))
                page.locator("#faces-run").click()
                toast = page.locator(".toast-body", has_text=message)
                toast.first.wait_for(timeout=60_000)
                assert "Traceback" not in toast.first.inner_text()
        finally:
            browser.close()



def test_sketch_takes_strokes_drawn_in_the_page(tmp_path, tiny_colorizer):
    """The hint editor shows the sketch; strokes drawn on it paint the regions they touch."""
    from restore.apps.handlers import Handlers
    from restore.apps.runtime import Runtime

    h = Handlers(Runtime("cpu", models=[tiny_colorizer]))
    d = EXAMPLES / "sketch"
    value = h.sketch_canvas(str(d / "monkey_lineart.png"), "none")
    sketch = value["background"][..., 0].astype(np.float32) / 255
    ys, xs = np.nonzero(sketch > 0.9)
    y, x = ys[len(ys) // 2], xs[len(xs) // 2]  # a paper pixel inside some region
    layer = np.zeros((*sketch.shape, 4), np.uint8)
    layer[y, x] = (20, 200, 60, 255)
    out = h.sketch(str(d / "monkey_lineart.png"), "none", str(d / "monkey.png"), None, str(tiny_colorizer),
                   {**value, "layers": [layer]})
    result, colours, status = out[0], out[4], out[3]
    assert "1 px of drawn strokes" in status and np.array_equal(colours[y, x], [20, 200, 60])
    assert result.shape == (*sketch.shape, 3) and h.sketch_canvas(None, "none") is None


def test_sketch_colours_choice_is_the_cli_regions():
    """The Sketch tab's "Colours" choice is ``restore sketch --regions``: "on" gives each region
    one colour, "off" the network's own colours, as ``Colorizer.layers(one_per_region=...)``; with
    the registration off (the line art's own colours would otherwise be laid over it)."""
    from restore.apps.handlers import Handlers
    from restore.apps.runtime import Runtime
    from restore.sketch.colorizer import Colorizer, read_rgb, read_sketch

    h = Handlers(Runtime("cpu"))
    d = EXAMPLES / "sketch"
    args = (str(d / "monkey_lineart.png"), "none", str(d / "monkey.png"), None, "colorizer", None)
    sketch, ref = read_sketch(d / "monkey_lineart.png"), read_rgb(d / "monkey.png")
    direct = Colorizer("colorizer")  # the bundled model: a blank tiny one paints paper either way
    want = {r: direct.layers(sketch, ref, one_per_region=one, align=False)[1].astype(float)
            for r, one in (("on", True), ("off", False))}
    for regions, other in (("on", "off"), ("off", "on")):  # the app's runtime differs by a few grey levels
        colours = h.sketch(*args, regions, False)[4].astype(float)
        assert np.abs(colours - want[regions]).mean() < 0.3 * np.abs(colours - want[other]).mean(), regions
