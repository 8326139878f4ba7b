"""What the app's buttons do: read the uploads, call a ``restore`` model, shape its outputs for the page.

Each handler is also a named API endpoint (see apps/app.py). A user's mistake (a corrupt or
oversized file, a missing model, a photo without faces, a request over its time budget) becomes a
message in the page (``gr.Error`` / ``gr.Warning``), never a traceback, and no message names a
folder of the server: only the file the visitor gave (apps/errors.py; the app may face a network).
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from itertools import chain, count
from pathlib import Path

import gradio as gr
import numpy as np

from gan.precision import autocast
from restore.colour import to_rgb8
from restore.formats import is_store
from restore.imageio import ImageError, is_volume, read_image, read_volume
from restore.imagewrite import write_png, write_tiff
from restore.notes import collect_notes

from .errors import handler, public
from .faces import caption as _caption
from .faces import row as _row
from .faces import shrink as _shrink
from .faces import table as _table
from .runtime import Runtime

OUTPUT_TTL_S = 3600  # result files are kept this long for their download links
AREA_HEADERS = ["class", "area (px)", "% of image", "objects"]
MAX_FACES_SHOWN = 12


def _name(path: str | Path) -> str:
    return Path(path).name  # gradio keeps the uploaded file's own name


def _output_name(name: str, tail: str, taken: set[str]) -> str:
    """``<stem><tail>`` for the upload ``name``, unless an earlier upload of the request took it:
    then with its extension (a.png, a.jpg -> a_restored.png, a_jpg_restored.png), then numbered."""
    p = Path(name)
    ext = p.suffix.lstrip(".").lower()
    tries = [f"{p.stem}{tail}"] + ([f"{p.stem}_{ext}{tail}"] if ext else [])
    numbered = (f"{p.stem}_{ext or 'file'}_{i}{tail}" for i in count(2))
    out = next(n for n in chain(tries, numbered) if n not in taken)
    taken.add(out)
    return out


class Handlers:
    """The four tasks, bound to one ``Runtime`` (device, precision, loaded models)."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.out_root = Path(tempfile.mkdtemp(prefix="restore-app-"))
        atexit.register(shutil.rmtree, self.out_root, ignore_errors=True)

    # ------------------------------------------------------------------ helpers
    def _outdir(self) -> Path:
        """A fresh folder for one request's files; those of requests over an hour old go."""
        now = time.time()
        for d in self.out_root.iterdir():
            if now - d.stat().st_mtime > OUTPUT_TTL_S:
                shutil.rmtree(d, ignore_errors=True)
        d = self.out_root / uuid.uuid4().hex
        d.mkdir()
        return d

    def _read(self, path: str | Path | None, what: str, reader: Callable = read_image, **kw) -> np.ndarray:
        if not path:
            raise gr.Error(f"Upload {what} first.", print_exception=False)
        try:
            with collect_notes() as notes:
                image = reader(path, max_pixels=self.rt.max_pixels, **kw)
        except ImageError as e:  # a library's words may hold the path: only the visitor's name is shown
            raise gr.Error(f"{_name(path)}: {public(str(e), [path])}", print_exception=False) from None
        for message in notes:  # e.g. only the first frame of an animated GIF was read
            gr.Info(f"{_name(path)}: {public(message, [path])}")
        return image

    # ------------------------------------------------------------------ faces
    @handler("the face restoration")
    def faces(self, photos: list[str] | str | None, weights: str, detector: str, fidelity: float,
              upscale: int, background: str, min_identity: float = 0.0, colour: str = "auto",
              progress: gr.Progress = gr.Progress()):
        """Restore the faces (and background) of each photo -> (before, after) of the first,
        the aligned faces (input | restored, with their identity and quality as captions), the
        restored photos as PNG files, a summary, and a table of the faces (photo, face,
        identity, guard, NIQE, BRISQUE) to sort. ``min_identity`` > 0: the identity guard
        (``restore faces --min-identity``); ``colour``: as ``--colour``."""
        photos = [photos] if isinstance(photos, str) else list(photos or [])
        if not photos:
            raise gr.Error("Upload a photo first.", print_exception=False)
        progress(0, desc="loading the face model")
        fr = self.rt.face_restorer(weights, detector, int(upscale), background, fidelity,
                                   min_identity=float(min_identity or 0) or None, colour=colour)
        out = self._outdir()
        slider, crops, files, taken, table = None, [], [], set(), []
        lines = [f"model: {fr.model_info}; faces found by {fr.detector_info}; {fr.bg_info}{fr.trust_info}"]
        for i, path in enumerate(photos):
            name = _name(path)
            progress(i / len(photos), desc=f"restoring {name}")
            try:
                image = self._read(path, "a photo")
            except gr.Error as e:
                if len(photos) == 1:
                    raise
                gr.Warning(str(e))  # one bad file among several: say so and do the others
                lines.append(f"- **{name}**: not read ({e})")
                continue
            t0 = time.perf_counter()
            result = fr.restore(image)
            seconds = time.perf_counter() - t0
            path_out = out / _output_name(name, "_restored.png", taken)  # a.png and a.jpg: two files
            write_png(path_out, result.image)
            files.append(str(path_out))
            after = to_rgb8(result.image)
            if slider is None:
                from restore.faces.align import resize_to

                slider = (resize_to(to_rgb8(image), *after.shape[:2], "lanczos"), after)
            for k, f in enumerate(result.faces):
                crops.append((np.concatenate([f.cropped, f.restored], axis=1), _caption(name, k, f.trust)))
                table.append(_row(name, k, f.trust))
            small = f", {result.small_faces} too small, left as they are" if result.small_faces else ""
            if result.faces:
                lines.append(f"- **{name}**: {len(result.faces)} face(s) restored{small}, {seconds:.1f} s")
            else:
                kept = "left as it is" if fr.bg == "none" else f"processed by '{fr.bg}'"
                message = f"No face found in {name}{small}: nothing to restore there; its background was {kept}."
                gr.Warning(message)
                lines.append(f"- **{name}**: {message}")
        if not files:
            raise gr.Error("None of the uploaded files could be read: " + "; ".join(lines[1:]), print_exception=False)
        if len(crops) > MAX_FACES_SHOWN:
            lines.append(f"(the first {MAX_FACES_SHOWN} of {len(crops)} faces are shown)")
        return (slider, [(_shrink(c), caption) for c, caption in crops[:MAX_FACES_SHOWN]] or None, files,
                public("\n".join(lines), photos), _table(table))

    @handler("the video")
    def faces_video(self, video: str | None, weights: str, detector: str, fidelity: float, upscale: int,
                    background: str, temporal: float, progress: gr.Progress = gr.Progress()):
        """Restore the faces of a film (tracked, steadied, its sound kept; ``restore.faces.video``)
        -> (the restored .mp4, a summary). Refused before any work when a frame is larger than
        the image cap or the film longer than ``max_frames``."""
        from restore.faces.video import restore_video, temporal_error
        from restore.video.io import probe

        if not video:
            raise gr.Error("Upload a video first.", print_exception=False)
        name = _name(video)
        try:
            info = probe(video)
        except ValueError as e:
            raise gr.Error(f"{name}: {e}", print_exception=False) from None
        if info.width * info.height > self.rt.max_pixels:
            raise gr.Error(f"{name}: frames too large: {info.width}x{info.height} (at most {self.rt.max_pixels} "
                           "pixels here)", print_exception=False)
        if info.frames > self.rt.max_frames:
            raise gr.Error(f"{name}: video too long: {info.frames} frames (at most {self.rt.max_frames} here; the "
                           "restore faces command takes any length)", print_exception=False)
        if (why := temporal_error(temporal, "the temporal weight")) is not None:
            raise gr.Error(why, print_exception=False)
        progress(0, desc="loading the face model")
        fr = self.rt.face_restorer(weights, detector, int(upscale), background, fidelity)
        out = self._outdir() / f"{Path(name).stem}_restored.mp4"
        t0 = time.perf_counter()

        def step(done: int, total: int) -> None:
            rate = done / max(time.perf_counter() - t0, 1e-6)
            progress((done, total), desc=f"{rate:.1f} frames/s, {(total - done) / max(rate, 1e-6):.0f} s left",
                     unit="frames")

        try:
            entry = restore_video(fr, video, out, temporal=float(temporal), progress=step)
        except ValueError as e:  # a film that ends early, a frame the decoder refuses
            raise gr.Error(f"{name}: {e}", print_exception=False) from None
        tracks, flicker = entry["tracks"], entry["flicker"]
        steady = (f"; flicker inside the faces {flicker['output']} grey levels (input {flicker['input']})"
                  if flicker["output"] is not None else "")
        sound = f", {info.audio_streams} audio stream(s) kept" if info.audio_streams else ""
        summary = (f"**{name}**: {entry['frames']} frames at {entry['fps']:g} fps{sound}; {len(tracks)} face track(s), "
                   f"{entry['faces_per_frame']['mean']:g} faces per frame{steady}; {entry['seconds']:.1f} s "
                   f"({entry['frames'] / max(entry['seconds'], 1e-6):.1f} frames/s); model: {fr.model_info}")
        if not tracks:
            gr.Warning(f"No face found in {name}: nothing to restore there.")
        return str(out), public(summary, [video])  # model_info names the weights file

    # ------------------------------------------------------------------ sketch
    def _sketch_of(self, image: str | None, extract: str, progress: gr.Progress | None = None) -> np.ndarray:
        """The sketch of an upload: as it is (luminance) or extracted by ``extract``."""
        from restore.sketch.colorizer import read_rgb
        from restore.sketch.extract import extract as extract_sketch
        from restore.sketch.extract import luminance

        colour = self._read(image, "a sketch or a colour image", read_rgb)
        if not extract or extract == "none":
            return luminance(colour)
        if progress is not None:
            progress(0, desc=f"extracting the sketch ({extract})")
        kw = {"device": self.rt.device} if extract == "hed" else {}
        return extract_sketch(colour, extract, **kw)

    @handler("the sketch extraction")
    def sketch_canvas(self, image: str | None, extract: str) -> dict | None:
        """The sketch, shown in the hint editor to draw colour strokes on (None without an upload)."""
        from .drawn import canvas

        return canvas(self._sketch_of(image, extract)) if image else None

    @handler("the colouring")
    def sketch(self, image: str | None, extract: str, style: str | None, hints: str | None, weights: str | None,
               drawn: dict | None = None, regions: str = "auto", align: bool = True,
               progress: gr.Progress = gr.Progress()):
        """Colour a sketch (or the sketch extracted from a colour image) in the style of a
        reference -> (result, sketch | reference | result, PNG file, summary, colours without
        lines, lines on transparency). Hints: an uploaded file, or strokes ``drawn`` in the
        page's editor (both: the drawn strokes win where they overlap); every region a stroke
        touches takes its colour. ``regions``: "auto", "on" (one colour per region) or "off" (the
        network's own colours), as ``restore sketch --regions``; ``align``: ``--align auto`` (True) or
        ``off``. Without a reference, the
        extracted sketch itself."""
        from restore.sketch.colorizer import REGIONS, compare_panel, read_hints, read_rgb
        from restore.sketch.layers import line_layer

        from .drawn import editor_hints

        sketch = self._sketch_of(image, extract, progress)
        sketch8 = (np.clip(sketch, 0, 1) * 255).round().astype(np.uint8)
        folder = self._outdir()
        stem = Path(_name(image)).stem
        out = folder / f"{stem}_{'coloured' if style else 'sketch'}.png"
        if not style:
            if not extract or extract == "none":
                raise gr.Error("Upload a style reference (or choose an extraction to get the sketch only).",
                               print_exception=False)
            write_png(out, sketch8)
            return sketch8, None, [str(out)], f"sketch extracted by {extract}; no style reference, so not coloured", \
                None, None
        if not weights:
            raise gr.Error("No colorizer model here: the bundled `colorizer` is missing (train it with "
                           "scripts/train_colorizer.sh) and no other was given.", print_exception=False)
        reference = self._read(style, "a style reference", read_rgb)
        hint = self._read(hints, "hints", read_hints) if hints else None
        if hint is not None and hint.shape[:2] != sketch.shape:
            raise gr.Error(f"The hints are {hint.shape[1]}x{hint.shape[0]} px, the sketch {sketch.shape[1]}x"
                           f"{sketch.shape[0]}: draw them on the sketch itself.", print_exception=False)
        strokes = editor_hints(drawn, sketch.shape, sketch)
        if strokes is not None:
            hint = strokes if hint is None else np.where(strokes[..., 3:] > 0.5, strokes, hint)
        progress(0.3, desc="loading the colorizer")
        colorizer = self.rt.colorizer(weights)
        progress(0.5, desc="colouring")
        t0 = time.perf_counter()
        with autocast(self.rt.precision["sketch"], self.rt.device):
            result, colours = colorizer.layers(sketch, reference, hint, one_per_region=REGIONS[regions],
                                               align=bool(align))
        lines = line_layer(sketch)
        files = [out, folder / f"{stem}_flat.png", folder / f"{stem}_lines.png"]
        for path, image_out in zip(files, (result, colours, lines)):
            write_png(path, image_out)
        how = f"extracted by {extract}" if extract and extract != "none" else "as uploaded"
        drawn_note = f", {int(strokes[..., 3].sum())} px of drawn strokes" if strokes is not None else ""
        summary = (f"sketch {how}, {sketch.shape[1]}x{sketch.shape[0]}; coloured by {Path(colorizer.path).name}"
                   f"{' with hints' if hint is not None else ''}{drawn_note} in {time.perf_counter() - t0:.1f} s; "
                   "the lines go over the colours unchanged, each region a hint touches takes its colour")
        return result, compare_panel(sketch, reference, result), [str(f) for f in files], summary, colours, lines

    # ------------------------------------------------------------------ segment
    @handler("the segmentation")
    def segment(self, file: str | None, weights: str, tile: int, diameter: str, instances: bool, min_size: int,
                fill_holes: bool, crf: bool, progress: gr.Progress = gr.Progress()):
        """Segment an image (or a multi-page TIFF) -> (overlay, mask file, areas table, summary); a NIfTI
        or zipped OME-Zarr volume block by block, its mask in its own format (apps/segment_volumes.py)."""
        from restore.segment.overlay import overlay

        if file and is_store(file):
            from .segment_volumes import segment_store

            return segment_store(self, file, weights, int(tile), _diameter(diameter), bool(instances), int(min_size),
                                 bool(fill_holes), bool(crf), progress)
        volume = bool(file) and is_volume(file)
        kw = {"max_pages": self.rt.max_pages} if volume else {}  # refused from its header: nothing decoded
        image = self._read(file, "an image or a TIFF", read_volume if volume else read_image, **kw)
        progress(0, desc="loading the model")
        seg = self.rt.segmenter(weights).with_options(tile=int(tile), diameter=_diameter(diameter))
        progress(0.2, desc="segmenting")
        t0 = time.perf_counter()
        with autocast(self.rt.precision["segment"], self.rt.device):
            labels = seg(image, instances=bool(instances), min_size=int(min_size), fill_holes=bool(fill_holes),
                         crf=bool(crf))
        seconds = time.perf_counter() - t0
        progress(0.9, desc="drawing the overlay")
        dtype = np.uint16 if instances or labels.max() > 255 else np.uint8
        stem = Path(_name(file)).stem
        if labels.ndim == 3:  # a volume: the mask as a TIFF stack, the middle slice drawn
            mask_path = self._outdir() / f"{stem}_mask.tif"
            write_tiff(mask_path, labels.astype(dtype))
            mid = labels.shape[0] // 2
            shown, where = overlay(image[mid], labels[mid]), f"; slice {mid} of {labels.shape[0]} shown"
        else:
            mask_path = self._outdir() / f"{stem}_mask.png"
            write_png(mask_path, labels.astype(dtype))
            shown, where = overlay(image, labels), ""
        table = areas(labels, bool(instances), max(seg.num_classes, 2))
        size = f"{labels.shape[-1]}x{labels.shape[-2]} px" + (f", {labels.shape[0]} slices" if labels.ndim == 3 else "")
        summary = f"{Path(seg.path).name}: {size} in {seconds:.1f} s{where}"
        return shown, str(mask_path), table, summary

    # ------------------------------------------------------------------ translate
    @handler("the translation")
    def translate(self, image: str | None, weights: str | None, generator: str | None,
                  progress: gr.Progress = gr.Progress()):
        """Apply a generator (a selected model, or an uploaded .safetensors) to an image ->
        ((before, after), PNG file, summary)."""
        from restore.translate import Translator

        rgb = self._read(image, "an image", mode="rgb8")
        progress(0, desc="loading the generator")
        if generator:
            # Always by torch: the onnxruntime backend would export the visitor's network into the
            # server's weights cache, one file per upload, and nothing on the server is theirs to fill.
            translator = self.rt.load_uploaded(
                generator, lambda p: Translator(p, self.rt.device, precision=self.rt.precision["translate"],
                                                backend="torch"))
        elif weights:
            translator = self.rt.translator(weights)
        else:
            raise gr.Error("Choose a model or upload a generator file (.safetensors).", print_exception=False)
        progress(0.2, desc="translating (in tiles)")
        t0 = time.perf_counter()
        with autocast(self.rt.precision["translate"], self.rt.device):
            result = translator(rgb)
        out = self._outdir() / f"{Path(_name(image)).stem}_{Path(translator.path).stem}.png"
        write_png(out, result)
        model = _name(generator) if generator else weights
        by = " (an uploaded generator runs by torch)" if generator and self.rt.backend != "torch" else ""
        summary = f"{model}: {rgb.shape[1]}x{rgb.shape[0]} px in {time.perf_counter() - t0:.1f} s{by}"
        return (rgb, result), str(out), public(summary)  # a model given from Python may be a path

    # ------------------------------------------------------------------ upscale
    @handler("the upscaling")
    def upscale(self, image: str | None, weights: str | None, scale: float = 0, tile: int = 400, denoise: float = 0.5,
                face_enhance: bool = False, progress: gr.Progress = gr.Progress()):
        """Enlarge a picture with Real-ESRGAN's networks (``restore upscale``; scale 0: the
        network's own; ``face_enhance``: its faces restored too, as ``--face-enhance``) ->
        ((before, after), PNG file, summary); refused before any work when the result would be
        over ``max_output_pixels`` (apps/upscale.py)."""
        from .upscale import upscale

        return upscale(self, image, weights, scale, tile, denoise, progress, face_enhance=bool(face_enhance))


def _diameter(text: str | float | None) -> float | str | None:
    """The Segment tab's diameter field: 'auto', 'none' or a size in pixels."""
    text = str(text if text is not None else "auto").strip().lower()
    if text in ("", "auto"):
        return "auto"
    if text == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"diameter must be 'auto', 'none' or a number of pixels, not {text!r}") from None
    if not value > 0:
        raise ValueError("diameter must be positive")
    return value


def areas(labels: np.ndarray, instances: bool, num_classes: int) -> list[list]:
    """Rows of AREA_HEADERS: the area and share of each class, and how many objects it holds
    (connected components, or the instances)."""
    from scipy import ndimage

    total = labels.size
    if instances:
        fg = int(np.count_nonzero(labels))
        objects = int(np.count_nonzero(np.bincount(labels.ravel())[1:]))
        return [["background", total - fg, round(100 * (total - fg) / total, 2), "-"],
                ["objects", fg, round(100 * fg / total, 2), str(objects)]]
    counts = np.bincount(labels.ravel().astype(np.int64), minlength=num_classes)
    rows = []
    for c, n in enumerate(counts):
        name = "background" if c == 0 else "foreground" if num_classes == 2 else f"class {c}"
        objects = str(ndimage.label(labels == c)[1]) if c else "-"
        rows.append([name, int(n), round(100 * n / total, 2), objects])
    return rows
