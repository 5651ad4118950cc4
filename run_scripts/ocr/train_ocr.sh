#!/usr/bin/env bash
# OFA-OCR: finetune OFA-CN on Chinese text-line images (the original ships no training script; these values
# follow its captioning finetuning: label-smoothed CE, polynomial decay with warmup ratio, 480 px, beam 5 at
# validation, best checkpoint by exact-match accuracy). IS_DOCUMENT=1 trains on document images.
# Usage (from the repo root or run_scripts/ocr): bash train_ocr.sh [extra train.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-1061}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

BPE_DIR="$OFA_ROOT/utils/BERT_CN_dict"
LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/logs}"
SAVE_DIR="${SAVE_DIR:-$SCRIPT_DIR/checkpoints}"
DATA_DIR="${DATA_DIR:-$DATASET_ROOT/caption_data}"
DATA="${DATA:-$DATA_DIR/ocr_scene_train.tsv,$DATA_DIR/ocr_scene_val.tsv}"
RESTORE_FILE="${RESTORE_FILE-$CHECKPOINT_ROOT/ofa_cn_large.pt}"
SELECTED_COLS="${SELECTED_COLS:-0,1,2}"

ARCH="${ARCH:-ofa_large}"
CRITERION="${CRITERION:-adjust_label_smoothed_cross_entropy}"
LABEL_SMOOTHING="${LABEL_SMOOTHING:-0.1}"
BATCH_SIZE="${BATCH_SIZE:-8}"
UPDATE_FREQ="${UPDATE_FREQ:-4}"
RESNET_DROP_PATH_RATE="${RESNET_DROP_PATH_RATE:-0.0}"
ENCODER_DROP_PATH_RATE="${ENCODER_DROP_PATH_RATE:-0.1}"
DECODER_DROP_PATH_RATE="${DECODER_DROP_PATH_RATE:-0.1}"
DROPOUT="${DROPOUT:-0.1}"
ATTENTION_DROPOUT="${ATTENTION_DROPOUT:-0.0}"
MAX_SRC_LENGTH="${MAX_SRC_LENGTH:-80}"
MAX_TGT_LENGTH="${MAX_TGT_LENGTH:-30}"
PATCH_IMAGE_SIZE="${PATCH_IMAGE_SIZE:-480}"
default EVAL_ARGS '{"beam":5,"max_len_b":64,"no_repeat_ngram_size":0}'

require_data "$DATA"
require_restore_file "$RESTORE_FILE"

for max_epoch in ${MAX_EPOCH:-5}; do
  for warmup_ratio in ${WARMUP_RATIO:-0.06}; do
    for lr in ${LR:-5e-5}; do
      run="${max_epoch}_${warmup_ratio}_${lr}"
      save_path="$SAVE_DIR/$run"
      mkdir -p "$save_path"
      ofa_finetune_flags "$save_path" ocr
      ofa_train "$LOG_DIR/$run.log" \
          "$DATA" \
          "${OFA_FINETUNE_FLAGS[@]}" --bpe=bert --lr="$lr" \
          --max-epoch="$max_epoch" --warmup-ratio="$warmup_ratio" \
          --log-format=simple --log-interval=10 \
          --fixed-validation-seed=7 \
          --no-epoch-checkpoints --keep-best-checkpoints=1 \
          --save-interval=1 --validate-interval=1 \
          --eval-args="$EVAL_ARGS" \
          --best-checkpoint-metric=acc --maximize-best-checkpoint-metric \
          --max-src-length="$MAX_SRC_LENGTH" \
          --max-tgt-length="$MAX_TGT_LENGTH" \
          --find-unused-parameters \
          --patch-image-size="$PATCH_IMAGE_SIZE" \
          ${IS_DOCUMENT:+--is-document} \
          $(cuda_only --fp16 --fp16-scale-window=512) \
          --num-workers=0 \
          "$@"
    done
  done
done
