#!/usr/bin/env bash
# Evaluate a finetuned captioning checkpoint on the COCO Karpathy test split (beam 5), then score it.
# Same flags as the original run_scripts/caption/evaluate_caption.sh. Writes $RESULT_PATH/test_predict.json.
# Usage (from the repo root or run_scripts/caption): bash evaluate_caption.sh [extra evaluate.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-1091}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

DATA_DIR="${DATA_DIR:-$DATASET_ROOT/caption_data}"
DATA="${DATA:-$DATA_DIR/caption_test.tsv}"
CHECKPOINT="${CHECKPOINT:-$CHECKPOINT_ROOT/caption_large_best_clean.pt}"
RESULT_PATH="${RESULT_PATH:-$RESULTS_ROOT/caption}"
LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/logs}"
SELECTED_COLS="${SELECTED_COLS:-1,4,2}"
SPLIT="${SPLIT:-test}"
BATCH_SIZE="${BATCH_SIZE:-16}"
BEAM="${BEAM:-5}"
TEMPERATURE="${TEMPERATURE:-}"  # unset: not passed (the huge script sets 0.98 for both)
LENPEN="${LENPEN:-}"
COCO_REFERENCES="${COCO_REFERENCES:-$DATA_DIR/${SPLIT}_caption_coco_format.json}"

require_data "$DATA"
require_file "$CHECKPOINT" "checkpoint to evaluate" "download it (see the README's checkpoints section) or set CHECKPOINT=path/to.pt"

ofa_evaluate "$LOG_DIR/evaluate_caption_${SPLIT}.log" \
    "$DATA" \
    --path="$CHECKPOINT" \
    --user-dir="$USER_DIR" \
    --task=caption \
    --batch-size="$BATCH_SIZE" \
    --log-format=simple --log-interval=10 \
    --seed=7 \
    --gen-subset="$SPLIT" \
    --results-path="$RESULT_PATH" \
    --beam="$BEAM" \
    --max-len-b=16 \
    ${TEMPERATURE:+--temperature="$TEMPERATURE"} \
    ${LENPEN:+--lenpen="$LENPEN"} \
    --no-repeat-ngram-size=3 \
    $(cuda_only --fp16) \
    --num-workers=0 \
    --model-overrides="$(model_overrides data="$DATA" bpe_dir="$BPE_DIR" eval_cider=False selected_cols="$SELECTED_COLS")" \
    "$@"

# COCO caption metrics (BLEU, METEOR, ROUGE-L, CIDEr) with the official toolkit, like the original
if [[ -z "${OFA_DRY_RUN:-}" ]]; then
    if [[ -f "$COCO_REFERENCES" ]]; then
        python "$SCRIPT_DIR/coco_eval.py" "$RESULT_PATH/${SPLIT}_predict.json" "$COCO_REFERENCES"
    else
        echo "skipping coco_eval.py (no COCO references at $COCO_REFERENCES); metrics: $RESULT_PATH/${SPLIT}_metrics.json"
    fi
fi
