#!/usr/bin/env bash
# Text-to-image generation, stage 1: cross-entropy finetuning on COCO image codes (<code_i> tokens).
# Same flags and hyper-parameters as the original run_scripts/image_gen/train_image_gen_stage1_distributed.sh
# (4 nodes x 8 GPUs there: set NNODES, NODE_RANK, MASTER_ADDR, NPROC_PER_NODE for that).
# Validation samples 24 images per caption, decodes them with the VQGAN and reports the CLIP score.
# Usage (from the repo root or run_scripts/image_gen): bash train_image_gen_stage1.sh [extra train.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-8214}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
source "$SCRIPT_DIR/image_gen_env.sh"

LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/image_gen_logs}"
SAVE_DIR="${SAVE_DIR:-$SCRIPT_DIR/image_gen_checkpoints}"
# pre-shuffled epoch files (coco_vqgan_train_1.tsv..): DATA=<train_1>,...,<train_10>,<dev>
DATA="${DATA:-$DATA_DIR/coco_vqgan_train.tsv,$DATA_DIR/coco_vqgan_dev.tsv}"
RESTORE_FILE="${RESTORE_FILE-$CHECKPOINT_ROOT/ofa_large.pt}"
GEN_IMAGES_PATH="${GEN_IMAGES_PATH:-$RESULTS_ROOT/image_gen_stage1}"

ARCH="${ARCH:-ofa_large}"
CRITERION="${CRITERION:-adjust_label_smoothed_cross_entropy}"
LABEL_SMOOTHING="${LABEL_SMOOTHING:-0.0}"
BATCH_SIZE="${BATCH_SIZE:-4}"
UPDATE_FREQ="${UPDATE_FREQ:-4}"
ENCODER_DROP_PATH_RATE="${ENCODER_DROP_PATH_RATE:-0.1}"
DECODER_DROP_PATH_RATE="${DECODER_DROP_PATH_RATE:-0.1}"
DROPOUT="${DROPOUT:-0.1}"
ATTENTION_DROPOUT="${ATTENTION_DROPOUT:-0.0}"

require_data "$DATA"
require_restore_file "$RESTORE_FILE"
require_image_gen_models

for total_num_updates in ${TOTAL_NUM_UPDATES:-40000}; do
  for warmup_updates in ${WARMUP_UPDATES:-2000}; do
    for lr in ${LR:-1e-3}; do
      run="${total_num_updates}_${warmup_updates}_${lr}"
      save_path="$SAVE_DIR/$run"
      mkdir -p "$save_path"
      ofa_finetune_flags "$save_path" image_gen
      ofa_train "$LOG_DIR/${run}_rank${NODE_RANK}.log" \
          "$DATA" \
          --batch-size-valid=1 \
          "${OFA_FINETUNE_FLAGS[@]}" --lr="$lr" \
          --total-num-update="$total_num_updates" \
          --warmup-updates="$warmup_updates" \
          --log-format=simple --log-interval=10 \
          --fixed-validation-seed=7 \
          --keep-last-epochs=15 \
          --save-interval=3 --validate-interval=3 \
          --max-update="$total_num_updates" \
          --best-checkpoint-metric=score --maximize-best-checkpoint-metric \
          --eval-args="$EVAL_ARGS" \
          --max-src-length="$MAX_SRC_LENGTH" \
          --max-tgt-length="$MAX_TGT_LENGTH" \
          --find-unused-parameters \
          "${IMAGE_GEN_FLAGS[@]}" \
          --gen-images-path="$GEN_IMAGES_PATH" \
          $(cuda_only --fp16 --fp16-scale-window=256) \
          --num-workers=0 \
          "$@"
    done
  done
done
