"""Reading a bioimage.io package made by someone else without trusting it (for
``restore.segment.bioimageio``): bounded reads from its zip, a bounded rdf.yaml, and its
TorchScript weights read as data, never run, unless their code passes an allow-list.

- Zips: the member count is read from the end record before ``zipfile`` parses the central
  directory; member names that climb out (``..``, absolute, drive letters) refuse the package;
  every member is read in chunks and the read stops at a cap (the sizes a zip declares are not
  trusted), and at a compression ratio no real weights have (a zip bomb is refused after at most
  ``RATIO`` times its compressed size).
- rdf.yaml: at most ``MAX_TEXT`` bytes, and at most ``MAX_NODES`` nodes once its aliases are
  expanded: ``yaml.safe_load`` keeps a "billion laughs" document small by sharing the aliased
  objects, but anything that walks or prints the result (an error message) expands them.
- TorchScript: a TorchScript file is a program. Its ``__setstate__`` runs inside
  ``torch.jit.load`` and its ``forward`` runs on every tile, and both may call ``torch.save``
  (aten::save: writes any file) or ``torch.from_file(path, shared=True)`` (reads and overwrites
  any file); the tests build such files. PyTorch's SECURITY.md: treat a TorchScript model "the
  same way as locally executable code from an unknown source"; there is no safe mode of
  ``torch.jit.load`` (pytorch/pytorch#152336, #143403). So the tensors of our own packages are
  read from the archive's data.pkl by a restricted unpickler (no code of the file is compiled or
  run), and a stranger's archive is loaded only when every operator its code names is in
  ``ALLOWED`` (plain tensor maths of segmentation networks), or when the user says they trust it.
"""
from __future__ import annotations

import ast
import io
import os
import pickle
import struct
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import torch

from .package_net import PackageError

__all__ = ["MAX_TEXT", "MAX_WEIGHTS", "RATIO", "check_torchscript", "load_yaml", "open_zip", "read_capped",
           "torchscript_tensors"]

MAX_WEIGHTS = 2 << 30  # 2 GiB: the zoo's U-Nets weigh tens to a few hundred MB; room for big 3D nets, and a bound
MAX_TEXT = 4 << 20  # rdf.yaml, data.pkl, a code file: real ones are KBs to a few hundred KB
RATIO = 100  # decompressed / compressed: float weights deflate by ~1.1x; zeros by ~1000x (a bomb)
FLOOR = MAX_TEXT  # small members may compress better than RATIO (text, empty tensors): capped anyway
MAX_MEMBERS = 50_000  # members of a zip (a package, or a TorchScript archive: ~3 per module)
MAX_DIRECTORY = 16 << 20  # its central directory: ~50,000 entries of ~300 bytes; bounds what zipfile parses
MAX_CODE = 32 << 20  # a TorchScript archive's code, all files: a big scripted network has a few MB
MAX_NODES = 200_000  # rdf.yaml nodes with aliases expanded (real ones: a few hundred)
CHUNK = 1 << 20


# --------------------------------------------------------------------------- zips
def _directory(f) -> tuple[int, int]:
    """(members, central directory bytes) the zip's end record declares (zip64 too); (0, 0)
    where it cannot be read (zipfile then says what is wrong)."""
    f.seek(0, os.SEEK_END)
    f.seek(max(0, f.tell() - (22 + 65535)))
    tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return 0, 0
    count, size = struct.unpack("<HI", tail[at + 10:at + 16])
    if (count == 0xFFFF or size == 0xFFFFFFFF) and at >= 20 and tail[at - 20:at - 16] == b"PK\x06\x07":
        f.seek(struct.unpack("<Q", tail[at - 12:at - 4])[0])
        rec = f.read(56)
        if rec[:4] == b"PK\x06\x06" and len(rec) == 56:
            count, size = struct.unpack("<QQ", rec[32:48])
    return count, size


def _bad_name(name: str) -> bool:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":")


def open_zip(source: Path | bytes, where: str) -> zipfile.ZipFile:
    """A zip whose member count and names were checked; PackageError naming ``where`` otherwise."""
    f = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115 - the zip owns it
    try:
        count, size = _directory(f)  # before zipfile parses the whole directory into objects
        if count > MAX_MEMBERS or size > MAX_DIRECTORY:
            raise PackageError(f"{where}: the zip declares {count} members ({_size(size)} of directory), more than "
                               f"the {MAX_MEMBERS} read (a hostile or broken package)")
        f.seek(0)
        z = zipfile.ZipFile(f)
        if len(z.filelist) > MAX_MEMBERS:  # zipfile reads the directory by its size, not its count: a count can lie
            raise PackageError(f"{where}: the zip has {len(z.filelist)} members, more than the {MAX_MEMBERS} read "
                               "(a hostile or broken package)")
    except (zipfile.BadZipFile, OSError, ValueError, struct.error, EOFError, RuntimeError, NotImplementedError) as e:
        f.close()
        if isinstance(e, PackageError):
            raise
        raise PackageError(f"{where}: not a bioimage.io package (not a readable zip: {e})") from None
    for name in z.namelist():
        if _bad_name(name):
            z.close()
            raise PackageError(f"{where}: member {name!r} names a path outside the package (refused)")
    return z


def read_capped(source: zipfile.ZipFile | Path, name: str, limit: int, where: str, what: str) -> bytes:
    """Member ``name`` of a zip (or file ``name`` under a folder), read in chunks: PackageError
    naming ``what`` and the limit as soon as it passes ``limit`` bytes, or (zipped) RATIO times
    its compressed size. KeyError/OSError where it is not there."""
    if isinstance(source, zipfile.ZipFile):
        info = source.getinfo(name)
        ratio_cap = max(FLOOR, RATIO * info.compress_size) if info.compress_type != zipfile.ZIP_STORED else limit
        cap = min(limit, ratio_cap)
    else:
        path = source / name
        if not path.is_file():  # a FIFO would never end
            raise OSError(name)
        if not path.resolve().is_relative_to(source.resolve()):
            raise PackageError(f"{where}: {what} ({name}) is a link to a file outside the package")
        cap = ratio_cap = limit
    out = bytearray()
    try:
        with source.open(info) if isinstance(source, zipfile.ZipFile) else open(path, "rb") as handle:
            while chunk := handle.read(min(CHUNK, cap + 1 - len(out))):
                out += chunk
                if len(out) > cap:
                    why = (f"decompresses to more than {RATIO} times its compressed size (a zip bomb?)"
                           if cap == ratio_cap and cap < limit else f"is larger than the {_size(limit)} read")
                    raise PackageError(f"{where}: {what} ({name}) {why}")
    except (zipfile.BadZipFile, EOFError, ValueError, RuntimeError, NotImplementedError) as e:
        if isinstance(e, PackageError):  # else a bad CRC, a member that ends early, encrypted, unknown method
            raise
        raise PackageError(f"{where}: {what} ({name}) is damaged or unreadable ({e})") from None
    return bytes(out)


def _size(n: int) -> str:
    return f"{n / (1 << 30):.3g} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.3g} MiB"


# --------------------------------------------------------------------------- rdf.yaml
def load_yaml(data: bytes, where: str, name: str) -> Any:
    """``yaml.safe_load`` with its aliases counted: PackageError past MAX_NODES expanded nodes."""
    import yaml

    loader = (getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader)(data)
    try:
        node = loader.get_single_node()
        if node is not None:
            sizes: dict[int, int] = {}
            if _expanded(node, sizes) > MAX_NODES:
                raise PackageError(f"{where}: {name} expands to more than {MAX_NODES} values through its aliases "
                                   "(a hostile or broken rdf.yaml)")
        return None if node is None else loader.construct_document(node)
    except RecursionError:
        raise PackageError(f"{where}: {name} is nested too deeply") from None
    finally:
        loader.dispose()


def _expanded(node, sizes: dict[int, int], depth: int = 0) -> int:
    """Nodes of ``node`` with every alias counted as the copy a reader of it sees."""
    if id(node) in sizes:
        return sizes[id(node)]
    if depth > 500:
        raise RecursionError
    sizes[id(node)] = MAX_NODES + 1  # a node that contains itself: refused
    value = node.value if isinstance(node.value, list) else []
    kids = [k for pair in value for k in (pair if isinstance(pair, tuple) else (pair,))]
    n = 1
    for k in kids:
        n += _expanded(k, sizes, depth + 1)
        if n > MAX_NODES:
            break
    sizes[id(node)] = n
    return n


# --------------------------------------------------------------------------- TorchScript
def _archive(data: bytes, where: str, what: str) -> tuple[zipfile.ZipFile, str]:
    """The TorchScript archive (a zip too), its declared sizes checked before torch's reader
    allocates them; and the folder its records are in."""
    z = open_zip(data, f"{where}: {what}")
    total = 0
    for info in z.infolist():
        stored = info.compress_type == zipfile.ZIP_STORED
        if (stored and info.file_size != info.compress_size) or \
                (not stored and info.file_size > max(FLOOR, RATIO * info.compress_size)):
            raise PackageError(f"{where}: {what} member {info.filename} declares {info.file_size} bytes from "
                               f"{info.compress_size} (a zip bomb, or a damaged file)")
        total += info.file_size
    if total > MAX_WEIGHTS:
        raise PackageError(f"{where}: {what} declares {_size(total)}, more than the {_size(MAX_WEIGHTS)} read")
    pkls = [n for n in z.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
    if not pkls:
        raise PackageError(f"{where}: {what} is not a TorchScript file (no data.pkl)")
    return z, pkls[0].split("/")[0]


_DTYPES = {"FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
           "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
           "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
           "BoolStorage": torch.bool}


class _Object:
    """A TorchScript object (a module) as data: its attributes, none of its methods."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Storage:
    def __init__(self, name: str) -> None:
        self.dtype = _DTYPES[name]


class _Unpickler(pickle.Unpickler):
    """data.pkl with only tensors, module objects and plain values (Python's documented way to
    restrict unpickling: ``find_class`` decides every global)."""

    def __init__(self, data: bytes, read_storage) -> None:
        super().__init__(io.BytesIO(data))
        self.read_storage = read_storage
        self.storages: dict[str, torch.Tensor] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("__torch__"):
            return _Object
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if module == "torch" and name in _DTYPES:
            return _Storage(name)
        raise pickle.UnpicklingError(f"{module}.{name} is not a tensor or module")

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _Storage)):
            raise pickle.UnpicklingError("a record that is not a tensor storage")
        key, dtype, numel = str(pid[2]), pid[1].dtype, int(pid[4])
        if key not in self.storages:
            raw = self.read_storage(key)
            if len(raw) < numel * dtype.itemsize:
                raise pickle.UnpicklingError(f"storage {key} is shorter than the {numel} values it declares")
            self.storages[key] = torch.frombuffer(bytearray(raw[:numel * dtype.itemsize]), dtype=dtype) \
                if numel else torch.empty(0, dtype=dtype)
        return self.storages[key]


def _rebuild_tensor(storage, offset, size, stride, *_ignored) -> torch.Tensor:
    if not isinstance(storage, torch.Tensor):
        raise pickle.UnpicklingError("a tensor without storage")
    return torch.as_strided(storage, tuple(size), tuple(stride), int(offset))  # as_strided checks the bounds


def torchscript_tensors(data: bytes, where: str, what: str) -> dict[str, torch.Tensor]:
    """Every tensor attribute of the archive's module tree, by its state_dict name, read as data:
    nothing in the file is compiled or run."""
    z, root = _archive(data, where, what)
    with z:
        if root + "/byteorder" in z.namelist() and z.read(root + "/byteorder").strip() not in (b"little", b""):
            raise PackageError(f"{where}: {what} is written big-endian (not read)")

        def storage(key: str) -> bytes:
            return read_capped(z, f"{root}/data/{key}", MAX_WEIGHTS, where, what)

        try:
            top = _Unpickler(read_capped(z, f"{root}/data.pkl", MAX_TEXT, where, what), storage).load()
        except PackageError:
            raise
        except Exception as e:  # noqa: BLE001 - a hostile pickle fails in many ways: one line
            raise PackageError(f"{where}: {what} holds something other than tensors and modules "
                               f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    found: dict[str, torch.Tensor] = {}
    try:
        _collect(top, "", found, set())
    except RecursionError:
        raise PackageError(f"{where}: {what} nests its modules too deeply") from None
    return found


def _collect(obj: Any, prefix: str, found: dict, seen: set) -> None:
    if not isinstance(obj, _Object) or id(obj) in seen or not isinstance(getattr(obj, "state", None), dict):
        return
    seen.add(id(obj))
    for k, v in obj.state.items():
        if isinstance(v, torch.Tensor):
            found[prefix + str(k)] = v
        else:
            _collect(v, f"{prefix}{k}.", found, seen)


# Operators a segmentation network's TorchScript names (conv, norm, activation, pooling, resizing,
# shapes, arithmetic) and the list/int/str helpers TorchScript prints. Not here, on purpose:
# aten::save, aten::from_file (files), torch.classes.* (custom classes: stores, sockets),
# set_/as_strided/_unsafe_* and pointer ops (memory), prim::Print.
ALLOWED = frozenset("""
_convolution conv1d conv2d conv3d conv_transpose1d conv_transpose2d conv_transpose3d convolution linear matmul
mm bmm addmm einsum batch_norm instance_norm group_norm layer_norm native_batch_norm native_layer_norm dropout
dropout_ feature_dropout alpha_dropout relu relu_ relu6 leaky_relu leaky_relu_ elu elu_ selu celu gelu silu
silu_ mish hardswish hardsigmoid hardtanh hardtanh_ prelu softplus sigmoid sigmoid_ tanh tanh_ softmax
log_softmax threshold max_pool1d max_pool2d max_pool3d max_pool2d_with_indices max_pool3d_with_indices
avg_pool1d avg_pool2d avg_pool3d adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d
adaptive_max_pool2d adaptive_max_pool3d upsample_nearest1d upsample_nearest2d upsample_nearest3d
upsample_linear1d upsample_bilinear2d upsample_trilinear3d upsample_bicubic2d _upsample_nearest_exact1d
_upsample_nearest_exact2d _upsample_nearest_exact3d _upsample_bilinear2d_aa _upsample_bicubic2d_aa
_upsample_lanczos2d_aa adaptive_max_pool1d pixel_shuffle pixel_unshuffle pad constant_pad_nd reflection_pad2d
reflection_pad3d replication_pad2d replication_pad3d cat stack concat split chunk unbind slice select narrow
view reshape flatten unflatten squeeze unsqueeze permute transpose contiguous expand expand_as repeat flip
roll size dim numel to type_as clone detach add add_ sub sub_ mul mul_ div div_ neg abs pow sqrt rsqrt exp log
clamp clamp_ clamp_min clamp_max sum mean std var amax amin max min argmax argmin where masked_fill eq ne lt
le gt ge logical_not logical_and logical_or floor ceil round remainder floordiv fmod zeros zeros_like ones
ones_like full full_like empty empty_like arange tensor scalar_tensor Int Float Bool IntImplicit FloatImplicit
ScalarImplicit item len append list format warn __is__ __isnot__ __not__ __contains__ __range_length
__derive_index __getitem__ __interpolate RaiseException NumToTensor dtype device unchecked_unwrap_optional min
max shape layout TupleIndex
""".split())  # noqa: SIM905 - a word list reads better than 200 quoted names
_BUILTINS = frozenset("""
annotate getattr hasattr isinstance range len int float bool str list tuple dict unchecked_cast
uninitialized min max abs round enumerate zip divmod all any
""".split())  # noqa: SIM905


def check_torchscript(data: bytes, where: str, what: str, operators: bool = True) -> None:
    """PackageError for an archive whose sizes lie or pass the caps, or (``operators``) naming the
    first operator outside ALLOWED that its code names."""
    z, root = _archive(data, where, what)
    if not operators:
        z.close()
        return
    trees, total = [], 0
    with z:
        code = [n for n in z.namelist() if n.startswith(f"{root}/code/") and n.endswith(".py")]
        if not code:
            raise PackageError(f"{where}: {what} is not a TorchScript file (no code)")
        for name in code:
            text = read_capped(z, name, MAX_TEXT, where, what).decode("utf-8", "replace")
            total += len(text)
            if total > MAX_CODE:
                raise PackageError(f"{where}: {what} has more than {_size(MAX_CODE)} of code (not read)")
            try:
                trees.append(ast.parse(text))
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                raise PackageError(f"{where}: {what} has code that does not read as TorchScript ({name})") from None
    own = {"forward", "training"}  # the names the archive defines: its classes, methods, attributes
    for tree in trees:
        for n in ast.walk(tree):
            if isinstance(n, (ast.FunctionDef, ast.ClassDef)):
                own.add(n.name)
            elif isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name):
                own.add(n.target.id)
    for tree in trees:
        if bad := _outside(tree, own):
            raise PackageError(f"{where}: {what} calls {bad}, outside the operators run from packages made "
                               "elsewhere (a TorchScript file is a program that can read and write files); "
                               "run it only if you trust its source (--trust-torchscript, or RESTORE_TRUST_TORCHSCRIPT=1)")


def _outside(tree: ast.AST, own: set[str]) -> str | None:
    """The first reference to an operator or method not in ALLOWED or the archive's own names
    (every reference, called or not: an alias or ``getattr(x, "name")`` cannot hide one)."""
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id not in _BUILTINS and not node.func.id.startswith("_"):  # _0(...): a local alias
                return node.func.id
            if node.func.id in ("getattr", "hasattr") and len(node.args) > 1:
                name = node.args[1].value if isinstance(node.args[1], ast.Constant) else None
                if not (isinstance(name, str) and (name.isdigit() or name in own or name in ALLOWED)):
                    return f"getattr(..., {name!r})"
        if isinstance(node, ast.Name) and node.id in ("torch", "ops") and id(node) not in inner:
            return node.id
        if isinstance(node, ast.Attribute) and id(node) not in inner:
            parts = []
            v: ast.AST = node
            while isinstance(v, ast.Attribute):
                parts.append(v.attr)
                v = v.value
            tail = parts[::-1]
            if isinstance(v, ast.Name) and v.id == "__torch__":
                continue  # the archive's own classes and functions: scanned in their files
            if not (isinstance(v, ast.Name) and v.id in ("torch", "ops")):
                if any(p not in own and p not in ALLOWED for p in tail):  # x.fill_(...), self.conv
                    return ".".join(tail)
                continue
            dotted = ".".join([v.id, *tail])
            if tail[:1] == ["ops"]:
                tail = tail[1:]
            ok = (len(tail) == 1 and v.id == "torch") or (len(tail) == 2 and tail[0] in ("aten", "prim"))
            if not ok or tail[-1] not in ALLOWED:
                return dotted
    return None
