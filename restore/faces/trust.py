"""Faces a user can trust: per face, whether the person is still there, colours kept, a guard.

``Trust.apply(inputs, restored)`` runs between the face network and the paste-back, on the
aligned crops (RGB uint8 S x S, the input's and the restored, in the same alignment):

1. colours (``colour="keep"``): the restored face takes the input's low-frequency chroma
   (``restore.faces.colour_keep``, CIELAB a/b); its lightness and detail stay the network's.
   ``colour="wavelet"``: CodeFormer's colour fix, the input's low band lightness too.
2. identity: a face-recognition embedding of the input crop and of the restored one, their
   cosine similarity (1: the same embedding) per face (``restore.faces.identity``).
3. the guard (``min_identity`` T): a face under T is blended back toward its input, the
   fidelity searched from the restored end (0.9, 0.8, ... 0.1), and the first blend at or
   above T is kept; when none is, the input face itself (cosine 1 with itself). All blends of
   a photo's failing faces go through the embedding network in one call.
4. quality (``quality=True``): NIQE and BRISQUE of the restored face (``restore.noref``),
   no reference needed, so a collection can be sorted by what needs a look.

Each face gets a record for ``report.json``:
``{"identity": cosine, "identity_model": name, "guard": {...}, "quality": {...}}``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .identity import cosine
from .own_scale import blend

__all__ = ["COLOUR_MODES", "GUARD_STEPS", "Trust", "cosine", "make_trust", "quality_scores", "resolve_colour"]

COLOUR_MODES = ("auto", "keep", "wavelet", "model")
# --colour -> restore.faces.colour_keep's method. keep: the input's low-frequency chroma (CIELAB
# a/b) under the network's luminance. wavelet: CodeFormer's colour fix, the input's whole low band,
# lightness too: closer in colour, but it puts the input's coarse face back under any network, so
# the identity check cannot tell a broken one (measured, scripts/eval_identity.py: a random-weight
# GFP-GAN's faces scored 0.97 to the input with it, 0.88 without, 0.89 with keep).
COLOUR_METHODS = {"keep": "lab", "wavelet": "wavelet"}
GUARD_STEPS = tuple(round(0.9 - 0.1 * k, 1) for k in range(9))  # fidelity tried: 0.9 ... 0.1, then 0 (the input)


def quality_scores(rgb: np.ndarray) -> dict[str, float | None]:
    """NIQE and BRISQUE of an RGB uint8 picture, rounded; None where a score cannot be had (a
    picture too small or flat: ``restore.noref`` says NaN, which JSON cannot hold)."""
    from restore.noref import scores

    return {k: (None if not np.isfinite(v) else round(float(v), 3)) for k, v in scores(rgb).items()}


@dataclass
class Trust:
    """The per-face checks of ``FaceRestorer``; see the module's docstring. ``identity``: an
    ``IdentityModel`` or None (no embedding at hand: records say ``identity`` null)."""

    identity: Any = None
    min_identity: float | None = None
    colour: str = "model"  # "keep" | "model" (resolved from "auto" by the restorer)
    quality: bool = False

    def __post_init__(self) -> None:
        if self.colour not in ("keep", "wavelet", "model"):
            raise ValueError(f"colour must be keep, wavelet or model, not {self.colour!r}")
        if self.min_identity is not None:
            if not -1 <= self.min_identity <= 1:
                raise ValueError(f"--min-identity is a cosine similarity in [-1, 1], not {self.min_identity}")
            if self.identity is None:
                raise ValueError("--min-identity needs a face-recognition embedding: "
                                 "restore weights fetch dlib-face-recognition")

    @property
    def threshold(self) -> float | None:
        """Under this a face counts as another person in the summaries: --min-identity, else the
        embedding's own (``restore.faces.identity``: dlib's 0.91, from its distance rule)."""
        if self.min_identity is not None:
            return self.min_identity
        return getattr(self.identity, "threshold", None)

    def info(self) -> str:
        """A few words for the command's first line."""
        parts = []
        if self.identity is not None:
            guard = f", guard at {self.min_identity:g}" if self.min_identity is not None else ""
            parts.append(f"identity by {self.identity.name}{guard}")
        else:
            parts.append("identity not measured (restore weights fetch dlib-face-recognition)")
        parts.append({"keep": "colours kept", "wavelet": "colours kept (wavelet)"}.get(self.colour, "the model's colours"))
        return "; " + ", ".join(parts)

    @property
    def active(self) -> bool:
        return self.colour != "model" or self.identity is not None or self.quality

    def apply(self, inputs: list[np.ndarray], restored: list[np.ndarray], timings: dict[str, float] | None = None
              ) -> tuple[list[np.ndarray], list[dict], list[bool]]:
        """(the faces to paste, a record per face, whether each face differs from ``restored``);
        seconds spent are added to ``timings`` (colour, identity, quality)."""
        import time

        if len(inputs) != len(restored):
            raise ValueError(f"{len(inputs)} input faces but {len(restored)} restored ones")
        faces = list(restored)
        changed = [False] * len(faces)
        records: list[dict] = [{} for _ in faces]
        if not faces:
            return faces, records, changed
        t0 = time.perf_counter()
        if self.colour != "model":
            from .colour_keep import keep_colours

            faces = [keep_colours(r, s, method=COLOUR_METHODS[self.colour]) for r, s in zip(faces, inputs)]
            changed = [True] * len(faces)
        t1 = time.perf_counter()
        if self.identity is not None:
            self._identity(inputs, faces, records, changed)
        t2 = time.perf_counter()
        if self.quality:
            for rec, face in zip(records, faces):
                rec["quality"] = quality_scores(face)
        t = {} if timings is None else timings
        t["colour"] = t.get("colour", 0.0) + t1 - t0
        t["identity"] = t.get("identity", 0.0) + t2 - t1
        t["quality"] = t.get("quality", 0.0) + time.perf_counter() - t2
        return faces, records, changed

    def _identity(self, inputs: list[np.ndarray], faces: list[np.ndarray], records: list[dict],
                  changed: list[bool]) -> None:
        emb = self.identity.embed(list(inputs) + list(faces))
        n = len(faces)
        given, made = emb[:n], emb[n:]
        sims = [float(cosine(a, b)) for a, b in zip(given, made)]
        for k, s in enumerate(sims):
            records[k].update(identity=round(s, 4), identity_model=self.identity.name)
        t = self.min_identity
        if t is None:
            return
        failing = [k for k, s in enumerate(sims) if s < t]
        for k, s in enumerate(sims):
            if s >= t:
                records[k]["guard"] = {"threshold": t, "action": "kept"}
        if not failing:
            return
        blends = [blend([faces[k]], [inputs[k]], w)[0] for k in failing for w in GUARD_STEPS]
        tried = self.identity.embed(blends).reshape(len(failing), len(GUARD_STEPS), -1)
        for row, k in zip(tried, failing):
            guard = {"threshold": t, "identity_before": round(sims[k], 4)}
            passing = [(w, float(cosine(given[k], e))) for w, e in zip(GUARD_STEPS, row)]
            passing = [(w, c) for w, c in passing if c >= t]
            if passing:  # the first (most restored) blend that passes
                w, c = passing[0]
                faces[k] = blend([faces[k]], [inputs[k]], w)[0]
                guard.update(action="blended", fidelity=w)
            else:
                faces[k], c = inputs[k].copy(), 1.0
                guard.update(action="input", fidelity=0.0)
            changed[k] = True
            records[k].update(identity=round(c, 4), guard=guard)


def resolve_colour(colour: str, face_prior: bool) -> str:
    """``--colour`` as ``Trust`` takes it: "auto" is keep for a face prior (GFP-GAN, RestoreFormer,
    CodeFormer: they paint colours from their prior), the model's own for an image-to-image
    restorer (trained to give the input's colours back)."""
    if colour not in COLOUR_MODES:
        raise ValueError(f"colour must be one of {', '.join(COLOUR_MODES)}, not {colour!r}")
    return ("keep" if face_prior else "model") if colour == "auto" else colour


def make_trust(identity: Any = "auto", min_identity: float | None = None, colour: str = "auto",
               quality: bool = False, face_prior: bool = True) -> Trust:
    """``FaceRestorer``'s checks from its options. ``identity``: "auto" (dlib's embedding when
    its weights are cached, else ArcFace's when cached, else none), "off", a name for
    ``restore.faces.identity.load_identity``, or a model. ``colour``: see ``resolve_colour``."""
    colour = resolve_colour(colour, face_prior)
    model = identity
    if identity in (None, "off"):
        model = None
    elif isinstance(identity, str):
        from .identity import load_identity

        model = load_identity(identity)
        if model is None and identity != "auto":
            raise ValueError(f"no {identity} face-recognition weights here: restore weights fetch dlib-face-recognition")
    return Trust(model, min_identity, colour, quality)
