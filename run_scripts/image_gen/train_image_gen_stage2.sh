#!/usr/bin/env bash
# Text-to-image generation, stage 2: CLIP-score optimization (SCST with clip_scst_reward_criterion) from the
# last stage-1 checkpoint. Same flags and hyper-parameters as the original
# run_scripts/image_gen/train_image_gen_stage2_distributed.sh.
# Usage (from the repo root or run_scripts/image_gen): bash train_image_gen_stage2.sh [extra train.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-8215}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
source "$SCRIPT_DIR/image_gen_env.sh"

LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/image_gen_stage2_logs}"
SAVE_DIR="${SAVE_DIR:-$SCRIPT_DIR/image_gen_checkpoints}"
DATA="${DATA:-$DATA_DIR/coco_vqgan_train.tsv,$DATA_DIR/coco_vqgan_dev.tsv}"
# the last checkpoint of stage 1 (train_image_gen_stage1.sh writes it there with the same SAVE_DIR)
RESTORE_FILE="${RESTORE_FILE-$SAVE_DIR/40000_2000_1e-3/checkpoint_last.pt}"
GEN_IMAGES_PATH="${GEN_IMAGES_PATH:-$RESULTS_ROOT/image_gen_stage2}"

ARCH="${ARCH:-ofa_large}"
CRITERION="${CRITERION:-clip_scst_reward_criterion}"
BATCH_SIZE="${BATCH_SIZE:-1}"
UPDATE_FREQ="${UPDATE_FREQ:-1}"
ENCODER_DROP_PATH_RATE="${ENCODER_DROP_PATH_RATE:-0.0}"
DECODER_DROP_PATH_RATE="${DECODER_DROP_PATH_RATE:-0.0}"
DROPOUT="${DROPOUT:-0.0}"
ATTENTION_DROPOUT="${ATTENTION_DROPOUT:-0.0}"
# 5 sampled images per caption; each one's baseline is the mean CLIP reward of the other 4
default SCST_ARGS '{"beam":5,"min_len":1024,"max_len_a":0,"max_len_b":1024,"sampling_topk":256,"temperature":1.0}'

require_data "$DATA"
require_restore_file "$RESTORE_FILE"
require_image_gen_models

for total_num_updates in ${TOTAL_NUM_UPDATES:-5000}; do
  for warmup_updates in ${WARMUP_UPDATES:-0}; do
    for lr in ${LR:-1e-6}; do
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
          --save-interval=1 --validate-interval=1 \
          --save-interval-updates=200 --validate-interval-updates=200 \
          --freeze-resnet \
          --max-update="$total_num_updates" \
          --best-checkpoint-metric=score --maximize-best-checkpoint-metric \
          --eval-args="$EVAL_ARGS" \
          --scst \
          --scst-args="$SCST_ARGS" \
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
