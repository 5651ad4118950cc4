#!/usr/bin/env bash
# VQA inference scoring every candidate answer (EMA weights): the paper's numbers, but much slower than beam search.
# Same flags as the original run_scripts/vqa/evaluate_vqa_allcand.sh; for several nodes set NNODES, NODE_RANK,
# MASTER_ADDR (or use evaluate_vqa_allcand_distributed.sh). Writes $RESULT_PATH/<split>_predict.json.
# Usage (from the repo root or run_scripts/vqa): bash evaluate_vqa_allcand.sh val|test [extra evaluate.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-8081}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

SPLIT="${1:-${SPLIT:-val}}"  # val or test
(( $# == 0 )) || shift
DATA_DIR="${DATA_DIR:-$DATASET_ROOT/vqa_data}"
DATA="${DATA:-$DATA_DIR/vqa_${SPLIT}.tsv}"
ANS2LABEL_FILE="${ANS2LABEL_FILE:-$DATA_DIR/trainval_ans2label.pkl}"
CHECKPOINT="${CHECKPOINT:-$CHECKPOINT_ROOT/vqa_large_best.pt}"
RESULT_PATH="${RESULT_PATH:-$RESULTS_ROOT/vqa_${SPLIT}_allcand}"
LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/logs}"
SELECTED_COLS="${SELECTED_COLS:-0,5,2,3,4}"
BATCH_SIZE="${BATCH_SIZE:-8}"
VALID_BATCH_SIZE="${VALID_BATCH_SIZE:-}"  # the _distributed script passes --valid-batch-size=20

require_data "$DATA"
require_file "$ANS2LABEL_FILE" "answer set (ans2label_file)"
require_file "$CHECKPOINT" "checkpoint to evaluate" "download it (see the README's checkpoints section) or set CHECKPOINT=path/to.pt"

ofa_evaluate "$LOG_DIR/evaluate_vqa_${SPLIT}_allcand.log" \
    "$DATA" \
    --path="$CHECKPOINT" \
    --user-dir="$USER_DIR" \
    --task=vqa_gen \
    --batch-size="$BATCH_SIZE" \
    ${VALID_BATCH_SIZE:+--valid-batch-size="$VALID_BATCH_SIZE"} \
    --log-format=simple --log-interval=10 \
    --seed=7 \
    --gen-subset="$SPLIT" \
    --results-path="$RESULT_PATH" \
    $(cuda_only --fp16) \
    --ema-eval \
    --num-workers=0 \
    --model-overrides="$(model_overrides data="$DATA" bpe_dir="$BPE_DIR" selected_cols="$SELECTED_COLS" ans2label_file="$ANS2LABEL_FILE")" \
    "$@"
