#!/usr/bin/env bash
# Zero-shot visual entailment: the pretrained OFA-Base checkpoint on SNLI-VE dev, the task built from the command
# line (--zero-shot, decoder prompt prev_output, 384 px); same flags as the original
# run_scripts/snli_ve/evaluate_snli_ve_zeroshot.sh. Writes $RESULT_PATH/snli_ve_zeroshot_predict.json.
# Usage (from the repo root or run_scripts/snli_ve): bash evaluate_snli_ve_zeroshot.sh [extra evaluate.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-6081}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

DATA_DIR="${DATA_DIR:-$DATASET_ROOT/snli_ve_data}"
DATA="${DATA:-$DATA_DIR/snli_ve_dev.tsv}"
CHECKPOINT="${CHECKPOINT:-$CHECKPOINT_ROOT/ofa_base.pt}"
RESULT_PATH="${RESULT_PATH:-$RESULTS_ROOT/snli_ve}"
LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/logs}"
SPLIT="${SPLIT:-snli_ve_zeroshot}"  # only names the result files
SELECTED_COLS="${SELECTED_COLS:-0,2,3,4,5}"
PATCH_IMAGE_SIZE="${PATCH_IMAGE_SIZE:-384}"
MAX_SRC_LENGTH="${MAX_SRC_LENGTH:-80}"
BATCH_SIZE="${BATCH_SIZE:-16}"

require_data "$DATA"
require_file "$CHECKPOINT" "checkpoint to evaluate" "download it (see the README's checkpoints section) or set CHECKPOINT=path/to.pt"

ofa_evaluate "$LOG_DIR/evaluate_${SPLIT}.log" \
    "$DATA" \
    --path="$CHECKPOINT" \
    --user-dir="$USER_DIR" \
    --bpe-dir="$BPE_DIR" \
    --selected-cols="$SELECTED_COLS" \
    --task=snli_ve \
    --patch-image-size="$PATCH_IMAGE_SIZE" \
    --max-src-length="$MAX_SRC_LENGTH" \
    --batch-size="$BATCH_SIZE" \
    --log-format=simple --log-interval=10 \
    --seed=7 \
    --gen-subset="$SPLIT" \
    --results-path="$RESULT_PATH" \
    --zero-shot \
    --prompt-type=prev_output \
    $(cuda_only --fp16) \
    --num-workers=0 \
    "$@"
