"""Score a sketch colorizer on held-out colour images against the flat-fill baselines.

    python scripts/eval_colorizer.py --weights runs/colorizer/generator.safetensors \
        --data data/clipart/test --masks data/clipart/test_masks --json runs/colorizer/eval.json

For each held-out image (the truth): its sketch is extracted (XDoG by default, the default
parameters of restore.sketch.xdog), then coloured with the truth itself as the reference,
through ``restore.Colorizer`` (the path users run). Scored, as PSNR (dB, RGB, 0-1 scale, no
crop) against the truth, over all pixels and over the foreground (the alpha mask of
test_masks/, when given):

- model:                 the colorizer's output;
- flat_fill_region:      restore.sketch.colorizer.flat_fill(sketch, truth): line pixels (sketch < 0.5)
                         keep the sketch's grey; every 4-connected region of the other pixels
                         is filled with the truth's mean colour over that region. With the
                         truth as the reference this is an oracle for flat-colour art: it is
                         exact wherever a region holds one colour and its lines are closed;
- flat_fill_mean:        every non-line pixel takes the truth's mean colour over all
                         non-line pixels (the "one reference colour" fill);
- model_hints (--hints K): the model again with K colour hints (3x3 squares of the truth's
                         colour at random off-line pixels, seeded by the image's index);
- model_other_reference: the model with the next test image as the reference: how much the
                         score owes to the reference (a model that ignores it scores the same).
- model_transformed_reference: the model with the truth mirrored and turned 15 degrees as the
                         reference (restore.sketch.scores.transformed_reference): no pixel lines up.
- model_warped_reference: the model with an augmented-self reference (gan.data.tps.augment_self with
                         its defaults, seeded by the image's index: zoomed into 70-100%, turned up to
                         30 degrees, mirrored half the time, warped by a thin-plate spline): not a
                         rigid copy, as a redrawn or re-posed figure would be.

Colour away from lines (``*_away``, restore.sketch.scores): PSNR over the pixels >= 3 px from any
line pixel of the sketch (so the score is about colour, not about where lines fall), for the model
with either reference and for **mean_colour_fill** (the truth's background kept white, the rest
the reference's mean colour). ``lines_kept``: the share of the sketch's dark pixels still dark in
the model's result. ``--align off`` scores the network alone (no registration of the reference).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gan.data.tps import augment_self  # noqa: E402
from restore.imageio import read_image  # noqa: E402
from restore.imagewrite import write_png  # noqa: E402
from restore.sketch.colorizer import ALIGN, REGIONS, Colorizer, flat_fill, psnr, read_rgb  # noqa: E402
from restore.sketch.extract import extract  # noqa: E402
from restore.sketch.scores import away_from_lines, lines_kept, mean_colour_fill, transformed_reference  # noqa: E402


def random_hints(truth: np.ndarray, sketch: np.ndarray, k: int, seed: int) -> np.ndarray:
    """HxWx4 hints: k 3x3 squares of the truth's colour at random off-line, non-white pixels."""
    rng = np.random.default_rng(seed)
    hints = np.zeros((*sketch.shape, 4), np.float32)
    cand = np.flatnonzero((sketch > 0.5) & (truth.min(axis=2) < 0.9))
    for idx in rng.choice(cand, size=min(k, len(cand)), replace=False) if len(cand) else []:
        y, x = divmod(int(idx), sketch.shape[1])
        hints[max(0, y - 1):y + 2, max(0, x - 1):x + 2] = [*truth[y, x], 1]
    return hints


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default="colorizer")
    ap.add_argument("--data", type=Path, default=Path("data/clipart/test"))
    ap.add_argument("--masks", type=Path, help="foreground masks with the same names (0/255)")
    ap.add_argument("--method", default="xdog", choices=["xdog", "threshold", "hed"])
    ap.add_argument("--limit", type=int, default=0, help="score only the first N images (0: all)")
    ap.add_argument("--hints", type=int, default=0, help="also score with this many random colour hints")
    ap.add_argument("--panels", type=Path, help="write a PNG of sketch | model | flat fill | truth rows")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--ink", default="0", help="xdog's ink: 0 (off), auto (solid outlines of flat art), or a level")
    ap.add_argument("--regions", default="auto", choices=list(REGIONS),
                    help="one colour per region of the sketch: on, off (the network's own colours), or auto "
                         "(on when the reference is flat colour; Colorizer(one_per_region=...))")
    ap.add_argument("--align", default="auto", choices=list(ALIGN),
                    help="lay a reference that registers onto the sketch over it (auto), or the network alone (off)")
    ap.add_argument("--keep-paper", action="store_true", help="the paper outside the outer contour stays paper")
    args = ap.parse_args(argv)
    model = Colorizer(args.weights, one_per_region=REGIONS[args.regions], align=ALIGN[args.align],
                      precision="fp32")  # the card's figures are fp32

    def colour(sketch: np.ndarray, reference: np.ndarray, hints: np.ndarray | None = None) -> np.ndarray:
        return model(sketch, reference, hints, keep_paper=args.keep_paper).astype(np.float32) / 255

    files = sorted(args.data.glob("*.png"))[: args.limit or None]
    ink = {} if args.method != "xdog" or args.ink == "0" else \
        {"ink": args.ink if args.ink == "auto" else float(args.ink)}
    if not files:
        sys.exit(f"no PNG files in {args.data}")
    rows, panels, t_model = [], [], 0.0
    for i, path in enumerate(files):
        truth = read_rgb(path)
        sketch = extract(truth, args.method, **ink)
        mask = None
        if args.masks and (args.masks / path.name).is_file():
            mask = read_image(args.masks / path.name) > 127
        t0 = time.perf_counter()
        out = colour(sketch, truth)
        t_model += time.perf_counter() - t0
        outs = {"model": out, "flat_fill_region": flat_fill(sketch, truth),
                "flat_fill_mean": flat_fill(sketch, truth, per_region=False)}
        other = read_rgb(files[(i + 1) % len(files)]) if len(files) > 1 else truth
        outs["model_other_reference"] = colour(sketch, other)
        turned = transformed_reference(truth)
        outs["model_transformed_reference"] = colour(sketch, turned)
        outs["model_warped_reference"] = colour(sketch, augment_self(truth, torch.Generator().manual_seed(i)))
        if args.hints:
            hints = random_hints(truth, sketch, args.hints, i)
            outs["model_hints"] = colour(sketch, truth, hints)
        row = {"image": path.name}
        for name, img in outs.items():
            row[f"{name}_psnr"] = psnr(img, truth)
            if mask is not None and mask.any():
                row[f"{name}_psnr_fg"] = psnr(img, truth, mask)
        away = away_from_lines(sketch)
        for name, img in (("model", out), ("model_transformed_reference", outs["model_transformed_reference"]),
                          ("model_warped_reference", outs["model_warped_reference"]),
                          ("mean_colour_fill", mean_colour_fill(truth, truth, mask, mask))):
            row[f"{name}_away"] = psnr(img, truth, away)
        row["lines_kept"] = lines_kept(sketch, out)
        rows.append(row)
        print(f"{path.name:50s} " + " | ".join(f"{k[:-5]} {v:6.2f}" for k, v in row.items() if k.endswith("_psnr")),
              flush=True)
        if args.panels and len(panels) < 8 and max(truth.shape[:2]) <= 256:
            pad = lambda a: np.pad(a, ((0, 256 - a.shape[0]), (0, 256 - a.shape[1]), (0, 0)), constant_values=1)  # noqa: E731
            panels.append(np.concatenate([pad(np.repeat(sketch[..., None], 3, 2)), pad(out),
                                          pad(outs["flat_fill_region"]), pad(truth)], axis=1))
    keys = [k for k in rows[0] if k != "image"]
    mean = {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys}
    print("MEAN " + " | ".join(f"{k} {v:.2f}" for k, v in mean.items()))
    gain = mean["model_psnr"] - mean["flat_fill_region_psnr"]
    print(f"model - flat_fill_region: {gain:+.2f} dB (all pixels); model - flat_fill_mean: "
          f"{mean['model_psnr'] - mean['flat_fill_mean_psnr']:+.2f} dB; {t_model / len(rows):.3f} s per image")
    fill = mean["mean_colour_fill_away"]
    print(f">= 3 px from lines: mean-colour fill {fill:.2f} dB, model {mean['model_away']:.2f} "
          f"({mean['model_away'] - fill:+.2f}), with a mirrored + turned reference "
          f"{mean['model_transformed_reference_away']:.2f} ({mean['model_transformed_reference_away'] - fill:+.2f}), "
          f"warped {mean['model_warped_reference_away']:.2f} ({mean['model_warped_reference_away'] - fill:+.2f}); "
          f"line pixels kept {mean['lines_kept']:.1%}")
    report = {"weights": str(model.path), "data": str(args.data), "sketch": args.method, "ink": args.ink,
              "images": len(rows),
              "metric": "PSNR dB, RGB in [0, 1], no crop; _fg: over the alpha mask; _away: over pixels >= 3 px "
                        "from the sketch's lines", "reference": "the truth itself (and its transformed copy)",
              "one_per_region": args.regions, "align": args.align, "keep_paper": args.keep_paper,
              "mean": mean, "gain_over_flat_fill_region_db": gain, "seconds_per_image": t_model / len(rows),
              "rows": rows}
    if args.panels and panels:
        write_png(args.panels, (np.concatenate(panels, axis=0) * 255).round().astype(np.uint8))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
