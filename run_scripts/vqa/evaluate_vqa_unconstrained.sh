#!/usr/bin/env bash
# Beam-search VQA inference (EMA weights) for a checkpoint finetuned with --unconstrained-training
# (UNCONSTRAINED_TRAINING=1 VAL_INFERENCE_TYPE=beamsearch bash train_vqa_distributed.sh): no answer set, the answer
# is free text. Same flags as the original run_scripts/vqa/evaluate_vqa_unconstrained.sh, which takes the checkpoint
# as its second argument. Writes $RESULT_PATH/<split>_predict.json.
# Usage (from the repo root or run_scripts/vqa): bash evaluate_vqa_unconstrained.sh val|test CHECKPOINT [extra evaluate.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-8082}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

SPLIT="${1:-${SPLIT:-val}}"  # val or test
(( $# == 0 )) || shift
if (( $# > 0 )) && [[ "$1" != -* ]]; then
    CHECKPOINT="$1"
    shift
fi
CHECKPOINT="${CHECKPOINT:-}"
DATA_DIR="${DATA_DIR:-$DATASET_ROOT/vqa_data}"
DATA="${DATA:-$DATA_DIR/vqa_${SPLIT}.tsv}"
RESULT_PATH="${RESULT_PATH:-$RESULTS_ROOT/vqa_${SPLIT}_unconstrained}"
LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/logs}"
SELECTED_COLS="${SELECTED_COLS:-0,5,2,3,4}"
BATCH_SIZE="${BATCH_SIZE:-16}"

[[ -n "$CHECKPOINT" ]] || ofa_die "give the unconstrainedly finetuned checkpoint:" \
    "bash evaluate_vqa_unconstrained.sh val|test path/to/checkpoint.pt (or set CHECKPOINT)"
require_data "$DATA"
require_file "$CHECKPOINT" "checkpoint to evaluate"

ofa_evaluate "$LOG_DIR/evaluate_vqa_${SPLIT}_unconstrained.log" \
    "$DATA" \
    --path="$CHECKPOINT" \
    --user-dir="$USER_DIR" \
    --task=vqa_gen \
    --batch-size="$BATCH_SIZE" \
    --log-format=simple --log-interval=10 \
    --seed=7 \
    --gen-subset="$SPLIT" \
    --results-path="$RESULT_PATH" \
    $(cuda_only --fp16) \
    --ema-eval \
    --beam-search-vqa-eval \
    --beam=5 \
    --unnormalized \
    --temperature=1.0 \
    --num-workers=0 \
    --model-overrides="$(model_overrides data="$DATA" bpe_dir="$BPE_DIR" selected_cols="$SELECTED_COLS")" \
    "$@"
