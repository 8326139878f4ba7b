"""Copy a trained model into weights/ as a bundled model and record it in the manifest.

    python scripts/export_model.py runs/nuclei/model.safetensors nuclei [--licence BSD-3-Clause]

Writes weights/<name>.safetensors and sets [models.<name>] in weights/manifest.toml (file, size,
full sha256, architecture, licence, card), keeping the other entries as they are.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gan.serialize import load_model  # noqa: E402
from restore.models.manifest import MANIFEST, WEIGHTS_DIR, manifest, sha256  # noqa: E402


def toml_value(v) -> str:
    return json.dumps(v)  # strings and numbers in JSON syntax are valid TOML


def write_manifest(models: dict[str, dict]) -> None:
    """Rewrite the manifest: its leading comment block, then one table per model (names with a
    dot quoted, nested dicts such as ``config`` as sub-tables)."""
    old = MANIFEST.read_text().splitlines() if MANIFEST.is_file() else []
    header = old[: next((i for i, x in enumerate(old) if not x.startswith("#")), len(old))]
    lines = (header or ["# Bundled and downloadable models. Every file is checked against its full sha256."]) + [""]
    for name in sorted(models):
        key = name if name.replace("-", "").replace("_", "").isalnum() else json.dumps(name)
        lines.append(f"[models.{key}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in models[name].items() if not isinstance(v, dict)]
        for k, table in ((k, v) for k, v in models[name].items() if isinstance(v, dict)):
            lines += ["", f"[models.{key}.{k}]"] + [f"{kk} = {toml_value(vv)}" for kk, vv in table.items()]
        lines.append("")
    MANIFEST.write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("src", type=Path)
    ap.add_argument("name")
    ap.add_argument("--licence", default="Apache-2.0")
    args = ap.parse_args()
    model, meta = load_model(args.src)  # refuses anything that does not rebuild
    dst = WEIGHTS_DIR / f"{args.name}.safetensors"
    shutil.copyfile(args.src, dst)
    models = manifest()
    models[args.name] = {
        "file": dst.name,
        "bytes": dst.stat().st_size,
        "sha256": sha256(dst),
        "arch": meta["arch"],
        "task": meta.get("task", ""),
        "licence": args.licence,
        "card": f"{args.name}.md",
    }
    write_manifest(models)
    print(f"{dst} ({dst.stat().st_size / 1e6:.1f} MB) recorded in {MANIFEST}")


if __name__ == "__main__":
    main()
