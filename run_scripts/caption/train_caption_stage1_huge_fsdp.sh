#!/usr/bin/env bash
# Stage 1 caption finetuning of OFA-Huge with the model sharded over the GPUs (--ddp-backend fully_sharded, FSDP2):
# parameters, gradients and Adam states are split across ranks, weights are gathered layer by layer; bf16
# compute on GPUs. Not in the original (which finetunes Huge with data parallel fp16); stage 1's values otherwise.
# Usage: NPROC_PER_NODE=8 bash train_caption_stage1_huge_fsdp.sh [extra train.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-1052}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/stage1_fsdp_logs}"
SAVE_DIR="${SAVE_DIR:-$SCRIPT_DIR/stage1_fsdp_checkpoints}"
DATA_DIR="${DATA_DIR:-$DATASET_ROOT/caption_data}"
DATA="${DATA:-$DATA_DIR/caption_stage1_train.tsv,$DATA_DIR/caption_val.tsv}"
RESTORE_FILE="${RESTORE_FILE-$CHECKPOINT_ROOT/ofa_huge.pt}"
SELECTED_COLS="${SELECTED_COLS:-0,4,2}"
EVAL_CIDER_CACHED="${EVAL_CIDER_CACHED:-$DATA_DIR/cider_cached_tokens/coco-valid-words.p}"
ARCH="${ARCH:-ofa_huge}"
CRITERION="${CRITERION:-adjust_label_smoothed_cross_entropy}"
LABEL_SMOOTHING="${LABEL_SMOOTHING:-0.1}"
LR="${LR:-1e-5}"
MAX_EPOCH="${MAX_EPOCH:-2}"
WARMUP_RATIO="${WARMUP_RATIO:-0.06}"
BATCH_SIZE="${BATCH_SIZE:-8}"
UPDATE_FREQ="${UPDATE_FREQ:-4}"
RESNET_DROP_PATH_RATE="${RESNET_DROP_PATH_RATE:-0.0}"
ENCODER_DROP_PATH_RATE="${ENCODER_DROP_PATH_RATE:-0.1}"
DECODER_DROP_PATH_RATE="${DECODER_DROP_PATH_RATE:-0.1}"
DROPOUT="${DROPOUT:-0.1}"
ATTENTION_DROPOUT="${ATTENTION_DROPOUT:-0.0}"
PATCH_IMAGE_SIZE="${PATCH_IMAGE_SIZE:-480}"
default EVAL_ARGS '{"beam":5,"max_len_b":16,"no_repeat_ngram_size":3}'

require_data "$DATA"
require_file "$EVAL_CIDER_CACHED" "CIDEr document frequencies (--eval-cider-cached-tokens)"
require_restore_file "$RESTORE_FILE"

run="${MAX_EPOCH}_${WARMUP_RATIO}_fsdp"
ofa_finetune_flags "$SAVE_DIR/$run" caption
ofa_train "$LOG_DIR/$run.log" "$DATA" "${OFA_FINETUNE_FLAGS[@]}" --lr="$LR" \
    --max-epoch="$MAX_EPOCH" --warmup-ratio="$WARMUP_RATIO" --ddp-backend=fully_sharded $(cuda_only --bf16) \
    --log-format=simple --log-interval=10 --fixed-validation-seed=7 --no-epoch-checkpoints \
    --keep-best-checkpoints=1 --save-interval=1 --validate-interval=1 \
    --save-interval-updates=500 --validate-interval-updates=500 \
    --eval-cider --eval-cider-cached-tokens="$EVAL_CIDER_CACHED" --eval-args="$EVAL_ARGS" \
    --best-checkpoint-metric=cider --maximize-best-checkpoint-metric \
    --max-src-length=80 --max-tgt-length=20 --freeze-encoder-embedding --freeze-decoder-embedding \
    --num-bins=1000 --patch-image-size="$PATCH_IMAGE_SIZE" --drop-worst-ratio=0.2 --drop-worst-after=2500 \
    --num-workers=0 "$@"
