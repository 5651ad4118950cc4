#!/usr/bin/env bash
# Visual grounding: finetune OFA-Large on RefCOCO (REFCOCO_DATASET=refcoco|refcocoplus|refcocog selects the data).
# Same flags and hyper-parameters as the original run_scripts/refcoco/train_refcoco.sh; train_refcocoplus.sh,
# train_refcocog.sh, the _base, _el, _prefix, _adapter and _bitfit variants only change the values below.
# Usage (from the repo root or run_scripts/refcoco): bash train_refcoco.sh [extra train.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-6051}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

REFCOCO_DATASET="${REFCOCO_DATASET:-refcoco}"
LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/${REFCOCO_DATASET}_logs}"
SAVE_DIR="${SAVE_DIR:-$SCRIPT_DIR/${REFCOCO_DATASET}_checkpoints}"
DATA_DIR="${DATA_DIR:-$DATASET_ROOT/${REFCOCO_DATASET}_data}"
DATA="${DATA:-$DATA_DIR/${REFCOCO_DATASET}_train.tsv,$DATA_DIR/${REFCOCO_DATASET}_val.tsv}"
RESTORE_FILE="${RESTORE_FILE-$CHECKPOINT_ROOT/ofa_large.pt}"
SELECTED_COLS="${SELECTED_COLS:-0,4,2,3}"

ARCH="${ARCH:-ofa_large}"
CRITERION="${CRITERION:-adjust_label_smoothed_cross_entropy}"
LABEL_SMOOTHING="${LABEL_SMOOTHING:-0.1}"
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
default EVAL_ARGS '{"beam":5,"min_len":4,"max_len_a":0,"max_len_b":4}'
LOG_END="${LOG_END:-}"        # encouraging loss only (the _el scripts)
RUN_SUFFIX="${RUN_SUFFIX:-}"  # appended to the run name (the _el scripts' "_el0.75")
# parameter-efficient tuning switches (the _prefix, _adapter, _bitfit scripts set them)
read -r -a TUNING_FLAGS <<<"${TUNING_FLAGS:-}"

require_data "$DATA"
require_restore_file "$RESTORE_FILE"

for max_epoch in ${MAX_EPOCH:-10}; do
  for lr in ${LR:-3e-5}; do
    for patch_image_size in ${PATCH_IMAGE_SIZE:-512}; do
      run="${max_epoch}_${lr}_${patch_image_size}${RUN_SUFFIX}"
      save_path="$SAVE_DIR/$run"
      mkdir -p "$save_path"
      ofa_finetune_flags "$save_path" refcoco
      ofa_train "$LOG_DIR/$run.log" \
          "$DATA" \
          "${OFA_FINETUNE_FLAGS[@]}" --lr="$lr" \
          --max-epoch="$max_epoch" --warmup-ratio="$WARMUP_RATIO" \
          --log-format=simple --log-interval=10 \
          --fixed-validation-seed=7 \
          --no-epoch-checkpoints --keep-best-checkpoints=1 \
          --save-interval=1 --validate-interval=1 \
          --save-interval-updates=500 --validate-interval-updates=500 \
          --eval-acc \
          --eval-args="$EVAL_ARGS" \
          --best-checkpoint-metric=score --maximize-best-checkpoint-metric \
          --max-src-length="$MAX_SRC_LENGTH" \
          --max-tgt-length="$MAX_TGT_LENGTH" \
          --find-unused-parameters \
          "${TUNING_FLAGS[@]}" \
          --num-bins="$NUM_BINS" \
          --patch-image-size="$patch_image_size" \
          $(cuda_only --fp16 --fp16-scale-window=512) \
          ${LOG_END:+--log-end="$LOG_END"} \
          --num-workers=0 \
          "$@"
    done
  done
done
