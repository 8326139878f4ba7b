"""``restore segment`` (a folder of images -> masks and overlays) and ``restore eval segment``
(predictions against ground truth)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from restore.runners.args import (
    add_backend_arg,
    add_output_args,
    add_precision_arg,
    add_runner_args,
    add_tta_arg,
)


def _diameter(text: str) -> float | str | None:
    if text in ("auto", "none"):
        return None if text == "none" else "auto"
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("diameter must be positive")
    return value


def _sides(text: str) -> tuple[int, ...]:
    try:
        sides = tuple(int(t) for t in text.lower().replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes such as 64,512,512 or 2048, not {text!r}") from None
    if not 1 <= len(sides) <= 3 or min(sides) < 0:
        raise argparse.ArgumentTypeError(f"expected one to three sizes >= 0, not {text!r}")
    return sides


def add_parser(sub) -> argparse.ArgumentParser:
    """``restore segment``."""
    p = sub.add_parser("segment", help="segment images with a U-Net (nuclei by default)")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="image files or folders (searched recursively); OME-Zarr/Zarr stores (x.ome.zarr, zipped "
                        "x.ome.zarr.zip or x.ozx) and NIfTI volumes (x.nii, x.nii.gz) are read and written block by block")
    p.add_argument("-o", "--out", required=True, type=Path, help="output folder")
    p.add_argument("--weights", default=None,
                   help="bundled model name, run folder, .safetensors or .onnx file, or a bioimage.io model package "
                        "(.zip; TorchScript or ONNX weights) (default: nuclei)")
    p.add_argument("--tile", type=int, default=512, help="tile side in pixels (default 512)")
    p.add_argument("--overlap", type=float, default=0.25, help="tile overlap fraction (default 0.25)")
    p.add_argument("--min-size", type=int, default=16, help="remove objects and holes smaller than this (px; 0 keeps all)")
    p.add_argument("--fill-holes", action="store_true", help="fill holes inside objects")
    p.add_argument("--instances", action="store_true", help="write 16-bit instance labels (touching objects split)")
    p.add_argument("--crf", action="store_true", help="refine with a dense CRF (2D)")
    p.add_argument("--diameter", type=_diameter, default="auto",
                   help="object diameter in px in your images, 'auto' (default) or 'none' to not rescale")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    add_precision_arg(p, "segment")
    add_backend_arg(p)
    add_tta_arg(p, "class probabilities (logits) averaged")
    add_output_args(p, "overlays (masks stay PNG, or TIFF for volumes)")
    v = p.add_argument_group("volumes (OME-Zarr, Zarr, NIfTI: read and written block by block, in their own format)")
    v.add_argument("--block", type=_sides, default=None, metavar="Z,Y,X",
                   help="block of a volume segmented at once (default 64,512,512; 2048,2048 in 2D): memory follows it")
    v.add_argument("--halo", type=_sides, default=None, metavar="Z,Y,X",
                   help="margin read around each block (default 16,32,32; 0,32,32 for the class masks of a 2D model): "
                        "at least an object's diameter, so objects "
                        "across block borders get one label")
    v.add_argument("--axes", default=None, help="axis names of a plain Zarr array, e.g. zyx or cyx (OME-Zarr and NIfTI "
                                                "say their own)")
    v.add_argument("--missing-chunks", choices=("error", "fill"), default="error",
                   help="a Zarr store with absent chunks: refuse it (default: a partial copy?) or read them as the "
                        "fill value (a store written sparse)")
    p.add_argument("--trust-torchscript", action="store_true",
                   help="run the TorchScript of a bioimage.io package from elsewhere even where it calls operators "
                        "outside the allow-list (a TorchScript file is a program: only for sources you trust)")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose outputs exist (resume)")
    p.add_argument("--quiet", action="store_true")
    add_runner_args(p)
    return p


def add_eval_parser(esub) -> argparse.ArgumentParser:
    """``restore eval segment``."""
    s = esub.add_parser("segment", help="IoU and Dice per image and their means")
    s.add_argument("--pred", required=True, type=Path)
    s.add_argument("--gt", required=True, type=Path)
    s.add_argument("--json", type=Path, help="also write the scores as JSON")
    return s


def run(args: argparse.Namespace) -> int:
    """``restore segment``: exit status 0 all done, 1 some inputs failed, 2 usage error."""
    from functools import partial

    from restore.runners.args import output_ext
    from restore.runners.command import run_command
    from restore.runners.report import BatchReport

    from .job import SegmentJob
    from .segmenter import Segmenter
    from .volume_job import run_volumes

    make = partial(Segmenter, weights=args.weights, device=args.device, tile=args.tile, overlap=args.overlap,
                   diameter=args.diameter, precision=args.precision, backend=args.backend, tta=args.tta,
                   trust_torchscript=args.trust_torchscript or None)

    def volumes(job: SegmentJob, items) -> BatchReport:  # block by block, on this machine
        return run_volumes(job.model, items, args.out, instances=args.instances, min_size=args.min_size,
                           fill_holes=args.fill_holes, block=args.block, halo=args.halo, axes=args.axes,
                           missing=args.missing_chunks, ext=output_ext(args), quality=args.quality,
                           skip_existing=args.skip_existing, quiet=args.quiet)

    return run_command(args, "segment", lambda: SegmentJob(
        make, model=make(), out=args.out, instances=args.instances, min_size=args.min_size,
        fill_holes=args.fill_holes, crf=args.crf, ext=output_ext(args), quality=args.quality), stores=volumes)


def run_eval(args: argparse.Namespace) -> int:
    """``restore eval segment``."""
    import json

    from restore.segment.scores import evaluate_folders, format_table

    try:
        rows, summary = evaluate_folders(args.pred, args.gt)
    except (ValueError, OSError) as e:
        print(f"restore eval segment: error: {e}", file=sys.stderr)
        return 2
    print(format_table(rows, summary))
    if args.json:
        args.json.write_text(json.dumps({"images": rows, **summary}, indent=2, default=float))
    return 0
