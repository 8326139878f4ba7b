"""How long ``restore --help`` and every ``restore SUB --help`` take, against what the command line
paid before it stopped importing torch (``python -c "import torch, torchvision"``, the floor of
the old ``restore --help``) and against a bare interpreter, all in the same run.

    python benchmarks/bench_cli.py              # ~1 minute on 2 cores
    python benchmarks/bench_cli.py --repeats 20

Each command runs ``--repeats`` times in a fresh interpreter after one warm-up (hyperfine's
method, without needing hyperfine); the median and the spread are written to
benchmarks/results/cli.json (or --out). The before/after figures of the README were measured
with hyperfine itself against a checkout of the old code (benchmarks/results/cli_help_hyperfine.json).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "python (bare interpreter)": [sys.executable, "-c", "pass"],
    "import torch, torchvision (the old --help's floor)": [sys.executable, "-c", "import torch, torchvision"],
    "restore --help": [sys.executable, "-m", "restore", "--help"],
    **{f"restore {sub} --help": [sys.executable, "-m", "restore", *sub.split(), "--help"]
       for sub in ("faces", "segment", "sketch", "translate", "export", "weights", "app", "train pix2pix",
                   "train gfpgan")},
    "restore segment (usage error)": [sys.executable, "-m", "restore", "segment"],
}


def timed(cmd: list[str], repeats: int) -> list[float]:
    subprocess.run(cmd, cwd=ROOT, capture_output=True)  # warm-up: the page cache
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, capture_output=True)
        out.append(time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cli.json")
    args = ap.parse_args(argv)
    rows = {}
    for name, cmd in COMMANDS.items():
        t = timed(cmd, args.repeats)
        rows[name] = {"median_s": round(statistics.median(t), 4), "min_s": round(min(t), 4),
                      "max_s": round(max(t), 4)}
        print(f"{name:55s} {rows[name]['median_s'] * 1000:8.0f} ms", flush=True)
    floor = rows["import torch, torchvision (the old --help's floor)"]["median_s"]
    ratio = floor / rows["restore --help"]["median_s"]
    print(f"restore --help is {ratio:.1f}x faster than importing torch and torchvision alone")
    result = {"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
              "repeats": args.repeats, "commands": rows, "speedup_vs_torch_import": round(ratio, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
