#!/usr/bin/env bash
# Zero-shot visual grounding: the pretrained OFA-Large checkpoint on RefCOCO val, the task built from the command
# line (--zero-shot); same flags as the original run_scripts/refcoco/evaluate_refcoco_zeroshot.sh. Other splits:
# SPLIT=refcocog_test DATA=dataset/refcocog_data/refcocog_test.tsv. Writes $RESULT_PATH/<split>_predict.json.
# Usage (from the repo root or run_scripts/refcoco): bash evaluate_refcoco_zeroshot.sh [extra evaluate.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-6081}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

SPLIT="${SPLIT:-refcoco_val}"
DATA="${DATA:-$DATASET_ROOT/refcoco_data/${SPLIT}.tsv}"
CHECKPOINT="${CHECKPOINT:-$CHECKPOINT_ROOT/ofa_large.pt}"
RESULT_PATH="${RESULT_PATH:-$RESULTS_ROOT/refcoco}"
LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/logs}"
SELECTED_COLS="${SELECTED_COLS:-0,4,2,3}"
PATCH_IMAGE_SIZE="${PATCH_IMAGE_SIZE:-480}"
BATCH_SIZE="${BATCH_SIZE:-16}"

require_data "$DATA"
require_file "$CHECKPOINT" "checkpoint to evaluate" "download it (see the README's checkpoints section) or set CHECKPOINT=path/to.pt"

ofa_evaluate "$LOG_DIR/evaluate_${SPLIT}_zeroshot.log" \
    "$DATA" \
    --path="$CHECKPOINT" \
    --user-dir="$USER_DIR" \
    --bpe-dir="$BPE_DIR" \
    --selected-cols="$SELECTED_COLS" \
    --task=refcoco \
    --patch-image-size="$PATCH_IMAGE_SIZE" \
    --batch-size="$BATCH_SIZE" \
    --log-format=simple --log-interval=10 \
    --seed=7 \
    --gen-subset="$SPLIT" \
    --results-path="$RESULT_PATH" \
    --beam=5 \
    --min-len=4 \
    --max-len-a=0 \
    --max-len-b=4 \
    --no-repeat-ngram-size=3 \
    --zero-shot \
    $(cuda_only --fp16) \
    --num-workers=0 \
    "$@"
