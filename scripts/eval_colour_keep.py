"""Colours kept, measured on real faces: how far the restored face's low-frequency colour is
from the input face's (mean CIEDE2000 of the low-passed faces, ``colour_difference``) before
and after ``keep_colours``, with each method; and what it costs the restorer's detail.

    .venv/bin/python scripts/eval_colour_keep.py [--model restorer] [--max-faces 24] [--out eval.json]

Faces: ``skimage.data.astronaut()``, examples/faces/*, data/photos/{test,test_album,
real_degraded}/* where present; found with MTCNN, aligned to the FFHQ template at 512 px
(``restore.faces.align``), restored by the face model (``Translator`` on the aligned crop: the
bundled ``restorer`` by default). Measured inside a feathered ellipse over the face (the
template's forehead to chin, cheek to cheek) and on the whole crop; keep_colours gets the same
ellipse as its mask. Also: NIQE and BRISQUE of each face (``restore.noref``) and the change of
luma's high band (the detail keep_colours must leave alone).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from restore.faces.colour_keep import colour_difference, keep_colours
from restore.noref import brisque, niqe

SIZE = 512


def photos() -> list[tuple[str, np.ndarray]]:
    import skimage.data
    from PIL import Image

    out = [("skimage_astronaut", skimage.data.astronaut())]
    folders = [ROOT / "examples" / "faces"] + [ROOT / "data" / "photos" / d for d in ("test", "test_album", "real_degraded")]
    for folder in folders:
        for path in sorted(folder.glob("*")) if folder.is_dir() else []:
            if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
                with Image.open(path) as im:
                    out.append((f"{folder.name}/{path.name}", np.asarray(im.convert("RGB"))))
    return out


def face_ellipse(size: int = SIZE) -> np.ndarray:
    """The face on an FFHQ-aligned crop: an ellipse from forehead to chin, feathered."""
    mask = np.zeros((size, size), np.float32)
    s = size / 512
    cv2.ellipse(mask, (round(256 * s), round(285 * s)), (round(150 * s), round(190 * s)), 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(mask, (0, 0), 8 * s)


def high_band_change(out: np.ndarray, restored: np.ndarray) -> float:
    def hp(x):
        y = x.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])
        return y - cv2.GaussianBlur(y, (0, 0), 3)
    ref = hp(restored)
    return float(np.linalg.norm(hp(out) - ref) / max(np.linalg.norm(ref), 1e-9))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="restorer", help="an image-to-image face model (name or file)")
    p.add_argument("--max-faces", type=int, default=24)
    p.add_argument("--per-photo", type=int, default=3)
    p.add_argument("--min-face", type=float, default=40, help="smallest face box side, px")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)

    import torch

    from restore.faces.align import estimate_affine, warp_face
    from restore.faces.detect import detect, make_detector
    from restore.translate import Translator

    torch.set_num_threads(2)
    detector, why = make_detector("mtcnn")
    restorer = Translator(args.model)
    mask = face_ellipse()
    rows = []
    for name, rgb in photos():
        faces = [f for f in detect(detector, rgb) if f.size >= args.min_face][: args.per_photo]
        for i, face in enumerate(faces):
            if len(rows) >= args.max_faces:
                break
            crop = warp_face(rgb, estimate_affine(face.landmarks, SIZE), SIZE)
            restored = restorer(crop)
            row = {"photo": name, "face": i, "box_side": round(face.size, 1),
                   "before": {"face": colour_difference(restored, crop, mask=mask),
                              "crop": colour_difference(restored, crop)}}
            for method in ("wavelet", "lab"):
                t = time.perf_counter()
                kept = keep_colours(restored, crop, mask, method=method)
                ms = (time.perf_counter() - t) * 1000
                row[method] = {"face": colour_difference(kept, crop, mask=mask),
                               "crop": colour_difference(kept, crop), "ms": ms,
                               "high_band_change": high_band_change(kept, restored)}
                if method == "wavelet":
                    row["niqe"] = {"input": niqe(crop), "restored": niqe(restored), "kept": niqe(kept)}
                    row["brisque"] = {"input": brisque(crop), "restored": brisque(restored), "kept": brisque(kept)}
            rows.append(row)
            print(f"{name}#{i} ({face.size:.0f} px): dE2000 face {row['before']['face']:.2f} -> wavelet "
                  f"{row['wavelet']['face']:.2f}, lab {row['lab']['face']:.2f}; detail change "
                  f"{row['wavelet']['high_band_change']:.3f} / {row['lab']['high_band_change']:.3f}; NIQE "
                  f"{row['niqe']['input']:.2f} -> {row['niqe']['restored']:.2f} -> {row['niqe']['kept']:.2f}; "
                  f"BRISQUE {row['brisque']['input']:.1f} -> {row['brisque']['restored']:.1f} -> "
                  f"{row['brisque']['kept']:.1f}", flush=True)

    def mean(*keys):
        return round(float(np.mean([_get(r, keys) for r in rows])), 3)

    summary = {"faces": len(rows), "model": args.model, "detector": why,
               "dE2000_face": {"before": mean("before", "face"), "wavelet": mean("wavelet", "face"),
                               "lab": mean("lab", "face")},
               "dE2000_crop": {"before": mean("before", "crop"), "wavelet": mean("wavelet", "crop"),
                               "lab": mean("lab", "crop")},
               "high_band_change": {"wavelet": mean("wavelet", "high_band_change"),
                                    "lab": mean("lab", "high_band_change")},
               "ms": {"wavelet": mean("wavelet", "ms"), "lab": mean("lab", "ms")},
               "niqe": {k: mean("niqe", k) for k in ("input", "restored", "kept")},
               "brisque": {k: mean("brisque", k) for k in ("input", "restored", "kept")}}
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "faces": rows}, indent=1))
    return 0


def _get(row, keys):
    for k in keys:
        row = row[k]
    return row


if __name__ == "__main__":
    raise SystemExit(main())
