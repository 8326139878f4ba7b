"""The ``restore`` command. Exit status: 0 all done, 1 some inputs failed, 2 usage error."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from .batch import add_output_args


def _diameter(text: str) -> float | str | None:
    if text in ("auto", "none"):
        return None if text == "none" else "auto"
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("diameter must be positive")
    return value


def _add_segment(sub) -> None:
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
    add_output_args(p, "overlays (masks stay PNG, or TIFF for volumes)")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose outputs exist (resume)")
    p.add_argument("--quiet", action="store_true")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a network")
    tsub = p.add_subparsers(dest="what", required=True)
    _add_pix2pix(tsub)
    from .sketch_cli import add_train_parser as _add_colorizer

    _add_colorizer(tsub)
    from .training_gfpgan import add_train_parser as _add_gfpgan

    _add_gfpgan(tsub)
    s = tsub.add_parser("segmenter", help="train a segmentation U-Net on images/ + masks/ (or CTC) data")
    s.add_argument("--data", required=True, type=Path, help="folder with images/ and masks/, or a CTC sequence folder")
    s.add_argument("--val", type=Path, help="validation folder (same layout); default: hold out part of --data")
    s.add_argument("--val-fraction", type=float, default=0.2)
    s.add_argument("--out", required=True, type=Path, help="run folder (model.safetensors, checkpoint.pt, tb/)")
    s.add_argument("--model", default="plain", choices=["plain", "residual", "attention", "multires", "unetr"])
    s.add_argument("--dims", type=int, default=2, choices=[2, 3])
    s.add_argument("--preset", default="default", choices=["tiny", "default", "paper"])
    s.add_argument("--classes", type=int, default=2, help="classes incl. background (instance masks -> 2)")
    s.add_argument("--in-channels", type=int, default=1)
    s.add_argument("--steps", type=int, help="optimizer steps (overrides --epochs)")
    s.add_argument("--epochs", type=int, help="epochs (one epoch ~ every training pixel seen once); default 50")
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--crop", type=int, default=None,
                   help="training crop side (default: 256, or, for smaller images or volumes, the largest multiple "
                        "of the U-Net's size divisor that every image allows; never resized, since that would "
                        "change the objects' scale: images below one divisor have their borders mirrored)")
    s.add_argument("--lr", type=float, default=1e-3)
    s.add_argument("--loss", default="dice_ce", choices=["ce", "wce", "dice", "dice_ce"])
    s.add_argument("--zoom", type=float, nargs=2, default=(0.6, 1.7), metavar=("MIN", "MAX"),
                   help="scale augmentation range (default 0.6 1.7)")
    s.add_argument("--augment", action="append", default=[], metavar="FIELD=VALUE",
                   help="override an augmentation setting of gan.augment.AugmentConfig, e.g. rotate=180 "
                        "or gamma=0.6,1.6 (repeatable)")
    s.add_argument("--diameter", type=float, default=None,
                   help="rescale every image so its median object diameter becomes this many px")
    s.add_argument("--val-every", type=int, help="steps between validations (default: one epoch)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    s.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint.pt")
    s.add_argument("--quiet", action="store_true")


def _add_pix2pix(tsub) -> None:
    s = tsub.add_parser("pix2pix", help="train a U-Net GAN (pix2pix) on image pairs or degraded clean photos")
    s.add_argument("--data", required=True, type=Path,
                   help="A/ + B/ folders, side-by-side pairs, or clean images with --degrade")
    s.add_argument("--layout", default="auto", choices=["auto", "ab", "side", "clean"])
    s.add_argument("--degrade", choices=["gfpgan", "mild", "mixed", "old-photo"],
                   help="make inputs from clean images with this degradation model (gan/degrade.py)")
    s.add_argument("--val", type=Path, help="validation folder (same layout); default: every 10th pair")
    s.add_argument("--val-size", type=int, default=256, help="side of the validation centre crops")
    s.add_argument("--out", required=True, type=Path, help="run folder (generator.safetensors, checkpoint.pt, tb/)")
    s.add_argument("--preset", default="default", choices=["tiny", "tiny-restorer", "restorer", "default", "paper"],
                   help="network sizes: pix2pix's (default, paper, tiny) or the residual restorer's")
    s.add_argument("--num-downs", type=int, help="generator depth (default: the preset's)")
    s.add_argument("--init", choices=["pix2pix", "default"],
                   help="generator initialisation: pix2pix's N(0, 0.02) or PyTorch's (default: the preset's)")
    s.add_argument("--n-layers", type=int, help="PatchGAN layers (3 = 70x70 patches)")
    s.add_argument("--spectral-norm", action="store_true", help="spectral norm in the discriminator")
    s.add_argument("--steps", type=int, default=20000)
    s.add_argument("--batch-size", type=int, default=4)
    s.add_argument("--crop", type=int, default=None,
                   help="training crop side (default: 256, or, for smaller images, the largest multiple of the "
                        "generator's size divisor that every pair allows; pairs below one divisor, e.g. 256 px for "
                        "the default 8-level U-Net, are resized up to it, as pix2pix does). Given, pairs smaller "
                        "than it are unusable")
    s.add_argument("--scale", type=float, nargs=2, default=(1.0, 1.0), metavar=("MIN", "MAX"),
                   help="random resize of the crops (e.g. 0.5 1.0)")
    s.add_argument("--lr", type=float, default=2e-4)
    s.add_argument("--rotate", action="store_true",
                   help="also rotate crops by multiples of 90 degrees (8 orientations with the flip; for restoration data)")
    s.add_argument("--init-weights", help="fine-tune: start the generator from this run, file or bundled name")
    s.add_argument("--beta1", type=float, default=0.5, help="Adam's beta1 (pix2pix: 0.5; 0.9 for L1-only runs)")
    s.add_argument("--gan-loss", default="vanilla", choices=["vanilla", "lsgan", "hinge", "wgan-softplus"])
    s.add_argument("--gan-weight", type=float, default=1.0)
    s.add_argument("--l1-weight", type=float, default=100.0)
    s.add_argument("--perceptual-weight", type=float, default=0.0)
    s.add_argument("--perceptual", default="auto", choices=["auto", "vgg19", "mobilenet_v2"],
                   help="perceptual backbone (auto: VGG19 if its weights are in the torch hub cache)")
    s.add_argument("--perceptual-weights", type=Path, help="backbone state-dict file (e.g. mobilenet_v2-b0353104.pth)")
    s.add_argument("--r1-weight", type=float, default=0.0)
    s.add_argument("--r1-every", type=int, default=16)
    s.add_argument("--ema", type=float, default=0.999, help="EMA decay of the exported generator (0: off)")
    s.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA and on CPUs with AVX512-BF16")
    s.add_argument("--val-every", type=int, default=500)
    s.add_argument("--skip-bad", action="store_true", help="train without unusable files instead of stopping")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=0)
    s.add_argument("--resume", action="store_true")
    s.add_argument("--quiet", action="store_true")


def _add_translate(sub) -> None:
    p = sub.add_parser("translate", help="apply a trained generator (pix2pix, the restorer) to images")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    p.add_argument("-o", "--out", required=True, type=Path)
    p.add_argument("--weights", required=True, help="run folder, generator .safetensors, or a bundled name (restorer)")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=float, default=0.25)
    p.add_argument("--device", default="cpu")
    add_output_args(p)
    p.add_argument("--skip-existing", action="store_true")
    p.add_argument("--quiet", action="store_true")


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="score predictions against ground truth")
    esub = p.add_subparsers(dest="what", required=True)
    s = esub.add_parser("segment", help="IoU and Dice per image and their means")
    s.add_argument("--pred", required=True, type=Path)
    s.add_argument("--gt", required=True, type=Path)
    s.add_argument("--json", type=Path, help="also write the scores as JSON")


def _add_weights(sub) -> None:
    from .weights_cli import add_parser

    add_parser(sub)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be in [0, 1]")
    return value


def _add_faces(sub) -> None:
    p = sub.add_parser("faces", help="restore the faces (and the background) of photos")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    p.add_argument("-o", "--out", required=True, type=Path,
                   help="output folder: restored/, faces/ (aligned input | restored) and report.json")
    p.add_argument("--weights", default=None,
                   help="face model: gfpgan-v1.4, gfpgan-v1.3, restorer, or a .pth / .safetensors file "
                        "(default: GFPGANv1.4 or v1.3 when in the weights cache, else the bundled restorer)")
    p.add_argument("--detector", default="auto", choices=["auto", "retinaface", "mtcnn"],
                   help="auto: RetinaFace when its weights are in the cache, else MTCNN")
    p.add_argument("--bg", default="restorer", choices=["restorer", "resize", "none"],
                   help="background: the bundled restorer in tiles, a Lanczos resize, or none (input pixels kept)")
    p.add_argument("--upscale", type=int, default=1, choices=[1, 2, 4])
    p.add_argument("--fidelity", type=_fraction, default=1.0,
                   help="blend of restored (1) and input (0) face, in [0, 1] (default 1)")
    p.add_argument("--min-face", type=float, default=16, help="skip (and count) faces smaller than this (px)")
    p.add_argument("--only-center-face", action="store_true", help="restore only the face nearest the centre")
    p.add_argument("--aligned", action="store_true", help="inputs are already aligned face crops")
    p.add_argument("--no-parse", action="store_true",
                   help="feathered square mask even when the parsenet weights are cached (parsing is slow on a CPU)")
    p.add_argument("--detect-size", type=int, default=1600,
                   help="detect faces on a copy at most this many px on its longer side (0: full size)")
    p.add_argument("--tile", type=int, default=512, help="tile side for the background restorer")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16", "auto"])
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    add_output_args(p, "photos and face crops")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose outputs exist (resume)")
    p.add_argument("--quiet", action="store_true")


def _add_app(sub) -> None:
    p = sub.add_parser("app", help="the Gradio app: faces, sketch, segmentation and translation in one page")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true", help="also a public gradio.live link (needs internet)")
    p.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu, cuda, cuda:1 ...")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto: measured per task (bf16/fp16 where it changes nothing visible); or one for all")
    p.add_argument("--concurrency", type=int, default=1, help="requests run at once on the device (default 1)")
    p.add_argument("--max-file-size", default="50mb", help="largest upload: bytes, or e.g. 50mb (refused before decoding)")
    p.add_argument("--max-pixels", type=int, default=50_000_000, help="largest decoded image (pixels)")
    p.add_argument("--model", action="append", default=[], type=Path, metavar="FILE",
                   help="an extra .safetensors model offered in the selectors (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="restore", description="U-Net image restoration and segmentation toolkit")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_segment(sub)
    _add_train(sub)
    _add_translate(sub)
    _add_faces(sub)
    from .sketch_cli import add_parser as _add_sketch

    _add_sketch(sub)
    _add_eval(sub)
    _add_weights(sub)
    _add_app(sub)
    return parser


def run_segment(args) -> int:
    from .batch import UsageError, output_ext, run_batch, scan_inputs
    from .imageio import is_volume, read_image, read_volume
    from .imagewrite import write_image, write_png, write_tiff
    from .overlay import overlay
    from .segment import Segmenter
    from .weights import WeightsError

    try:
        found = scan_inputs(args.paths, exclude=[args.out])
        seg = Segmenter(args.weights, device=args.device, tile=args.tile, overlap=args.overlap,
                        diameter=args.diameter)
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


def run_translate(args) -> int:
    from .batch import UsageError, output_ext, run_batch, scan_inputs
    from .imageio import read_image
    from .imagewrite import write_image
    from .translate import Translator
    from .weights import WeightsError

    try:
        found = scan_inputs(args.paths, exclude=[args.out])
        translator = Translator(args.weights, device=args.device, tile=args.tile, overlap=args.overlap)
    except (UsageError, WeightsError, ValueError) as e:
        print(f"restore translate: error: {e}", file=sys.stderr)
        return 2

    def outputs(path: Path, sub: Path) -> list[Path]:
        return [args.out / sub / f"{path.stem}{output_ext(args)}"]

    def process(path: Path, sub: Path) -> None:
        write_image(outputs(path, sub)[0], translator(read_image(path, mode="rgb8")), quality=args.quality)

    return run_batch(found.items, process, outputs, skip_existing=args.skip_existing, desc="translate",
                     quiet=args.quiet, ignored=found.ignored).exit_code


def run_faces(args) -> int:
    from .batch import UsageError, output_ext, scan_inputs
    from .facebatch import run_faces_batch
    from .faces import FaceRestorer
    from .weights import WeightsError

    try:
        found = scan_inputs(args.paths, exclude=[args.out])
        fr = FaceRestorer(args.weights, args.detector, args.device, args.precision, upscale=args.upscale,
                          bg=args.bg, fidelity=args.fidelity, min_face=args.min_face,
                          only_center_face=args.only_center_face, parse=False if args.no_parse else "auto",
                          tile=args.tile, detect_size=args.detect_size)
    except (UsageError, WeightsError, ValueError) as e:
        print(f"restore faces: error: {e}", file=sys.stderr)
        return 2
    if not args.quiet:
        by = "" if args.aligned else f"; faces found by {fr.detector_info}"
        print(f"restore faces: restoring with {fr.model_info}{by}", file=sys.stderr)
    return run_faces_batch(fr, found.items, args.out, aligned=args.aligned, skip_existing=args.skip_existing,
                           quiet=args.quiet, ignored=found.ignored, ext=output_ext(args),
                           quality=args.quality).exit_code


def run_eval_segment(args) -> int:
    import json

    from .metrics import evaluate_folders, format_table

    try:
        rows, summary = evaluate_folders(args.pred, args.gt)
    except (ValueError, OSError) as e:
        print(f"restore eval segment: error: {e}", file=sys.stderr)
        return 2
    print(format_table(rows, summary))
    if args.json:
        args.json.write_text(json.dumps({"images": rows, **summary}, indent=2, default=float))
    return 0


def run_app(args) -> int:
    from apps.app import launch  # the one import of apps from restore: the command that starts it

    size = int(args.max_file_size) if args.max_file_size.isdigit() else args.max_file_size  # bytes, or "50mb"
    launch(args.host, args.port, args.share, max_file_size=size, device=args.device,
           precision=args.precision, models=args.model, max_pixels=args.max_pixels, concurrency=args.concurrency)
    return 0


def run_weights(args) -> int:
    from .weights_cli import run

    return run(args)


def main(argv: Sequence[str] | None = None) -> int:
    from gan.train import TrainingDiverged

    args = build_parser().parse_args(argv)
    try:
        if args.command == "segment":
            return run_segment(args)
        if args.command == "eval":
            return run_eval_segment(args)
        if args.command == "translate":
            return run_translate(args)
        if args.command == "faces":
            return run_faces(args)
        if args.command == "app":
            return run_app(args)
        if args.command == "weights":
            return run_weights(args)
        if args.command == "sketch":
            from .sketch_cli import run as run_sketch

            return run_sketch(args)
        if args.command == "train" and args.what == "gfpgan":
            from .training_gfpgan import train_gfpgan_cli

            train_gfpgan_cli(args)
            return 0
        if args.command == "train" and args.what == "colorizer":
            from .training_colorizer import train_colorizer_cli

            train_colorizer_cli(args)
            return 0
        if args.command == "train" and args.what == "pix2pix":
            from .training_gan import train_pix2pix_cli

            train_pix2pix_cli(args)
            return 0
        if args.command == "train":
            from .training import train_segmenter_cli

            train_segmenter_cli(args)
            return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except TrainingDiverged as e:
        print(f"restore {args.command}: {e}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as e:  # user errors (bad data folder, unreadable file): one line
        if os.environ.get("RESTORE_DEBUG"):
            raise
        print(f"restore {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
