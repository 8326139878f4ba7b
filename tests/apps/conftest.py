"""The app's test server, shared by the test files of this folder: `restore app` in a
subprocess on loopback (one for the package), and its gradio_client."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from gan.nets.colorizer import Colorizer
from gan.presets import COLORIZER_PRESETS
from gan.serialize import save_model
from restore.models.manifest import WEIGHTS_DIR, manifest
from tests import ROOT

EXAMPLES = ROOT / "examples"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
MAX_PIXELS = 4_000_000  # the test server's caps, low so that oversized files are small to make
MAX_FILE_SIZE = 1 << 20
MAX_FRAMES = 24  # the longest video the test server takes
TABS = {"Faces": "faces", "Sketch": "sketch", "Segment": "segment", "Translate": "translate"}
FIRST_EXAMPLE = {"faces": "astronaut", "sketch": "dog (XDoG) in ladybug colours", "segment": "DSB2018 nuclei",
                 "translate": "two faces, small"}
DONE = {"faces": "face(s) restored", "sketch": "coloured by", "segment": "nuclei.safetensors:",
        "translate": "restorer:"}  # in each tab's summary once its example has run (not in its progress text)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bundled_colorizer() -> bool:
    e = manifest().get("colorizer")
    return e is not None and (WEIGHTS_DIR / e["file"]).is_file()


@pytest.fixture(scope="package")
def tiny_colorizer(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "tiny_colorizer.safetensors"
    return save_model(Colorizer(COLORIZER_PRESETS["tiny"]), path, {"task": "colorization"})


@pytest.fixture(scope="package")
def server(tmp_path_factory, tiny_colorizer):
    """`restore app` on 127.0.0.1 and a free port, with an empty weights cache (so the faces run
    on the bundled restorer) and a tiny colorizer offered beside the bundled one."""
    tmp = tmp_path_factory.mktemp("app")
    port = _free_port()
    log = (tmp / "app.log").open("w")
    env = {**os.environ, "RESTORE_HOME": str(tmp / "cache"), "GRADIO_ANALYTICS_ENABLED": "False",
           "GRADIO_TEMP_DIR": str(tmp / "gradio")}
    cmd = [sys.executable, "-m", "restore", "app", "--port", str(port), "--max-file-size", str(MAX_FILE_SIZE),
           "--max-pixels", str(MAX_PIXELS), "--max-video-frames", str(MAX_FRAMES), "--model", str(tiny_colorizer)]
    proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            pytest.fail(f"restore app exited with {proc.returncode}:\n{(tmp / 'app.log').read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"restore app did not answer in 180 s:\n{(tmp / 'app.log').read_text()[-3000:]}")
        time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="package")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)


def rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 100.0 if mse == 0 else 10 * np.log10(255**2 / mse)
