"""The Faces tab's Real-ESRGAN background (``realesrgan``, and ``auto`` when upscaling): through the
handler, with a tiny upscaler standing in for the cache's Real-ESRGAN weights. The upscaler is
loaded once and shared by every request (and with the Upscale tab); without the weights, a
one-line message says how to get them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gan.nets.restorer import Restorer
from gan.nets.rrdb import PRESETS, RRDBNet
from gan.presets import PIX2PIX_PRESETS
from gan.serialize import save_model
from restore.faces import background
from restore.imageio import read_image
from restore.imagewrite import write_png

gr = pytest.importorskip("gradio")

from restore.apps.handlers import Handlers
from restore.apps.runtime import Runtime


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    """(a tiny restorer for the faces, a tiny x4 RRDBNet for the background)."""
    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    faces = save_model(Restorer(PIX2PIX_PRESETS["tiny-restorer"]), d / "tiny_faces.safetensors",
                       {"task": "translate"})
    up = save_model(RRDBNet(PRESETS["tiny"]).eval(), d / "tiny_up.safetensors", {"task": "upscale"})
    return faces, up


@pytest.fixture
def app(files, tmp_path, monkeypatch):
    """Handlers on the CPU, the tiny upscaler "in the cache", every Upscaler made counted."""
    import restore.upscale.upscaler as module

    monkeypatch.setenv("RESTORE_HOME", str(tmp_path / "cache"))
    made = []

    class Counted(module.Upscaler):
        def __init__(self, *args, **kw):
            made.append(args[0] if args else kw.get("weights"))
            super().__init__(*args, **kw)

    monkeypatch.setattr(module, "Upscaler", Counted)
    at_hand = {"up": str(files[1])}
    monkeypatch.setattr(background, "cached_upscaler", lambda upscale: at_hand["up"])
    h = Handlers(Runtime("cpu", models=[files[0]]))
    return h, made, at_hand


def _photo(tmp_path: Path) -> str:
    """No face in it: the result is the background's picture itself."""
    rng = np.random.default_rng(0)
    write_png(tmp_path / "wall.png", rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
    return str(tmp_path / "wall.png")


def _refused(fn, *args) -> str:
    with pytest.raises(gr.Error) as err:
        fn(*args)
    return err.value.message


def test_the_tab_offers_realesrgan_and_auto():
    import inspect

    from restore.apps import tabs

    src = inspect.getsource(tabs.faces_tab)
    assert '["auto", "restorer", "realesrgan", "resize", "none"], value="auto"' in src


def test_realesrgan_background_loaded_once_and_shared(app, files, tmp_path):
    from restore.upscale.upscaler import Upscaler

    h, made, _ = app
    photo = _photo(tmp_path)
    _, _, out, status, _ = h.faces([photo], "tiny_faces.safetensors", "mtcnn", 1.0, 2, "realesrgan")
    assert made == [str(files[1])]  # loaded once
    assert "background by Real-ESRGAN: tiny_up.safetensors, x4 network, outscale 2, tiles of 400 (pad 10)" in status
    assert str(files[1].parent) not in status  # the server's folder is not shown
    want = Upscaler(str(files[1]), scale=2, tile=400)(read_image(photo))  # as restore faces --bg realesrgan
    assert np.array_equal(read_image(out[0]), want)
    made.clear()
    # the second request (another outscale, auto choosing it) loads nothing again
    _, _, out, status, _ = h.faces([photo], "tiny_faces.safetensors", "mtcnn", 0.5, 4, "auto")
    assert made == [] and read_image(out[0]).shape == (80, 96, 3) and "outscale 4" not in status
    assert "background by Real-ESRGAN: tiny_up.safetensors, x4 network, tiles of 400" in status
    _, _, out, _, _ = h.faces([photo], "tiny_faces.safetensors", "mtcnn", 1.0, 2, "realesrgan")
    assert made == [] and np.array_equal(read_image(out[0]), want)
    # one network per model: the Upscale tab's is the same, and the cached restorer kept no upscaler
    assert h.rt.upscaler(str(files[1]), 400).model is h.rt.bg_upscaler(2).model and made == []
    assert h.rt.faces("tiny_faces.safetensors", "mtcnn").upscaler is None
    # auto without upscaling: the restorer's background, no upscaler
    _, _, out, status, _ = h.faces([photo], "tiny_faces.safetensors", "mtcnn", 1.0, 1, "auto")
    assert "background by the background restorer" in status and read_image(out[0]).shape == (20, 24, 3)


def test_without_the_weights_one_line_says_how(app, tmp_path):
    h, made, at_hand = app
    at_hand["up"] = None
    photo = _photo(tmp_path)
    message = _refused(h.faces, [photo], "tiny_faces.safetensors", "mtcnn", 1.0, 2, "realesrgan")
    assert "\n" not in message and "restore weights fetch realesrgan-x2plus" in message
    assert "realesrgan-x4plus" in message and made == []
    _, _, out, status, _ = h.faces([photo], "tiny_faces.safetensors", "mtcnn", 1.0, 2, "auto")  # auto: the restorer's
    assert "no Real-ESRGAN weights in the cache for a sharper one: restore weights fetch realesrgan-x2plus" in status
    assert read_image(out[0]).shape == (40, 48, 3) and made == []
