#!/usr/bin/env bash
# Reproduce the bundled `colorizer` model: fetch the clip art, train, score, export.
#   bash scripts/train_colorizer.sh [RUN_DIR]          (STEPS=4000, then resumed to MORE=6000: the bundled run)
# About 25-115 min on 2 CPU cores: a step of 8 crops of 128 px took 0.23 s on a CPU with native
# bf16 and 1.09 s on an AVX2-only one, where the bundled run took 112 min (weights/colorizer.md).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/colorizer}
PY=${PY:-.venv/bin/python}
STEPS=${STEPS:-4000}
MORE=${MORE:-6000}  # the resume restarts the cosine at its value for step STEPS of MORE

$PY scripts/fetch_clipart.py --out data/clipart
# The bundled model predates the preset's attention (--attention 0) and augmented-self references
# (--self-ref 0). The attention run of 2026-12-04 (not bundled yet: runs/colorizer-scft, 20 min):
#   restore train colorizer ...the same flags... --steps 3000 --init colorizer --self-ref 0.8 --unpaired 0.1
# Validation (model selection) holds out every 10th training image; data/clipart/test is
# only scored at the end.
$PY -m restore train colorizer --data data/clipart/train --out "$RUN" --preset default \
    --crop 128 --batch-size 8 --steps "$STEPS" --val-every 500 --val-count 32 --ema 0.999 \
    --lr 2e-4 --amp --threads 2 --seed 0 --attention 0 --self-ref 0
$PY -m restore train colorizer --data data/clipart/train --out "$RUN" --preset default \
    --crop 128 --batch-size 8 --steps "$MORE" --val-every 500 --val-count 32 --ema 0.999 \
    --lr 2e-4 --amp --threads 2 --seed 0 --attention 0 --self-ref 0 --resume
$PY scripts/eval_colorizer.py --weights "$RUN/generator.safetensors" --data data/clipart/test \
    --masks data/clipart/test_masks --hints 8 --panels "$RUN/eval_panels.png" --json "$RUN/eval.json"
$PY scripts/export_model.py "$RUN/generator.safetensors" colorizer --licence Apache-2.0
