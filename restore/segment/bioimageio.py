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
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

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
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise PackageError(f"{path}: not a bioimage.io package (not a readable zip: {e})") from None
        names = self.zip.namelist()
        found = [n for n in names if n in RDF_NAMES] or [n for n in names if n.endswith(".bioimageio.yaml")
                                                         and "/" not in n]
        if not found:
            raise PackageError(f"{path}: not a bioimage.io package (no rdf.yaml or bioimageio.yaml at its root)")
        self.rdf_name = found[0]

    def read(self, name: str, what: str) -> bytes:
        name = str(name)
        if name.startswith(("http://", "https://")):
            raise PackageError(f"{self.path}: {what} is a URL ({name}); only files inside the package are read "
                               "(no downloads)")
        name = name.removeprefix("./")
        if name.startswith("/") or ".." in Path(name).parts:
            raise PackageError(f"{self.path}: {what} names {name!r}, outside the package")
        try:
            if self.zip is not None:
                return self.zip.read(name)
            return (self.root / name).read_bytes()
        except (KeyError, OSError):
            raise PackageError(f"{self.path}: {what} names {name!r}, which is not in the package") from None


def read_rdf(path: str | Path) -> tuple[dict[str, Any], _Files]:
    """(rdf.yaml as a dict, the package's files); PackageError for what is not a model package."""
    import yaml

    files = _Files(Path(path).expanduser())
    try:
        rdf = yaml.safe_load(files.read(files.rdf_name, "rdf.yaml"))
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


def _jit_load(data: bytes, device) -> Any:
    import warnings

    with warnings.catch_warnings():  # torch.jit.load is deprecated; the zoo's TorchScript format is not
        warnings.simplefilter("ignore")
        return torch.jit.load(io.BytesIO(data), map_location=str(device))


def _onnx_file(data: bytes) -> Path:
    """ONNX weights written once into the weights cache, named by their sha256 (onnxruntime
    takes a path; the file is reused by every later run)."""
    import hashlib

    from restore.imagewrite import atomic_write
    from restore.models.manifest import cache_dir

    digest = hashlib.sha256(data).hexdigest()
    path = cache_dir() / "bioimageio" / f"{digest[:24]}.onnx"
    if not path.is_file():
        with atomic_write(path) as tmp:
            tmp.write_bytes(data)
    return path


# --------------------------------------------------------------------------- loading
def load_package(path: str | Path, device: str | torch.device = "cpu",
                 backend: str = "torch") -> tuple[Path, nn.Module, dict[str, Any]]:
    """(the package's path, the network to run, metadata such as the training diameter)."""
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
    if "torchscript" in formats and backend != "onnxruntime":
        try:
            net = _jit_load(_weights(rdf, files, "torchscript"), device)
        except Exception as e:  # noqa: BLE001 - torch's many error types: one line
            raise PackageError(f"{path}: weights.torchscript is not a loadable TorchScript file "
                               f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
        return path, PackageNetwork(spec, net.eval()), {}
    from restore.export.backend import check_backend

    check_backend("onnxruntime")  # onnxruntime installed, or one line saying how to get it
    return path, PackageOnnx(spec, _onnx_file(_weights(rdf, files, "onnx")), device), {}


def _ours(rdf: dict, files: _Files, ours: dict, formats: list[str], device, backend: str) -> nn.Module:
    """A package this toolkit exported: the network rebuilt, or its ONNX weights for onnxruntime."""
    from gan.serialize import build_model
    from restore.export.backend import OnnxNetwork, check_backend

    if backend == "onnxruntime" and "onnx" in formats:
        check_backend("onnxruntime")
        return OnnxNetwork(_onnx_file(_weights(rdf, files, "onnx")), device)
    if "torchscript" not in formats:  # ONNX only: run as a .onnx file is
        check_backend("onnxruntime")
        return OnnxNetwork(_onnx_file(_weights(rdf, files, "onnx")), device)
    try:
        model = build_model(ours["arch"], ours["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise PackageError(f"{files.path}: field 'config.{TOOL}' does not describe a network of this toolkit "
                           f"({e})") from None
    try:
        state = _jit_load(_weights(rdf, files, "torchscript"), "cpu").state_dict()
        model.load_state_dict(state, strict=True)
    except PackageError:
        raise
    except Exception as e:  # noqa: BLE001 - a TorchScript file that is not this network's
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PackageError(f"{files.path}: weights.torchscript does not hold the network config.{TOOL} "
                           f"describes ({first})") from None
    return model.to(device).eval()
