"""Before | after pictures of `restore faces` output: each input beside its restored photo.

    python scripts/before_after.py examples/faces demo_out/faces -o demo_out/faces/before_after.jpg

``make demo`` runs it; docs/faces_before_after.jpg in the README is a copy of its result.
Inputs are matched to ``OUT/restored/<stem>.png`` by name; each pair is ``--height`` px high
(the restored photo resized to the input's size, so upscaled results line up), pairs side by
side as far as the widest one reaches.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from restore.colour import to_rgb8  # noqa: E402
from restore.faces.align import resize_to  # noqa: E402
from restore.formats import is_image_file  # noqa: E402
from restore.imageio import read_image  # noqa: E402


def before_after(inputs: Path, out: Path, height: int = 300, gap: int = 4) -> np.ndarray:
    """Each input that has a restored photo beside it (input | restored), white gaps, RGB uint8."""
    rows = []
    for path in sorted(p for p in inputs.iterdir() if p.is_file() and is_image_file(p)):
        restored = out / "restored" / f"{path.stem}.png"
        if not restored.is_file():
            continue
        a, b = to_rgb8(read_image(path)), to_rgb8(read_image(restored))
        w = round(a.shape[1] * height / a.shape[0])
        a = resize_to(a, height, w, "area" if a.shape[0] > height else "lanczos")
        b = resize_to(b, height, w, "area" if b.shape[0] > height else "lanczos")
        rows.append(np.concatenate([a, np.full((height, gap, 3), 255, np.uint8), b], axis=1))
    if not rows:
        raise SystemExit(f"no restored photos for {inputs} in {out / 'restored'}: run `restore faces` first")
    # Pairs side by side while they fit in the widest one's width, then a new line.
    width = max(r.shape[1] for r in rows)
    lines: list[list[np.ndarray]] = [[]]
    for r in rows:
        if lines[-1] and sum(x.shape[1] + 2 * gap for x in lines[-1]) + r.shape[1] > width:
            lines.append([])
        lines[-1].append(r)
    white = np.full((height, 2 * gap, 3), 255, np.uint8)
    joined = [np.concatenate([x for r in line for x in (r, white)][:-1], axis=1) for line in lines]
    padded = [np.pad(r, ((0, gap), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in joined]
    return np.concatenate(padded, axis=0)[:-gap]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", type=Path, help="the photos given to restore faces")
    ap.add_argument("out", type=Path, help="its output folder (holds restored/)")
    ap.add_argument("-o", "--output", type=Path, required=True, help="the picture to write (.jpg or .png)")
    ap.add_argument("--height", type=int, default=300)
    args = ap.parse_args()
    from PIL import Image

    Image.fromarray(before_after(args.inputs, args.out, args.height)).save(args.output, quality=90)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
