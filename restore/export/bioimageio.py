"""Segmenters as BioImage Model Zoo packages (``restore export NAME --format bioimageio``).

    result = export_bioimageio("nuclei", "nuclei.zip")
    result.path, result.formats      # nuclei.zip, ("torchscript", "onnx")

The package follows the current bioimage.io model specification (format 0.5.12):

- axes ``batch, channel, [z,] y, x``; same-padding U-Nets take any side ``2**depth * n``
  (``min = step = 2**depth``), valid-padding ones and UNETR one tile (their ONNX export is fixed),
  and the output's sides refer to the input's (minus the valid convolutions' margin);
- preprocessing is the segmenter's own percentile normalisation, written as the spec's
  ``scale_range`` (1, 99.8 per sample, channels together: ``restore.colour.normalize``; the
  spec adds eps = 1e-6 to the denominator); postprocessing ``softmax`` over the classes, or
  ``sigmoid`` for one channel (the networks output logits);
- weights as TorchScript (``torch.jit.trace``, the original) and ONNX (the onnxruntime
  backend's checked export, ``restore.export.backend.onnx_network``, made once into the cache);
- test tensors made by this toolkit: a bundled microscope image (``examples/nuclei``; the
  astronaut when the examples are not installed) in its own intensities, and its probabilities
  through the toolkit's normalisation and network;
- a cover (the test input beside the test output drawn over it, ``restore.segment.overlay``),
  the model card as documentation (with the ``Validation`` section the spec asks for),
  authors, licence, and citations (Ronneberger et al. 2015 and the variant's paper);
- ``config.unet-restore``: the network's architecture, config and training diameter, so
  ``restore segment --weights MODEL.zip`` rebuilds it exactly (``restore.segment.bioimageio``).

rdf.yaml is written here (plain YAML, so exporting needs no bioimageio package); where
``bioimageio.spec`` is installed (``pip install "unet-restore[bioimageio]"``) it reads the zip
back with ``load_description`` and a package it rejects is not kept. The test suite runs the
zoo's own model test (``bioimageio.core.test_model``) on what this writes.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["BioimageioResult", "export_bioimageio", "CITATIONS", "TOOL"]

FORMAT_VERSION = "0.5.12"  # the current model specification (bioimageio.spec 0.5.12; readers take later patches)
TOOL = "unet-restore"  # the key of our section in the package's ``config``
PERCENTILES = (1.0, 99.8)  # restore.segment.preprocess.prepare_image -> restore.colour.normalize
CITATIONS = {  # (text, doi or url)
    "plain": ("Ronneberger, O., Fischer, P., Brox, T. U-Net: Convolutional Networks for Biomedical Image "
              "Segmentation. MICCAI 2015, LNCS 9351, 234-241.", "10.1007/978-3-319-24574-4_28"),
    "residual": ("He, K., Zhang, X., Ren, S., Sun, J. Deep Residual Learning for Image Recognition. CVPR 2016.",
                 "10.1109/CVPR.2016.90"),
    "attention": ("Oktay, O. et al. Attention U-Net: Learning Where to Look for the Pancreas. MIDL 2018.",
                  "https://arxiv.org/abs/1804.03999"),
    "multires": ("Ibtehaz, N., Rahman, M. S. MultiResUNet: Rethinking the U-Net architecture for multimodal "
                 "biomedical image segmentation. Neural Networks 121 (2020), 74-87.", "10.1016/j.neunet.2019.08.025"),
    "unetr": ("Hatamizadeh, A. et al. UNETR: Transformers for 3D Medical Image Segmentation. WACV 2022.",
              "10.1109/WACV51458.2022.00181"),
}
DEFAULT_LICENCE = "CC-BY-4.0"  # the zoo's recommendation, for a training run's weights (--licence to change)
DEFAULT_AUTHOR = "unet-restore contributors"
_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nuclei" / "dsb2018_heldout.png"


@dataclass
class BioimageioResult:
    path: Path
    formats: tuple[str, ...]
    onnx_check: str  # restore.export.onnx's comparison with PyTorch
    seconds: float
    name: str
    input_shape: tuple[int, ...]
    validated: str  # what bioimageio.spec said of the package, or that it is not installed


def export_bioimageio(source: str, out: str | Path, *, name: str | None = None, tile: int | None = None,
                      opset: int | None = None, authors: list[str] | None = None, licence: str | None = None,
                      onnx: bool = True) -> BioimageioResult:
    """Write ``source`` (a segmenter: manifest name, .safetensors file or run folder) as a
    bioimage.io model package at ``out`` (.zip). Raises ValueError (nothing written) when it is
    not a segmenter, bioimageio.spec is missing, or a check fails."""
    t0 = time.perf_counter()
    from gan.nets.registry import descriptor_of
    from restore.export.cli import load_source
    from restore.imagewrite import atomic_write

    out = Path(out)
    if out.suffix != ".zip":
        raise ValueError("a bioimage.io package is a .zip file: give -o NAME.zip")
    model, path = load_source(source)
    d = descriptor_of(model)
    if d.kind != "segmenter":
        raise ValueError(f"{source} is {d.kind!r}, not a segmenter: bioimage.io packages are written for "
                         "segmenters (the U-Nets 2D/3D and their variants, UNETR)")
    model = model.float().cpu().eval()
    info = _describe_source(source, path)
    name = name or info["name"]
    with tempfile.TemporaryDirectory(prefix="bioimageio-") as tmp:
        files = _make_files(model, Path(tmp), tile=tile, opset=opset, onnx=onnx, source=path, name=name, info=info)
        descr = _description(model, files, name=name, info=info, authors=authors, licence=licence)
        package = Path(tmp) / "package" / out.name
        package.parent.mkdir()
        _save(descr, Path(tmp), package)
        validated = _validate(package)
        with atomic_write(out) as part:  # the checked zip, renamed onto ``out`` once whole
            shutil.copyfile(package, part)
    return BioimageioResult(out, files["formats"], files["onnx_check"], time.perf_counter() - t0, name,
                            tuple(files["input"].shape), validated)


# --------------------------------------------------------------------------- what the source says
def _describe_source(source: str, path: Path) -> dict[str, Any]:
    """The manifest entry (bundled or downloadable names, or a file recognised by its sha256),
    the weights file's metadata (a run's training diameter), a name for the package."""
    from restore.models.manifest import manifest, model_file

    models = manifest()
    key = source if source in models else None
    if key is None:
        for k, e in models.items():  # the bundled file given by its path
            try:
                if e.get("file") and Path(path).resolve() == model_file(k).resolve():
                    key = k
            except Exception:  # noqa: BLE001 - an entry without a file of its own
                continue
    meta: dict[str, Any] = {}
    if str(path).endswith(".safetensors"):
        from gan.serialize import read_metadata

        for k, v in read_metadata(path).items():
            try:
                meta[k] = json.loads(v)
            except json.JSONDecodeError:
                meta[k] = v
    entry = models.get(key, {}) if key else {}
    stem = Path(path).parent.name if Path(path).name.startswith("model.") else Path(path).stem
    return {"key": key, "entry": entry, "meta": meta, "name": key or stem, "path": Path(path)}


# --------------------------------------------------------------------------- the files
def _example_image(channels: int) -> np.ndarray:
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


def _sizes(model: nn.Module, tile: int | None) -> tuple[list[int], str]:
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


def _test_input(model: nn.Module, sizes: list[int]) -> np.ndarray:
    """(1, C, *sizes) float32 in the picture's own intensities (the package normalises it)."""
    c = model.config.in_channels
    img = _example_image(c)  # (H, W, C)
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


def _make_files(model: nn.Module, tmp: Path, *, tile, opset, onnx: bool, source: Path, name: str,
                info: dict) -> dict[str, Any]:
    from restore.export.backend import source_digest

    sizes, vary = _sizes(model, tile)
    x = _test_input(model, sizes)
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
    _cover(x[0], y[0], tmp / "cover.png")
    return {"input": x, "output": y, "sizes": sizes, "vary": vary, "formats": tuple(formats),
            "onnx_check": onnx_check, "opset": files_opset, "dir": tmp}


def _cover(x: np.ndarray, y: np.ndarray, path: Path) -> None:
    """The test input beside the test output's mask drawn over it (the middle slice of a
    volume; the input cropped to the output where valid convolutions shrink it)."""
    from PIL import Image

    from restore.segment.overlay import overlay, to_display

    mask = y.argmax(0) if y.shape[0] > 1 else (y[0] > 0.5).astype(np.int64)
    img = x.max(0)  # (*spatial)
    if mask.ndim == 3:
        img, mask = img[img.shape[0] // 2], mask[mask.shape[0] // 2]
    crop = tuple(slice((a - b) // 2, (a - b) // 2 + b) for a, b in zip(img.shape, mask.shape))
    img = img[crop]
    from skimage.measure import label

    panel = np.concatenate([to_display(img), overlay(img, label(mask > 0))], axis=1)
    scale = max(1, 256 // panel.shape[0])
    Image.fromarray(panel).resize((panel.shape[1] * scale, panel.shape[0] * scale), Image.NEAREST).save(path)


# --------------------------------------------------------------------------- the description
def _documentation(info: dict, model: nn.Module, files: dict, name: str, path: Path) -> Path:
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


def _axes(model: nn.Module, files: dict) -> tuple[list, list, list, list]:
    """The input's and output's axes (v0.5): batch, channel, then z, y, x."""
    cfg = model.config
    sizes, out_sizes = files["sizes"], files["output"].shape[2:]
    ids = ["z", "y", "x"][-len(sizes):]
    step = 2 ** cfg.depth if files["vary"] == "step" else 0
    channels = [f"channel{c}" for c in range(cfg.in_channels)] if cfg.in_channels > 1 else ["raw"]
    ins: list = [{"type": "batch"}, {"type": "channel", "channel_names": channels}]
    for a, s in zip(ids, sizes):
        ins.append({"type": "space", "id": a, "size": {"min": step, "step": step} if step else int(s)})
    k = cfg.out_channels
    names = ["foreground"] if k == 1 else ["background", "foreground"] if k == 2 else ["background"] + [
        f"class{c}" for c in range(1, k)]
    outs: list = [{"type": "batch"}, {"type": "channel", "channel_names": names}]
    for a, s, o in zip(ids, sizes, out_sizes):
        outs.append({"type": "space", "id": a,
                     "size": {"tensor_id": "input", "axis_id": a, "offset": int(o) - int(s)}})
    return ins, outs, ids, names


def _file(tmp: Path, name: str) -> dict[str, str]:
    from restore.models.manifest import sha256

    return {"source": name, "sha256": sha256(tmp / name)}


def _description(model: nn.Module, files: dict, *, name: str, info: dict, authors, licence) -> dict[str, Any]:
    """rdf.yaml as a dict (format 0.5): the files it names sit beside it in ``files["dir"]``."""
    from gan.serialize import arch_name
    from restore.export.backend import source_digest

    tmp: Path = files["dir"]
    cfg = model.config
    ins, outs, ids, classes = _axes(model, files)
    kind = getattr(cfg, "kind", "unetr" if not hasattr(cfg, "depth") else "plain")
    pre = [{"id": "scale_range", "kwargs": {"axes": ["channel", *ids], "min_percentile": PERCENTILES[0],
                                            "max_percentile": PERCENTILES[1]}}]
    post = [{"id": "softmax", "kwargs": {"axis": "channel"}}] if cfg.out_channels > 1 else [{"id": "sigmoid"}]
    inputs = [{"id": "input", "description": "raw intensities (any range: the package's scale_range normalises them)",
               "axes": ins, "test_tensor": _file(tmp, "test_input.npy"),
               "sample_tensor": _file(tmp, "sample_input.tif"), "data": {"type": "float32"},
               "preprocessing": pre}]
    outputs = [{"id": "probabilities", "description": f"class probabilities ({', '.join(classes)})", "axes": outs,
                "test_tensor": _file(tmp, "test_output.npy"), "sample_tensor": _file(tmp, "sample_output.tif"),
                "data": {"type": "float32", "range": [0.0, 1.0]},
                "postprocessing": post}]
    weights: dict[str, Any] = {"torchscript": {**_file(tmp, "weights.pt"),
                                               "pytorch_version": torch.__version__.split("+")[0]}}
    if "onnx" in files["formats"]:
        weights["onnx"] = {**_file(tmp, "weights.onnx"), "opset_version": files["opset"], "parent": "torchscript"}
    cites = [CITATIONS["plain"]] + ([CITATIONS[kind]] if kind != "plain" else [])
    cite = [{"text": t, "url": r} if r.startswith("http") else {"text": t, "doi": r} for t, r in cites]
    entry = info["entry"]
    people = authors or entry.get("authors") or [DEFAULT_AUTHOR]
    dims = f"{cfg.dims}D"
    ours = {"arch": arch_name(model), "config": cfg.to_dict(), "source_sha256": source_digest(info["path"], model),
            "producer": "unet-restore (restore export --format bioimageio)"}
    if "diameter" in info["meta"]:
        ours["diameter"] = float(info["meta"]["diameter"])
    target = ["nuclei"] if info["key"] == "nuclei" else []
    description = (f"{dims} U-Net ({type(model).__name__}, {kind}, {getattr(cfg, 'padding', 'same')} padding) "
                   f"segmenting {'cell nuclei in fluorescence microscopy' if target else 'images'}: "
                   f"{' / '.join(classes)} probabilities. Exported by unet-restore.")
    if "diameter" in ours:
        description += f" Trained with objects of about {ours['diameter']:g} px diameter."
    _documentation(info, model, files, name, tmp / "README.md")
    tags = ["segmentation", "semantic-segmentation", "unet", dims.lower(), "pytorch", "unet-restore"] + (
        ["nuclei", "fluorescence-light-microscopy"] if target else [])
    bioimageio = {"architecture_type": f"{dims} U-Net" if kind != "unetr" else f"{dims} UNETR",
                  "architecture_description": f"{type(model).__name__} {json.dumps(cfg.to_dict())}",
                  "model_parameter_count": sum(p.numel() for p in model.parameters()),
                  "task": "semantic segmentation", "target_structure": target}
    if target:
        bioimageio["modality"] = "fluorescence microscopy"
    return {"format_version": FORMAT_VERSION, "type": "model", "name": _package_name(name),
            "description": description, "version": "0.1.0", "authors": [{"name": p} for p in people],
            "cite": cite, "license": licence or entry.get("licence") or DEFAULT_LICENCE,
            "documentation": _file(tmp, "README.md"), "covers": [_file(tmp, "cover.png")], "tags": tags,
            "timestamp": _now(), "inputs": inputs, "outputs": outputs, "weights": weights,
            "config": {TOOL: ours, "bioimageio": bioimageio}}


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _package_name(name: str) -> str:
    """The spec's name rules (letters, digits, ``_+- ()``, at least 5 characters)."""
    import re

    clean = re.sub(r"[^A-Za-z0-9_+\- ()]", "-", name).strip("- ") or "segmenter"
    return clean if len(clean) >= 5 else f"{clean} U-Net"


def _save(rdf: dict[str, Any], folder: Path, part: Path) -> None:
    """rdf.yaml first, then the files it names, into one zip."""
    import zipfile

    import yaml

    names = ["README.md", "cover.png", "test_input.npy", "test_output.npy", "sample_input.tif", "sample_output.tif",
             "weights.pt", "weights.onnx"]
    with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        z.writestr("rdf.yaml", yaml.safe_dump(rdf, sort_keys=False, allow_unicode=True))
        for n in names:
            if (folder / n).is_file():
                z.write(folder / n, n)


def _validate(path: Path) -> str:
    """The written zip read back by bioimageio.spec where it is installed: a package it does not
    accept is not kept. Returns what it said."""
    try:
        import bioimageio.spec
        from bioimageio.spec import load_description
    except ImportError:
        return 'not validated (pip install "unet-restore[bioimageio]" to have bioimageio.spec check it)'
    import logging

    logging.getLogger("bioimageio").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            loaded = load_description(str(path), perform_io_checks=True)
        except Exception as e:  # noqa: BLE001 - bioimageio.spec itself failing is not the package's fault
            return f"not validated (bioimageio.spec {bioimageio.spec.__version__} failed: {type(e).__name__}: {e})"
    summary = loaded.validation_summary
    if summary.status == "failed":
        errors = [f"{'.'.join(map(str, e.loc))}: {e.msg}" for d in summary.details for e in d.errors]
        raise ValueError(f"bioimageio.spec does not accept the package: {'; '.join(errors[:3]) or summary.status}")
    warned = sum(len(d.warnings) for d in summary.details)
    return (f"valid bioimage.io model {loaded.format_version} (bioimageio.spec {bioimageio.spec.__version__}"
            f"{f', {warned} warnings' if warned else ''})")
