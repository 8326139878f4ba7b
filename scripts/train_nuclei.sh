#!/usr/bin/env bash
# Reproduce the bundled `nuclei` model: fetch the data, train, score, export.
#   bash scripts/train_nuclei.sh [RUN_DIR]
# Takes about an hour on 2 CPU cores (see weights/nuclei.md for the measured time). Trains on
# data/nuclei/train alone; mnfinder-train is scored as one more unseen set (see the card).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/nuclei}
PY=${PY:-.venv/bin/python}

$PY scripts/fetch_nuclei.py --out data/nuclei
$PY -m restore train segmenter --data data/nuclei/train --val data/nuclei/val --out "$RUN" \
    --model plain --preset default --crop 128 --batch-size 8 --steps 1500 --diameter 24 \
    --val-every 100 --augment rotate=180 --augment gamma=0.6,1.6 --threads 2 --seed 0
$PY scripts/eval_nuclei.py --weights "$RUN/model.safetensors" \
    --data data/nuclei/val --data data/nuclei/unseen --data data/nuclei/unseen-spe \
    --data data/nuclei/unseen-bbbc007 --data data/nuclei/mnfinder-train --json "$RUN/eval.json"
$PY scripts/export_model.py "$RUN/model.safetensors" nuclei
