"""The Upscale tab and its /upscale endpoint: a tiny random-weight upscaler given as an extra model
(``--model``), the result as ``restore upscale`` makes it (grey, alpha and 16 bits kept), the
output cap refusing before any work, the time budget; one call through an app served in this
process."""
from __future__ import annotations

import argparse
import inspect
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from gan.nets.rrdb import PRESETS, RRDBNet
from gan.serialize import save_model
from restore.imagewrite import write_png

pytestmark = pytest.mark.slow
gr = pytest.importorskip("gradio")

from restore.apps.handlers import Handlers
from restore.apps.runtime import Runtime


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "tiny_up.safetensors"
    return save_model(RRDBNet(PRESETS["tiny"]).eval(), path, {"task": "upscale"})


def _refused(fn, *args) -> str:
    with pytest.raises(gr.Error) as err:
        fn(*args)
    return err.value.message


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that declares ``width`` x ``height`` and holds one IDAT of a few bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_the_tab_upscales_as_the_command(tiny, tmp_path):
    """The tiny file is offered by name; its result equals the Upscaler's, named <stem>_out.png;
    scale 0 is the network's own, 2 resizes; RGBA and 16-bit pictures keep their alpha and depth."""
    from restore.imageio import read_alpha, read_image
    from restore.upscale.job import read_picture
    from restore.upscale.upscaler import Upscaler

    h = Handlers(Runtime("cpu", models=[tiny]))
    assert ("tiny_up.safetensors (your file)", "tiny_up.safetensors") in h.rt.choices("upscale")
    assert "tiny_up.safetensors" not in [v for _, v in h.rt.choices("translate")]
    rng = np.random.default_rng(0)
    write_png(tmp_path / "a.png", rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    (before, after), file, summary = h.upscale(str(tmp_path / "a.png"), "tiny_up.safetensors", 0, 0, 0.5)
    up = Upscaler(str(tiny))
    want = up(read_image(tmp_path / "a.png"))
    assert Path(file).name == "a_out.png" and np.array_equal(read_image(file), want)
    assert before.shape == after.shape == (48, 40, 3) and np.array_equal(after, want)
    assert summary.startswith("**a.png**: 10x12 -> 40x48 px in") and "x4 network" in summary
    assert str(tiny.parent) not in summary  # the server's folder is not shown
    _, file, summary = h.upscale(str(tmp_path / "a.png"), "tiny_up.safetensors", 2, 8, 0.5)
    assert read_image(file).shape == (24, 20, 3) and "outscale 2, tiles of 8" in summary
    rgba = np.concatenate([rng.integers(0, 65536, (6, 8, 3), dtype=np.uint16),
                           np.full((6, 8, 1), 65535, np.uint16)], axis=2)
    write_png(tmp_path / "b16.png", rgba)
    _, file, _ = h.upscale(str(tmp_path / "b16.png"), "tiny_up.safetensors", 0, 0, 0.5)
    got = read_image(file)
    assert got.dtype == np.uint16 and got.shape == (24, 32, 3) and read_alpha(file) is not None
    assert np.array_equal(got, up(read_picture(tmp_path / "b16.png"))[..., :3])


def test_the_output_cap_refuses_before_any_work(tiny, tmp_path, monkeypatch):
    """width * height * scale^2 over max_output_pixels is refused with one line naming the
    visitor's file, before the network runs (and, from the header, before decoding: a PNG that
    only declares 3000x3000 is refused for its result's size, not for its missing pixels)."""
    from restore.upscale.upscaler import Upscaler

    h = Handlers(Runtime("cpu", models=[tiny], max_output_pixels=10_000))
    ran = []
    monkeypatch.setattr(Upscaler, "_run", lambda *a: ran.append(1))
    write_png(tmp_path / "pic.png", np.zeros((40, 30, 3), np.uint8))  # 1200 px: 19200 at 4x, 4800 at 2x
    message = _refused(h.upscale, str(tmp_path / "pic.png"), "tiny_up.safetensors", 0, 0, 0.5)
    assert message == ("pic.png: at scale 4 the result would be 120x160 = 0.0 megapixels, over the 0.01 megapixels "
                       "this server makes: a smaller scale or picture fits"), message
    big = _png_header(tmp_path / "big.png", 3000, 3000)
    assert "big.png: at scale 4 the result would be 12000x12000 = 144.0 megapixels" in _refused(
        h.upscale, str(big), "tiny_up.safetensors", 0, 0, 0.5)
    assert not ran
    monkeypatch.undo()
    _, file, _ = h.upscale(str(tmp_path / "pic.png"), "tiny_up.safetensors", 2, 0, 0.5)  # 4800 px: under the cap
    assert Path(file).name == "pic_out.png"


def test_a_request_over_its_budget_and_bad_input_are_one_line(tiny, tmp_path):
    h = Handlers(Runtime("cpu", models=[tiny], max_seconds=1e-6))
    write_png(tmp_path / "pic.png", np.zeros((16, 16, 3), np.uint8))
    message = _refused(h.upscale, str(tmp_path / "pic.png"), "tiny_up.safetensors", 0, 8, 0.5)
    assert message.startswith("stopped: the upscaling took longer than the 1e-06 s"), message
    h = Handlers(Runtime("cpu", models=[tiny]))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    message = _refused(h.upscale, str(tmp_path / "bad.png"), "tiny_up.safetensors", 0, 0, 0.5)
    assert message.startswith("bad.png: ") and "\n" not in message and str(tmp_path) not in message, message
    assert _refused(h.upscale, None, "tiny_up.safetensors", 0, 0, 0.5) == "Upload a picture first."
    assert _refused(h.upscale, str(tmp_path / "pic.png"), None, 0, 0, 0.5).startswith("No upscaler here")


def test_denoise_levels_are_the_sliders_steps(tiny, tmp_path, monkeypatch):
    """Each denoise level is a network of its own in the cache: a request's level is rounded to
    the slider's 0.05 steps (at most 21 networks, whatever a visitor sends), and one outside 0..1
    is refused; a model without a twin ignores it."""
    import restore.models.manifest as manifest_module
    from restore.upscale import upscaler as upscaler_module
    from restore.upscale.upscaler import Upscaler

    h = Handlers(Runtime("cpu", models=[tiny]))
    write_png(tmp_path / "pic.png", np.zeros((8, 8, 3), np.uint8))
    up, asked = Upscaler(str(tiny)), []
    monkeypatch.setattr(h.rt, "upscaler", lambda weights, tile, denoise: asked.append(denoise) or up)
    h.upscale(str(tmp_path / "pic.png"), "tiny_up.safetensors", 0, 0, 0.333)
    assert asked == [None]  # no twin: no denoise
    monkeypatch.setitem(upscaler_module.DENOISE_TWINS, "tiny_up.safetensors", "tiny-twin")
    real = manifest_module.manifest()
    monkeypatch.setattr(manifest_module, "manifest", lambda: {**real, "tiny-twin": {}})
    h.upscale(str(tmp_path / "pic.png"), "tiny_up.safetensors", 0, 0, 0.333)
    assert asked == [None, 0.35]
    message = _refused(h.upscale, str(tmp_path / "pic.png"), "tiny_up.safetensors", 0, 0, 1.5)
    assert message == "The denoise level must be in 0..1."


def test_the_command_passes_the_output_cap(monkeypatch):
    from restore.apps import app

    from restore import serve

    seen: dict = {}
    monkeypatch.setattr(app, "launch", lambda *a, **kw: seen.update(kw))
    parser = serve.add_parser(argparse.ArgumentParser().add_subparsers())
    serve.run(parser.parse_args([]))
    assert seen["max_output_pixels"] == inspect.signature(app.build_app).parameters["max_output_pixels"].default
    serve.run(parser.parse_args(["--max-output-pixels", "1000"]))
    assert seen["max_output_pixels"] == 1000


def test_the_served_endpoint(tiny, tmp_path):
    """/upscale through an app served in this process, in its own queue."""
    pytest.importorskip("gradio_client")
    from gradio_client import Client, handle_file
    from restore.apps import app

    from restore.imageio import read_image
    from tests.apps.conftest import _free_port

    assert "upscale" in app.QUEUES
    demo = app.build_app("cpu", models=[tiny], max_output_pixels=5_000)
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        write_png(tmp_path / "small.png", np.full((10, 12, 3), 90, np.uint8))
        _, file, summary = client.predict(handle_file(tmp_path / "small.png"), "tiny_up.safetensors", 0, 0, 0.5,
                                          api_name="/upscale")
        assert read_image(file).shape == (40, 48, 3) and "10x12" not in summary and "12x10 -> 48x40" in summary
        write_png(tmp_path / "large.png", np.zeros((20, 20, 3), np.uint8))
        with pytest.raises(Exception, match=r"^large\.png: at scale 4 the result would be 80x80"):
            client.predict(handle_file(tmp_path / "large.png"), "tiny_up.safetensors", 0, 0, 0.5,
                           api_name="/upscale")
    finally:
        demo.close()


def test_restore_faces_too_is_the_commands_face_enhance(tiny, tmp_path):
    """The tab's "Restore faces too" is ``restore upscale --face-enhance`` with the server's
    networks: the same picture as ``FaceEnhancer`` (face parsing off, as the app runs on a CPU),
    and the summary names the face model; the upscaler's own picture differs."""
    from restore.imageio import read_image
    from restore.upscale.face_enhance import FaceEnhancer
    from tests import ROOT

    photo = ROOT / "examples" / "faces" / "two_faces_small.jpg"
    h = Handlers(Runtime("cpu", models=[tiny]))
    _, file, summary = h.upscale(str(photo), "tiny_up.safetensors", 2, 0, 0.5, True)
    want = FaceEnhancer(str(tiny), scale=2.0, parse=False)(read_image(photo))
    got = read_image(file)
    assert got.shape == want.shape and np.array_equal(got, want)
    assert "faces restored by" in summary and "found by" in summary
    _, plain, _ = h.upscale(str(photo), "tiny_up.safetensors", 2, 0, 0.5, False)
    assert not np.array_equal(read_image(plain), got)
