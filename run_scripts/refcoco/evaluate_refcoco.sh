#!/usr/bin/env bash
# Evaluate visual grounding on RefCOCO (val, testA, testB), RefCOCO+ (val, testA, testB) and RefCOCOg (val, test),
# each with its own finetuned checkpoint; same flags as the original run_scripts/refcoco/evaluate_refcoco.sh.
# EVAL_SETS picks dataset:split pairs, e.g. EVAL_SETS="refcoco:val refcocog:test". Writes
# $RESULTS_ROOT/<dataset>/<dataset>_<split>_predict.json.
# Usage (from the repo root or run_scripts/refcoco): bash evaluate_refcoco.sh [extra evaluate.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-6091}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

EVAL_SETS="${EVAL_SETS:-refcoco:val refcoco:testA refcoco:testB refcocoplus:val refcocoplus:testA refcocoplus:testB refcocog:val refcocog:test}"
MODEL_SIZE="${MODEL_SIZE:-large}"  # checkpoints are <dataset>_<size>_best.pt
LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/logs}"
SELECTED_COLS="${SELECTED_COLS:-0,4,2,3}"
BATCH_SIZE="${BATCH_SIZE:-16}"

for eval_set in $EVAL_SETS; do
  dataset="${eval_set%%:*}"
  split="${dataset}_${eval_set#*:}"
  data="$DATASET_ROOT/${dataset}_data/${split}.tsv"
  checkpoint="$CHECKPOINT_ROOT/${dataset}_${MODEL_SIZE}_best.pt"
  result_path="$RESULTS_ROOT/$dataset"
  require_data "$data"
  require_file "$checkpoint" "checkpoint to evaluate" "download it (see the README's checkpoints section) or set CHECKPOINT_ROOT"
  ofa_evaluate "$LOG_DIR/evaluate_${split}.log" \
      "$data" \
      --path="$checkpoint" \
      --user-dir="$USER_DIR" \
      --task=refcoco \
      --batch-size="$BATCH_SIZE" \
      --log-format=simple --log-interval=10 \
      --seed=7 \
      --gen-subset="$split" \
      --results-path="$result_path" \
      --beam=5 \
      --min-len=4 \
      --max-len-a=0 \
      --max-len-b=4 \
      --no-repeat-ngram-size=3 \
      $(cuda_only --fp16) \
      --num-workers=0 \
      --model-overrides="$(model_overrides data="$data" bpe_dir="$BPE_DIR" selected_cols="$SELECTED_COLS")" \
      "$@"
done
