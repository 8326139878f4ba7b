#!/usr/bin/env bash
# Reproduce the bundled `restorer` model: fetch the photos, train, score, export.
#   bash scripts/train_restorer.sh [RUN_DIR]
# About 50 min on 2 idle CPU cores with AVX512-BF16 (0.24 s a step; see weights/restorer.md).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/restorer}
PY=${PY:-.venv/bin/python}

$PY scripts/fetch_photos.py --out data/photos
# L1 only (no discriminator: --gan-weight 0) on the mild + heavy mixture (60/40), 128 px crops.
$PY -m restore train pix2pix --data data/photos/train --degrade mixed --out "$RUN" --preset restorer \
    --crop 128 --batch-size 16 --steps 12000 --lr 4e-4 --beta1 0.9 --gan-weight 0 --l1-weight 1 \
    --amp --threads 2 --seed 0 --val-every 1000
# The end of the schedule is exported (last.safetensors): the 7-crop validation set peaked
# at step 4000 while the held-out photos kept improving to the end (see the model card).
$PY scripts/eval_restorer.py --weights "$RUN/last.safetensors" --data data/photos/test \
    --preset mild --preset gfpgan --preset none --json "$RUN/eval.json"
$PY scripts/export_model.py "$RUN/last.safetensors" restorer
