"""The Gradio app: faces, sketch, segment and translate in one page (``restore app``).

    from restore.apps.app import build_app, launch
    launch(host="127.0.0.1", port=7860)            # what `restore app` does
    demo = build_app(models=["runs/col/generator.safetensors"])   # an extra model in the selectors

Named API endpoints (``gradio_client``): /faces, /faces_video, /sketch, /segment, /translate (README).
One queue: every task runs in the same per-device pool of ``concurrency`` slots (one model run
already uses the whole GPU or every CPU core; more would only share them).
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import gradio as gr

from .handlers import Handlers
from .runtime import MAX_VIDEO_FRAMES, Runtime
from .tabs import EXAMPLES, faces_tab, segment_tab, sketch_tab, translate_tab

MAX_PIXELS = 50_000_000  # per uploaded image (a volume: all its slices); decoded size, not file size
MAX_FILE_SIZE = "50mb"
# System fonts: the default theme fetches Google Fonts, which an offline machine cannot reach.
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                          font_mono=["ui-monospace", "monospace"])


def build_app(device: str = "auto", precision: str = "auto", models: Iterable[str | Path] = (),
              max_pixels: int = MAX_PIXELS, concurrency: int = 1, backend: str = "torch",
              max_frames: int = MAX_VIDEO_FRAMES) -> gr.Blocks:
    """The app, not yet launched. ``device``: auto | cpu | cuda[:N]; ``precision``: auto (measured
    per task, see apps/runtime.py) or fp32 | bf16 | fp16; ``models``: extra .safetensors files
    offered in the selectors; ``concurrency``: requests run at once on the device; ``backend``:
    torch or onnxruntime (every tab's networks from their ONNX exports); ``max_frames``: the
    longest video the Faces tab takes."""
    rt = Runtime(device, precision, models, max_pixels, backend=backend, max_frames=max_frames)
    h = Handlers(rt)
    queue = {"concurrency_id": f"device-{rt.device}", "concurrency_limit": concurrency}
    with gr.Blocks(title="unet-restore", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"## unet-restore: U-Net image restoration\n{rt.describe()}", elem_id="runtime")
        with gr.Tabs():
            with gr.Tab("Faces", id="faces"):
                faces_tab(h, rt, queue)
            with gr.Tab("Sketch", id="sketch"):
                sketch_tab(h, rt, queue)
            with gr.Tab("Segment", id="segment"):
                segment_tab(h, rt, queue)
            with gr.Tab("Translate", id="translate"):
                translate_tab(h, rt, queue)
        with gr.Accordion("Models and licences", open=False):
            gr.Markdown(rt.licence_table())
    demo.queue(default_concurrency_limit=concurrency)
    return demo


def launch(host: str = "127.0.0.1", port: int = 7860, share: bool = False, *, max_file_size: str | int = MAX_FILE_SIZE,
           quiet: bool = False, **build) -> None:
    """Build the app and serve it (blocks until interrupted). Loopback unless ``host`` says
    otherwise; ``share`` asks gradio for a public link (needs internet). Uploads larger than
    ``max_file_size`` are refused by gradio before they reach a handler."""
    demo = build_app(**build)
    demo.launch(server_name=host, server_port=port, share=share, max_file_size=max_file_size, quiet=quiet,
                ssr_mode=False, allowed_paths=[str(EXAMPLES)], theme=THEME, footer_links=["api"])
