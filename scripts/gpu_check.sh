#!/usr/bin/env bash
# What a lent GPU is for, in one command (under 8 minutes on one H200): every CUDA-marked test,
# then the GPU benchmarks (benchmarks/bench_gpu.py: GFP-GAN 512 faces/s at batch 1, 8, 32 in
# fp32/fp16/bf16 with their PSNR against fp32; `restore faces` photos/s on a folder; one step of
# each `paper` training preset with its time and memory), written to benchmarks/results/gpu.json
# (and copied to $OUT when the device tool set it, so the figures come back).
#
#   bash scripts/gpu_check.sh          # on the GPU machine, in the repository root
#
# It uses the Python that has CUDA's torch (PYTHON, default python3). The GPU machine can reach
# no package index: what it lacks travels as wheels in .whl/ (scripts/gpu_wheels.sh makes them
# here, for that machine's Python); tests whose packages are still missing skip and say why.
# Exit status: 0 all passed, 1 a test or a benchmark failed, 3 no CUDA device here.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "gpu_check: the wheels in .whl/ did not install"; exit 1; }
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
if ! $PY -c "import torch" 2>/dev/null; then
    echo "gpu_check: $PY has no torch; set PYTHON to the Python that has CUDA's torch"
    exit 1
fi
if ! $PY -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)"; then
    echo "gpu_check: no CUDA device here (this script is for a lent GPU machine)"
    exit 3
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
timeout 240 $PY -m pytest -q -rs -m gpu -p no:cacheprovider -o addopts="" tests
tests_rc=$?
timeout 300 $PY benchmarks/bench_gpu.py --out benchmarks/results/gpu.json --tests-rc "$tests_rc"
bench_rc=$?
# onnxruntime's CUDA provider, where onnxruntime-gpu is installed (its wheel is past the device
# tool's 64 MiB carry, so only a machine that has it runs this): benchmarks/results/onnx_gpu.json
if $PY -c "import sys, onnxruntime as o; sys.exit(0 if 'CUDAExecutionProvider' in o.get_available_providers() else 1)" \
        2>/dev/null; then
    timeout 150 $PY benchmarks/bench_onnx.py --quick --out benchmarks/results/onnx_gpu.json || bench_rc=1
fi
if [ -n "${OUT:-}" ]; then cp benchmarks/results/gpu.json benchmarks/results/onnx_gpu.json "$OUT/" 2>/dev/null; fi
echo "gpu_check: CUDA tests exit $tests_rc, benchmarks exit $bench_rc"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
