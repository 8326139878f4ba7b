#!/usr/bin/env bash
# Reproduce the bundled `restorer` model: fetch the photos, train, score, export.
#   bash scripts/train_restorer.sh [RUN_DIR]
# About 35-50 min on 2 CPU cores (see weights/restorer.md for the measured time).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/restorer}
PY=${PY:-.venv/bin/python}

$PY scripts/fetch_photos.py --out data/photos
$PY -m restore train pix2pix --data data/photos/train --degrade mixed --out "$RUN" --preset restorer \
    --crop 128 --batch-size 8 --steps 8000 --scale 0.5 1.0 --val-every 500 --val-size 256 \
    --lr 4e-4 --gan-weight 0.2 --threads 2 --seed 0
$PY scripts/eval_restorer.py --weights "$RUN/generator.safetensors" --data data/photos/test \
    --preset mild --preset gfpgan --json "$RUN/eval.json"
$PY scripts/export_model.py "$RUN/generator.safetensors" restorer
