#!/usr/bin/env bash
# ImageNet-1K finetuning of OFA-Large (classification as constrained generation of the class name).
# Same flags and hyper-parameters as the original run_scripts/image_classify/train_imagenet_distributed.sh;
# validation uses the 20% val subset. Multi-node: set NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT on every node.
# Pre-shuffled epoch files: DATA=$DATA_DIR/imagenet_1k_train_1.tsv,...,$DATA_DIR/imagenet_1k_val_subset.tsv
# Usage (from the repo root or run_scripts/image_classify): bash train_imagenet_distributed.sh [extra train.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-8514}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/imagenet_1k_logs}"
SAVE_DIR="${SAVE_DIR:-$SCRIPT_DIR/imagenet_1k_checkpoints}"
DATA_DIR="${DATA_DIR:-$DATASET_ROOT/imagenet_1k_data}"
DATA="${DATA:-$DATA_DIR/imagenet_1k_train.tsv,$DATA_DIR/imagenet_1k_val_subset.tsv}"
ANS2LABEL_FILE="${ANS2LABEL_FILE:-$DATA_DIR/class2label_new.pkl}"
RESTORE_FILE="${RESTORE_FILE-$CHECKPOINT_ROOT/ofa_large.pt}"
SELECTED_COLS="${SELECTED_COLS:-0,2}"

ARCH="${ARCH:-ofa_large}"
CRITERION="${CRITERION:-adjust_label_smoothed_cross_entropy}"
LABEL_SMOOTHING="${LABEL_SMOOTHING:-0.1}"
BATCH_SIZE="${BATCH_SIZE:-4}"
UPDATE_FREQ="${UPDATE_FREQ:-4}"
RESNET_DROP_PATH_RATE="${RESNET_DROP_PATH_RATE:-0.0}"
ENCODER_DROP_PATH_RATE="${ENCODER_DROP_PATH_RATE:-0.1}"
DECODER_DROP_PATH_RATE="${DECODER_DROP_PATH_RATE:-0.1}"
DROPOUT="${DROPOUT:-0.1}"
ATTENTION_DROPOUT="${ATTENTION_DROPOUT:-0.0}"
MAX_SRC_LENGTH="${MAX_SRC_LENGTH:-128}"
MAX_TGT_LENGTH="${MAX_TGT_LENGTH:-30}"
NUM_BINS="${NUM_BINS:-1000}"

require_data "$DATA"
require_file "$ANS2LABEL_FILE" "class set (--ans2label-file)"
require_restore_file "$RESTORE_FILE"

for total_num_updates in ${TOTAL_NUM_UPDATES:-160000}; do
  for warmup_updates in ${WARMUP_UPDATES:-1000}; do
    for lr in ${LR:-5e-5}; do
      for patch_image_size in ${PATCH_IMAGE_SIZE:-480}; do
        run="${total_num_updates}_${warmup_updates}_${lr}_${patch_image_size}"
        save_path="$SAVE_DIR/$run"
        mkdir -p "$save_path"
        ofa_finetune_flags "$save_path" image_classify
        ofa_train "$LOG_DIR/${run}_rank${NODE_RANK}.log" \
            "$DATA" \
            "${OFA_FINETUNE_FLAGS[@]}" --lr="$lr" \
            --total-num-update="$total_num_updates" \
            --warmup-updates="$warmup_updates" \
            --log-format=simple --log-interval=10 \
            --fixed-validation-seed=7 \
            --keep-last-epochs=15 \
            --save-interval=1 --validate-interval=1 \
            --max-update="$total_num_updates" \
            --best-checkpoint-metric=score --maximize-best-checkpoint-metric \
            --max-src-length="$MAX_SRC_LENGTH" \
            --max-tgt-length="$MAX_TGT_LENGTH" \
            --find-unused-parameters \
            --freeze-encoder-embedding \
            --freeze-decoder-embedding \
            --ans2label-file="$ANS2LABEL_FILE" \
            --valid-batch-size=20 \
            --num-bins="$NUM_BINS" \
            --patch-image-size="$patch_image_size" \
            $(cuda_only --fp16 --fp16-scale-window=512) \
            --imagenet-default-mean-and-std \
            --num-workers=0 \
            "$@"
      done
    done
  done
done
