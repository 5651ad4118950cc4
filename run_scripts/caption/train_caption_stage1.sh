#!/usr/bin/env bash
# Image captioning, stage 1: finetune OFA-Large on COCO with cross-entropy (~139.5 CIDEr on val).
# Same flags and hyper-parameters as the original run_scripts/caption/train_caption_stage1.sh.
# Usage (from the repo root or run_scripts/caption): bash train_caption_stage1.sh [extra train.py flags]
# Every value below can be overridden from the environment, e.g. LR=2e-5 MAX_EPOCH=3 bash train_caption_stage1.sh
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-1051}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/stage1_logs}"
SAVE_DIR="${SAVE_DIR:-$SCRIPT_DIR/stage1_checkpoints}"
DATA_DIR="${DATA_DIR:-$DATASET_ROOT/caption_data}"
DATA="${DATA:-$DATA_DIR/caption_stage1_train.tsv,$DATA_DIR/caption_val.tsv}"
RESTORE_FILE="${RESTORE_FILE-$CHECKPOINT_ROOT/ofa_large.pt}"
SELECTED_COLS="${SELECTED_COLS:-0,4,2}"
EVAL_CIDER_CACHED="${EVAL_CIDER_CACHED:-$DATA_DIR/cider_cached_tokens/coco-valid-words.p}"

ARCH="${ARCH:-ofa_large}"
CRITERION="${CRITERION:-adjust_label_smoothed_cross_entropy}"
LABEL_SMOOTHING="${LABEL_SMOOTHING:-0.1}"
LR="${LR:-1e-5}"
BATCH_SIZE="${BATCH_SIZE:-8}"
UPDATE_FREQ="${UPDATE_FREQ:-4}"
RESNET_DROP_PATH_RATE="${RESNET_DROP_PATH_RATE:-0.0}"
ENCODER_DROP_PATH_RATE="${ENCODER_DROP_PATH_RATE:-0.1}"
DECODER_DROP_PATH_RATE="${DECODER_DROP_PATH_RATE:-0.1}"
DROPOUT="${DROPOUT:-0.1}"
ATTENTION_DROPOUT="${ATTENTION_DROPOUT:-0.0}"
MAX_SRC_LENGTH="${MAX_SRC_LENGTH:-80}"
MAX_TGT_LENGTH="${MAX_TGT_LENGTH:-20}"
NUM_BINS="${NUM_BINS:-1000}"
PATCH_IMAGE_SIZE="${PATCH_IMAGE_SIZE:-480}"
DROP_WORST_RATIO="${DROP_WORST_RATIO:-0.2}"
default EVAL_ARGS '{"beam":5,"max_len_b":16,"no_repeat_ngram_size":3}'
LOG_END="${LOG_END:-}"                  # encouraging loss only (train_caption_stage1_el*.sh)
DROP_BEST_RATIO="${DROP_BEST_RATIO:-}"  # encouraging loss only (train_caption_stage1_el_db.sh)
DROP_BEST_AFTER="${DROP_BEST_AFTER:-}"
RUN_INFIX="${RUN_INFIX:-}"    # put before drop_worst_after in the run name (the _el_db variant's "dwdb")
RUN_SUFFIX="${RUN_SUFFIX:-}"  # appended to the run name (the _el variants' "_el0.75_")

require_data "$DATA"
require_file "$EVAL_CIDER_CACHED" "CIDEr document frequencies (--eval-cider-cached-tokens)"
require_restore_file "$RESTORE_FILE"

# the original's grid (one value each); MAX_EPOCH="2 3" etc. sweeps
for max_epoch in ${MAX_EPOCH:-2}; do
  for warmup_ratio in ${WARMUP_RATIO:-0.06}; do
    for drop_worst_after in ${DROP_WORST_AFTER:-2500}; do
      run="${max_epoch}_${warmup_ratio}_${RUN_INFIX}${drop_worst_after}${RUN_SUFFIX}"
      save_path="$SAVE_DIR/$run"
      mkdir -p "$save_path"
      ofa_finetune_flags "$save_path" caption
      ofa_train "$LOG_DIR/$run.log" \
          "$DATA" \
          "${OFA_FINETUNE_FLAGS[@]}" --lr="$LR" \
          --max-epoch="$max_epoch" --warmup-ratio="$warmup_ratio" \
          --log-format=simple --log-interval=10 \
          --fixed-validation-seed=7 \
          --no-epoch-checkpoints --keep-best-checkpoints=1 \
          --save-interval=1 --validate-interval=1 \
          --save-interval-updates=500 --validate-interval-updates=500 \
          --eval-cider \
          --eval-cider-cached-tokens="$EVAL_CIDER_CACHED" \
          --eval-args="$EVAL_ARGS" \
          --best-checkpoint-metric=cider --maximize-best-checkpoint-metric \
          --max-src-length="$MAX_SRC_LENGTH" \
          --max-tgt-length="$MAX_TGT_LENGTH" \
          --find-unused-parameters \
          --freeze-encoder-embedding \
          --freeze-decoder-embedding \
          --num-bins="$NUM_BINS" \
          --patch-image-size="$PATCH_IMAGE_SIZE" \
          --drop-worst-ratio="$DROP_WORST_RATIO" \
          --drop-worst-after="$drop_worst_after" \
          ${LOG_END:+--log-end="$LOG_END"} \
          ${DROP_BEST_RATIO:+--drop-best-ratio="$DROP_BEST_RATIO"} \
          ${DROP_BEST_AFTER:+--drop-best-after="$DROP_BEST_AFTER"} \
          $(cuda_only --fp16 --fp16-scale-window=512) \
          --num-workers=0 \
          "$@"
    done
  done
done
