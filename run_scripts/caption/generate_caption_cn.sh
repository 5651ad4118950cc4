#!/usr/bin/env bash
# Chinese captions (MUGE) with an OFA-CN captioning checkpoint, beam 8; the original ships no scorer for them.
# Same flags as the original run_scripts/caption/generate_caption_cn.sh. Writes $RESULT_PATH/test_predict.json.
# Usage (from the repo root or run_scripts/caption): bash generate_caption_cn.sh [extra evaluate.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-1081}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

BPE_DIR="$OFA_ROOT/utils/BERT_CN_dict"
DATA_DIR="${DATA_DIR:-$DATASET_ROOT/muge_caption_data}"
DATA="${DATA:-$DATA_DIR/caption_test.tsv}"
CHECKPOINT="${CHECKPOINT:-$CHECKPOINT_ROOT/caption_cn_large.pt}"
RESULT_PATH="${RESULT_PATH:-$RESULTS_ROOT/caption}"
LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/logs}"
SELECTED_COLS="${SELECTED_COLS:-1,4,2}"
SPLIT="${SPLIT:-test}"
BATCH_SIZE="${BATCH_SIZE:-16}"

require_data "$DATA"
require_file "$CHECKPOINT" "checkpoint to evaluate" "convert ModelScope's MUGE caption model (README: OFA-CN and OFA-OCR) or set CHECKPOINT=path/to.pt"

ofa_evaluate "$LOG_DIR/generate_caption_cn_${SPLIT}.log" \
    "$DATA" \
    --path="$CHECKPOINT" \
    --user-dir="$USER_DIR" \
    --task=caption \
    --batch-size="$BATCH_SIZE" \
    --log-format=simple --log-interval=10 \
    --seed=7 \
    --gen-subset="$SPLIT" \
    --results-path="$RESULT_PATH" \
    --beam=8 \
    --max-len-b=128 \
    --no-repeat-ngram-size=3 \
    --num-workers=0 \
    --model-overrides="$(model_overrides data="$DATA" bpe_dir="$BPE_DIR" eval_cider=False selected_cols="$SELECTED_COLS")" \
    "$@"
