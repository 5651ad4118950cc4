#!/usr/bin/env bash
# Visual entailment: finetune OFA-Large on SNLI-VE (premise caption added to the prompt, prev_output prompt type).
# Same flags and hyper-parameters as the original run_scripts/snli_ve/train_snli_ve.sh.
# Usage (from the repo root or run_scripts/snli_ve): bash train_snli_ve.sh [extra train.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-7051}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/logs}"
SAVE_DIR="${SAVE_DIR:-$SCRIPT_DIR/checkpoints}"
DATA_DIR="${DATA_DIR:-$DATASET_ROOT/snli_ve_data}"
DATA="${DATA:-$DATA_DIR/snli_ve_train.tsv,$DATA_DIR/snli_ve_dev.tsv}"
RESTORE_FILE="${RESTORE_FILE-$CHECKPOINT_ROOT/ofa_large.pt}"
SELECTED_COLS="${SELECTED_COLS:-0,2,3,4,5}"

ARCH="${ARCH:-ofa_large}"
CRITERION="${CRITERION:-adjust_label_smoothed_cross_entropy}"
LABEL_SMOOTHING="${LABEL_SMOOTHING:-0.0}"
WARMUP_RATIO="${WARMUP_RATIO:-0.06}"
BATCH_SIZE="${BATCH_SIZE:-4}"
UPDATE_FREQ="${UPDATE_FREQ:-8}"
RESNET_DROP_PATH_RATE="${RESNET_DROP_PATH_RATE:-0.0}"
ENCODER_DROP_PATH_RATE="${ENCODER_DROP_PATH_RATE:-0.2}"
DECODER_DROP_PATH_RATE="${DECODER_DROP_PATH_RATE:-0.2}"
DROPOUT="${DROPOUT:-0.1}"
ATTENTION_DROPOUT="${ATTENTION_DROPOUT:-0.0}"
MAX_SRC_LENGTH="${MAX_SRC_LENGTH:-80}"
MAX_TGT_LENGTH="${MAX_TGT_LENGTH:-20}"
NUM_BINS="${NUM_BINS:-1000}"
PATCH_IMAGE_SIZE="${PATCH_IMAGE_SIZE:-480}"
PROMPT_TYPE="${PROMPT_TYPE:-prev_output}"

require_data "$DATA"
require_restore_file "$RESTORE_FILE"

for max_epoch in ${MAX_EPOCH:-6}; do
  for lr in ${LR:-2e-5}; do
    run="${max_epoch}_${lr}"
    save_path="$SAVE_DIR/$run"
    mkdir -p "$save_path"
    ofa_finetune_flags "$save_path" snli_ve
    ofa_train "$LOG_DIR/$run.log" \
        "$DATA" \
        "${OFA_FINETUNE_FLAGS[@]}" --lr="$lr" \
        --max-epoch="$max_epoch" --warmup-ratio="$WARMUP_RATIO" \
        --log-format=simple --log-interval=10 \
        --fixed-validation-seed=7 \
        --keep-best-checkpoints=1 \
        --save-interval=1 --validate-interval=1 \
        --save-interval-updates=500 --validate-interval-updates=500 \
        --best-checkpoint-metric=snli_score --maximize-best-checkpoint-metric \
        --max-src-length="$MAX_SRC_LENGTH" \
        --max-tgt-length="$MAX_TGT_LENGTH" \
        --find-unused-parameters \
        --num-bins="$NUM_BINS" \
        --patch-image-size="$PATCH_IMAGE_SIZE" \
        --prompt-type="$PROMPT_TYPE" \
        --add-caption \
        $(cuda_only --fp16 --fp16-scale-window=512) \
        --num-workers=0 \
        "$@"
  done
done
