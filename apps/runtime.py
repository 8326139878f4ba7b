"""What the app runs on and which models it offers: chosen once, each model loaded once per process.

The device is CUDA when there is one, else the CPU. Precision per task was measured against
fp32 on the bundled models and examples (2-core CPU with AVX512-BF16; the sketch row on an AVX2 CPU, bf16 emulated):

| task | bf16 against fp32 | speed | used |
| --- | --- | --- | --- |
| faces (bundled restorer) | 62 dB PSNR between the outputs | 1.5x | bf16 where native |
| translate (restorer) | 63 dB, at most 1 grey level apart | 1.45x | bf16 where native |
| sketch (bundled colorizer) | 56-58 dB, at most 3 grey levels apart (3 examples) | | bf16 where native |
| segment (nuclei) | up to 2% of the foreground flips (scratch-assay example) | | fp32 everywhere |

so segment keeps the fp32 of ``restore segment`` (its network is small; fp32 costs little),
and the other tasks take ``gan.precision``'s "auto": bf16 on a CPU where it measured faster
(AMX, or AMD's AVX512-BF16; else fp32: with Intel's AVX512-BF16 alone bf16 measured slower,
benchmarks/bench_precision.py), bf16 on a GPU that supports it, else fp16. The same defaults are the CLI's.
"""
from __future__ import annotations

import copy
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from gan.precision import cpu_has_bf16, resolve_precision
from gan.tasks import task_word
from restore.imageio import DEFAULT_MAX_PIXELS
from restore.models.manifest import converted_path, is_downloadable, manifest, model_file
from restore.runners.args import DEFAULT_PRECISION

TASKS = ("faces", "sketch", "segment", "translate", "upscale")  # the tabs, in gan.tasks' one word per task
# A tab offers the models whose task (manifest entry or file metadata, read through task_word so
# that earlier words such as "segmentation" or "face restoration" match too) is its own; the Faces
# tab also takes a translate generator (the bundled restorer).
AUTO_PRECISION = DEFAULT_PRECISION  # the commands' defaults (restore.runners.args)
MAX_VIDEO_FRAMES = 9000  # 6 minutes at 25 fps
MAX_VOLUME_PAGES = 1000  # per uploaded TIFF: counted from its header, before any page is decoded
MAX_SECONDS = 300.0  # per request (restore.budget): past it the work stops at its next check
MAX_UPLOADED_MODELS = 4  # generator files uploaded in the Translate tab kept loaded
# The Upscale tab's result (width * height * scale^2), refused before any work: a 4x upscale of
# a 50 MP upload would be 800 MP (2.4 GB as RGB, minutes to encode as PNG). 64 MP: a 4000x4000
# photo at 2x, 2000x2000 at 4x, about 190 MB as RGB.
MAX_OUTPUT_PIXELS = 64_000_000


def pick_device(device: str = "auto") -> torch.device:
    """``auto``: the first CUDA device when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _state(name: str, entry: dict[str, Any]) -> str | None:
    """bundled / fetched, or None when the file is not here (no hashing: that happens on load)."""
    if not is_downloadable(entry):
        return "bundled" if model_file(name).is_file() else None
    return "fetched" if model_file(name).is_file() or converted_path(name).is_file() else None


def _word(task: str | None) -> str:
    """The one word for a manifest's or a file's task (today's or an earlier one); "" if unknown."""
    try:
        return task_word(task or "")
    except ValueError:
        return ""


def _file_task(path: Path) -> str:
    from gan.serialize import read_metadata

    try:
        return _word(read_metadata(path).get("task", ""))
    except Exception:  # noqa: BLE001 - not a safetensors model: the loader will say so
        return ""


def _offers(task: str, model_task: str) -> bool:
    """Whether ``task``'s tab offers a model of ``model_task`` (one word)."""
    return model_task == task or (task == "faces" and model_task == "translate")


class Runtime:
    """The device, the precision per task, the models on offer and a cache of loaded ones.

    ``precision``: "auto" (the measured choice above) or one of fp32 / bf16 / fp16 for every
    task. ``models``: extra weight files (.safetensors of this toolkit) offered beside the
    manifest's; their task comes from their metadata, and the selectors name them by file name
    only (the page shows nothing of the server's folders). ``max_pixels``: the largest image
    accepted; ``max_pages``: the most pages of a TIFF volume; ``max_frames``: the longest video;
    ``max_seconds``: each request's time budget (``restore.budget``; 0: none). ``max_output_pixels``: the
    largest result of the Upscale tab (width * height * scale^2). ``backend``: torch, or onnxruntime (each network from its ONNX export, made once into the
    weights cache; the precision is then the file's, fp32).
    """

    def __init__(self, device: str = "auto", precision: str = "auto", models: Iterable[str | Path] = (),
                 max_pixels: int = DEFAULT_MAX_PIXELS, *, backend: str = "torch",
                 max_frames: int = MAX_VIDEO_FRAMES, max_pages: int = MAX_VOLUME_PAGES,
                 max_seconds: float = MAX_SECONDS, max_output_pixels: int = MAX_OUTPUT_PIXELS) -> None:
        from restore.export.backend import check_backend

        precision = check_backend(backend, precision)  # fp32 for onnxruntime
        self.backend = backend
        self.device = pick_device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device} asked for, but CUDA is not available")
        self.precision = {t: resolve_precision(AUTO_PRECISION[t] if precision == "auto" else precision, self.device)
                          for t in TASKS}
        self.max_pixels = int(max_pixels)
        self.max_frames = int(max_frames)  # per uploaded video: a request holds the device that long
        self.max_pages = int(max_pages)
        self.max_seconds = float(max_seconds)
        self.max_output_pixels = int(max_output_pixels)  # the Upscale tab's result
        self.extra = [Path(m).expanduser().resolve() for m in models]
        for p in self.extra:
            if not p.is_file():
                raise ValueError(f"{p}: no such model file")
        self._by_name = {p.name: p for p in self.extra}  # the selectors' values: names, not server paths
        if len(self._by_name) < len(self.extra):
            raise ValueError("two extra model files share a name: rename one (the page tells them apart by name)")
        self._cache: dict[tuple, Any] = {}
        self._uploaded: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()  # two first requests for one model load it once

    # ------------------------------------------------------------------ what is on offer
    def choices(self, task: str) -> list[tuple[str, str]]:
        """(label, value) for a model selector: the manifest's models for ``task`` that are here
        (bundled or fetched, with their licence), then the extra files."""
        task = task_word(task)
        out = []
        for name, e in manifest().items():
            state = _state(name, e)
            usable = (_word(e.get("task")) == task and not e.get("role")) or (task == "faces" and name == "restorer")
            if state and usable:
                out.append((f"{name} ({state}, {e.get('licence', 'licence unknown')})", name))
        for p in self.extra:
            if _offers(task, _file_task(p)):
                out.append((f"{p.name} (your file)", p.name))
        return out

    def weights(self, value: str | None) -> str | None:
        """A selector's value as the loaders take it: an extra file's name becomes its path; a
        manifest name (or a path given from Python) stays as it is."""
        return str(self._by_name[value]) if value in self._by_name else value

    def licence_table(self) -> str:
        """Markdown: every model of the manifest and the extra files, with state and licence."""
        rows = ["| model | task | here | licence |", "| --- | --- | --- | --- |"]
        for name, e in manifest().items():
            state = _state(name, e) or f"no (`restore weights fetch {name}`)"
            note = f" ({e['licence_note']})" if e.get("licence_note") else ""
            rows.append(f"| {name} | {_word(e.get('task')) or e.get('task', '')} | {state} | {e.get('licence', '?')}{note} |")
        rows += [f"| {p.name} | {_file_task(p)} | your file | yours |" for p in self.extra]
        return "\n".join(rows)

    def describe(self) -> str:
        """One line for the page header: device and precision in use."""
        if self.device.type == "cuda":
            where = f"{self.device} ({torch.cuda.get_device_name(self.device)})"
        else:
            where = f"cpu ({torch.get_num_threads()} threads, {'native' if cpu_has_bf16() else 'no'} bf16)"
        prec = ", ".join(f"{t} {self.precision[t]}" for t in TASKS)
        return f"**device:** {where} · **backend:** {self.backend} · **precision:** {prec}"

    # ------------------------------------------------------------------ loading, once
    def load(self, key: tuple, make: Callable[[], Any]) -> Any:
        """The object cached under ``key``, made by ``make()`` on first use."""
        with self._lock:
            if key not in self._cache:
                self._cache[key] = make()
            return self._cache[key]

    def load_uploaded(self, path: str | Path, make: Callable[[Path], Any]) -> Any:
        """A model from an uploaded file, cached by content (the upload's path changes every
        time); only the last few are kept."""
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        with self._lock:
            if digest not in self._uploaded:
                self._uploaded[digest] = make(Path(path))
                while len(self._uploaded) > MAX_UPLOADED_MODELS:
                    self._uploaded.popitem(last=False)
            self._uploaded.move_to_end(digest)
            return self._uploaded[digest]

    def faces(self, weights: str | None, detector: str):
        from restore.faces.restorer import FACE_MODELS, FaceRestorer
        from restore.models.cache import find_cached

        auto = weights in (None, "", "auto")
        weights = self.weights(weights)
        # "auto" is keyed by the model it picks, so choosing that model by name loads nothing new.
        name = next((n for n in FACE_MODELS if find_cached(n) is not None), "restorer") if auto else weights
        # Built with bg="restorer" so every background option works from one copy (with_options).
        # Face parsing costs more than GFP-GAN itself on a CPU: on a GPU only.
        return self.load(("faces", name, detector), lambda: FaceRestorer(
            None if auto else weights, detector, self.device, self.precision["faces"], bg="restorer",
            parse="auto" if self.device.type == "cuda" else False, backend=self.backend, quality=True))

    def bg_upscaler(self, upscale: float):
        """The Faces tab's Real-ESRGAN background ``upscale`` times larger: the cache's weights as
        ``restore faces --bg realesrgan`` picks them (``restore.faces.background``), loaded once and
        shared with the Upscale tab (one network per model), set to GFP-GAN's tiles and this
        outscale on a copy; None when no such weights are here."""
        from restore.faces.background import PRE_PAD, TILE, TILE_PAD, cached_upscaler

        name = cached_upscaler(upscale)
        if name is None:
            return None
        up = copy.copy(self.upscaler(name, TILE))  # the loaded network is shared; a copy's settings are this request's
        up.tile, up.tile_pad, up.pre_pad, up.scale = TILE, TILE_PAD, PRE_PAD, float(upscale)
        return up

    def face_restorer(self, weights: str | None, detector: str, upscale: int, bg: str, fidelity: float,
                      min_identity: float | None = None, colour: str = "auto"):
        """The cached restorer of ``faces`` with one request's options; ``bg`` "auto" is Real-ESRGAN's
        background when the photo is upscaled and its weights are here, else the restorer's (as
        ``restore faces --bg auto``). The Real-ESRGAN upscaler comes from ``bg_upscaler`` (loaded
        once), never from ``with_options``, which would load it again for every request."""
        from restore.faces.background import HOW, resolve_bg

        fr = self.faces(weights, detector)
        chosen = resolve_bg(bg, upscale, None)
        if chosen == "realesrgan":
            up = self.bg_upscaler(upscale)
            if up is None:
                raise ValueError(f"The realesrgan background needs Real-ESRGAN's weights on this server: {HOW}")
            fr = copy.copy(fr)  # the cached one stays as it is
            fr.upscaler = up  # with_options takes this one, at its outscale
        out = fr.with_options(upscale=upscale, bg=chosen, fidelity=fidelity, min_identity=min_identity, colour=colour)
        out.bg_asked = bg  # bg_info: "auto" without the weights says how to get them
        return out

    def segmenter(self, weights: str):
        from restore.segment.segmenter import Segmenter

        weights = self.weights(weights)
        return self.load(("segment", weights), lambda: Segmenter(
            weights, self.device, precision=self.precision["segment"], backend=self.backend))

    def translator(self, weights: str):
        from restore.translate import Translator

        weights = self.weights(weights)
        return self.load(("translate", weights), lambda: Translator(
            weights, self.device, precision=self.precision["translate"], backend=self.backend))

    def upscaler(self, weights: str, tile: int = 0, denoise: float | None = None):
        """The Upscaler for ``weights`` (loaded once; with the onnxruntime backend once per tile
        size, its export's input size), ``tile`` and ``denoise`` set."""
        from restore.upscale.upscaler import Upscaler

        weights = self.weights(weights)
        key = ("upscale", weights, denoise, tile if self.backend != "torch" else None)
        return self.load(key, lambda: Upscaler(weights, self.device, tile=int(tile), denoise=denoise,
                                               precision=self.precision["upscale"], backend=self.backend))

    def colorizer(self, weights: str):
        from restore.sketch.colorizer import Colorizer

        weights = self.weights(weights)
        return self.load(("sketch", weights), lambda: Colorizer(
            weights, self.device, precision=self.precision["sketch"], backend=self.backend))
