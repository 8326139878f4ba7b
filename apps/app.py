"""The Gradio app: faces, sketch, segment, translate and upscale in one page (``restore app``).

    from restore.apps.app import build_app, launch
    launch(host="127.0.0.1", port=7860)            # what `restore app` does
    demo = build_app(models=["runs/col/generator.safetensors"])   # an extra model in the selectors

Named API endpoints (``gradio_client``): /faces, /faces_video, /sketch, /segment, /translate, /upscale (README).
A queue per task (QUEUES), each of ``concurrency`` slots: one model run already uses the whole GPU
or every CPU core, so more slots per task would only share them, but a long segmentation must not
hold up a translation behind it (issue 35). At most ``max_queue`` requests wait, over all the
queues; the next one is refused with gradio's "Queue is full" instead of waiting for hours. Each
request runs inside a time budget of ``max_seconds`` (apps/errors.py, restore/budget.py).
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import gradio as gr

from .handlers import Handlers
from .runtime import MAX_OUTPUT_PIXELS, MAX_SECONDS, MAX_VIDEO_FRAMES, MAX_VOLUME_PAGES, Runtime
from .tabs import EXAMPLES, faces_tab, segment_tab, sketch_tab, translate_tab, upscale_tab

MAX_PIXELS = 50_000_000  # per uploaded image (a volume: all its slices); decoded size, not file size
MAX_FILE_SIZE = "50mb"
MAX_QUEUE = 20  # requests waiting, all tasks together (those running are not counted)
QUEUES = ("faces", "faces_video", "sketch", "segment", "translate", "upscale")  # one concurrency group each
# System fonts: the default theme fetches Google Fonts, which an offline machine cannot reach.
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                          font_mono=["ui-monospace", "monospace"])


def build_app(device: str = "auto", precision: str = "auto", models: Iterable[str | Path] = (),
              max_pixels: int = MAX_PIXELS, concurrency: int = 1, backend: str = "torch",
              max_frames: int = MAX_VIDEO_FRAMES, max_pages: int = MAX_VOLUME_PAGES,
              max_seconds: float = MAX_SECONDS, max_queue: int = MAX_QUEUE,
              max_output_pixels: int = MAX_OUTPUT_PIXELS) -> gr.Blocks:
    """The app, not yet launched. ``device``: auto | cpu | cuda[:N]; ``precision``: auto (measured
    per task, see apps/runtime.py) or fp32 | bf16 | fp16; ``models``: extra .safetensors files
    offered in the selectors; ``concurrency``: requests each task runs at once; ``backend``:
    torch or onnxruntime (every tab's networks from their ONNX exports); ``max_frames``: the
    longest video the Faces tab takes; ``max_pages``: the most pages of a TIFF volume;
    ``max_seconds``: each request's time budget (0: none); ``max_queue``: requests waiting, over
    all tasks, before the next is refused (0: no bound); ``max_output_pixels``: the largest result
    of the Upscale tab (width * height * scale^2), refused before any work."""
    if concurrency < 1 or max_queue < 0:
        raise ValueError("concurrency must be at least 1 and max_queue at least 0")
    rt = Runtime(device, precision, models, max_pixels, backend=backend, max_frames=max_frames,
                 max_pages=max_pages, max_seconds=max_seconds, max_output_pixels=max_output_pixels)
    h = Handlers(rt)
    queue = {task: {"concurrency_id": task, "concurrency_limit": concurrency} for task in QUEUES}
    with gr.Blocks(title="unet-restore", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"## unet-restore: U-Net image restoration\n{rt.describe()}", elem_id="runtime")
        with gr.Tabs():
            with gr.Tab("Faces", id="faces"):
                faces_tab(h, rt, queue["faces"], queue["faces_video"])
            with gr.Tab("Sketch", id="sketch"):
                sketch_tab(h, rt, queue["sketch"])
            with gr.Tab("Segment", id="segment"):
                segment_tab(h, rt, queue["segment"])
            with gr.Tab("Translate", id="translate"):
                translate_tab(h, rt, queue["translate"])
            with gr.Tab("Upscale", id="upscale"):
                upscale_tab(h, rt, queue["upscale"])
        with gr.Accordion("Models and licences", open=False):
            gr.Markdown(rt.licence_table())
    demo.queue(default_concurrency_limit=concurrency, max_size=max_queue or None)
    return demo


def launch(host: str = "127.0.0.1", port: int = 7860, share: bool = False, *, max_file_size: str | int = MAX_FILE_SIZE,
           quiet: bool = False, **build) -> None:
    """Build the app and serve it (blocks until interrupted). Loopback unless ``host`` says
    otherwise; ``share`` asks gradio for a public link (needs internet). Uploads larger than
    ``max_file_size`` are refused by gradio before they reach a handler."""
    demo = build_app(**build)
    demo.launch(server_name=host, server_port=port, share=share, max_file_size=max_file_size, quiet=quiet,
                ssr_mode=False, allowed_paths=[str(EXAMPLES)], theme=THEME, footer_links=["api"])
