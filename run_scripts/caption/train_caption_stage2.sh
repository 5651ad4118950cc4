#!/usr/bin/env bash
# Image captioning, stage 2: CIDEr optimization (SCST) from the best stage-1 checkpoint.
# Same flags and hyper-parameters as the original run_scripts/caption/train_caption_stage2.sh.
# CIDEr optimization is unstable: if training diverges, raise BATCH_SIZE, lower LR, or pass --freeze-resnet.
# Usage (from the repo root or run_scripts/caption): bash train_caption_stage2.sh [extra train.py flags]
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
MASTER_PORT="${MASTER_PORT:-1052}"
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

LOG_DIR="${LOG_DIR:-$SCRIPT_DIR/stage2_logs}"
SAVE_DIR="${SAVE_DIR:-$SCRIPT_DIR/stage2_checkpoints}"
DATA_DIR="${DATA_DIR:-$DATASET_ROOT/caption_data}"
DATA="${DATA:-$DATA_DIR/caption_stage2_train.tsv,$DATA_DIR/caption_val.tsv}"
RESTORE_FILE="${RESTORE_FILE-$CHECKPOINT_ROOT/caption_stage1_best.pt}"
SELECTED_COLS="${SELECTED_COLS:-1,4,2}"
EVAL_CIDER_CACHED="${EVAL_CIDER_CACHED:-$DATA_DIR/cider_cached_tokens/coco-valid-words.p}"
SCST_CIDER_CACHED="${SCST_CIDER_CACHED:-$DATA_DIR/cider_cached_tokens/coco-train-words.p}"

ARCH="${ARCH:-ofa_large}"
CRITERION="${CRITERION:-scst_reward_criterion}"
BATCH_SIZE="${BATCH_SIZE:-2}"
UPDATE_FREQ="${UPDATE_FREQ:-4}"
END_LEARNING_RATE="${END_LEARNING_RATE-2e-7}"  # the base script has none (polynomial decay to 0)
RESNET_DROP_PATH_RATE="${RESNET_DROP_PATH_RATE:-0.0}"
ENCODER_DROP_PATH_RATE="${ENCODER_DROP_PATH_RATE:-0.0}"
DECODER_DROP_PATH_RATE="${DECODER_DROP_PATH_RATE:-0.0}"
DROPOUT="${DROPOUT:-0.0}"
ATTENTION_DROPOUT="${ATTENTION_DROPOUT:-0.0}"
WARMUP_RATIO="${WARMUP_RATIO:-0.06}"
MAX_SRC_LENGTH="${MAX_SRC_LENGTH:-80}"
MAX_TGT_LENGTH="${MAX_TGT_LENGTH:-20}"
NUM_BINS="${NUM_BINS:-1000}"
PATCH_IMAGE_SIZE="${PATCH_IMAGE_SIZE:-480}"
default EVAL_ARGS '{"beam":5,"max_len_b":16,"no_repeat_ngram_size":3}'
default SCST_ARGS '{"beam":5,"max_len_b":16,"no_repeat_ngram_size":3}'

require_data "$DATA"
require_file "$EVAL_CIDER_CACHED" "CIDEr document frequencies (--eval-cider-cached-tokens)"
require_file "$SCST_CIDER_CACHED" "CIDEr document frequencies (--scst-cider-cached-tokens)"
require_restore_file "$RESTORE_FILE"

for lr in ${LR:-1e-5}; do
  for max_epoch in ${MAX_EPOCH:-3}; do
    run="${lr}_${max_epoch}"
    save_path="$SAVE_DIR/$run"
    mkdir -p "$save_path"
    ofa_finetune_flags "$save_path" caption
    ofa_train "$LOG_DIR/$run.log" \
        "$DATA" \
        "${OFA_FINETUNE_FLAGS[@]}" --lr="$lr" ${END_LEARNING_RATE:+--end-learning-rate="$END_LEARNING_RATE"} \
        --max-epoch="$max_epoch" --warmup-ratio="$WARMUP_RATIO" \
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
        --scst \
        --scst-cider-cached-tokens="$SCST_CIDER_CACHED" \
        --scst-args="$SCST_ARGS" \
        $(cuda_only --memory-efficient-fp16 --fp16-scale-window=512) \
        --num-workers=0 \
        "$@"
  done
done
