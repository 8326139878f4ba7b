"""``restore export``: any network of the toolkit as an ONNX file, checked by onnxruntime; a
segmenter also as a BioImage Model Zoo package (``--format bioimageio``)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("export", help="export a network as ONNX (checked against PyTorch by onnxruntime)",
                       description="Write the network as an ONNX file: its own input first (NCHW float32 in the "
                                   "range it takes; GFP-GAN: 1 x 3 x 512 x 512 in [-1, 1]), the batch axis "
                                   "dynamic; the model's name, config, ranges and the sha256 of its weights in "
                                   "the file's metadata. onnxruntime runs the file on a real picture and its "
                                   "output is compared with PyTorch's; a file that does not match (PSNR under "
                                   "45 dB, 30 with --fp16; masks under 99.9% equal pixels) is not written.")
    p.add_argument("source", metavar="NAME|FILE|RUN",
                   help="a model name (restorer, colorizer, nuclei, gfpgan-v1.4, hed, ...), a published GFP-GAN "
                        ".pth, a .safetensors file, or a `restore train` run folder")
    p.add_argument("-o", "--out", required=True, type=Path, metavar="OUT.onnx|OUT.zip",
                   help="the ONNX file to write (--format bioimageio: the package's .zip)")
    p.add_argument("--format", choices=("onnx", "bioimageio"), default="onnx",
                   help="onnx (default), or bioimageio: a segmenter as a bioimage.io model package (rdf.yaml with "
                        "axes, pre- and post-processing, TorchScript and ONNX weights, test tensors, cover, model "
                        "card; validated by bioimageio.spec where it is installed)")
    p.add_argument("--author", action="append", default=None, metavar="NAME",
                   help="--format bioimageio: an author of the package (repeat for several; default: the "
                        "manifest's, else 'unet-restore contributors')")
    p.add_argument("--licence", default=None, metavar="SPDX",
                   help="--format bioimageio: the weights' licence (default: the manifest's, else CC-BY-4.0)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    p.add_argument("--dynamic", action="store_true",
                   help="height and width vary too (fully convolutional networks: restorer, pix2pix, same-padding "
                        "U-Nets 2D/3D, colorizer, HED; sides multiples of their size divisor)")
    p.add_argument("--fp16", action="store_true",
                   help="weights and activations in float16 (inputs and output stay float32); the PSNR printed is "
                        "against the float32 network. onnxruntime's CPU provider computes such a file in float32")
    p.add_argument("--tile", type=int, default=None,
                   help="side of the test picture, and of the exported input where sizes are fixed "
                        "(valid-padding U-Nets, UNETR); default: the network's usual one")
    return p


def load_source(source: str) -> tuple["object", Path]:
    """(network, its weights file) for a name, a file or a run folder."""
    from restore.models.cache import load_network, resolve_weights
    from restore.models.manifest import WeightsError

    if source == "hed":  # not in the manifest: made from the pip package that ships it
        from safetensors.torch import load_file

        from gan.nets.hed import HED
        from restore.models.hed import hed_weights

        path = hed_weights()
        net = HED()
        net.load_state_dict(load_file(str(path)))
        return net.eval(), path
    path = Path(source).expanduser()
    if path.suffix == ".onnx" and path.is_file():
        raise ValueError(f"{path}: already an ONNX file; export a model name, a .pth or .safetensors file, or a run")
    if path.suffix == ".pth" and path.is_file():
        try:
            return load_network(path)[0], path  # a published checkpoint, recognised by its sha256
        except WeightsError:
            from gan.nets.gfpgan import load_published

            return load_published(path).eval(), path  # another GFP-GAN .pth, read with weights_only=True
    return load_network(source)[0], resolve_weights(source)


def run(args: argparse.Namespace) -> int:
    """``restore export``: exit status 0 written, 2 when it cannot be exported or does not match."""
    from restore.export.backend import source_digest
    from restore.export.onnx import export_onnx
    from restore.models.manifest import WeightsError

    if getattr(args, "format", "onnx") == "bioimageio":
        return run_bioimageio(args)
    if args.out.suffix != ".onnx":
        print("restore export: error: the output file must end in .onnx", file=sys.stderr)
        return 2
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        print('restore export: error: needs onnx, onnxscript and onnxruntime: pip install "unet-restore[onnx]"',
              file=sys.stderr)
        return 2
    try:
        model, path = load_source(args.source)
        name = args.source if not Path(args.source).exists() else Path(args.source).stem
        result = export_onnx(model, args.out, name=name, source_sha256=source_digest(path, model), opset=args.opset,
                             dynamic=args.dynamic, fp16=args.fp16, tile=args.tile)
    except (WeightsError, ValueError) as e:
        print(f"restore export: error: {e}", file=sys.stderr)
        return 2
    m = result.metadata
    size = args.out.stat().st_size / 2 ** 20
    against = "the float32 PyTorch network" if args.fp16 else "PyTorch"
    print(f"wrote {args.out} ({m['arch']}, {m['precision']}, {size:.1f} MiB, {result.seconds:.1f} s): input "
          f"{m['input_range']}; onnxruntime against {against} on a real picture: {result.describe()}")
    return 0


def run_bioimageio(args: argparse.Namespace) -> int:
    """``restore export SEGMENTER --format bioimageio -o MODEL.zip``."""
    from restore.export.bioimageio import export_bioimageio
    from restore.export.onnx import ExportError
    from restore.models.manifest import WeightsError

    if args.fp16 or args.dynamic:
        print("restore export: error: --fp16 and --dynamic are for --format onnx (a bioimage.io package takes the "
              "sizes its network allows, in float32)", file=sys.stderr)
        return 2
    try:
        r = export_bioimageio(args.source, args.out, loaded=load_source(args.source), tile=args.tile, opset=args.opset,
                              authors=args.author, licence=args.licence)
    except (WeightsError, ExportError, ValueError) as e:
        print(f"restore export: error: {e}", file=sys.stderr)
        return 2
    size = args.out.stat().st_size / 2 ** 20
    print(f"wrote {args.out} (bioimage.io model, {' + '.join(r.formats)}, {size:.1f} MiB, {r.seconds:.1f} s): test "
          f"input {' x '.join(map(str, r.input_shape))}; ONNX against PyTorch: {r.onnx_check or 'not written'}; "
          f"{r.validated}")
    return 0
