#!/usr/bin/env bash
# Evaluate visual entailment accuracy on SNLI-VE dev or test; writes $RESULT_PATH/<split>_predict.json.
# Same flags as the original run_scripts/snli_ve/evaluate_snli_ve.sh.
# Usage (from the repo root or run_scripts/snli_ve): bash evaluate_snli_ve.sh dev|test [extra evaluate.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-7081}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

SPLIT="${1:-${SPLIT:-dev}}"  # dev or test
(( $# == 0 )) || shift
DATA_DIR="${DATA_DIR:-$DATASET_ROOT/snli_ve_data}"
DATA="${DATA:-$DATA_DIR/snli_ve_${SPLIT}.tsv}"
CHECKPOINT="${CHECKPOINT:-$CHECKPOINT_ROOT/snli_ve_large_best.pt}"
RESULT_PATH="${RESULT_PATH:-$RESULTS_ROOT/snli_ve}"
LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/logs}"
SELECTED_COLS="${SELECTED_COLS:-0,2,3,4,5}"
BATCH_SIZE="${BATCH_SIZE:-8}"

require_data "$DATA"
require_file "$CHECKPOINT" "checkpoint to evaluate" "download it (see the README's checkpoints section) or set CHECKPOINT=path/to.pt"

ofa_evaluate "$LOG_DIR/evaluate_snli_ve_${SPLIT}.log" \
    "$DATA" \
    --path="$CHECKPOINT" \
    --user-dir="$USER_DIR" \
    --task=snli_ve \
    --batch-size="$BATCH_SIZE" \
    --log-format=simple --log-interval=10 \
    --seed=7 \
    --gen-subset="$SPLIT" \
    --results-path="$RESULT_PATH" \
    $(cuda_only --fp16) \
    --num-workers=0 \
    --model-overrides="$(model_overrides data="$DATA" bpe_dir="$BPE_DIR" selected_cols="$SELECTED_COLS")" \
    "$@"
