"""``restore translate``: its arguments (importing no torch, so ``--help`` answers at once) and its run."""
from __future__ import annotations

import argparse
from pathlib import Path

from restore.runners.args import (add_backend_arg, add_output_args, add_precision_arg, add_runner_args, add_tta_arg,
                                  add_video_args)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("translate", help="apply a trained generator (pix2pix, the restorer) to images")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="image or video files (.mp4 .mov .mkv .webm .avi .m4v) or folders (searched recursively)")
    p.add_argument("-o", "--out", required=True, type=Path)
    p.add_argument("--weights", required=True,
                   help="run folder, generator .safetensors or .onnx, or a bundled name (restorer)")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=float, default=0.25)
    p.add_argument("--device", default="cpu")
    add_precision_arg(p, "translate")
    add_backend_arg(p)
    add_tta_arg(p, "the restored images averaged")
    add_output_args(p)
    p.add_argument("--skip-existing", action="store_true")
    p.add_argument("--quiet", action="store_true")
    add_video_args(p)
    add_runner_args(p)
    return p


def run(args: argparse.Namespace) -> int:
    """``restore translate``: exit status 0 all done, 1 some inputs failed, 2 usage error."""
    from functools import partial

    from restore.runners.args import output_ext
    from restore.runners.command import run_command
    from restore.runners.inputs import Item
    from restore.runners.report import BatchReport

    from .job import TranslateJob
    from .translator import Translator

    make = partial(Translator, weights=args.weights, device=args.device, tile=args.tile, overlap=args.overlap,
                   precision=args.precision, backend=args.backend, tta=args.tta)

    def films(job: TranslateJob, videos: list[Item]) -> BatchReport:  # OUT/<sub>/<stem>.mp4, the sound kept
        from restore.video.folder import run_videos

        from .video import translate_video

        report, _ = run_videos(lambda src, dst, **kw: translate_video(job.model, src, dst, **kw), videos, args.out,
                               skip_existing=args.skip_existing, quiet=args.quiet, crf=args.crf, codec=args.codec)
        return report

    return run_command(args, "translate", lambda: TranslateJob(
        make, model=make(), out=args.out, ext=output_ext(args), quality=args.quality), videos=films)
