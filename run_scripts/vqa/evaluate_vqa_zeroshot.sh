#!/usr/bin/env bash
# Zero-shot open-ended VQA: the pretrained OFA-Large checkpoint, the task built from the command line (--zero-shot),
# beam 20 without an answer set or question prefix; same flags as the original
# run_scripts/vqa/evaluate_vqa_zeroshot.sh. Writes $RESULT_PATH/<split>_predict.json.
# Usage (from the repo root or run_scripts/vqa): bash evaluate_vqa_zeroshot.sh val|test [extra evaluate.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-8082}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

SPLIT="${1:-${SPLIT:-val}}"  # val or test
(( $# == 0 )) || shift
DATA_DIR="${DATA_DIR:-$DATASET_ROOT/vqa_data}"
DATA="${DATA:-$DATA_DIR/vqa_${SPLIT}.tsv}"
CHECKPOINT="${CHECKPOINT:-$CHECKPOINT_ROOT/ofa_large.pt}"
RESULT_PATH="${RESULT_PATH:-$RESULTS_ROOT/vqa_${SPLIT}_zeroshot}"
LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/logs}"
SELECTED_COLS="${SELECTED_COLS:-0,5,2,3,4}"
PATCH_IMAGE_SIZE="${PATCH_IMAGE_SIZE:-480}"
BATCH_SIZE="${BATCH_SIZE:-8}"

require_data "$DATA"
require_file "$CHECKPOINT" "checkpoint to evaluate" "download it (see the README's checkpoints section) or set CHECKPOINT=path/to.pt"

ofa_evaluate "$LOG_DIR/evaluate_vqa_${SPLIT}_zeroshot.log" \
    "$DATA" \
    --path="$CHECKPOINT" \
    --user-dir="$USER_DIR" \
    --task=vqa_gen \
    --selected-cols="$SELECTED_COLS" \
    --bpe-dir="$BPE_DIR" \
    --patch-image-size="$PATCH_IMAGE_SIZE" \
    --prompt-type=none \
    --batch-size="$BATCH_SIZE" \
    --log-format=simple --log-interval=10 \
    --seed=7 \
    --gen-subset="$SPLIT" \
    --results-path="$RESULT_PATH" \
    $(cuda_only --fp16) \
    --zero-shot \
    --beam=20 \
    --unnormalized \
    --temperature=1.0 \
    --num-workers=0 \
    "$@"
