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

import torch
from torch import nn

from .bioimageio_files import PERCENTILES, TOOL, documentation, make_files

__all__ = ["CITATIONS", "TOOL", "BioimageioResult", "export_bioimageio"]

FORMAT_VERSION = "0.5.12"  # the current model specification (bioimageio.spec 0.5.12; readers take later patches)
CITATIONS = {  # (text, doi or url)
    "plain": (("Ronneberger, O., Fischer, P., Brox, T. U-Net: Convolutional Networks for Biomedical Image "
               "Segmentation. MICCAI 2015, LNCS 9351, 234-241."), "10.1007/978-3-319-24574-4_28"),
    "residual": ("He, K., Zhang, X., Ren, S., Sun, J. Deep Residual Learning for Image Recognition. CVPR 2016.",
                 "10.1109/CVPR.2016.90"),
    "attention": ("Oktay, O. et al. Attention U-Net: Learning Where to Look for the Pancreas. MIDL 2018.",
                  "https://arxiv.org/abs/1804.03999"),
    "multires": (("Ibtehaz, N., Rahman, M. S. MultiResUNet: Rethinking the U-Net architecture for multimodal "
                  "biomedical image segmentation. Neural Networks 121 (2020), 74-87."), "10.1016/j.neunet.2019.08.025"),
    "unetr": ("Hatamizadeh, A. et al. UNETR: Transformers for 3D Medical Image Segmentation. WACV 2022.",
              "10.1109/WACV51458.2022.00181"),
}
DEFAULT_LICENCE = "CC-BY-4.0"  # the zoo's recommendation, for a training run's weights (--licence to change)
DEFAULT_AUTHOR = "unet-restore contributors"


@dataclass
class BioimageioResult:
    path: Path
    formats: tuple[str, ...]
    onnx_check: str  # restore.export.onnx's comparison with PyTorch
    seconds: float
    name: str
    input_shape: tuple[int, ...]
    validated: str  # what bioimageio.spec said of the package, or that it is not installed


def export_bioimageio(source: str | Path, out: str | Path, *, loaded: tuple[nn.Module, Path] | None = None,
                      name: str | None = None, tile: int | None = None, opset: int | None = None,
                      authors: list[str] | None = None, licence: str | None = None,
                      onnx: bool = True) -> BioimageioResult:
    """Write ``source`` (a segmenter: manifest name, .safetensors file or run folder; ``loaded``:
    the network and its weights file where the caller has loaded them) as a bioimage.io model
    package at ``out`` (.zip). Raises ValueError (nothing written) when it is not a segmenter or
    a check fails."""
    t0 = time.perf_counter()
    from gan.nets.registry import descriptor_of
    from restore.imagewrite import atomic_write
    from restore.models.cache import load_network, resolve_weights

    out = Path(out)
    if out.suffix != ".zip":
        raise ValueError("a bioimage.io package is a .zip file: give -o NAME.zip")
    model, path = loaded if loaded is not None else (load_network(source)[0], resolve_weights(source))
    d = descriptor_of(model)
    if d.kind != "segmenter":
        raise ValueError(f"{source} is {d.kind!r}, not a segmenter: bioimage.io packages are written for "
                         "segmenters (the U-Nets 2D/3D and their variants, UNETR)")
    model = model.float().cpu().eval()
    info = _describe_source(str(source), path)
    name = name or info["name"]
    with tempfile.TemporaryDirectory(prefix="bioimageio-") as tmp:
        files = make_files(model, Path(tmp), tile=tile, opset=opset, onnx=onnx, source=path, name=name, info=info)
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
            if e.get("file") and Path(path).resolve() == model_file(k).resolve():
                key = k
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
    documentation(info, model, files, name, tmp / "README.md")
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
