"""The options the batch commands share, and what they mean to a run. Imports neither torch nor
numpy nor Pillow: ``restore/cli.py`` builds every subcommand's parser, and ``--help`` must not
wait for them.

    add_output_args(p)          --format png|jpg|webp, --quality
    add_precision_arg(p, task)  --precision (the task's measured default)
    add_backend_arg(p)          --backend torch|onnxruntime
    add_tta_arg(p, what)        --tta N
    add_video_args(p)           --crf, --codec (the commands that take films)
    add_runner_args(p)          --no-pipeline, --ray [local|auto|ADDRESS], --ray-workers, ...
"""
from __future__ import annotations

import argparse

from gan.precision_names import PRECISIONS

__all__ = ["BACKENDS", "OUTPUT_FORMATS", "add_backend_arg", "add_output_args", "add_precision_arg", "add_runner_args",
           "add_tta_arg", "add_video_args", "output_ext", "ray_options", "ray_usage_error", "run_options"]

# --format name -> file extension of the photo-like outputs (masks and volumes stay PNG/TIFF)
OUTPUT_FORMATS = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}


def add_output_args(parser: argparse.ArgumentParser, what: str = "images") -> None:
    """``--format png|jpg|webp`` and ``--quality`` for a command's photo-like outputs."""
    parser.add_argument("--format", default="png", choices=sorted(OUTPUT_FORMATS),
                        help=f"file format of the output {what} (default png, lossless; jpg and webp are "
                             "8-bit and several times smaller; JPEG flattens transparency onto white)")
    parser.add_argument("--quality", type=_quality, default=95,
                        help="JPEG/WebP quality 1-100 (default 95; webp 100 is lossless)")


# Each command's --precision default, measured (benchmarks/bench_precision.py, README "Precision"):
# bf16's error >= 45 dB for the photo tasks; segmentation's masks flip in bf16. The Python API's
# wrappers take the same defaults (restore.inference), and so does the app.
DEFAULT_PRECISION = {"faces": "auto", "translate": "auto", "sketch": "auto", "segment": "fp32", "upscale": "auto"}


def add_precision_arg(parser: argparse.ArgumentParser, task: str) -> None:
    """``--precision`` with the measured default of ``task``'s command."""
    default = DEFAULT_PRECISION[task]
    why = {"auto": "auto (default): bf16 on GPUs that have it (fp16 on older ones) and on CPUs where it measured "
                   "faster (AMX, or AMD's AVX512-BF16), fp32 on other CPUs; its error against fp32 measured >= 45 dB",
           "fp32": "fp32 (default: in bf16 up to 2%% of the foreground pixels flipped)"}[default]
    others = ", ".join(p for p in PRECISIONS if p != default)
    parser.add_argument("--precision", default=default, choices=PRECISIONS,
                        help=f"{why} (benchmarks/bench_precision.py); or one of {others}")


def add_tta_arg(parser: argparse.ArgumentParser, what: str) -> None:
    """``--tta N``: average the network over N flips/rotations of each input (restore/ensemble.py)."""
    from restore.ensemble import ORIENTATIONS

    parser.add_argument("--tta", type=int, default=1, choices=ORIENTATIONS, metavar="N",
                        help=f"test-time augmentation: {what} over N of the 8 flips and quarter turns of each "
                             "image (1 off (default), 2, 4, 8); N times the network time")


BACKENDS = ("torch", "onnxruntime")


def add_backend_arg(parser: argparse.ArgumentParser) -> None:
    """``--backend``: where the networks run (``restore.export.backend``)."""
    parser.add_argument("--backend", default="torch", choices=BACKENDS,
                        help="torch (default), or onnxruntime: the networks run from their ONNX export, made once "
                             "into the weights cache and checked against PyTorch (or --weights FILE.onnx); "
                             'detection, tiling and paste-back stay the same (pip install "unet-restore[onnx]")')


def add_video_args(parser: argparse.ArgumentParser) -> None:
    """``--crf`` and ``--codec``: how the commands that take films encode theirs (``restore.video``)."""
    parser.add_argument("--crf", type=int, default=18, help="videos: H.264 quality, 0 (lossless) to 51 (default 18)")
    parser.add_argument("--codec", default="libx264",
                        help="videos: the encoder (default libx264, H.264 yuv420p in .mp4; others PyAV has go in .mkv)")


def output_ext(args: argparse.Namespace) -> str:
    """The extension of the photo-like outputs chosen by ``--format`` (".png" without it)."""
    return OUTPUT_FORMATS[getattr(args, "format", None) or "png"]


def _quality(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError("quality must be in 1..100")
    return value


def add_runner_args(parser: argparse.ArgumentParser,
                    no_pipeline: str = "one image after another (no reading ahead or writing behind)") -> None:
    """The choice of runner: ``--no-pipeline`` (its help: ``no_pipeline``), and ``--ray
    [local|auto|ADDRESS]``, ``--ray-workers``, ``--ray-gpus-per-worker``, ``--ray-cpus-per-worker``."""
    parser.add_argument("--no-pipeline", action="store_true", help=no_pipeline)
    g = parser.add_argument_group("cluster (Ray Data; pip install 'unet-restore[ray]')")
    g.add_argument("--ray", nargs="?", const="local", default=None, metavar="local|auto|ADDRESS",
                   help="run through Ray Data: local starts a cluster on this machine (the default when the flag "
                        "is given alone), auto joins the one `ray start` made, ADDRESS (ray://host:10001 or "
                        "host:6379) a remote one; OUT must be a folder every node sees")
    g.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="actors that each load the models once and restore batches (default: as many as the "
                        "cluster's CPUs, or GPUs with --ray-gpus-per-worker, allow)")
    g.add_argument("--ray-gpus-per-worker", type=float, default=0, metavar="G",
                   help="GPUs each actor holds (e.g. 1, or 0.5 to share one between two); the models run on "
                        "the GPU Ray gives the actor, whatever --device says")
    g.add_argument("--ray-cpus-per-worker", type=float, default=None, metavar="C",
                   help="CPUs each actor holds, its torch threads (default: 1 beside a GPU, else as many as a local "
                        "run uses, so the outputs are a local run's bit for bit; fewer when --ray-workers asks for "
                        "more actors than fit)")


def ray_options(args: argparse.Namespace) -> dict:
    """run_job's Ray keywords from a command line made with ``add_runner_args``."""
    return dict(ray=args.ray, ray_workers=args.ray_workers, ray_gpus_per_worker=args.ray_gpus_per_worker,
                ray_cpus_per_worker=args.ray_cpus_per_worker)


def run_options(args: argparse.Namespace) -> dict:
    """run_job's keywords from a command line: the runner's, ``--skip-existing`` and ``--quiet``."""
    return dict(pipeline=not args.no_pipeline, skip_existing=args.skip_existing, quiet=args.quiet, **ray_options(args))


def ray_usage_error(args: argparse.Namespace) -> str | None:
    """Why the command line's Ray options cannot work (None when they can)."""
    if args.ray is None:
        return None
    if args.ray_workers is not None and args.ray_workers < 1:
        return "--ray-workers must be at least 1"
    if args.ray_gpus_per_worker < 0 or (args.ray_cpus_per_worker is not None and args.ray_cpus_per_worker <= 0):
        return "--ray-gpus-per-worker must be >= 0 and --ray-cpus-per-worker > 0"
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        return "--ray needs Ray Data: pip install 'unet-restore[ray]' (or pip install 'ray[data]')"
    if str(args.out).startswith(("s3:", "gs:")):
        return "OUT must be a local or network-mounted folder (s3:// and gs:// are not supported yet)"
    return None

