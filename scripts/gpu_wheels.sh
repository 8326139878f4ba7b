#!/usr/bin/env bash
# Wheels of what the GPU machine lacks (its image has torch, numpy, scipy, scikit-image,
# tifffile, safetensors, opencv, matplotlib, pytest, h5py, tensorboard; no package index), for
# its Python 3.12, into .whl/ (ignored by git; name it in the device tool's `carry`). The
# device tool carries at most 64 MiB: gradio and its dependencies (the app's CUDA test) are
# left out unless WITH_APP=1, and the total is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
PKGS="facenet-pytorch==2.5.3 pillow-heif facexlib lpips tqdm"
[ "${WITH_APP:-0}" = 1 ] && PKGS="$PKGS gradio gradio-client fastapi starlette uvicorn pydantic pydantic-core orjson python-multipart safehttpx semantic-version tomlkit groovy ffmpy pydub"
for p in $PKGS; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl "$p"
done
# basicsr publishes no wheel: build one from its sdist (pure Python without its CUDA ops)
python3 -m pip wheel -q --no-deps --no-build-isolation -w .whl basicsr==1.4.2 || echo "gpu_wheels: basicsr not built"
du -sh .whl
