#!/usr/bin/env bash
# Evaluate summarization on the Gigaword test set (beam 6, length penalty 0.7); writes $RESULT_PATH/test_predict.json.
# Same flags as the original run_scripts/gigaword/evaluate_gigaword.sh.
# Usage (from the repo root or run_scripts/gigaword): bash evaluate_gigaword.sh [extra evaluate.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-2081}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

DATA_DIR="${DATA_DIR:-$DATASET_ROOT/gigaword_data}"
DATA="${DATA:-$DATA_DIR/gigaword_test.tsv}"
CHECKPOINT="${CHECKPOINT:-$CHECKPOINT_ROOT/gigaword_large_best.pt}"
RESULT_PATH="${RESULT_PATH:-$RESULTS_ROOT/gigaword}"
LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/logs}"
SELECTED_COLS="${SELECTED_COLS:-0,1}"
SPLIT="${SPLIT:-test}"
BATCH_SIZE="${BATCH_SIZE:-32}"

require_data "$DATA"
require_file "$CHECKPOINT" "checkpoint to evaluate" "download it (see the README's checkpoints section) or set CHECKPOINT=path/to.pt"

ofa_evaluate "$LOG_DIR/evaluate_gigaword_${SPLIT}.log" \
    "$DATA" \
    --path="$CHECKPOINT" \
    --user-dir="$USER_DIR" \
    --task=gigaword \
    --batch-size="$BATCH_SIZE" \
    --log-format=simple --log-interval=10 \
    --seed=7 \
    --gen-subset="$SPLIT" \
    --results-path="$RESULT_PATH" \
    --beam=6 \
    --lenpen=0.7 \
    --max-len-b=32 \
    --no-repeat-ngram-size=3 \
    $(cuda_only --fp16) \
    --num-workers=0 \
    --model-overrides="$(model_overrides data="$DATA" bpe_dir="$BPE_DIR" selected_cols="$SELECTED_COLS")" \
    "$@"

# ROUGE-1/2/L like the original's eval_rouge.py (evaluate.py also writes them to ${SPLIT}_metrics.json)
if [[ -z "${OFA_DRY_RUN:-}" ]]; then
    python "$SCRIPT_DIR/eval_rouge.py" "$RESULT_PATH/${SPLIT}_predict.json"
fi
