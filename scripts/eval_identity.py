#!/usr/bin/env python
"""Is the person still there? Identity, the guard and colours of `restore faces` on real faces.

    python scripts/eval_identity.py [--data data/faces/test] [--preset gfpgan] [--json F]

Real group photos (scripts/fetch_faces.py), degraded at a fixed seed (scripts/baseline_restore.py).
The reference faces are MTCNN's on the clean photo (>= 32 px); every variant restores the same
faces (those detections, aligned the same way), so each face is compared with itself:

  - identity to the clean face (cosine of dlib's face-recognition embeddings, 1 = the same):
    of the degraded face, of the restored face, and of the guarded one (--min-identity T);
  - the share of faces the guard touched (blended back toward the input, or the input kept);
  - the colour difference (mean CIEDE2000 of the low-passed faces) between the input face and
    the restored one, with the model's colours, --colour keep (chroma) and --colour wavelet;
  - seconds per face of the embedding against the face network's own.

Two face models: the bundled restorer, and a GFP-GAN of random weights (the published v1.4
layout, seeded): a deliberately broken face model whose faces are nobody, which the guard must
catch. The guard's threshold T is restore.faces.identity's default unless --min-identity.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from baseline_restore import degraded_test_pair  # noqa: E402

from restore.faces.align import estimate_affine, warp_face  # noqa: E402
from restore.faces.colour_keep import colour_difference  # noqa: E402
from restore.faces.detect import detect, make_detector  # noqa: E402
from restore.faces.identity import DEFAULT_THRESHOLD, load_identity  # noqa: E402
from restore.faces.restorer import FaceRestorer  # noqa: E402
from restore.faces.trust import cosine  # noqa: E402

MIN_FACE = 32  # px: smaller faces carry too little for a face-recognition embedding


def random_gfpgan() -> torch.nn.Module:
    """GFP-GAN v1.4's network with seeded random weights: a face model that makes nobody."""
    from gan.nets.gfpgan import GFPGAN, GFPGAN_PRESETS

    torch.manual_seed(0)
    return GFPGAN(GFPGAN_PRESETS["published"]).eval()


def to8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)


def run_variants(fr: FaceRestorer, degraded: np.ndarray, found: list, clean_emb: np.ndarray, idm, t: float) -> dict:
    """Restore the reference faces of one photo with ``fr``'s network once, then finish them with
    each trust setting (colours model/keep, guard off/on); per variant and face: identity to
    the clean face, identity to the input, guard action, colour difference; seconds."""
    prep = fr.prepare(degraded)
    fr.realign(prep, found)
    t0 = time.perf_counter()
    restored = fr.restore_crops(prep.crops)
    t_net = time.perf_counter() - t0
    out = {}
    base = dict(prep.timings)
    for colour in ("model", "keep", "wavelet"):
        for guard in (False, True):
            v = fr.with_options(colour=colour, min_identity=t if guard else None)
            prep.timings = dict(base)  # this variant's own seconds
            result = v.finish(prep, list(restored))
            if fr.own_scale:  # the network ran in finish, over the faces' regions
                t_net = result.timings.get("net_faces", 0.0)
            faces = [f.restored for f in result.faces]
            emb = idm.embed(faces)
            out[(colour, guard)] = {
                "identity_to_clean": [float(cosine(a, b)) for a, b in zip(clean_emb, emb)],
                "identity": [f.identity for f in result.faces],
                "guard": [(f.trust.get("guard") or {}).get("action") for f in result.faces],
                "colour": [colour_difference(c, f) for c, f in zip(prep.crops, faces)],
                "net_seconds": t_net, "trust_seconds": result.timings.get("identity", 0.0),
                "faces": len(faces)}
    return out


def summarise(rows: list[dict]) -> dict:
    cat = lambda key: [v for r in rows for v in r[key]]  # noqa: E731
    n = sum(r["faces"] for r in rows)
    guard = cat("guard")
    return {"faces": n, "identity_to_clean_mean": round(float(np.mean(cat("identity_to_clean"))), 4),
            "identity_to_clean_min": round(float(np.min(cat("identity_to_clean"))), 4),
            "identity_to_input_mean": round(float(np.mean(cat("identity"))), 4),
            "identity_to_input": _percentiles(cat("identity")),
            "guard_touched": round(sum(g in ("blended", "input") for g in guard) / max(n, 1), 3),
            "guard_input_kept": round(sum(g == "input" for g in guard) / max(n, 1), 3),
            "colour_deltaE_mean": round(float(np.mean(cat("colour"))), 3),
            "net_seconds_per_face": round(sum(r["net_seconds"] for r in rows) / max(n, 1), 4),
            "identity_seconds_per_face": round(sum(r["trust_seconds"] for r in rows) / max(n, 1), 4)}


def _percentiles(values: list[float]) -> dict:
    """Cosine similarities in a few numbers: how many, min, percentiles, max."""
    if not values:
        return {"n": 0}
    q = np.percentile(values, [1, 5, 50, 95, 99])
    return {"n": len(values), "min": round(float(np.min(values)), 4), "p1": round(float(q[0]), 4),
            "p5": round(float(q[1]), 4), "median": round(float(q[2]), 4), "p95": round(float(q[3]), 4),
            "p99": round(float(q[4]), 4), "max": round(float(np.max(values)), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("data/faces/test"))
    ap.add_argument("--preset", default="gfpgan")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-identity", type=float, default=None)
    ap.add_argument("--limit", type=int, default=0, help="at most this many photos (0: all)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    idm = load_identity("auto")
    if idm is None:
        sys.exit("no face-recognition weights: restore weights fetch dlib-face-recognition")
    t = args.min_identity if args.min_identity is not None else DEFAULT_THRESHOLD
    detector = make_detector("mtcnn")[0]
    models = {"restorer": "restorer", "gfpgan-random": random_gfpgan()}
    restorers = {m: FaceRestorer(w, "mtcnn", precision="fp32", bg="none", identity=idm, batch_size=4)
                 for m, w in models.items()}
    rows: dict[str, list] = {}
    degraded_rows, strangers, embed_seconds, embedded = [], [], 0.0, 0
    photos = sorted(args.data.glob("*.png"))[: args.limit or None]
    for path in photos:
        degraded, clean = degraded_test_pair(path, args.preset, args.seed)
        degraded, clean = to8(degraded), to8(clean)
        found = [d for d in detect(detector, clean, 1600) if d.size >= MIN_FACE]
        if not found:
            continue
        affines = [estimate_affine(d.landmarks, 512) for d in found]
        clean_crops = [warp_face(clean, a, 512) for a in affines]
        t0 = time.perf_counter()
        clean_emb = idm.embed(clean_crops)
        embed_seconds += time.perf_counter() - t0
        embedded += len(found)
        deg_emb = idm.embed([warp_face(degraded, a, 512) for a in affines])
        degraded_rows += [float(cosine(a, b)) for a, b in zip(clean_emb, deg_emb)]
        # two faces of one group photo are two people: how alike strangers look to the embedding
        strangers += [float(cosine(clean_emb[i], clean_emb[j])) for i in range(len(found))
                      for j in range(i + 1, len(found))]
        for m, fr in restorers.items():
            for (c, g), row in run_variants(fr, degraded, found, clean_emb, idm, t).items():
                rows.setdefault(f"{m}/colour {c}/{'guard' if g else 'no guard'}", []).append(row)
        print(f"{path.name}: {len(found)} faces", file=sys.stderr)
    report = {"photos": len(photos), "preset": args.preset, "seed": args.seed, "threshold": t,
              "embedding": idm.name, "degraded_identity_to_clean_mean": round(float(np.mean(degraded_rows)), 4),
              "embed_seconds_per_face": round(embed_seconds / max(embedded, 1), 4),
              "same_person_degraded": _percentiles(degraded_rows),
              "strangers": _percentiles(strangers),
              "variants": {k: summarise(v) for k, v in rows.items() if v}}
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
