"""Face restoration of whole photos: detect -> align -> restore -> paste back, background too.

    fr = FaceRestorer()                        # best face model present, RetinaFace or MTCNN
    result = fr.restore(rgb)                   # RGB uint8 HxWx3 -> result.image, result.faces
    face = fr.restore_aligned(crop)            # an already aligned face crop -> restored crop

The face network is GFP-GAN (``gan.nets.gfpgan``) when the published GFPGANv1.4/v1.3 weights are in
the weights cache (or given as a file), else the bundled ``restorer``, which then restores the
background too. Faces are found on the photo and on its restored background, merged. For
GFP-GAN they are aligned to the FFHQ 5-point template at the network's size (512), restored in
batches, blended with the aligned input by ``fidelity`` and pasted back with a feathered mask (a
face-parsing mask when ``parsenet`` is cached; ``restore.faces.align``). An image-to-image face
model restores them at their own scale instead (``own_scale``: ``restore.faces.own_scale``).
With ``bg="realesrgan"`` the background is Real-ESRGAN's upscaler's picture and the faces are
pasted onto it as GFP-GAN's own pipeline does (``restore.faces.background``). What the stages
hand each other: ``restore.faces.records``.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan.nets.descriptor import pixels_in, pixels_out
from gan.nets.registry import descriptor_of
from gan.precision import autocast, cast_model, run
from restore import budget
from restore.colour import to_rgb8
from restore.inference import Inference

from .align import (
    estimate_affine,
    load_parser,
    parse_mask,
    paste,
    resize_to,
    template,
    warp_face,
)
from .background import describe, make_upscaler, resolve_bg, upscale_alpha
from .detect import Detection, center_face, detect, make_detector, merge
from .models import FACE_MODELS, WithW, face_source, load_face_model
from .own_scale import blend, canvas_crops, restore_regions
from .records import FaceResult, Prepared, RestoredFace
from .records import as_layout as _as_layout
from .records import split as _split
from .records import torch_threads as _torch_threads
from .trust import Trust, make_trust, quality_scores, resolve_colour

__all__ = ["FACE_MODELS", "FaceRestorer", "FaceResult", "Prepared", "RestoredFace", "face_source",
           "load_face_model"]

BACKGROUNDS = ("restorer", "realesrgan", "resize", "none")  # and "auto" (restore.faces.background)


def _check_options(upscale: float, bg: str, fidelity: float) -> None:
    if bg == "realesrgan":  # any outscale, as Real-ESRGAN's (restore upscale --face-enhance)
        if not upscale > 0:
            raise ValueError(f"upscale must be positive, not {upscale}")
    elif upscale not in (1, 2, 4):
        raise ValueError(f"upscale must be 1, 2 or 4, not {upscale}")
    if bg not in BACKGROUNDS:
        raise ValueError(f"bg must be one of {', '.join(BACKGROUNDS)}, not {bg!r}")
    if not 0 <= fidelity <= 1:
        raise ValueError(f"fidelity must be in [0, 1], not {fidelity}")


class FaceRestorer(Inference):
    """Restores the faces in photos (and their background); RGB uint8 arrays in and out.

    ``weights``: see :func:`load_face_model`. ``detector``: auto | retinaface | mtcnn.
    ``precision``: fp32 | bf16 | fp16 | auto (``gan.precision``: bf16 where it is native, fp16 on
    CUDA only); None: ``restore faces``' default, auto. ``upscale``: 1, 2 or 4.
    ``bg``: restorer (``bg_weights``, the bundled restorer, in tiles, then resized), realesrgan
    (Real-ESRGAN's upscaler, ``bg_upscaler``: as GFP-GAN's own command, ``restore.faces.background``),
    resize (Lanczos), none (the input's own pixels, repeated when upscaling: nothing outside the
    faces changes) or auto (realesrgan when ``upscale`` > 1 and its weights are cached, else
    restorer). An image-to-image face model given by name or file restores the background
    itself. With realesrgan, ``upscale`` may be any positive number (Real-ESRGAN's outscale).
    ``bg_upscaler``: a ``restore.upscale.Upscaler`` (shared), a network, file or manifest name;
    None: x2plus for 2x, else x4plus at outscale 2 (4x: the other way round), from the cache.
    ``fidelity`` in [0, 1]: each face is ``fidelity * restored + (1 - fidelity) * input``
    (GFP-GAN's ``weight`` argument is ignored by its networks; this blend is real).
    ``min_face``: faces whose box is smaller (shorter side, px) are left alone and counted.
    ``parse``: use the face-parsing mask when ``parsenet`` is cached (auto) or never (False).
    ``backend``: torch, or onnxruntime (the face network and the background restorer run from
    their ONNX exports, made once into the weights cache; ``weights`` may be a ``.onnx`` file);
    detection and parsing stay in PyTorch.
    """

    task = "faces"

    def __init__(self, weights: str | Path | torch.nn.Module | None = None, detector: str = "auto",
                 device: str | torch.device = "cpu", precision: str | None = None, *, upscale: int = 1,
                 bg: str = "restorer", bg_weights: str | Path = "restorer", fidelity: float = 1.0, min_face: float = 16,
                 only_center_face: bool = False, parse: bool | str = "auto", tile: int = 512,
                 detect_size: int = 1600, batch_size: int = 4, backend: str = "torch",
                 own_scale: bool | None = None, bg_upscaler=None, identity: Any = "auto",
                 min_identity: float | None = None, colour: str = "auto", quality: bool = False) -> None:
        from restore.export.backend import on_backend
        from restore.translate import Translator

        self.bg_asked = bg
        bg = resolve_bg(bg, upscale, bg_upscaler)
        _check_options(upscale, bg, fidelity)
        self.setup(device, precision, backend)  # precision None: auto, restore faces' default
        self.upscale, self.bg, self.fidelity = upscale, bg, float(fidelity)
        self.min_face, self.only_center_face = min_face, only_center_face
        self.detect_size, self.batch_size = detect_size, batch_size
        self.fixed_batch = False  # True: every network call exactly batch_size faces (the folder runs)
        self.model, self.model_info = load_face_model(weights, self.device)
        self.runs_from_file(self.model)  # a .onnx file: onnxruntime, in its own precision
        try:
            d = descriptor_of(self.model)
        except ValueError:  # an .onnx made elsewhere: name the file, as restore.inference does
            raise ValueError(f"{weights}: names no network of this toolkit; `restore export` writes the "
                             ".onnx files restore faces runs") from None
        kind = d.kind
        self.is_gfpgan = kind == "face prior"
        # a face prior takes aligned crops of one size; an image-to-image model takes any (512: the template's)
        port = d.inputs(self.model.config, None)[0]
        self.face_size = port.side if self.is_gfpgan else 512
        self.face_range, self.out_range = port.range, d.output_range
        # A face prior restores aligned crops; any other (image-to-image) model, faces where they are.
        self.own_scale = not self.is_gfpgan if own_scale is None else bool(own_scale)
        if self.own_scale and kind != "image-to-image":
            raise ValueError(f"own_scale needs an image-to-image face model, not {type(self.model).__name__}")
        self.upscaler = make_upscaler(bg_upscaler, upscale, self.device, self.asked, backend) \
            if bg == "realesrgan" else None
        self.translator = self.face_translator = None
        if bg == "restorer":
            # An image-to-image face model given by name or file (the restorer) does the
            # background too; otherwise ``bg_weights`` (the bundled restorer) does.
            own = kind == "image-to-image" and not isinstance(weights, torch.nn.Module)
            self.translator = Translator((weights or "restorer") if own else bg_weights, self.device, tile,
                                         precision=self.precision, backend=backend)
            if own:
                self.model = self.translator.model  # one copy of the network, not two
        if self.translator is None or self.model is not self.translator.model:  # (that one is on it already)
            if type(self.model).__name__ == "CodeFormer" and backend != "torch":  # w is fixed in the export
                self.model_info += f"; its export runs at w = {self.model.w:g} (--fidelity blends the pixels there)"
            self.model = on_backend(self.model, backend, source=face_source(weights), name="faces", device=self.device)
        if self.own_scale:  # the face model on the faces' own pixels: the background's tiler when it is the same
            same = self.translator is not None and self.model is self.translator.model
            self.face_translator = self.translator if same else Translator(self.model, self.device, tile,
                                                                           precision=self.precision)
        if self.is_gfpgan:  # not shared with the tiler: cast once (no per-call weight casts), channels-last
            cast_model(self.model, self.precision, self.device)
        self.detector, self.detector_info = make_detector(detector, self.device)
        self.trust = make_trust(identity, min_identity, colour, quality, face_prior=self.is_gfpgan)
        self.parser = None
        if parse:
            from restore.models.cache import find_cached

            path = find_cached("parsenet")
            if path is not None:
                self.parser = load_parser(path, self.device)
            elif parse is True:
                raise ValueError("face parsing needs parsenet in the weights cache (restore weights fetch parsenet)")

    def with_options(self, *, upscale: int | None = None, bg: str | None = None,
                     fidelity: float | None = None, min_identity: float | None | str = "same",
                     colour: str | None = None) -> FaceRestorer:
        """A copy that shares this restorer's networks and detector but restores with other
        per-photo options (None: keep this one's). Nothing is loaded again, so a server can keep
        one restorer per model. ``bg="restorer"`` needs one built with ``bg="restorer"``."""
        new = copy.copy(self)
        new.upscale = self.upscale if upscale is None else upscale
        new.bg = resolve_bg(bg, new.upscale, self.upscaler) if bg else self.bg
        new.fidelity = self.fidelity if fidelity is None else float(fidelity)
        if min_identity != "same" or colour is not None:  # the same embedding network, other settings
            t = self.trust
            new.trust = Trust(t.identity, t.min_identity if min_identity == "same" else min_identity,
                              t.colour if colour is None else resolve_colour(colour, self.is_gfpgan), t.quality)
        _check_options(new.upscale, new.bg, new.fidelity)
        if new.bg == "restorer" and new.translator is None:
            raise ValueError("bg='restorer' needs a FaceRestorer built with bg='restorer'")
        if new.bg == "realesrgan":  # this one's upscaler at the new outscale, or one loaded now
            new.upscaler = make_upscaler(self.upscaler, new.upscale, self.device, self.asked, self.backend)
        return new

    @property
    def trust_info(self) -> str:
        """The identity, guard and colour settings, for the first line of ``restore faces``."""
        return self.trust.info()

    @property
    def bg_info(self) -> str:
        """A few words on the background (the first line of ``restore faces``)."""
        return describe(self.bg, self.upscale, self.upscaler, self.bg_asked)

    # ------------------------------------------------------------------ the networks
    def restore_crops(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        """Aligned RGB uint8 S x S faces -> restored ones, blended by ``fidelity``, in network
        calls of ``batch_size`` faces; with ``fixed_batch`` (the folder runs of ``restore faces``)
        of exactly that many: the last call is filled up with blank faces, dropped after.

        Why exactly: measured here (oneDNN, fp32), a face's output does not depend on which
        other faces share its call, but it can depend on how many do, in the last float bit
        (GFP-GAN's modulated convolutions: 3.6e-7 between calls of 4 and of 8), enough to move a
        rare pixel by one grey level. Calls of one size make every grouping of faces, the
        pipeline's and the photo-at-a-time path's, give the same bytes. The CLI's CPU default of
        one face a call costs nothing; on a GPU the blank faces of a last call are cheap. A
        photo restored on its own (the API, the app) needs no such filling.

        With ``own_scale`` there is no face network to call: the crops come back as they are,
        and ``finish`` restores the faces in the photo."""
        if self.own_scale:
            return list(crops)
        out = []
        n = max(1, self.batch_size)
        for i in range(0, len(crops), n):
            budget.check()  # a request's time budget (restore.budget), between calls
            chunk = crops[i:i + n]
            blank = (n - len(chunk)) if self.fixed_batch else 0
            batch = np.stack(chunk + [np.zeros_like(chunk[0])] * blank)
            x = pixels_in(torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float(), self.face_range)
            net = WithW(self.model, self.codeformer_w) if self.codeformer_w is not None else self.model
            y = run(net, x, self.precision)  # autocast or the cast model; float32 out
            y = pixels_out(y, self.out_range).byte().permute(0, 2, 3, 1).cpu().numpy()
            out.extend(y[:len(chunk)])
        if self.codeformer_w is not None:  # its own fidelity weight did it
            return out
        return blend(out, crops, self.fidelity) if self.fidelity < 1 else out

    @property
    def codeformer_w(self) -> float | None:
        """CodeFormer's own fidelity weight for this ``fidelity``: ``w = 1 - fidelity`` (CodeFormer's
        w = 1 keeps the most of the input, ``fidelity`` 1 restores the most); None for other models."""
        return 1.0 - self.fidelity if type(self.model).__name__ == "CodeFormer" else None

    def _run(self, translator, rgb8: np.ndarray) -> np.ndarray:
        """A tiler (the background's or the face model's) on an RGB uint8 photo, in this precision."""
        with autocast(self.precision, self.device):
            return translator(rgb8)

    def _background(self, prep: Prepared) -> np.ndarray:
        image = prep.colour
        h, w = image.shape[:2]
        H, W = int(h * self.upscale), int(w * self.upscale)
        if self.bg == "realesrgan":  # grey and 16-bit kept, as RealESRGANer keeps them
            return self.upscaler(image)
        if self.bg == "none":
            return resize_to(image, H, W, "nearest")
        if self.bg == "resize":
            return resize_to(image, H, W, "lanczos")
        restored = prep.cleaned if prep.cleaned is not None else self._run(self.translator, prep.rgb8)
        return resize_to(_as_layout(restored, prep.grey, image.dtype), H, W, "lanczos")

    def _sync(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    # ------------------------------------------------------------------ public API
    def prepare(self, image: np.ndarray) -> Prepared:
        """The first half of ``restore``, run where the photo is read: the background restored
        (``bg="restorer"``), the faces found and aligned.

        Faces are detected on the photo and on its restored copy, and merged: on degraded
        photos the detector misses faces that it finds on clean ones (real group photos, heavy
        degradation: 78% of the faces MTCNN finds on the clean photos; with the restored copy
        too, see ``scripts/eval_faces.py`` and the restorer's model card)."""
        t0 = time.perf_counter()
        colour, grey, alpha = _split(image)
        rgb8 = to_rgb8(colour)
        h, w = colour.shape[:2]
        cleaned = self._run(self.translator, rgb8) if self.bg == "restorer" else None
        t_clean = time.perf_counter() - t0
        with _torch_threads(1):
            found = detect(self.detector, rgb8, self.detect_size)
            if cleaned is not None:
                found = merge(detect(self.detector, cleaned, self.detect_size), found)
        small = sum(1 for d in found if d.size < self.min_face)
        found = [d for d in found if d.size >= self.min_face]
        if self.only_center_face:
            found = center_face(found, h, w)
        t1 = time.perf_counter()
        prep = self.realign(Prepared(colour, grey, alpha, rgb8, found, small, [], [], {}, cleaned), found)
        prep.timings = {"detect": t1 - t0 - t_clean, "align": time.perf_counter() - t1, "net_faces": 0.0,
                        "net_background": t_clean, "net_parse": 0.0, "paste": 0.0}
        return prep

    def realign(self, prep: Prepared, found: list[Detection]) -> Prepared:
        """``prep`` aligned from ``found`` (``prepare``'s detections, or a video's smoothed
        landmarks for the same faces, ``restore.faces.track``): its detections, affines and
        crops replaced in place."""
        prep.found = list(found)
        prep.affines = [estimate_affine(d.landmarks, self.face_size) for d in prep.found]
        prep.crops = [warp_face(prep.rgb8, a, self.face_size) for a in prep.affines]
        return prep

    def finish(self, prep: Prepared, restored: list[np.ndarray],
               smooth: Callable[[list[np.ndarray]], list[np.ndarray]] | None = None) -> FaceResult:
        """The second half: the background, the parse masks, the faces pasted back.

        ``restored``: ``restore_crops``' faces. With ``own_scale`` they are not used: the faces
        are restored in the photo (the background pass, or ``restore_regions``), and the aligned
        crops of the result are pasted back only when ``fidelity`` < 1 or ``smooth`` changes
        them. ``smooth``: aligned restored faces -> the faces to paste (a film's temporal blend)."""
        t, t3 = prep.timings, self._sync()
        canvas = self._background(prep)
        t4 = self._sync()
        t["net_background" if self.bg in ("restorer", "realesrgan") else "paste"] += t4 - t3
        pasting = True
        if self.own_scale:
            # the background pass restored them only when it is the face model's own (bg restorer);
            # a copy made by with_options from one built that way has another background
            if self.bg != "restorer" or self.face_translator is not self.translator:
                net = lambda x: self._run(self.face_translator, x)  # noqa: E731
                restore_regions(net, prep.rgb8, prep.found, canvas, self.upscale)
            t["net_faces"] += self._sync() - t4
            restored = canvas_crops(canvas, prep.affines, self.face_size, self.upscale)
            pasting = self.fidelity < 1 or smooth is not None
            restored = blend(restored, prep.crops, self.fidelity) if self.fidelity < 1 else restored
        if smooth is not None:
            restored = smooth(restored)
        records, paste_it = [{} for _ in restored], [pasting] * len(restored)
        if self.trust.active and restored:  # colours kept, identity measured and guarded (restore.faces.trust)
            restored, records, changed = self.trust.apply(prep.crops, restored, t)
            paste_it = [pasting or c for c in changed]  # own scale: a face the guard changed is pasted
        t4 = self._sync()
        masks = [parse_mask(self.parser, f, self.device) if self.parser is not None and p else None
                 for f, p in zip(restored, paste_it)]
        t5 = self._sync()
        t["net_parse"] = t5 - t4
        for face, a, mask, p in zip(restored, prep.affines, masks, paste_it):
            if p:
                paste(canvas, face, a, self.upscale, mask, gfpgan=self.bg == "realesrgan")
        photo = canvas  # without its alpha, for the quality score
        if prep.alpha is not None and self.bg == "realesrgan":  # as the upscaler enlarges an RGBA's alpha
            canvas = np.dstack([canvas, upscale_alpha(self.upscaler, prep.alpha)])
        elif prep.alpha is not None:
            a = resize_to(prep.alpha, *canvas.shape[:2], "nearest" if self.bg == "none" else "lanczos")
            canvas = np.dstack([canvas, a])
        t["paste"] += time.perf_counter() - t5
        faces = [RestoredFace(d.box, d.landmarks, d.score, a, c, r, rec)
                 for d, a, c, r, rec in zip(prep.found, prep.affines, prep.crops, restored, records)]
        quality = None
        if self.trust.quality:
            quality = quality_scores(to_rgb8(photo))
        return FaceResult(canvas, faces, prep.small, t, quality)

    def restore(self, image: np.ndarray) -> FaceResult:
        """Restore every face (and the background) of a photo.

        ``image``: RGB uint8 HxWx3; also grey HxW (restored in colour, returned grey), RGBA
        (alpha kept, resized with the image) and 16-bit (faces restored at 8 bit; the
        background keeps 16 bit unless restored). Returns the photo ``upscale`` times larger.
        ``prepare`` + ``restore_crops`` + ``finish``, which a pipeline runs for several photos at
        once (``restore.faces.pipeline``)."""
        prep = self.prepare(image)
        t2 = self._sync()
        restored = self.restore_crops(prep.crops) if prep.crops else []
        prep.timings["net_faces"] = self._sync() - t2
        return self.finish(prep, restored)

    def restore_aligned(self, face: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """Restore a face crop that is already aligned (FFHQ-style, any size).

        RGB uint8 in and out (grey, RGBA and 16-bit come back as they went in, as with
        ``restore``), at ``size`` (height, width; default: the input's). The crop is resized
        to the network's size and back (``own_scale``: restored at its own size). Colours,
        identity and the guard as for the faces of a photo (``restore_aligned_record``)."""
        return self.restore_aligned_record(face, size)[0]

    def restore_aligned_record(self, face: np.ndarray, size: tuple[int, int] | None = None) -> tuple[np.ndarray, dict]:
        """``restore_aligned``'s face and what ``restore.faces.trust`` says of it (identity,
        guard, quality; empty when none of them is on)."""
        colour, grey, alpha = _split(face)
        rgb8 = to_rgb8(colour)
        h, w = rgb8.shape[:2]
        s = self.face_size
        if self.own_scale:  # at its own size, as the model was trained
            out, s, given = self._run(self.face_translator, rgb8), max(h, w), rgb8
            out = blend([out], [rgb8], self.fidelity)[0] if self.fidelity < 1 else out
        else:
            given = resize_to(rgb8, s, s, "area" if min(h, w) > s else "lanczos")
            out = self.restore_crops([given])[0]
        record: dict = {}
        if self.trust.active:
            (out,), (record,), _ = self.trust.apply([given], [out])
        H, W = size or (h, w)
        out = _as_layout(resize_to(out, H, W, "area" if max(H, W) < s else "lanczos"), grey, colour.dtype)
        return (out if alpha is None else np.dstack([out, resize_to(alpha, H, W, "lanczos")])), record

    def aligned_face_record(self, height: int, width: int) -> dict:
        """What report.json says about an input that is itself an aligned face."""
        pts = template(512) * [width / 512, height / 512]
        return RestoredFace(np.array([0, 0, width, height], float), pts, None, np.eye(2, 3), None, None).to_dict()
