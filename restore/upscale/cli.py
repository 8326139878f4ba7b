"""``restore upscale``: its arguments (importing no torch, so ``--help`` answers at once) and its
run. The options and defaults are Real-ESRGAN's ``inference_realesrgan.py``'s where it has them
(tile 0, tile pad 10, pre-pad 0, suffix "out", alpha through the network)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from restore.runners.args import (add_backend_arg, add_output_args, add_precision_arg, add_runner_args,
                                  add_video_args)

DEFAULT_WEIGHTS = "realesrgan-x4plus"  # restore.upscale.upscaler's default, without its imports


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("upscale", help="enlarge pictures with Real-ESRGAN's networks (x4plus by default)")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="image or video files (.mp4 .mov .mkv .webm .avi .m4v: <stem>_out.mp4, the sound kept) or "
                        "folders (searched recursively)")
    p.add_argument("-o", "--out", required=True, type=Path)
    p.add_argument("--weights", default=DEFAULT_WEIGHTS,
                   help="realesrgan-x4plus (default), realesrgan-x2plus, realesrgan-x4plus-anime, realesr-animevideov3, "
                        "realesr-general-x4v3 (restore weights fetch NAME), or a .safetensors / .onnx file")
    p.add_argument("-s", "--scale", type=float, default=None,
                   help="the output's scale, any number (Real-ESRGAN's --outscale: the network's output resized "
                        "by Lanczos; default the network's own scale)")
    p.add_argument("-t", "--tile", type=int, default=0, help="tile size, 0 for the whole picture at once (default)")
    p.add_argument("--tile-pad", type=int, default=10, help="each tile's margin, in input pixels (default 10)")
    p.add_argument("--pre-pad", type=int, default=0, help="mirror padding at the bottom and right (default 0)")
    p.add_argument("-dn", "--denoise", type=float, default=None,
                   help="0..1 for realesr-general-x4v3: its weights interpolated with its weak-denoise twin's, as "
                        "Real-ESRGAN does (needs the twin in the manifest)")
    p.add_argument("--alpha-upsampler", default="realesrgan", choices=("realesrgan", "bilinear"),
                   help="alpha channels through the network (default) or resized bilinearly")
    p.add_argument("--face-enhance", action="store_true",
                   help="restore the faces with restore faces' models and paste them back onto the upscaled picture "
                        "(as Real-ESRGAN's --face_enhance does with GFPGAN)")
    p.add_argument("--face-weights", default=None, metavar="NAME|FILE",
                   help="--face-enhance's face model (default: gfpgan-v1.4 or v1.3 when cached, else the bundled "
                        "restorer; as restore faces --weights)")
    p.add_argument("--suffix", default="out", help="output names <stem>_<suffix>.png (default out; '' for none)")
    p.add_argument("--device", default="cpu")
    add_precision_arg(p, "upscale")
    add_backend_arg(p)
    add_output_args(p)
    p.add_argument("--skip-existing", action="store_true")
    p.add_argument("--quiet", action="store_true")
    add_video_args(p)
    add_runner_args(p)
    return p


def _check(args: argparse.Namespace) -> str | None:
    if args.tile < 0 or args.tile_pad < 0 or args.pre_pad < 0:
        return "--tile, --tile-pad and --pre-pad must be >= 0"
    if args.scale is not None and not args.scale > 0:
        return "--scale must be positive"
    if args.denoise is not None and not 0 <= args.denoise <= 1:
        return "--denoise must be in 0..1"
    return None


def run(args: argparse.Namespace) -> int:
    """``restore upscale``: exit status 0 all done, 1 some inputs failed, 2 usage error."""
    from functools import partial

    from restore.runners.args import output_ext
    from restore.runners.command import run_command

    from .job import UpscaleJob
    from .upscaler import Upscaler

    # keywords only, so a Ray actor given a GPU can make it with device="cuda"
    make = partial(Upscaler, weights=args.weights, device=args.device, scale=args.scale, tile=args.tile,
                   tile_pad=args.tile_pad, pre_pad=args.pre_pad, alpha=args.alpha_upsampler, denoise=args.denoise,
                   precision=args.precision, backend=args.backend)
    if args.face_enhance:  # the same upscaler inside, the faces restored on its picture
        from .face_enhance import FaceEnhancer

        make = partial(FaceEnhancer, face_weights=args.face_weights, **make.keywords)

    def job() -> UpscaleJob:
        up = make()
        if not args.quiet:
            print(f"restore upscale: {up.model_info}", file=sys.stderr)
        return UpscaleJob(make, model=up, out=args.out, suffix=args.suffix, ext=output_ext(args), quality=args.quality)

    def films(job: UpscaleJob, videos):  # OUT/<sub>/<stem>_out.mp4, frame by frame, the sound kept
        from restore.video.folder import run_videos

        from .video import upscale_video

        report, _ = run_videos(lambda src, dst, **kw: upscale_video(job.model, src, dst, **kw), videos, args.out,
                               skip_existing=args.skip_existing, quiet=args.quiet, crf=args.crf, codec=args.codec,
                               suffix=f"_{args.suffix}" if args.suffix else "")
        return report

    return run_command(args, "upscale", job, videos=films, check=lambda: _check(args))
