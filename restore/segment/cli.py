"""``restore segment`` (a folder of images -> masks and overlays) and ``restore eval segment``
(predictions against ground truth)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from restore.batch import add_output_args, add_precision_arg


def _diameter(text: str) -> float | str | None:
    if text in ("auto", "none"):
        return None if text == "none" else "auto"
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("diameter must be positive")
    return value


def add_parser(sub) -> argparse.ArgumentParser:
    """``restore segment``."""
    p = sub.add_parser("segment", help="segment images with a U-Net (nuclei by default)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    p.add_argument("-o", "--out", required=True, type=Path, help="output folder")
    p.add_argument("--weights", default=None, help="bundled model name, run folder or .safetensors file (default: nuclei)")
    p.add_argument("--tile", type=int, default=512, help="tile side in pixels (default 512)")
    p.add_argument("--overlap", type=float, default=0.25, help="tile overlap fraction (default 0.25)")
    p.add_argument("--min-size", type=int, default=16, help="remove objects and holes smaller than this (px; 0 keeps all)")
    p.add_argument("--fill-holes", action="store_true", help="fill holes inside objects")
    p.add_argument("--instances", action="store_true", help="write 16-bit instance labels (touching objects split)")
    p.add_argument("--crf", action="store_true", help="refine with a dense CRF (2D)")
    p.add_argument("--diameter", type=_diameter, default="auto",
                   help="object diameter in px in your images, 'auto' (default) or 'none' to not rescale")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    add_precision_arg(p, "fp32")
    add_output_args(p, "overlays (masks stay PNG, or TIFF for volumes)")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose outputs exist (resume)")
    p.add_argument("--quiet", action="store_true")
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
    from restore.batch import UsageError, output_ext, run_batch, scan_inputs
    from restore.imageio import is_volume, read_image, read_volume
    from restore.imagewrite import write_image, write_png, write_tiff
    from restore.models.manifest import WeightsError
    from restore.segment.overlay import overlay
    from restore.segment.segmenter import Segmenter

    try:
        found = scan_inputs(args.paths, exclude=[args.out])
        seg = Segmenter(args.weights, device=args.device, tile=args.tile, overlap=args.overlap,
                        diameter=args.diameter, precision=args.precision)
    except (UsageError, WeightsError, ValueError) as e:
        print(f"restore segment: error: {e}", file=sys.stderr)
        return 2

    def outputs(path: Path, sub: Path) -> list[Path]:
        ext = ".tif" if is_volume(path) else ".png"
        return [args.out / sub / f"{path.stem}_mask{ext}", args.out / sub / f"{path.stem}_overlay{output_ext(args)}"]

    def process(path: Path, sub: Path) -> None:
        image = read_volume(path) if is_volume(path) else read_image(path)
        labels = seg(image, instances=args.instances, min_size=args.min_size, fill_holes=args.fill_holes,
                     crf=args.crf)
        mask_path, overlay_path = outputs(path, sub)
        dtype = np.uint16 if args.instances or labels.max() > 255 else np.uint8
        if labels.ndim == 3:  # a volume: the mask as a TIFF stack, the middle slice as overlay
            write_tiff(mask_path, labels.astype(dtype))
            mid = labels.shape[0] // 2
            write_image(overlay_path, overlay(image[mid], labels[mid]), quality=args.quality)
        else:
            write_png(mask_path, labels.astype(dtype))
            write_image(overlay_path, overlay(image, labels), quality=args.quality)

    report = run_batch(found.items, process, outputs, skip_existing=args.skip_existing, desc="segment",
                       quiet=args.quiet, ignored=found.ignored)
    return report.exit_code


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
