"""bioimage.io model packages as segmenters: ``restore segment --weights MODEL.zip``.

    path, net, meta = load_package("nuclei.zip", device="cpu", backend="torch")

Our own reader of ``rdf.yaml`` (a zip and YAML; no bioimageio.spec needed to segment):

- a package this toolkit exported (``config.unet-restore``): the network is rebuilt from its
  architecture and config and loaded with the TorchScript weights' tensors (or, with
  ``--backend onnxruntime``, its ONNX weights run as they are), with its training diameter, so
  it gives the masks of the weights it was exported from;
- a U-Net package from elsewhere (format 0.5, or 0.4) with TorchScript or ONNX weights: the
  network runs as given behind a module that applies the package's own preprocessing (the
  spec's ``scale_range``, ``zero_mean_unit_variance``, ``fixed_zero_mean_unit_variance``,
  ``scale_linear``, ``clip``, ``ensure_dtype``) to the whole image, orders the axes as the
  package says, pads every tile to a size the package allows (and by the margin a
  valid-convolution output loses), and turns its output into class logits: as they are where
  the package's postprocessing is ``sigmoid`` or ``softmax``, the logit (one channel) or log
  (several) of probabilities where it has none.

The network of a package from elsewhere is ``restore.segment.package_net.PackageNetwork``.
Anything else is a ``PackageError`` (a ValueError: exit status 2, one line) that names the field.

A package is read as a stranger's (``restore.segment.package_files``): bounded reads (a zip bomb,
a huge rdf.yaml or one whose aliases explode, names outside the package: one line); the tensors of
our own packages read as data, never through ``torch.jit.load``; a package from elsewhere runs its
ONNX weights where it has them (onnxruntime runs no Python and no file operators), its TorchScript
only when its code names nothing outside an allow-list of tensor operators, or when the caller
trusts it (``trust_torchscript=True``, or ``RESTORE_TRUST_TORCHSCRIPT=1``).
"""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .package_files import (
    MAX_TEXT,
    MAX_WEIGHTS,
    check_torchscript,
    load_yaml,
    open_zip,
    read_capped,
    torchscript_tensors,
)
from .package_net import PackageError, PackageNetwork, PackageOnnx, TensorSpec

__all__ = ["PackageError", "PackageNetwork", "is_package", "load_package", "read_rdf"]

TOOL = "unet-restore"
RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")
SUPPORTED = ("torchscript", "onnx")


def is_package(weights: Any) -> bool:
    """True for a .zip file, a folder holding rdf.yaml, or an rdf.yaml itself."""
    if weights is None or isinstance(weights, nn.Module):
        return False
    p = Path(str(weights)).expanduser()
    if p.suffix == ".zip":
        return True
    if p.name in RDF_NAMES or p.name.endswith(".bioimageio.yaml"):
        return p.is_file()
    return p.is_dir() and any((p / n).is_file() for n in RDF_NAMES)


# --------------------------------------------------------------------------- reading
class _Files:
    """The package's files, from a zip or a folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        if path.is_dir() or path.suffix in (".yaml", ".yml"):
            self.root = path if path.is_dir() else path.parent
            self.rdf_name = path.name if not path.is_dir() else next(n for n in RDF_NAMES if (path / n).is_file())
            return
        if not path.is_file():
            raise PackageError(f"{path}: no such file")
        self.zip = open_zip(path, str(path))  # member count and names checked
        names = self.zip.namelist()
        found = [n for n in names if n in RDF_NAMES] or [n for n in names if n.endswith(".bioimageio.yaml")
                                                         and "/" not in n]
        if not found:
            raise PackageError(f"{path}: not a bioimage.io package (no rdf.yaml or bioimageio.yaml at its root)")
        self.rdf_name = found[0]

    def read(self, name: str, what: str, limit: int = MAX_WEIGHTS) -> bytes:
        """File ``name`` of the package, at most ``limit`` bytes (read in chunks, the zip's sizes not trusted)."""
        name = str(name)
        if name.startswith(("http://", "https://")):
            raise PackageError(f"{self.path}: {what} is a URL ({name}); only files inside the package are read "
                               "(no downloads)")
        name = name.removeprefix("./")
        if name.startswith(("/", "\\")) or ".." in Path(name.replace("\\", "/")).parts or name[1:2] == ":":
            raise PackageError(f"{self.path}: {what} names {name!r}, outside the package")
        try:
            return read_capped(self.zip if self.zip is not None else self.root, name, limit, str(self.path), what)
        except (KeyError, OSError):
            raise PackageError(f"{self.path}: {what} names {name!r}, which is not in the package") from None


def read_rdf(path: str | Path) -> tuple[dict[str, Any], _Files]:
    """(rdf.yaml as a dict, the package's files); PackageError for what is not a model package."""
    import yaml

    files = _Files(Path(path).expanduser())
    try:
        rdf = load_yaml(files.read(files.rdf_name, "rdf.yaml", MAX_TEXT), str(files.path), files.rdf_name)
    except yaml.YAMLError as e:
        raise PackageError(f"{files.path}: {files.rdf_name} is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(rdf, dict):
        raise PackageError(f"{files.path}: {files.rdf_name} holds no mapping of fields")
    if rdf.get("type") != "model":
        raise PackageError(f"{files.path}: field 'type' is {rdf.get('type')!r}, not 'model'")
    version = str(rdf.get("format_version", ""))
    if not version.startswith(("0.4.", "0.5.")):
        raise PackageError(f"{files.path}: field 'format_version' is {version or 'missing'}; "
                           "model packages of format 0.4 and 0.5 are read")
    for key in ("inputs", "outputs", "weights"):
        if not rdf.get(key):
            raise PackageError(f"{files.path}: rdf.yaml has no field '{key}'")
    for key in ("inputs", "outputs"):
        if not isinstance(rdf[key], list) or len(rdf[key]) != 1 or not isinstance(rdf[key][0], dict):
            raise PackageError(f"{files.path}: field '{key}' must list exactly one tensor for a segmenter "
                               f"(it has {len(rdf[key]) if isinstance(rdf[key], list) else 'no list'})")
    if not isinstance(rdf["weights"], dict):
        raise PackageError(f"{files.path}: field 'weights' is not a mapping of weight formats")
    usable = [w for w in SUPPORTED if isinstance(rdf["weights"].get(w), dict)]
    if not usable:
        raise PackageError(f"{files.path}: field 'weights' has {', '.join(map(str, rdf['weights'])) or 'nothing'}; "
                           "this toolkit runs torchscript or onnx weights")
    for w in usable:
        if not rdf["weights"][w].get("source"):
            raise PackageError(f"{files.path}: field 'weights.{w}.source' is missing")
    return rdf, files


def _weights(rdf: dict, files: _Files, fmt: str) -> bytes:
    entry = rdf["weights"][fmt]
    data = files.read(entry["source"], f"weights.{fmt}.source")
    expected = entry.get("sha256")
    if expected:
        import hashlib

        if hashlib.sha256(data).hexdigest() != str(expected).lower():
            raise PackageError(f"{files.path}: weights.{fmt}.source does not match its sha256 (a damaged package)")
    return data


def _trusted(trust_torchscript: bool | None) -> bool:
    if trust_torchscript is not None:
        return bool(trust_torchscript)
    return os.environ.get("RESTORE_TRUST_TORCHSCRIPT", "").strip().lower() in ("1", "true", "yes")


def _jit_load(data: bytes, device, where: Path, trusted: bool) -> Any:
    """A stranger's TorchScript: its code checked against the allow-list first (its
    ``__setstate__`` runs inside torch.jit.load), unless the caller trusts it."""
    import warnings

    check_torchscript(data, str(where), "weights.torchscript", operators=not trusted)  # sizes: always
    try:
        with warnings.catch_warnings():  # torch.jit.load is deprecated; the zoo's TorchScript format is not
            warnings.simplefilter("ignore")
            return torch.jit.load(io.BytesIO(data), map_location=str(device))
    except Exception as e:  # noqa: BLE001 - torch's many error types: one line
        raise PackageError(f"{where}: weights.torchscript is not a loadable TorchScript file "
                           f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def _check_onnx(data: bytes, where: Path) -> None:
    """ONNX weights whose tensors are all inside the file: an initializer's external ``location``
    would make onnxruntime read another file from the disk."""
    try:
        import onnx
    except ImportError:  # onnxruntime alone (onnx comes with it in the [onnx] extra) refuses paths with ".." itself
        return
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # noqa: BLE001 - protobuf's errors: one line
        raise PackageError(f"{where}: weights.onnx is not an ONNX file ({type(e).__name__})") from None
    graphs, tensors = [model.graph, *model.functions], []
    while graphs:
        g = graphs.pop()
        tensors += list(getattr(g, "initializer", []))
        tensors += [t.values for t in getattr(g, "sparse_initializer", [])]
        for node in g.node:
            for at in node.attribute:
                tensors += [at.t, *at.tensors]
                graphs += [at.g, *at.graphs] if at.HasField("g") else list(at.graphs)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in tensors):
        raise PackageError(f"{where}: weights.onnx keeps tensors in files outside it (external data: not read)")


def _onnx_file(data: bytes, where: Path) -> Path:
    """ONNX weights written once into the weights cache, named by their sha256 (onnxruntime
    takes a path; the file is reused by every later run)."""
    import hashlib

    _check_onnx(data, where)
    from restore.imagewrite import atomic_write
    from restore.models.manifest import cache_dir

    digest = hashlib.sha256(data).hexdigest()
    path = cache_dir() / "bioimageio" / f"{digest[:24]}.onnx"
    if not path.is_file():
        with atomic_write(path) as tmp:
            tmp.write_bytes(data)
    return path


# --------------------------------------------------------------------------- loading
def load_package(path: str | Path, device: str | torch.device = "cpu", backend: str = "torch",
                 trust_torchscript: bool | None = None) -> tuple[Path, nn.Module, dict[str, Any]]:
    """(the package's path, the network to run, metadata such as the training diameter).

    ``trust_torchscript``: run the TorchScript of a package from elsewhere even where its code
    names operators outside the allow-list (None: the RESTORE_TRUST_TORCHSCRIPT environment
    variable). Without it, such a package runs its ONNX weights, or is refused in one line."""
    path = Path(str(path)).expanduser()
    rdf, files = read_rdf(path)
    formats = [w for w in SUPPORTED if isinstance(rdf["weights"].get(w), dict)]
    ours = (rdf.get("config") or {}).get(TOOL) if isinstance(rdf.get("config"), dict) else None
    if isinstance(ours, dict) and ours.get("arch") and isinstance(ours.get("config"), dict):
        return path, _ours(rdf, files, ours, formats, device, backend), {
            k: v for k, v in ours.items() if k not in ("arch", "config")}
    spec = TensorSpec.parse(rdf, files.path)
    if backend == "onnxruntime" and "onnx" not in formats:
        raise PackageError(f"{path}: field 'weights' has no onnx entry for --backend onnxruntime "
                           "(run it with --backend torch)")
    trusted = _trusted(trust_torchscript)
    # A stranger's ONNX before its TorchScript (unless trusted): onnxruntime runs no Python and
    # has no file operators; TorchScript is a program (restore.segment.package_files).
    if "torchscript" in formats and backend != "onnxruntime" and (trusted or "onnx" not in formats
                                                                  or not _has_onnxruntime()):
        net = _jit_load(_weights(rdf, files, "torchscript"), device, path, trusted)
        return path, PackageNetwork(spec, net.eval()), {}
    from restore.export.backend import check_backend

    check_backend("onnxruntime")  # onnxruntime installed, or one line saying how to get it
    return path, PackageOnnx(spec, _onnx_file(_weights(rdf, files, "onnx"), path), device), {}


def _has_onnxruntime() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def _ours(rdf: dict, files: _Files, ours: dict, formats: list[str], device, backend: str) -> nn.Module:
    """A package this toolkit exported: the network rebuilt from its config, its TorchScript
    file's tensors read as data (torch.jit.load would run the file's code, and anyone can write
    ``config.unet-restore`` into a package), or its ONNX weights for onnxruntime."""
    from gan.serialize import build_model
    from restore.export.backend import OnnxNetwork, check_backend

    if backend == "onnxruntime" and "onnx" in formats:
        check_backend("onnxruntime")
        return OnnxNetwork(_onnx_file(_weights(rdf, files, "onnx"), files.path), device)
    if "torchscript" not in formats:  # ONNX only: run as a .onnx file is
        check_backend("onnxruntime")
        return OnnxNetwork(_onnx_file(_weights(rdf, files, "onnx"), files.path), device)
    try:
        model = build_model(ours["arch"], ours["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise PackageError(f"{files.path}: field 'config.{TOOL}' does not describe a network of this toolkit "
                           f"({e})") from None
    found = torchscript_tensors(_weights(rdf, files, "torchscript"), str(files.path), "weights.torchscript")
    want = model.state_dict()
    try:  # the tensors the network has, by name and shape (extra attributes of the file: ignored)
        model.load_state_dict({k: v for k, v in found.items() if k in want}, strict=True)
    except Exception as e:  # noqa: BLE001 - a TorchScript file that is not this network's
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PackageError(f"{files.path}: weights.torchscript does not hold the network config.{TOOL} "
                           f"describes ({first})") from None
    return model.to(device).eval()
