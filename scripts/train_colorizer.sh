#!/usr/bin/env bash
# Reproduce the bundled `colorizer` model: fetch the clip art, train, score, export.
#   bash scripts/train_colorizer.sh [RUN_DIR]
# Three stages (weights/colorizer.md): the earlier model without attention (STEPS=4000, resumed to
# MORE=6000; 112 min on an AVX2-only CPU), then the attention model from it with augmented-self
# references: 3,000 steps (20 min on a CPU with AVX512-BF16/AMX) and 9,000 more (91 min there),
# then the sketch-keyed correspondence (--match-level 1): 4,000 steps, fp32 (75 min on a 2-core
# AMD EPYC with AVX512-BF16 but no AMX, where bf16 is slower than fp32).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/colorizer}
PY=${PY:-.venv/bin/python}
STEPS=${STEPS:-4000}
MORE=${MORE:-6000}  # the resume restarts the cosine at its value for step STEPS of MORE
COMMON=(--data data/clipart/train --preset default --crop 128 --batch-size 8 --val-count 32 --ema 0.999
        --lr 2e-4 --amp --threads 2)

$PY scripts/fetch_clipart.py --out data/clipart
$PY scripts/fetch_stamps.py --out data/stamps --clipart data/clipart  # held-out art of another collection
# Validation (model selection) holds out every 10th training image; data/clipart/test and
# data/stamps/test are only scored at the end.
# Stage 1: the model bundled until 2026-12-04 (no attention, no augmented-self references).
$PY -m restore train colorizer "${COMMON[@]}" --out "$RUN" --steps "$STEPS" --val-every 500 --seed 0 \
    --attention 0 --self-ref 0
$PY -m restore train colorizer "${COMMON[@]}" --out "$RUN" --steps "$MORE" --val-every 500 --seed 0 \
    --attention 0 --self-ref 0 --resume
# Stages 2 and 3: 2 attention levels (the preset's), augmented-self references, 10% unpaired.
$PY -m restore train colorizer "${COMMON[@]}" --out "$RUN-scft" --steps 3000 --val-every 500 --seed 0 \
    --init "$RUN/generator.safetensors" --self-ref 0.8 --unpaired 0.1
$PY -m restore train colorizer "${COMMON[@]}" --out "$RUN-scft2" --steps 9000 --val-every 1000 --seed 1 \
    --init "$RUN-scft/generator.safetensors" --self-ref 0.8 --unpaired 0.1
# Stage 4 (bundled since 2026-12-06): the reference's own XDoG sketch keys the correspondence at
# decoder level 1; the last step was kept (clip-art dev set: 18.99 dB away from lines against
# 18.74 for the validation-best step 1,500).
FP32=(); for a in "${COMMON[@]}"; do [[ $a == --amp ]] || FP32+=("$a"); done
$PY -m restore train colorizer "${FP32[@]}" --out "$RUN-match" --steps 4000 --val-every 500 --seed 2 \
    --init "$RUN-scft2/generator.safetensors" --self-ref 0.8 --unpaired 0.1 --match-level 1
for set in clipart stamps; do
    $PY scripts/eval_colorizer.py --weights "$RUN-match/last.safetensors" --data data/$set/test \
        --masks data/$set/test_masks --hints 8 --panels "$RUN-match/eval_$set.png" --json "$RUN-match/eval_$set.json"
done
$PY scripts/export_model.py "$RUN-match/last.safetensors" colorizer --licence Apache-2.0
