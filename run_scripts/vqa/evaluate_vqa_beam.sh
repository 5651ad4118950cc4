#!/usr/bin/env bash
# VQA inference with beam search over the answer trie (EMA weights); writes $RESULT_PATH/<split>_predict.json.
# Same flags as the original run_scripts/vqa/evaluate_vqa_beam.sh.
# Usage (from the repo root or run_scripts/vqa): bash evaluate_vqa_beam.sh val|test [extra evaluate.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-8082}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

SPLIT="${1:-${SPLIT:-val}}"  # val or test
(( $# == 0 )) || shift
DATA_DIR="${DATA_DIR:-$DATASET_ROOT/vqa_data}"
DATA="${DATA:-$DATA_DIR/vqa_${SPLIT}.tsv}"
ANSWER_SET="${ANSWER_SET:-1}"  # 0: no answer trie, free-text answers (evaluate_vqa_unconstrained.sh)
ANS2LABEL_FILE="${ANS2LABEL_FILE:-$DATA_DIR/trainval_ans2label.pkl}"
CHECKPOINT="${CHECKPOINT:-$CHECKPOINT_ROOT/vqa_large_best.pt}"
RUN="${RUN:-beam}"  # names the results folder and the log
RESULT_PATH="${RESULT_PATH:-$RESULTS_ROOT/vqa_${SPLIT}_${RUN}}"
LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/logs}"
SELECTED_COLS="${SELECTED_COLS:-0,5,2,3,4}"
BATCH_SIZE="${BATCH_SIZE:-16}"
VALID_BATCH_SIZE="${VALID_BATCH_SIZE:-}"  # the base script also overrides valid_batch_size (20)

require_data "$DATA"
require_file "$CHECKPOINT" "checkpoint to evaluate" "download it (see the README's checkpoints section) or set CHECKPOINT=path/to.pt"

overrides=(data="$DATA" bpe_dir="$BPE_DIR" selected_cols="$SELECTED_COLS")
if [[ "$ANSWER_SET" != 0 ]]; then
    require_file "$ANS2LABEL_FILE" "answer set (ans2label_file)"
    overrides+=(ans2label_file="$ANS2LABEL_FILE")
fi
[[ -z "$VALID_BATCH_SIZE" ]] || overrides+=(valid_batch_size="$VALID_BATCH_SIZE")
ofa_evaluate "$LOG_DIR/evaluate_vqa_${SPLIT}_${RUN}.log" \
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
    --model-overrides="$(model_overrides "${overrides[@]}")" \
    "$@"
