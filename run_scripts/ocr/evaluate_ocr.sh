#!/usr/bin/env bash
# Evaluate OFA-OCR (Chinese scene-text recognition, ModelScope's ofa_cn_ocr_large) with beam 5: exact-match
# accuracy after removing spaces. Same flags as the original run_scripts/ocr/evaluate_ocr.sh, but with the BERT
# vocabulary (the original points bpe_dir at utils/BPE, which has no vocab.txt). Writes $RESULT_PATH/test_*.json.
# Usage (from the repo root or run_scripts/ocr): bash evaluate_ocr.sh [extra evaluate.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-1091}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

BPE_DIR="$OFA_ROOT/utils/BERT_CN_dict"
DATA_DIR="${DATA_DIR:-$DATASET_ROOT/caption_data}"  # the original's location of the OCR test file
DATA="${DATA:-$DATA_DIR/ocr_scene_test.tsv}"
CHECKPOINT="${CHECKPOINT:-$CHECKPOINT_ROOT/ofa_cn_ocr_large.pt}"
RESULT_PATH="${RESULT_PATH:-$RESULTS_ROOT/ocr}"
LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/logs}"
SELECTED_COLS="${SELECTED_COLS:-0,1,2}"
SPLIT="${SPLIT:-test}"
BATCH_SIZE="${BATCH_SIZE:-8}"

require_data "$DATA"
require_file "$CHECKPOINT" "checkpoint to evaluate" "convert ModelScope's OCR model (README: OFA-CN and OFA-OCR) or set CHECKPOINT=path/to.pt"

ofa_evaluate "$LOG_DIR/evaluate_ocr_${SPLIT}.log" \
    "$DATA" \
    --path="$CHECKPOINT" \
    --user-dir="$USER_DIR" \
    --task=ocr \
    --batch-size="$BATCH_SIZE" \
    --log-format=simple --log-interval=10 \
    --seed=7 \
    --gen-subset="$SPLIT" \
    --results-path="$RESULT_PATH" \
    --beam=5 \
    --max-len-b=64 \
    --no-repeat-ngram-size=0 \
    $(cuda_only --fp16) \
    --num-workers=0 \
    --model-overrides="$(model_overrides data="$DATA" bpe_dir="$BPE_DIR" selected_cols="$SELECTED_COLS" resnet_model_path=None)" \
    "$@"
