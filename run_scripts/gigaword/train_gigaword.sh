#!/usr/bin/env bash
# Abstractive summarization: finetune OFA-Large on Gigaword (text only, source noise 0.2, best by ROUGE-L).
# Same flags and hyper-parameters as the original run_scripts/gigaword/train_gigaword.sh.
# Usage (from the repo root or run_scripts/gigaword): bash train_gigaword.sh [extra train.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-2051}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/logs}"
SAVE_DIR="${SAVE_DIR:-$SCRIPT_DIR/checkpoints}"
DATA_DIR="${DATA_DIR:-$DATASET_ROOT/gigaword_data}"
DATA="${DATA:-$DATA_DIR/gigaword_train.tsv,$DATA_DIR/gigaword_dev.tsv}"
RESTORE_FILE="${RESTORE_FILE-$CHECKPOINT_ROOT/ofa_large.pt}"
SELECTED_COLS="${SELECTED_COLS:-0,1}"

ARCH="${ARCH:-ofa_large}"
CRITERION="${CRITERION:-adjust_label_smoothed_cross_entropy}"
LABEL_SMOOTHING="${LABEL_SMOOTHING:-0.1}"
WARMUP_RATIO="${WARMUP_RATIO:-0.06}"
BATCH_SIZE="${BATCH_SIZE:-64}"
UPDATE_FREQ="${UPDATE_FREQ:-2}"
RESNET_DROP_PATH_RATE="${RESNET_DROP_PATH_RATE:-0.0}"
ENCODER_DROP_PATH_RATE="${ENCODER_DROP_PATH_RATE:-0.1}"
DECODER_DROP_PATH_RATE="${DECODER_DROP_PATH_RATE:-0.1}"
DROPOUT="${DROPOUT:-0.1}"
ATTENTION_DROPOUT="${ATTENTION_DROPOUT:-0.0}"
MAX_SRC_LENGTH="${MAX_SRC_LENGTH:-512}"
MAX_TGT_LENGTH="${MAX_TGT_LENGTH:-64}"
NUM_BINS="${NUM_BINS:-1000}"
default EVAL_ARGS '{"beam":6,"lenpen":0.7,"max_len_b":32,"no_repeat_ngram_size":3}'

require_data "$DATA"
require_restore_file "$RESTORE_FILE"

for max_epoch in ${MAX_EPOCH:-6}; do
  for lr in ${LR:-1e-4}; do
    for noise_ratio in ${NOISE_RATIO:-0.2}; do
      run="${max_epoch}_${lr}_${noise_ratio}"
      save_path="$SAVE_DIR/$run"
      mkdir -p "$save_path"
      ofa_finetune_flags "$save_path" gigaword
      ofa_train "$LOG_DIR/$run.log" \
          "$DATA" \
          "${OFA_FINETUNE_FLAGS[@]}" --lr="$lr" \
          --max-epoch="$max_epoch" --warmup-ratio="$WARMUP_RATIO" \
          --log-format=simple --log-interval=10 \
          --fixed-validation-seed=7 \
          --no-epoch-checkpoints --keep-best-checkpoints=1 \
          --save-interval=1 --validate-interval=1 \
          --save-interval-updates=2500 --validate-interval-updates=2500 \
          --best-checkpoint-metric=rougeL_f1 --maximize-best-checkpoint-metric \
          --max-src-length="$MAX_SRC_LENGTH" \
          --max-tgt-length="$MAX_TGT_LENGTH" \
          --find-unused-parameters \
          --eval-rouge \
          --eval-print-samples \
          --eval-args="$EVAL_ARGS" \
          --num-bins="$NUM_BINS" \
          --noise-ratio="$noise_ratio" \
          $(cuda_only --fp16 --fp16-scale-window=512) \
          --num-workers=0 \
          "$@"
    done
  done
done
