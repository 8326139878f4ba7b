"""The four tabs: inputs, options, outputs and one-click examples; each button calls one handler.

Uploads are ``gr.File`` (not ``gr.Image``) so that ``restore.imageio`` decodes them: TIFF,
16-bit and EXIF orientation as the CLI reads them, and a bad file gets its one-line reason.
"""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from restore.formats import IMAGE_EXTS, VIDEO_EXTENSIONS

from .handlers import AREA_HEADERS, Handlers
from .runtime import Runtime
from .segment_volumes import VOLUME_TYPES, volume_cap

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
IMAGE_TYPES = sorted(IMAGE_EXTS)
VIDEO_TYPES = sorted(VIDEO_EXTENSIONS)


def _examples(*examples: tuple[str, list]) -> dict[str, list]:
    """label -> example row, for the rows whose files are all here (they ship with a checkout)."""
    def ok(v) -> bool:
        return all(map(ok, v)) if isinstance(v, list) else not isinstance(v, Path) or v.is_file()

    def plain(v):
        return [plain(x) for x in v] if isinstance(v, list) else str(v) if isinstance(v, Path) else v

    return {label: plain(row) for label, row in examples if ok(row)}


def _wire(button: gr.Button, examples: dict[str, list], example_inputs: list, fn, inputs: list, outputs: list,
          api_name: str, queue: dict) -> None:
    """The button is the named API endpoint; clicking an example fills its inputs and runs
    the same handler, in the same queue (the task's own: apps/app.py)."""
    button.click(fn, inputs, outputs, api_name=api_name, **queue)
    if examples:
        ex = gr.Examples(list(examples.values()), example_inputs, example_labels=list(examples), examples_per_page=8)
        ex.load_input_event.then(fn, inputs, outputs, api_visibility="private", **queue)


def _choice(choices: list[tuple[str, str]], preferred: str) -> str | None:
    values = [v for _, v in choices]
    return preferred if preferred in values else (values[0] if values else None)


def faces_tab(h: Handlers, rt: Runtime, queue: dict, video_queue: dict) -> None:
    """Photos in ``queue``, films (the accordion) in ``video_queue``: a film must not hold up a photo."""
    with gr.Row():
        with gr.Column(scale=2):
            photos = gr.File(label="Photo(s)", file_count="multiple", file_types=IMAGE_TYPES, elem_id="faces-photos")
            auto = ("auto: GFP-GAN when fetched, else restorer", "auto")
            weights = gr.Dropdown([auto] + rt.choices("faces"), value="auto", label="Face model")
            detector = gr.Radio(["auto", "retinaface", "mtcnn"], value="auto", label="Face detector",
                                info="auto: RetinaFace when fetched, else MTCNN")
            fidelity = gr.Slider(0, 1, value=1.0, step=0.05, label="Fidelity",
                                 info="1: fully restored faces; 0: the input's")
            upscale = gr.Radio([1, 2, 4], value=1, label="Upscale")
            background = gr.Radio(["auto", "restorer", "realesrgan", "resize", "none"], value="auto", label="Background",
                                  info="restorer: the bundled restorer; realesrgan: Real-ESRGAN's upscaler, as GFP-GAN's "
                                       "(restore weights fetch realesrgan-x2plus or -x4plus); auto: realesrgan when "
                                       "upscaling and fetched, else restorer; none: the input's own pixels")
            min_identity = gr.Slider(0, 1, value=0, step=0.05, label="Identity guard",
                                     info="a face whose identity (cosine of the input's and the result's face "
                                          "embeddings) falls under this is blended back toward the input; 0: off")
            colour = gr.Radio(["auto", "keep", "wavelet", "model"], value="auto", label="Colours",
                              info="keep: the faces keep the photo's colours (auto: for GFP-GAN and the other "
                                   "face priors); wavelet: its lightness too; model: the network's own")
            button = gr.Button("Restore faces", variant="primary", elem_id="faces-run")
        with gr.Column(scale=3):
            slider = gr.ImageSlider(label="Before / after", type="numpy", format="png")
            crops = gr.Gallery(label="Faces, aligned: input | restored", format="png", columns=2, height="auto")
            files = gr.File(label="Restored photos (PNG)", file_count="multiple")
            status = gr.Markdown(elem_id="faces-status")
            table = gr.Dataframe(label="Faces (click a column to sort: identity, NIQE, BRISQUE)", interactive=False)
    d = EXAMPLES / "faces"
    examples = _examples(("astronaut", [[d / "astronaut_degraded.jpg"]]),
                         ("two faces, small", [[d / "two_faces_small.jpg"]]),
                         ("old grey portrait", [[d / "hopper_old_grey.png"]]))
    _wire(button, examples, [photos], h.faces,
          [photos, weights, detector, fidelity, upscale, background, min_identity, colour],
          [slider, crops, files, status, table], "faces", queue)
    with gr.Accordion("Video: the faces of a film, tracked and steadied, its sound kept", open=False):
        with gr.Row():
            with gr.Column(scale=2):
                video = gr.File(label="Video", file_types=VIDEO_TYPES, elem_id="faces-video")
                temporal = gr.Slider(0.05, 1, value=0.35, step=0.05, label="Temporal weight",
                                     info="each frame's restored face against its track's earlier ones; 1: frame "
                                          "by frame (flickers)")
                run_video = gr.Button("Restore the video's faces", variant="primary", elem_id="faces-video-run")
                gr.Markdown("Uses the face model and options above.")
            with gr.Column(scale=3):
                restored = gr.Video(label="Restored video (H.264)", elem_id="faces-video-out")
                video_status = gr.Markdown(elem_id="faces-video-status")
    run_video.click(h.faces_video, [video, weights, detector, fidelity, upscale, background, temporal],
                    [restored, video_status], api_name="faces_video", **video_queue)


def sketch_tab(h: Handlers, rt: Runtime, queue: dict) -> None:
    with gr.Row():
        with gr.Column(scale=2):
            image = gr.File(label="Sketch, or a colour image to extract one from", file_types=IMAGE_TYPES)
            extract = gr.Radio([("as is: it is a sketch", "none"), ("XDoG", "xdog"),
                                ("edges of flat colours", "threshold"), ("HED (learned)", "hed")],
                               value="none", label="Sketch extraction")
            style = gr.File(label="Style reference (colours and style to use)", file_types=IMAGE_TYPES)
            with gr.Accordion("Colour hints (optional): each region a stroke touches takes its colour", open=False):
                drawn = gr.ImageEditor(label="Draw strokes on the sketch", type="numpy", image_mode="RGBA",
                                       sources=(), layers=False, elem_id="sketch-hints-editor",
                                       brush=gr.Brush(colors=["#e53935", "#fdd835", "#43a047", "#1e88e5",
                                                              "#8e24aa", "#fb8c00", "#6d4c41", "#ffffff"],
                                                      color_mode="defaults", default_size=6))
                hints = gr.File(label="or an RGBA PNG: its opaque pixels are the colours wanted there "
                                      "(or strokes on white)", file_types=IMAGE_TYPES, height=140)
            regions = gr.Radio([("auto: one per region when the reference is flat colour", "auto"),
                                ("one per region", "on"), ("as painted, with shading", "off")],
                               value="auto", label="Colours", elem_id="sketch-regions")
            align = gr.Checkbox(True, label="Lay the reference over the sketch when it shows the same figure "
                                            "(turned, mirrored, moved, rescaled or warped)", elem_id="sketch-align")
            choices = rt.choices("sketch")
            weights = gr.Dropdown(choices, value=_choice(choices, "colorizer"), label="Colorizer",
                                  info=None if choices else "no colorizer here yet (scripts/train_colorizer.sh)")
            button = gr.Button("Colour", variant="primary")
        with gr.Column(scale=3):
            result = gr.Image(label="Result", format="png")
            with gr.Row():
                colours = gr.Image(label="Colours (no lines)", format="png", elem_id="sketch-flat")
                lines = gr.Image(label="Lines (on transparency)", format="png", image_mode="RGBA",
                                 elem_id="sketch-lines")
            compare = gr.Image(label="Sketch | reference | result", format="png")
            file = gr.File(label="Download: result, colours, lines (PNG)", file_count="multiple")
            status = gr.Markdown(elem_id="sketch-status")
    for source in (image, extract):  # the editor shows the sketch that will be coloured
        source.change(h.sketch_canvas, [image, extract], drawn, api_visibility="private", **queue)
    d = EXAMPLES / "sketch"
    examples = _examples(("line art + its colours", [d / "monkey_lineart.png", "none", d / "monkey.png"]),
                         ("dog (XDoG) in ladybug colours", [d / "dog.png", "xdog", d / "ladybug.png"]),
                         ("monkey (edges) in dog colours", [d / "monkey.png", "threshold", d / "dog.png"]))
    _wire(button, examples, [image, extract, style], h.sketch,
          [image, extract, style, hints, weights, drawn, regions, align],
          [result, compare, file, status, colours, lines], "sketch", queue)


def segment_tab(h: Handlers, rt: Runtime, queue: dict) -> None:
    with gr.Row():
        with gr.Column(scale=2):
            file = gr.File(label="Image, TIFF (a multi-page TIFF is a volume), NIfTI (.nii, .nii.gz) or zipped "
                                 "OME-Zarr (.ome.zarr.zip, .ozx)", file_types=IMAGE_TYPES + VOLUME_TYPES,
                           elem_id="segment-file")
            choices = rt.choices("segment")
            weights = gr.Dropdown(choices, value=_choice(choices, "nuclei"), label="Model")
            tile = gr.Radio([256, 512, 1024], value=512, label="Tile (px)", info="overlap-tile inference")
            diameter = gr.Textbox("auto", label="Object diameter (px)",
                                  info="'auto' measures it and rescales; 'none' uses the image as it is")
            with gr.Row():
                instances = gr.Checkbox(True, label="Split touching objects")
                fill_holes = gr.Checkbox(False, label="Fill holes")
                crf = gr.Checkbox(False, label="Dense-CRF refinement")
            min_size = gr.Number(16, precision=0, minimum=0, label="Remove objects smaller than (px)")
            gr.Markdown(f"NIfTI and OME-Zarr volumes up to {volume_cap(rt) / 2**20:,.0f} MiB of voxels, segmented "
                        "block by block; their mask comes in their own format.")
            button = gr.Button("Segment", variant="primary")
        with gr.Column(scale=3):
            shown = gr.Image(label="Overlay (a volume: its middle plane)", format="png")
            mask = gr.File(label="Mask (PNG; TIFF for a TIFF volume; NIfTI or zipped OME-Zarr as uploaded)")
            table = gr.Dataframe(headers=AREA_HEADERS, label="Areas", interactive=False)
            status = gr.Markdown(elem_id="segment-status")
    d = EXAMPLES / "nuclei"
    examples = _examples(("DSB2018 nuclei", [d / "dsb2018_heldout.png"]),
                         ("cells3d slice (16-bit)", [d / "cells3d_z34_heldout.png"]),
                         ("scratch assay (unseen)", [d / "scratch_assay_unseen.png"]),
                         ("neuron nucleus (unseen)", [d / "neuron_dapi_unseen.png"]))
    _wire(button, examples, [file], h.segment, [file, weights, tile, diameter, instances, min_size, fill_holes, crf],
          [shown, mask, table, status], "segment", queue)


def translate_tab(h: Handlers, rt: Runtime, queue: dict) -> None:
    with gr.Row():
        with gr.Column(scale=2):
            image = gr.File(label="Image", file_types=IMAGE_TYPES)
            choices = rt.choices("translate")
            weights = gr.Dropdown(choices, value=_choice(choices, "restorer"), label="Generator")
            generator = gr.File(label="...or your own generator file (restore train pix2pix: generator.safetensors)",
                                file_types=[".safetensors"], height=140)
            button = gr.Button("Translate", variant="primary")
        with gr.Column(scale=3):
            slider = gr.ImageSlider(label="Before / after", type="numpy", format="png")
            file = gr.File(label="Download (PNG)")
            status = gr.Markdown(elem_id="translate-status")
    d = EXAMPLES / "faces"
    examples = _examples(("two faces, small", [d / "two_faces_small.jpg"]),
                         ("astronaut", [d / "astronaut_degraded.jpg"]))
    _wire(button, examples, [image], h.translate, [image, weights, generator],
          [slider, file, status], "translate", queue)


def upscale_tab(h: Handlers, rt: Runtime, queue: dict) -> None:
    """``restore upscale`` in the page: Real-ESRGAN's networks that are here, and ``--model`` files."""
    from restore.models.manifest import manifest
    from restore.upscale.upscaler import DENOISE_TWINS

    choices = rt.choices("upscale")
    denoisable = [v for _, v in choices if DENOISE_TWINS.get(v) in manifest()]
    with gr.Row():
        with gr.Column(scale=2):
            image = gr.File(label="Picture (grey, alpha and 16 bits are kept)", file_types=IMAGE_TYPES,
                            elem_id="upscale-image")
            weights = gr.Dropdown(choices, value=_choice(choices, "realesrgan-x4plus"), label="Upscaler",
                                  info=None if choices else "none here yet: restore weights fetch realesrgan-x4plus")
            scale = gr.Slider(0, 8, value=0, step=0.5, label="Scale",
                              info="0: the network's own (4 for x4plus); any other: the result resized by Lanczos, "
                                   "as Real-ESRGAN's --outscale")
            tile = gr.Radio([("whole picture", 0), ("200", 200), ("400", 400), ("800", 800)], value=400, label="Tile (px)",
                            info="smaller tiles: less memory, the same picture up to the tiles' seams")
            denoise = gr.Slider(0, 1, value=0.5, step=0.05, label="Denoise", visible=bool(denoisable),
                                info=f"{', '.join(denoisable)} only: 0 keeps the noise, 1 removes the most")
            faces = gr.Checkbox(False, label="Restore faces too",
                                info="the faces restored by the Faces tab's default model and pasted back "
                                     "(restore upscale --face-enhance)")
            gr.Markdown(f"Results up to {rt.max_output_pixels / 1e6:g} megapixels (width x height x scale²).")
            button = gr.Button("Upscale", variant="primary", elem_id="upscale-run")
        with gr.Column(scale=3):
            slider = gr.ImageSlider(label="Before (Lanczos) / after", type="numpy", format="png")
            file = gr.File(label="Download (PNG)")
            status = gr.Markdown(elem_id="upscale-status")
    d = EXAMPLES / "faces"
    examples = _examples(("two faces, small", [d / "two_faces_small.jpg"])) if choices else {}
    _wire(button, examples, [image], h.upscale, [image, weights, scale, tile, denoise, faces], [slider, file, status],
          "upscale", queue)
