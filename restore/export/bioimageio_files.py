"""The files of a bioimage.io package (``restore.export.bioimageio``): the test tensors, made
by this toolkit (a bundled microscope image through its normalisation and network), the
TorchScript and ONNX weights, the cover and the model card.

The cover is drawn with scikit-image's ``label2rgb`` (the test input beside its mask), not with
``restore.segment.overlay``: export is a shared room and imports no task's code.
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["PERCENTILES", "TOOL", "documentation", "make_files", "normalised", "probabilities"]

TOOL = "unet-restore"  # the key of our section in the package's ``config``
PERCENTILES = (1.0, 99.8)  # restore.segment.preprocess.prepare_image -> restore.colour.normalize
_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nuclei" / "dsb2018_heldout.png"


def example_image(channels: int) -> np.ndarray:
    """A real fluorescence picture (H, W, C) in its own intensities: the bundled DSB2018 crop,
    or scikit-image's astronaut where the repository's examples are not installed."""
    here = _EXAMPLE
    if here.is_file():
        from restore.imageio import read_image

        img = read_image(here).astype(np.float32)
        if img.ndim == 3:
            img = img.max(-1)
    else:
        from skimage import data

        img = (data.astronaut().astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
    return np.repeat(img[..., None], channels, axis=-1)


def sizes_of(model: nn.Module, tile: int | None) -> tuple[list[int], str]:
    """The test input's sides (z, y, x or y, x) and how the package's sides vary: "step" for
    same-padding U-Nets (any multiple of 2**depth), "fixed" otherwise."""
    cfg = model.config
    dims = cfg.dims if hasattr(cfg, "dims") else 3
    if getattr(cfg, "padding", "same") == "valid":
        side = cfg.valid_input_size(tile or (124 if dims == 2 else 44))
        return [side] * dims, "fixed"
    if not hasattr(cfg, "depth"):  # UNETR: its position embedding fixes the size
        side = cfg.img_size if isinstance(getattr(cfg, "img_size", None), int) else tile or 64
        return [side] * dims, "fixed"
    m = 2 ** cfg.depth
    side = max(m, -(-(tile or (128 if dims == 2 else 64)) // m) * m)
    return ([max(m, -(-16 // m) * m)] + [side] * 2 if dims == 3 else [side] * 2), "step"


def test_input(model: nn.Module, sizes: list[int]) -> np.ndarray:
    """(1, C, *sizes) float32 in the picture's own intensities (the package normalises it)."""
    c = model.config.in_channels
    img = example_image(c)  # (H, W, C)
    hw = sizes[-2:]
    pad = [(0, max(0, hw[0] - img.shape[0])), (0, max(0, hw[1] - img.shape[1])), (0, 0)]
    img = np.pad(img, pad, mode="reflect")
    y0 = (img.shape[0] - hw[0]) // 2
    x0 = (img.shape[1] - hw[1]) // 2
    plane = np.moveaxis(img[y0:y0 + hw[0], x0:x0 + hw[1]], -1, 0)  # (C, H, W)
    if len(sizes) == 3:  # a stack: each slice shifted by a few pixels, as a volume's are
        plane = np.stack([np.roll(plane, (3 * k, 2 * k), axis=(1, 2)) for k in range(sizes[0])], axis=1)
    return np.ascontiguousarray(plane[None]).astype(np.float32)


def normalised(x: np.ndarray) -> np.ndarray:
    """The segmenter's percentile normalisation of one (C, *spatial) sample, channels together:
    ``restore.segment.preprocess.prepare_image`` for an image that already has the model's
    channels (the package's ``scale_range``)."""
    from restore.colour import normalize

    return np.moveaxis(normalize(np.moveaxis(x, 0, -1), *PERCENTILES), -1, 0).astype(np.float32)


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits, 1) if logits.shape[1] > 1 else torch.sigmoid(logits)


def make_files(model: nn.Module, tmp: Path, *, tile, opset, onnx: bool, source: Path, name: str,
                info: dict) -> dict[str, Any]:
    from restore.export.backend import source_digest

    sizes, vary = sizes_of(model, tile)
    x = test_input(model, sizes)
    xn = torch.from_numpy(normalised(x[0])[None])
    with torch.inference_mode():
        logits = model(xn)
    y = probabilities(logits).numpy().astype(np.float32)
    np.save(tmp / "test_input.npy", x)
    np.save(tmp / "test_output.npy", y)
    import tifffile  # the sample tensors, for people (and the zoo's viewers): TIFFs imageio reads

    tifffile.imwrite(tmp / "sample_input.tif", x[0].squeeze())
    tifffile.imwrite(tmp / "sample_output.tif", y[0].squeeze())

    with warnings.catch_warnings():  # torch.jit.trace is deprecated, and warns about the U-Net's shape checks
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, xn, check_trace=False)
    with torch.inference_mode():
        again = traced(xn)
    if again.shape != logits.shape or not torch.allclose(again, logits, atol=1e-4, rtol=1e-4):
        raise ValueError("the TorchScript trace does not reproduce the network")
    traced.save(str(tmp / "weights.pt"))
    formats = ["torchscript"]
    onnx_check = ""
    if onnx:
        try:
            import onnxruntime  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError:
            raise ValueError('the ONNX weights need onnx, onnxscript and onnxruntime: pip install '
                             '"unet-restore[onnx]" (or --no-onnx for TorchScript only)') from None
        from restore.export.backend import onnx_network
        from restore.export.onnx import DEFAULT_OPSET, export_onnx

        meta = {k: v for k, v in info["meta"].items() if k not in ("arch", "config")}
        # the export's own check runs on a picture of about this side: the package's tile where
        # sizes are fixed, a 32^3 cube for volumes (64^3, the default, costs minutes on 2 cores)
        fixed = max(sizes[-2:]) if vary == "fixed" else 32 if len(sizes) == 3 else None
        if opset in (None, DEFAULT_OPSET):  # the onnxruntime backend's checked export, made once into the cache
            net = onnx_network(model, source=source, name=name, dynamic=vary == "step", tile=fixed, source_meta=meta)
            shutil.copyfile(net.path, tmp / "weights.onnx")
            kind, value = next(iter((net.meta.get("check") or {"equal": float("nan")}).items()))
            onnx_check = f"PSNR {value:.1f} dB" if kind == "psnr" else f"{100 * value:.4f}% equal mask pixels"
        else:
            result = export_onnx(model, tmp / "weights.onnx", name=name, source_sha256=source_digest(source, model),
                                 opset=opset, dynamic=vary == "step", tile=fixed, source_meta=meta)
            onnx_check = result.describe()
        formats.append("onnx")
        files_opset = opset or DEFAULT_OPSET
    else:
        files_opset = None
    cover(x[0], y[0], tmp / "cover.png")
    return {"input": x, "output": y, "sizes": sizes, "vary": vary, "formats": tuple(formats),
            "onnx_check": onnx_check, "opset": files_opset, "dir": tmp}


def cover(x: np.ndarray, y: np.ndarray, path: Path) -> None:
    """The test input beside the test output's objects drawn over it, a colour each (the middle
    slice of a volume; the input cropped to the output where valid convolutions shrink it)."""
    from PIL import Image
    from skimage.color import label2rgb
    from skimage.measure import label
    from skimage.segmentation import find_boundaries

    from restore.colour import normalize

    mask = y.argmax(0) if y.shape[0] > 1 else (y[0] > 0.5).astype(np.int64)
    img = x.max(0)  # (*spatial)
    if mask.ndim == 3:
        img, mask = img[img.shape[0] // 2], mask[mask.shape[0] // 2]
    img = img[tuple(slice((a - b) // 2, (a - b) // 2 + b) for a, b in zip(img.shape, mask.shape))]
    grey = np.clip(normalize(img), 0, 1)
    objects = label(mask > 0)
    drawn = label2rgb(objects, image=grey, alpha=0.35, bg_label=0)
    edges = find_boundaries(objects, mode="inner") & (objects > 0)
    drawn[edges] = label2rgb(objects, bg_label=0)[edges]
    panel = (np.concatenate([np.repeat(grey[..., None], 3, -1), drawn], axis=1) * 255 + 0.5).astype(np.uint8)
    scale = max(1, 256 // panel.shape[0])
    Image.fromarray(panel).resize((panel.shape[1] * scale, panel.shape[0] * scale), Image.NEAREST).save(path)


def documentation(info: dict, model: nn.Module, files: dict, name: str, path: Path) -> Path:
    """The model card (the manifest's ``card``) or one written for a training run, with the
    ``Validation`` section the spec asks for and how to run the package with this toolkit."""
    from restore.models.manifest import manifest_path

    cfg = model.config
    card = info["entry"].get("card")
    card_path = manifest_path().parent / card if card else None
    if card_path is not None and card_path.is_file():
        text = card_path.read_text(encoding="utf-8")
    else:
        n = sum(p.numel() for p in model.parameters())
        text = (f"# Model card: `{name}`\n\nA {cfg.dims}D segmentation network trained with unet-restore "
                f"(`restore train segmenter`).\n\n| | |\n| --- | --- |\n| architecture | `{type(model).__name__}` "
                f"{getattr(cfg, 'kind', '')}, {n / 1e6:.2f} M parameters; config in `config.{TOOL}` of rdf.yaml |\n"
                f"| input | {cfg.in_channels} channel(s), percentile-normalised (1, 99.8) |\n"
                f"| output | {cfg.out_channels} {'classes (softmax)' if cfg.out_channels > 1 else 'foreground probability'} |\n")
        d = info["meta"].get("diameter")
        if d:
            text += f"| scale | trained with objects rescaled to a {float(d):g} px median diameter |\n"
        text += f"| weights | `{info['path'].name}`, sha256 in `config.{TOOL}.source_sha256` |\n"
    shape = " x ".join(str(s) for s in files["input"].shape)
    picture = ("a held-out DSB2018 fluorescence crop from the toolkit's examples" if _EXAMPLE.is_file()
               else "scikit-image's astronaut, in grey")
    text += (f"\n\n## Validation\n\nThe package's test input ({shape}: {picture}) and test output (the class "
             "probabilities this network gave it, through the toolkit's own normalisation) are what "
             "`bioimageio test MODEL.zip` reproduces, for each weight format; the ONNX weights matched "
             f"PyTorch before they were kept ({files['onnx_check'] or 'no ONNX weights'}). "
             "Score predictions against your own annotations with `restore eval segment --pred OUT --gt TRUTH` "
             "(IoU, Dice, and for instances the DSB2018 average precision).\n\n"
             "## Use with unet-restore\n\n```sh\nrestore segment images/ -o out/ --weights "
             f"{name}.zip --instances\n```\n\nrebuilds the network from `config.{TOOL}` and gives the same masks "
             "as the original weights (tiling, the automatic object diameter and post-processing included).\n")
    path.write_text(text, encoding="utf-8")
    return path
