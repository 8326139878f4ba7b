"""``restore faces``: restore the faces (and the background) of photos in files and folders."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from restore.runners.args import add_backend_arg, add_output_args, add_precision_arg, add_runner_args, add_video_args


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be in [0, 1]")
    return value


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("faces", help="restore the faces (and the background) of photos and videos")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="image or video files (.mp4 .mov .mkv .webm .avi .m4v) or folders (searched recursively)")
    p.add_argument("-o", "--out", required=True, type=Path,
                   help="output folder: restored/ (photos; videos as <stem>.mp4), faces/ (aligned input | restored) "
                        "and report.json")
    p.add_argument("--weights", default=None,
                   help="face model: gfpgan-v1.4, gfpgan-v1.3, restorer, or a .pth / .safetensors / .onnx file "
                        "(default: GFPGANv1.4 or v1.3 when in the weights cache, else the bundled restorer)")
    p.add_argument("--detector", default="auto", choices=["auto", "retinaface", "mtcnn"],
                   help="auto: RetinaFace when its weights are in the cache, else MTCNN")
    p.add_argument("--bg", default="auto", choices=["auto", "realesrgan", "restorer", "resize", "none"],
                   help="background: realesrgan (Real-ESRGAN's upscaler, as GFP-GAN's own command), the bundled "
                        "restorer in tiles then Lanczos, a Lanczos resize, or none (input pixels kept); auto "
                        "(default): realesrgan when --upscale is above 1 and its weights are cached, else restorer")
    p.add_argument("--bg-upscaler", default=None, metavar="NAME|FILE",
                   help="--bg realesrgan's weights (default: realesrgan-x2plus for 2x, else realesrgan-x4plus at "
                        "outscale 2; for 4x the other way round; tiles of 400 as GFP-GAN's command)")
    p.add_argument("--upscale", type=int, default=1, choices=[1, 2, 4])
    p.add_argument("--fidelity", type=_fraction, default=1.0,
                   help="blend of restored (1) and input (0) face, in [0, 1] (default 1); for CodeFormer its own "
                        "fidelity weight w = 1 - FIDELITY (CodeFormer's w = 1 keeps the most of the input, "
                        "--fidelity 1 restores the most)")
    p.add_argument("--identity", default="auto", choices=["auto", "dlib", "arcface", "off"],
                   help="the face-recognition embedding whose cosine similarity (input face against restored face, "
                        "1 = the same) report.json gives per face: auto (default) dlib's ResNet when its weights are "
                        "cached (restore weights fetch dlib-face-recognition), else ArcFace's, else none")
    p.add_argument("--min-identity", type=float, default=None, metavar="T",
                   help="guard: a face whose identity falls under T (that cosine scale) is blended back toward the "
                        "input until it reaches T, or left as the input face; report.json says which, per face")
    p.add_argument("--colour", "--color", dest="colour", default="auto", choices=["auto", "keep", "wavelet", "model"],
                   help="keep: the restored faces take the input's colours (chroma) at low frequencies, their "
                        "lightness and detail stay the model's; wavelet: CodeFormer's colour fix, the input's low "
                        "frequencies lightness too (closer colours, but the identity check then sees the input's "
                        "coarse face); model: the network's own; auto (default): keep for face priors (GFP-GAN, "
                        "RestoreFormer, CodeFormer), model for the bundled restorer")
    p.add_argument("--scores", action="store_true",
                   help="no-reference quality (NIQE, BRISQUE; lower is better) of every restored face and photo in "
                        "report.json, to sort a collection by what needs a look")
    p.add_argument("--min-face", type=float, default=16, help="skip (and count) faces smaller than this (px)")
    p.add_argument("--only-center-face", action="store_true", help="restore only the face nearest the centre")
    p.add_argument("--aligned", action="store_true", help="inputs are already aligned face crops")
    p.add_argument("--no-parse", action="store_true",
                   help="feathered square mask even when the parsenet weights are cached (parsing is slow on a CPU)")
    p.add_argument("--detect-size", type=int, default=1600,
                   help="detect faces on a copy at most this many px on its longer side (0: full size)")
    p.add_argument("--tile", type=int, default=512, help="tile side for the background restorer")
    add_precision_arg(p, "faces")
    add_backend_arg(p)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--batch-size", type=int, default=None,
                   help="faces per network call, from several photos at once (default: 16 on a GPU; 1 on a CPU, "
                        "where a GFP-GAN face took 2.17 s alone and 2.42 s in a batch of 4)")
    add_output_args(p, "photos and face crops")
    add_video_args(p)
    p.add_argument("--temporal", type=float, default=0.35,
                   help="videos: the weight of each new frame's restored face against its track's earlier ones "
                        "(moved into this frame's alignment first); 1 = frame by frame (default 0.35)")
    p.add_argument("--skip-existing", action="store_true", help="skip inputs whose outputs exist (resume)")
    p.add_argument("--quiet", action="store_true")
    add_runner_args(p, "one photo after another (no reading ahead, no writing behind, no batches across photos)")
    return p


def run(args: argparse.Namespace) -> int:
    """``restore faces``: exit status 0 all done, 1 some inputs failed, 2 usage error."""
    from functools import partial

    from restore.runners.args import output_ext, run_options
    from restore.runners.command import run_command
    from restore.runners.inputs import Inputs, Item
    from restore.runners.report import BatchReport

    from .folder import run_faces_batch, run_faces_videos
    from .restorer import FaceRestorer
    from .video import temporal_error

    # keywords only, so a Ray actor given a GPU can make it with device="cuda" (restore.runners.job.Job.use_device)
    make = partial(FaceRestorer, weights=args.weights, detector=args.detector, device=args.device,
                   precision=args.precision, upscale=args.upscale, bg=args.bg, bg_upscaler=args.bg_upscaler,
                   fidelity=args.fidelity, identity=args.identity, min_identity=args.min_identity,
                   colour=args.colour, quality=args.scores,
                   min_face=args.min_face, backend=args.backend, only_center_face=args.only_center_face,
                   parse=False if args.no_parse else "auto", tile=args.tile, detect_size=args.detect_size,
                   batch_size=args.batch_size or (16 if str(args.device).startswith("cuda") or
                                                  args.ray_gpus_per_worker else 1))

    def restorer() -> FaceRestorer:
        fr = make()
        if not args.quiet:
            by = "" if args.aligned else f"; faces found by {fr.detector_info}"
            bg = "" if args.aligned else f"; {fr.bg_info}"
            print(f"restore faces: restoring with {fr.model_info}{by}{bg}{fr.trust_info}", file=sys.stderr)
        return fr

    def photos(fr: FaceRestorer, found: Inputs) -> BatchReport:
        return run_faces_batch(fr, found.items, args.out, aligned=args.aligned, ignored=found.ignored,
                               min_identity=fr.trust.threshold,
                               ext=output_ext(args), quality=args.quality, make_restorer=make, **run_options(args))

    def films(fr: FaceRestorer, videos: list[Item]) -> BatchReport:  # tracked frame after frame on this machine
        return run_faces_videos(fr, videos, args.out, skip_existing=args.skip_existing, quiet=args.quiet,
                                crf=args.crf, codec=args.codec, temporal=args.temporal)

    return run_command(args, "faces", restorer, images=photos, videos=None if args.aligned else films,
                       check=lambda: temporal_error(args.temporal))
