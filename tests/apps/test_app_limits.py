"""The app facing a network (issue 35): a queue per task and a bound on the waiting ones, a time
budget per request, the page cap, and messages that name nothing of the server.

The queue and budget tests serve an app built in this process on loopback, its segmenter and
translator replaced by stand-ins whose speed the uploaded image chooses (so no model is loaded
and a "slow" request is exactly as slow as the test needs); the rest call the handlers directly.
"""
from __future__ import annotations

import argparse
import inspect
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restore import budget
from restore.apps.runtime import Runtime
from tests.apps.conftest import _free_port

pytestmark = pytest.mark.slow
pytest.importorskip("gradio_client")
import gradio as gr
from gradio_client import handle_file
from gradio_client.utils import Status

BLOCK, SLOW, FAST = 0, 1, 2  # the stand-in segmenter reads the upload's first pixel: what to do
BUDGET_S = 0.5
STARTED, RELEASE = threading.Event(), threading.Event()
SEGMENT = ("nuclei", 512, "none", False, 0, False, False)  # model, tile, diameter, instances, min size, holes, CRF


class _Segmenter:
    """Stands in for Segmenter: BLOCK waits for RELEASE without a budget check (the budget is
    cooperative), SLOW works in 20 ms steps with a check between them, FAST returns at once."""
    num_classes, path = 2, "stand-in.safetensors"

    def with_options(self, **_) -> _Segmenter:
        return self

    def __call__(self, image: np.ndarray, **_) -> np.ndarray:
        mode = int(image.flat[0])
        if mode == BLOCK:
            STARTED.set()
            RELEASE.wait(60)
        elif mode == SLOW:
            for _ in range(3000):  # a minute, unless the budget stops it
                budget.check()
                time.sleep(0.02)
        return np.ones(image.shape, np.uint8)  # grey uploads only: labels of the same shape


class _Translator:
    path = "stand-in.safetensors"

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return rgb


class _Runtime(Runtime):
    def segmenter(self, weights: str) -> _Segmenter:
        return _Segmenter()

    def translator(self, weights: str) -> _Translator:
        return _Translator()


def _refused(fn, *args) -> str:
    """The message of the gr.Error that ``fn(*args)`` raises (str() of one is its repr)."""
    with pytest.raises(gr.Error) as err:
        fn(*args)
    return err.value.message


def _png(path: Path, value: int) -> Path:
    Image.fromarray(np.full((16, 16), value, np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def local():
    """The app (concurrency 1, at most one request waiting, a 0.5 s budget) on a free loopback
    port of this process, and its client."""
    from gradio_client import Client
    from restore.apps import app

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(app, "Runtime", _Runtime)
        demo = app.build_app("cpu", max_seconds=BUDGET_S, max_queue=1)
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False)
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        RELEASE.set()
        demo.close()


def test_a_slow_task_holds_up_no_other_and_a_flood_is_refused(local, tmp_path):
    """A segmentation that never ends holds its own queue only: a translation behind it runs at
    once. With one request waiting (max_queue=1) the next, of any task, is refused, not queued."""
    STARTED.clear()
    RELEASE.clear()
    block, fast = _png(tmp_path / "block.png", BLOCK), _png(tmp_path / "fast.png", FAST)
    first = local.submit(handle_file(block), *SEGMENT, api_name="/segment")
    assert STARTED.wait(30)
    translated = local.submit(handle_file(fast), "restorer", None, api_name="/translate")
    _, file, _ = translated.result(timeout=15)  # one queue for both: it would wait for RELEASE
    assert Path(file).name == "fast_stand-in.png"
    assert not first.done()  # still running: the translation did not wait for it
    second = local.submit(handle_file(block), *SEGMENT, api_name="/segment")
    deadline = time.monotonic() + 30
    while second.status().code != Status.IN_QUEUE:  # behind the first, in the segment queue
        assert time.monotonic() < deadline and not second.done()
        time.sleep(0.05)
    with pytest.raises(Exception, match="Queue is full"):
        local.predict(handle_file(fast), "restorer", None, api_name="/translate")
    RELEASE.set()
    assert first.result(timeout=30)[3].startswith("stand-in.safetensors: 16x16 px")
    assert second.result(timeout=30)[3].startswith("stand-in.safetensors: 16x16 px")


def test_a_request_over_its_budget_stops_with_a_message_and_frees_its_slot(local, tmp_path):
    slow, fast = _png(tmp_path / "slow.png", SLOW), _png(tmp_path / "fast.png", FAST)
    t0 = time.monotonic()
    with pytest.raises(Exception, match=r"^stopped: the segmentation took longer than the 0\.5 s this server "
                                        r"allows \(a smaller image") as err:
        local.predict(handle_file(slow), *SEGMENT, api_name="/segment")
    assert time.monotonic() - t0 < 10 and "\n" not in str(err.value)  # not the minute it would take
    t0 = time.monotonic()  # the segment queue's one slot is free again
    assert local.predict(handle_file(fast), *SEGMENT, api_name="/segment")[3].startswith("stand-in")
    assert time.monotonic() - t0 < 10


def test_the_real_segmenter_stops_within_its_budget(tmp_path):
    """The bundled model over a volume: the budget's check between slices ends it (model loading
    counts too: the budget is the whole request's)."""
    import tifffile
    from restore.apps.handlers import Handlers

    rng = np.random.default_rng(0)
    tifffile.imwrite(tmp_path / "stack.tif", rng.integers(0, 255, (200, 128, 128), dtype=np.uint8))
    h = Handlers(Runtime("cpu", max_seconds=0.3))
    t0 = time.monotonic()
    message = _refused(h.segment, str(tmp_path / "stack.tif"), *SEGMENT)
    assert message.startswith("stopped: the segmentation took longer than the 0.3 s"), message
    assert time.monotonic() - t0 < 30


def test_a_volume_with_too_many_pages_is_refused(tmp_path):
    """The page cap (restore app --max-pages, 1000 by default) reaches read_volume: 1001 pages of
    16x16 are refused in one line; a volume under the cap is read."""
    import tifffile
    from restore.apps.handlers import Handlers

    tifffile.imwrite(tmp_path / "pages.tif", np.zeros((1001, 16, 16), np.uint8))
    h = Handlers(_Runtime("cpu"))
    assert h.rt.max_pages == 1000
    message = _refused(h.segment, str(tmp_path / "pages.tif"), *SEGMENT)
    assert message.startswith("pages.tif: too many pages") and "/" not in message, message
    tifffile.imwrite(tmp_path / "few.tif", np.full((5, 16, 16), FAST, np.uint8), photometric="minisblack")
    assert "5 slices" in h.segment(str(tmp_path / "few.tif"), *SEGMENT)[3]


# --------------------------------------------------------------------------- nothing of the server shown
def test_public_cuts_server_paths_to_file_names():
    from restore.apps.errors import public

    upload = "/tmp/gradio/0a1b/my photo.png"  # gradio's cache: the visitor's name may hold spaces
    assert public(f"{upload} is not an image-to-image generator", [upload]) == \
        "my photo.png is not an image-to-image generator"
    assert public("[Errno 2] No such file or directory: '/tmp/gradio/0a1b/x.png'") == \
        "[Errno 2] No such file or directory: 'x.png'"
    assert public("model: GFP-GAN from /home/u/.cache/restore/GFPGANv1.4.pth; faces found by MTCNN") == \
        "model: GFP-GAN from GFPGANv1.4.pth; faces found by MTCNN"
    kept = "3.0 frames/s, 1/2 of a/b, https://github.com/org/repo"  # not paths of this machine
    assert public(kept) == kept


def test_faces_output_names_never_collide():
    from restore.apps.handlers import _output_name

    taken: set[str] = set()
    names = [_output_name(n, "_restored.png", taken) for n in ("a.png", "a.jpg", "a.png", "b", "b")]
    assert names == ["a_restored.png", "a_jpg_restored.png", "a_png_restored.png", "b_restored.png",
                     "b_file_2_restored.png"]


def test_messages_name_the_visitors_file_not_the_server(tmp_path, monkeypatch):
    """A missing upload (gradio's cache cleaned under it), a missing generator file (an OSError,
    whose text holds the full path) and a bug whose message holds a path: each message names
    the visitor's file and no folder of the server."""
    from restore.apps import handlers

    h = handlers.Handlers(_Runtime("cpu"))
    image = str(_png(tmp_path / "photo.png", FAST))
    gone = _refused(h.translate, str(tmp_path / "gone.png"), "restorer", None)
    assert gone == "gone.png: no such file"
    oserror = _refused(h.translate, image, "restorer", str(tmp_path / "gone.safetensors"))
    assert oserror == "[Errno 2] No such file or directory: 'gone.safetensors'"

    def broken(path, *_, **__):
        raise RuntimeError(f"cannot write {path}")

    monkeypatch.setattr(handlers, "write_png", broken)
    bug = _refused(h.translate, image, "restorer", None)
    assert bug == "unexpected error (RuntimeError): cannot write photo_stand-in.png"


# --------------------------------------------------------------------------- the command
def test_the_command_passes_its_caps_to_the_app(monkeypatch):
    """`restore app`'s defaults are build_app's, and each cap reaches it."""
    from restore.apps import app

    from restore import serve

    seen: dict = {}
    monkeypatch.setattr(app, "launch", lambda *a, **kw: seen.update(kw))
    parser = serve.add_parser(argparse.ArgumentParser().add_subparsers())
    serve.run(parser.parse_args([]))
    defaults = inspect.signature(app.build_app).parameters
    for name in ("concurrency", "max_pixels", "max_frames", "max_pages", "max_seconds", "max_queue"):
        assert seen[name] == defaults[name].default, name
    serve.run(parser.parse_args(["--max-pages", "5", "--max-seconds", "0", "--max-queue", "3"]))
    assert (seen["max_pages"], seen["max_seconds"], seen["max_queue"]) == (5, 0, 3)


def test_an_uploaded_generator_writes_nothing_on_the_server(tmp_path, monkeypatch):
    """With the onnxruntime backend, an uploaded generator still runs by torch: exporting it would
    write a file of the visitor's into the server's weights cache on every new upload."""
    pytest.importorskip("onnxruntime")
    from gan.nets.restorer import PRESETS, Restorer
    from gan.serialize import save_model
    from restore.apps.handlers import Handlers

    monkeypatch.setenv("RESTORE_HOME", str(tmp_path / "cache"))
    upload = tmp_path / "upload" / "mine.safetensors"
    upload.parent.mkdir()
    save_model(Restorer(PRESETS["tiny"]), upload, {"task": "translate"})
    h = Handlers(Runtime("cpu", backend="onnxruntime"))
    _, result, summary = h.translate(str(_png(tmp_path / "photo.png", FAST)), None, str(upload))
    assert Path(result).is_file() and "runs by torch" in summary
    cache = tmp_path / "cache"
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*"))
