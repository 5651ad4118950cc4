#!/usr/bin/env bash
# Evaluate ImageNet-1K top-1 accuracy on the full val split; writes $RESULT_PATH/val_predict.json.
# Same flags as the original run_scripts/image_classify/evaluate_imagenet.sh.
# Usage (from the repo root or run_scripts/image_classify): bash evaluate_imagenet.sh [extra evaluate.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-8087}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

DATA_DIR="${DATA_DIR:-$DATASET_ROOT/imagenet_1k_data}"
DATA="${DATA:-$DATA_DIR/imagenet_1k_val.tsv}"
ANS2LABEL_FILE="${ANS2LABEL_FILE:-$DATA_DIR/class2label_new.pkl}"
CHECKPOINT="${CHECKPOINT:-$CHECKPOINT_ROOT/imagenet_1k_large_best.pt}"
RESULT_PATH="${RESULT_PATH:-$RESULTS_ROOT/imagenet_1k_val}"
LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/logs}"
SELECTED_COLS="${SELECTED_COLS:-0,2}"
BATCH_SIZE="${BATCH_SIZE:-8}"

require_data "$DATA"
require_file "$ANS2LABEL_FILE" "class set (ans2label_file)"
require_file "$CHECKPOINT" "checkpoint to evaluate" "download it (see the README's checkpoints section) or set CHECKPOINT=path/to.pt"

ofa_evaluate "$LOG_DIR/evaluate_imagenet_val.log" \
    "$DATA" \
    --path="$CHECKPOINT" \
    --user-dir="$USER_DIR" \
    --task=image_classify \
    --batch-size="$BATCH_SIZE" \
    --log-format=simple --log-interval=10 \
    --seed=7 \
    --gen-subset=val \
    --results-path="$RESULT_PATH" \
    $(cuda_only --fp16) \
    --num-workers=0 \
    --model-overrides="$(model_overrides data="$DATA" bpe_dir="$BPE_DIR" selected_cols="$SELECTED_COLS" ans2label_file="$ANS2LABEL_FILE")" \
    "$@"
