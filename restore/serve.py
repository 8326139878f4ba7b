"""``restore app``: the Gradio app (the repository's ``apps/``, installed as ``restore.apps``) on
loopback: its one entry from ``restore``."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("app", help="the Gradio app: faces, sketch, segmentation, translation and upscaling in one page")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true", help="also a public gradio.live link (needs internet)")
    p.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu, cuda, cuda:1 ...")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto: measured per task (bf16/fp16 where it changes nothing visible); or one for all")
    p.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"],
                   help="torch (default), or onnxruntime: every tab's networks from their ONNX exports (made once "
                        "into the weights cache, checked against PyTorch)")
    p.add_argument("--concurrency", type=int, default=1,
                   help="requests each task (faces, faces video, sketch, segment, translate, upscale) runs at once (default 1)")
    p.add_argument("--max-queue", type=int, default=20, metavar="N",
                   help="requests waiting, all tasks together, before the next is refused (default 20; 0: no bound)")
    p.add_argument("--max-seconds", type=float, default=300, metavar="S",
                   help="each request's time budget: past it the work stops between tiles, slices, faces or "
                        "frames, with a message (default 300; 0: none)")
    p.add_argument("--max-file-size", default="50mb", help="largest upload: bytes, or e.g. 50mb (refused before decoding)")
    p.add_argument("--max-pixels", type=int, default=50_000_000, help="largest decoded image (pixels)")
    p.add_argument("--max-output-pixels", type=int, default=64_000_000,
                   help="largest result of the Upscale tab, width x height x scale^2, refused before any work "
                        "(default 64000000)")
    p.add_argument("--max-pages", type=int, default=1000,
                   help="most pages of a TIFF volume in the Segment tab, refused before decoding (default 1000)")
    p.add_argument("--max-video-frames", type=int, default=9000,
                   help="longest video the Faces tab takes, in frames (default 9000: 6 minutes at 25 fps)")
    p.add_argument("--model", action="append", default=[], type=Path, metavar="FILE",
                   help="an extra .safetensors model offered in the selectors (repeatable)")
    return p


def run(args: argparse.Namespace) -> int:
    """``restore app``: serve the app until interrupted."""
    from restore.apps.app import launch  # the one import of the app from restore: the command that starts it

    size = int(args.max_file_size) if args.max_file_size.isdigit() else args.max_file_size  # bytes, or "50mb"
    launch(args.host, args.port, args.share, max_file_size=size, device=args.device,
           precision=args.precision, models=args.model, max_pixels=args.max_pixels, concurrency=args.concurrency,
           backend=args.backend, max_frames=args.max_video_frames, max_pages=args.max_pages,
           max_seconds=args.max_seconds, max_queue=args.max_queue, max_output_pixels=args.max_output_pixels)
    return 0
