"""scripts/gpu_check.sh and benchmarks/bench_gpu.py where no GPU is lent: the script says so
(exit 3) instead of failing half-way, and the benchmark's code runs end to end at toy sizes
(``--smoke``), so the one command a lent GPU gets does not rot between GPU sessions."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tests import ROOT


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine gpu_check.sh runs for real")
def test_gpu_check_without_a_gpu_says_so():
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 3 and "no CUDA device here" in done.stdout
    env["PYTHON"] = "/nonexistent/python"
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "has no torch" in done.stdout


def test_bench_gpu_smoke(tmp_path):
    out = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["smoke"] is True
    g = result["gfpgan_512"]
    assert g["faces_per_s"]["fp32 batch 1"] > 0 and "fp32 batch 2" in g["faces_per_s"]
    from gan.precision import cpu_has_bf16

    assert set(g["psnr_vs_fp32_db"]) == ({"bf16"} if cpu_has_bf16() else set())  # what this CPU can run
    assert all(v > 30 for v in g["psnr_vs_fp32_db"].values())  # and close to fp32
    assert result["restore_faces"]["bundled restorer"]["exit"] == 0
    assert {r["exit"] for r in result["train_one_step"].values() if isinstance(r, dict)} == {0}
